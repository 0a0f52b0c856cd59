//! The worked examples of `docs/exo-relay-rules.md`, one line each, run under both profiles.
//!
//! The columns and their notation are the document's ("Reading the table"); `document.rs`
//! checks that the two tables agree row for row.

use super::*;

/// One worked example: its id in the document, the facts, and the outcome under each profile.
pub(super) struct Example {
    pub id: &'static str,
    pub tenant: &'static str,
    pub peer: &'static str,
    pub certificate: &'static str,
    pub p1: &'static str,
    pub p2: &'static str,
    pub recipient: &'static str,
    pub exo_2023: &'static str,
    pub exo_legacy: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn ex(
    id: &'static str,
    tenant: &'static str,
    peer: &'static str,
    certificate: &'static str,
    p1: &'static str,
    p2: &'static str,
    recipient: &'static str,
    exo_2023: &'static str,
    exo_legacy: &'static str,
) -> Example {
    Example {
        id,
        tenant,
        peer,
        certificate,
        p1,
        p2,
        recipient,
        exo_2023,
        exo_legacy,
    }
}

const ANY: &str = "anything@example.com";
const NO_CONNECTOR: &str = "5.7.64 (no connector)";
const IP_UNATTRIBUTED: &str = "5.7.64 (IP, unattributed)";
const INBOUND: &str = "inbound (contoso.com)";
const TLS_REFUSED: &str = "4.7.0 (P-RESTRICT)";
const NO_TENANT: &str = "5.7.64 (no tenant)";

// A table: one example a line, aligned by column, so rustfmt keeps its hands off.
#[rustfmt::skip]
pub(super) const EXAMPLES: &[Example] = &[
    //  id                               tenant                 peer                    certificate                   P1                         P2                        recipient              exo-2023                            exo-legacy
    ex("ip-accepted-p1",                "base",                "203.0.113.10",         "none",                       "app@contoso.com",         "app@contoso.com",        EXT,                   "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("ip-foreign-p1-accepted-p2",     "base",                "203.0.113.10",         "none",                       "app@example.net",         "app@contoso.com",        EXT,                   IP_UNATTRIBUTED,                    "relayed (1c, IP)"),
    ex("ip-null-sender-ndr",            "base",                "203.0.113.10",         "none",                       "<>",                      "postmaster@contoso.com", EXT,                   IP_UNATTRIBUTED,                    "relayed (1c, IP)"),
    ex("inbound-from-foreign-sender",   "base",                "203.0.113.10",         "none",                       "app@example.net",         ANY,                      ALICE,                 INBOUND,                            INBOUND),
    ex("no-connector",                  "base",                "198.51.100.7",         "none",                       "app@contoso.com",         ANY,                      EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("cert-null-sender",              "base",                "198.51.100.7",         "mail.contoso.com",           "<>",                      ANY,                      EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("untrusted-cert-null-sender",    "base",                "198.51.100.7",         "untrusted mail.contoso.com", "<>",                      ANY,                      EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("match-subdomains-p1",           "base",                "203.0.113.10",         "none",                       "user@sales.fabrikam.com", ANY,                      EXT,                   "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("ip-null-sender-no-from",        "base",                "203.0.113.10",         "none",                       "<>",                      "none",                   EXT,                   IP_UNATTRIBUTED,                    IP_UNATTRIBUTED),
    ex("ip-header-unread",              "base",                "203.0.113.10",         "none",                       "<>",                      "unread",                 EXT,                   IP_UNATTRIBUTED,                    "undecided"),
    ex("ip-header-unread-inbound",      "base",                "203.0.113.10",         "none",                       "<>",                      "unread",                 ALICE,                 INBOUND,                            INBOUND),
    ex("authoritative-subdomain-p1",    "base",                "203.0.113.10",         "none",                       "app@sales.contoso.com",   "none",                   EXT,                   IP_UNATTRIBUTED,                    IP_UNATTRIBUTED),
    ex("authoritative-subdomain-rcpt",  "base",                "198.51.100.7",         "none",                       "x@example.net",           "none",                   "a@sales.contoso.com", NO_CONNECTOR,                       NO_CONNECTOR),
    ex("case-and-dot-p1",               "base",                "203.0.113.10",         "none",                       "App@CONTOSO.com.",        "none",                   EXT,                   "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("case-and-dot-rcpt",             "base",                "198.51.100.7",         "none",                       "x@example.net",           "none",                   "Alice@Contoso.COM.",  INBOUND,                            INBOUND),
    ex("cert-bare-domain",              "base",                "198.51.100.7",         "contoso.com",                "<>",                      "none",                   EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("cert-deep-subdomain",           "base",                "198.51.100.7",         "a.b.contoso.com",            "<>",                      "none",                   EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("wildcard-cert",                 "base",                "198.51.100.7",         "*.contoso.com",              "<>",                      "none",                   EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("ipv4-mapped-peer",              "base",                "::ffff:203.0.113.10",  "none",                       "app@contoso.com",         "none",                   EXT,                   "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("ipv6-peer",                     "base",                "2001:db8::1",          "none",                       "app@contoso.com",         "none",                   EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("ipv6-peer-cert",                "base",                "2001:db8::1",          "mail.contoso.com",           "<>",                      "none",                   EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("rcpt-no-domain",                "base",                "198.51.100.7",         "none",                       "x@example.net",           "none",                   "postmaster",          NO_CONNECTOR,                       NO_CONNECTOR),
    ex("rcpt-address-literal",          "base",                "198.51.100.7",         "none",                       "x@example.net",           "none",                   "x@[192.0.2.1]",       NO_CONNECTOR,                       NO_CONNECTOR),
    ex("rcpt-empty-domain",             "base",                "198.51.100.7",         "none",                       "x@example.net",           "none",                   "x@",                  NO_CONNECTOR,                       NO_CONNECTOR),
    ex("disabled-connectors",           "disabled",            "203.0.113.10",         "mail.contoso.com",           "app@contoso.com",         "none",                   EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("partner-connectors-only",       "partner-only",        "203.0.113.10",         "mail.contoso.com",           "app@contoso.com",         "none",                   EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("exact-cert-not-accepted",       "exact-cert",          "198.51.100.7",         "mail.contoso.com",           "<>",                      "none",                   EXT,                   "5.7.64 (cert, unattributed)",      "5.7.64 (cert, unattributed)"),
    ex("exact-cert-accepted",           "exact-cert-accepted", "198.51.100.7",         "mail.contoso.com",           "<>",                      "none",                   EXT,                   "relayed (1a, cert)",               "relayed (1a, cert)"),
    ex("exact-cert-accepted-p1",        "exact-cert",          "198.51.100.7",         "mail.contoso.com",           "app@contoso.com",         "none",                   EXT,                   "relayed (1b, cert)",               "relayed (1b, cert)"),
    ex("partner-ip-elsewhere",          "partner-ip",          "198.51.100.7",         "none",                       "x@partner.example",       "none",                   ALICE,                 "5.7.51 (P-RESTRICT)",              "5.7.51 (P-RESTRICT)"),
    ex("partner-ip-own-address",        "partner-ip",          "192.0.2.5",            "none",                       "x@partner.example",       "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-ip-other-sender",       "partner-ip",          "198.51.100.7",         "none",                       "x@other.example",         "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-ip-null-sender",        "partner-ip",          "198.51.100.7",         "none",                       "<>",                      "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-cert-missing",          "partner-cert",        "198.51.100.7",         "none",                       "<>",                      "none",                   ALICE,                 "5.7.51 (P-RESTRICT)",              "5.7.51 (P-RESTRICT)"),
    ex("partner-cert-presented",        "partner-cert",        "198.51.100.7",         "mx.partner.example",         "<>",                      "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-cert-subdomain-sender", "partner-cert-sub",    "198.51.100.7",         "none",                       "x@eu.partner.example",    "none",                   ALICE,                 "5.7.51 (P-RESTRICT)",              "5.7.51 (P-RESTRICT)"),
    ex("partner-tls-missing",           "partner-tls",         "192.0.2.5",            NO_TLS,                       "x@partner.example",       "none",                   ALICE,                 TLS_REFUSED,                        TLS_REFUSED),
    ex("partner-tls-present",           "partner-tls",         "192.0.2.5",            "none",                       "x@partner.example",       "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-tls-before-restriction","partner-tls",         "198.51.100.7",         NO_TLS,                       "x@partner.example",       "none",                   ALICE,                 TLS_REFUSED,                        TLS_REFUSED),
    ex("partner-tls-then-restriction",  "partner-tls",         "198.51.100.7",         "none",                       "x@partner.example",       "none",                   ALICE,                 "5.7.51 (P-RESTRICT)",              "5.7.51 (P-RESTRICT)"),
    ex("partner-tls-untrusted-cert",    "partner-tls",         "192.0.2.5",            "untrusted mx.partner.example", "x@partner.example",     "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-tls-other-sender",      "partner-tls",         "198.51.100.7",         NO_TLS,                       "x@other.example",         "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-tls-null-sender",       "partner-tls",         "192.0.2.5",            NO_TLS,                       "<>",                      "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("partner-tls-relay-recipient",   "partner-tls",         "198.51.100.7",         NO_TLS,                       "x@partner.example",       "none",                   EXT,                   NO_CONNECTOR,                       NO_CONNECTOR),
    ex("onprem-tls-without-tls",        "onprem-tls",          "203.0.113.10",         NO_TLS,                       "app@contoso.com",         "none",                   EXT,                   "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("onprem-tls-inbound",            "onprem-tls",          "198.51.100.7",         NO_TLS,                       "app@contoso.com",         "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("direct-send-own-domain",        "reject-direct-send",  "198.51.100.7",         "none",                       "spoof@contoso.com",       "none",                   ALICE,                 "5.7.68",                           "5.7.68"),
    ex("direct-send-foreign-domain",    "reject-direct-send",  "198.51.100.7",         "none",                       "x@example.net",           "none",                   ALICE,                 INBOUND,                            INBOUND),
    ex("direct-send-attributed",        "reject-direct-send",  "203.0.113.10",         "none",                       "app@contoso.com",         "none",                   ALICE,                 "relayed (1b, IP)",                 "relayed (1b, IP)"),
    ex("unknown-recipient",             "recipient-list",      "198.51.100.7",         "none",                       "x@example.net",           "none",                   "nobody@contoso.com",  "5.4.1",                            "5.4.1"),
    ex("known-recipient-any-case",      "recipient-list",      "198.51.100.7",         "none",                       "x@example.net",           "none",                   "ALICE@Contoso.com",   INBOUND,                            INBOUND),
    ex("recipient-list-internal-relay", "internal-relay-list", "198.51.100.7",         "none",                       "x@example.net",           "none",                   "b@fabrikam.com",      "inbound (fabrikam.com)",           "inbound (fabrikam.com)"),
    ex("other-tenant-recipient",        "other-tenant",        "198.51.100.7",         "none",                       "x@example.net",           "none",                   "z@Northwind.Example", "other tenant (northwind.example)", "other tenant (northwind.example)"),
    ex("tenants-certificate",           "two-tenants",         "203.0.113.10",         "mail.tailspin.example",      "<>",                      "none",                   EXT,                   "tailspin by certificate: relayed (1a, cert)", "tailspin by certificate: relayed (1a, cert)"),
    ex("tenants-certificate-before-p1", "two-tenants",         "203.0.113.10",         "mail.tailspin.example",      "app@contoso.com",         "none",                   EXT,                   "tailspin by certificate: relayed (1a, cert)", "tailspin by certificate: relayed (1a, cert)"),
    ex("tenants-two-certificate-names", "two-tenants",         "203.0.113.10",         "mail.contoso.com, mail.tailspin.example", "app@tailspin.example", "none",           EXT,                   "tailspin by P1: relayed (1a, cert)", "tailspin by P1: relayed (1a, cert)"),
    ex("tenants-p1",                    "two-tenants",         "203.0.113.10",         "none",                       "app@tailspin.example",    "none",                   EXT,                   "tailspin by P1: relayed (1b, IP)", "tailspin by P1: relayed (1b, IP)"),
    ex("tenants-first-recipient",       "two-tenants",         "198.51.100.7",         "none",                       "x@example.net",           "none",                   "a@tailspin.example",  "tailspin by recipient: inbound (tailspin.example)", "tailspin by recipient: inbound (tailspin.example)"),
    ex("tenants-other-tenant-recipient","two-tenants",         "203.0.113.10",         "none",                       "app@contoso.com",         "none",                   "a@tailspin.example",  "contoso by P1: 452 4.5.3 (tailspin)", "contoso by P1: 452 4.5.3 (tailspin)"),
    ex("tenants-mixed-recipients",      "two-tenants",         "198.51.100.7",         "none",                       "x@example.net",           "none",                   "alice@contoso.com, a@tailspin.example", "contoso by recipient: 452 4.5.3 (tailspin)", "contoso by recipient: 452 4.5.3 (tailspin)"),
    ex("tenants-nothing-attributes",    "two-tenants",         "203.0.113.10",         "none",                       "app@example.net",         "app@contoso.com",        EXT,                   NO_TENANT,                          NO_TENANT),
    ex("tenants-ndr-shared-ip",         "two-tenants",         "203.0.113.10",         "none",                       "<>",                      "postmaster@tailspin.example", EXT,              NO_TENANT,                          NO_TENANT),
];

/// What the engine made of one example under one profile.
pub(super) struct Observed {
    /// In the document's notation: `relayed (1b, IP)`, `5.7.64 (no connector)`, ...
    pub outcome: String,
    /// The reply line of a refusal, without the suffix.
    pub reply: Option<String>,
}

/// Run one example under one profile. Several recipients (comma-separated) are named in that
/// order; the outcome is the last one's.
pub(super) fn observe(example: &Example, profile: Profile) -> Observed {
    let tenants = tenant_set(example.tenant).unwrap_or_else(|| {
        panic!(
            "example `{}`: no tenant variant `{}` in the tests",
            example.id, example.tenant
        )
    });
    let client = Client::new(example.peer, example.certificate);
    let recipients: Vec<&str> = example.recipient.split(", ").collect();
    let evaluation = judge_among(
        &tenants,
        profile,
        &client,
        example.p1,
        example.p2,
        &recipients,
    );
    let verdict = &evaluation.recipients[recipients.len() - 1].1;
    let reply = match verdict {
        RecipientVerdict::Reject(r) => Some(reply_line(r)),
        _ => None,
    };
    let mut outcome = outcome(&evaluation.relay, verdict);
    if let Some(a) = evaluation.attribution {
        if a.by != AttributedBy::OnlyTenant {
            outcome = format!("{} by {}: {outcome}", tenants[a.tenant].name, a.by.as_str());
        }
    }
    Observed { outcome, reply }
}

/// A recipient's verdict in the document's notation.
fn outcome(relay: &RelayDecision, verdict: &RecipientVerdict) -> String {
    let how = |c2: &Condition2| match c2 {
        Condition2::SenderIpAddress { .. } => "IP",
        Condition2::TlsSenderCertificate { .. } => "cert",
    };
    match verdict {
        RecipientVerdict::Accept(AcceptReason::Originating) => match relay {
            RelayDecision::Authorized {
                condition1,
                condition2,
            } => {
                let branch = match condition1 {
                    Condition1::CertificateDomain { .. } => "1a",
                    Condition1::EnvelopeSender { .. } => "1b",
                    Condition1::HeaderSender { .. } => "1c",
                };
                format!("relayed ({branch}, {})", how(condition2))
            }
            other => format!("originating although relay is {other:?}"),
        },
        RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => {
            format!("inbound ({accepted_domain})")
        }
        RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => {
            format!("other tenant ({domain})")
        }
        RecipientVerdict::AwaitingHeaderSender => "undecided".into(),
        RecipientVerdict::Reject(r) => {
            let code = enhanced_code(r);
            match r {
                Rejection::RelayAccessDenied(RelayDenial::NoOnPremisesConnector) => {
                    format!("{code} (no connector)")
                }
                Rejection::RelayAccessDenied(RelayDenial::NoTenant) => {
                    format!("{code} (no tenant)")
                }
                Rejection::RelayAccessDenied(RelayDenial::SendAsDenied { user }) => {
                    format!("{code} (send as, {user})")
                }
                Rejection::OtherTenantRecipient { tenant } => {
                    let reply = r.reply();
                    format!("{} {code} ({tenant})", reply.code)
                }
                Rejection::RelayAccessDenied(RelayDenial::SenderNotAttributed { condition2 }) => {
                    format!("{code} ({}, unattributed)", how(condition2))
                }
                Rejection::PartnerConnectorRestriction { connector }
                | Rejection::RequireTls { connector } => format!("{code} ({connector})"),
                Rejection::DirectSendNotAllowed | Rejection::RecipientNotFound => code,
            }
        }
    }
}

#[test]
fn worked_examples_hold_under_both_profiles() {
    let mut wrong = Vec::new();
    for example in EXAMPLES {
        for (profile, expected) in [
            (Profile::Exo2023, example.exo_2023),
            (Profile::ExoLegacy, example.exo_legacy),
        ] {
            let got = observe(example, profile).outcome;
            if got != expected {
                wrong.push(format!(
                    "example `{}` under {}: expected `{expected}`, the engine says `{got}`",
                    example.id,
                    profile.as_str()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} worked example(s) of docs/exo-relay-rules.md do not hold:\n  {}",
        wrong.len(),
        wrong.join("\n  ")
    );
}

#[test]
fn worked_example_ids_are_unique() {
    let mut seen = HashSet::new();
    let repeated: Vec<&str> = EXAMPLES
        .iter()
        .map(|e| e.id)
        .filter(|id| !seen.insert(*id))
        .collect();
    assert!(repeated.is_empty(), "example ids used twice: {repeated:?}");
}
