//! A whole transaction judged under both profiles, and what would make it pass.
//!
//! The session judges recipient by recipient as the SMTP dialogue goes; an admin asks a different
//! question: "this flow (this sender, this envelope, these recipients): does Exchange Online take
//! it, would it have before November 2023, and if not, what do I change in the tenant?". That
//! question is answered here, still pure, so `relaygate check`, the audit log and `relaygate
//! report` give the same answer for the same facts.

use super::{
    authorize_relay, ipv4_of, judge_recipient, normalise, AttributedBy, Attribution,
    CertificateName, Condition2, ConnectorType, HeaderSender, Profile, RecipientVerdict, Rejection,
    RelayDecision, RelayDenial, ReversePath, SessionFacts, Tenant,
};

/// One transaction under one profile, with the P2 sender known (or known to be absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub profile: Profile,
    pub relay: RelayDecision,
    /// Every recipient, in the order given, with its verdict.
    pub recipients: Vec<(String, RecipientVerdict)>,
    /// The tenant the transaction was attributed to (always the one, for a single tenant);
    /// `None` when no tenant was.
    pub attribution: Option<Attribution>,
}

/// The transaction's outcome as a sender sees it: accepted whole, or refused with the first
/// refusal Exchange Online would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Refused(Rejection),
    /// `exo-legacy` for a transaction that ended before its header block (RSET, QUIT): the
    /// rule needed the P2 sender and never saw it.
    Undecided,
}

impl Evaluation {
    /// The first refusal; else undecided when a recipient still awaits the P2 sender; else
    /// accepted.
    pub fn verdict(&self) -> Verdict {
        let mut undecided = false;
        for (_, v) in &self.recipients {
            match v {
                RecipientVerdict::Reject(r) => return Verdict::Refused(r.clone()),
                RecipientVerdict::AwaitingHeaderSender => undecided = true,
                RecipientVerdict::Accept(_) => {}
            }
        }
        if undecided {
            Verdict::Undecided
        } else {
            Verdict::Accepted
        }
    }
}

/// Judge a whole transaction under `profile`. `header_sender` is what the header block said
/// (`Domain` or `Absent`), or `NotYetKnown` for a transaction that ended before it: then
/// `exo-legacy` may be [`Verdict::Undecided`].
pub fn evaluate<S: AsRef<str>>(
    tenant: &Tenant,
    profile: Profile,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
    recipients: &[S],
) -> Evaluation {
    let relay = authorize_relay(tenant, profile, session, reverse_path, header_sender);
    let recipients = recipients
        .iter()
        .map(|r| {
            let r = r.as_ref();
            (
                r.to_string(),
                judge_recipient(tenant, session, reverse_path, &relay, r),
            )
        })
        .collect();
    Evaluation {
        profile,
        relay,
        recipients,
        attribution: Some(Attribution {
            tenant: 0,
            by: AttributedBy::OnlyTenant,
        }),
    }
}

/// The same transaction under both profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub exo_2023: Evaluation,
    pub exo_legacy: Evaluation,
}

impl Comparison {
    pub fn evaluate<S: AsRef<str>>(
        tenant: &Tenant,
        session: &SessionFacts<'_>,
        reverse_path: ReversePath<'_>,
        header_sender: HeaderSender<'_>,
        recipients: &[S],
    ) -> Comparison {
        let one = |profile| {
            evaluate(
                tenant,
                profile,
                session,
                reverse_path,
                header_sender,
                recipients,
            )
        };
        Comparison {
            exo_2023: one(Profile::Exo2023),
            exo_legacy: one(Profile::ExoLegacy),
        }
    }

    pub fn get(&self, profile: Profile) -> &Evaluation {
        match profile {
            Profile::Exo2023 => &self.exo_2023,
            Profile::ExoLegacy => &self.exo_legacy,
        }
    }

    /// The flow passed before 1 November 2023 and is refused since: the change is what breaks
    /// it (by the P2 branch 1c, the only difference between the profiles).
    pub fn broken_by_november_2023(&self) -> bool {
        Comparison::breaks(&self.exo_2023.verdict(), &self.exo_legacy.verdict())
    }

    /// The same from verdicts already computed: accepted under exo-legacy, not under exo-2023.
    pub fn breaks(exo_2023: &Verdict, exo_legacy: &Verdict) -> bool {
        *exo_legacy == Verdict::Accepted && *exo_2023 != Verdict::Accepted
    }
}

/// What the admin can change so that this transaction passes under `exo-2023`, or `None` when
/// it already does. Each suggestion is one of the fixes Microsoft documents for the November
/// 2023 change: make the envelope sender an accepted domain, or authenticate the sending server
/// by a certificate whose name is an accepted domain on an OnPremises connector.
pub fn suggest_fix(
    tenant: &Tenant,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
    evaluation: &Evaluation,
) -> Option<String> {
    let Verdict::Refused(rejection) = evaluation.verdict() else {
        return None;
    };
    Some(match rejection {
        Rejection::RelayAccessDenied(RelayDenial::NoOnPremisesConnector) => {
            no_connector_fix(tenant, session)
        }
        Rejection::RelayAccessDenied(RelayDenial::SenderNotAttributed { condition2 }) => {
            unattributed_fix(tenant, session, reverse_path, header_sender, &condition2)
        }
        Rejection::RelayAccessDenied(RelayDenial::SendAsDenied { user }) => format!(
            "user \"{user}\" may not send as this P1: add the address (or *@domain) to its allowed_senders in the users file, or send as an address it already has"
        ),
        Rejection::RelayAccessDenied(RelayDenial::NoTenant) => "no tenant is this transaction's (MC1226222): have the server present in STARTTLS a certificate whose name is an accepted domain of its tenant (one certificate per tenant), or send with a MAIL FROM in an accepted domain of the tenant".to_string(),
        Rejection::OtherTenantRecipient { tenant } => format!(
            "recipients of tenant \"{tenant}\" were answered 452 4.5.3: the sender sends them again in a transaction of their own, which that tenant's rules judge; nothing to change unless it does not retry"
        ),
        Rejection::RecipientNotFound => {
            let unknown: Vec<&str> = evaluation
                .recipients
                .iter()
                .filter(|(_, v)| *v == RecipientVerdict::Reject(Rejection::RecipientNotFound))
                .map(|(a, _)| a.as_str())
                .collect();
            format!(
                "{} is not a known recipient (Directory-Based Edge Blocking): add it to the accepted domain's recipients, or fix the address",
                unknown.join(", ")
            )
        }
        Rejection::PartnerConnectorRestriction { connector } => format!(
            "Partner connector \"{connector}\" restricts this sender domain to its IP addresses or certificate: send from one of them, or narrow its SenderDomains"
        ),
        Rejection::RequireTls { connector } => format!(
            "Partner connector \"{connector}\" requires TLS (RequireTls) from this sender domain: have the sending server use STARTTLS, or narrow the connector's SenderDomains if this sender is not that partner"
        ),
        Rejection::DirectSendNotAllowed => "RejectDirectSend is on and this source is not attributed to the tenant: add an OnPremises connector for it (by IP or certificate)".to_string(),
    })
}

fn no_connector_fix(tenant: &Tenant, session: &SessionFacts<'_>) -> String {
    // A certificate name that is already an accepted domain needs only the connector; a
    // wildcard certificate (`*.contoso.com`) needs the connector value written the same way
    // and its base accepted.
    let names = session.certificate_names;
    let accepted = names
        .iter()
        .find(|n| !n.starts_with("*.") && tenant.accepted_domain(n).is_some());
    if let Some(name) = accepted.or_else(|| names.first()) {
        let value = match name.strip_prefix("*.") {
            Some(base) => CertificateName::Wildcard(base.to_string()),
            None => CertificateName::Exact(name.clone()),
        };
        let domain = value.domain();
        return format!(
            "add an OnPremises connector with TlsSenderCertificateName = {value}{}",
            if tenant.accepted_domain(domain).is_some() {
                String::new()
            } else {
                format!(" and add {domain} as an accepted domain")
            }
        );
    }
    match ipv4_of(session.peer_ip) {
        Some(ip) => format!(
            "add {ip} to the SenderIPAddresses of an OnPremises connector (and send with an accepted P1 domain), or authenticate the server by a certificate connector"
        ),
        None => "Exchange Online connectors take IPv4 addresses only: send over IPv4 from an address on an OnPremises connector, or authenticate the server by a certificate connector".to_string(),
    }
}

fn unattributed_fix(
    tenant: &Tenant,
    session: &SessionFacts<'_>,
    reverse_path: ReversePath<'_>,
    header_sender: HeaderSender<'_>,
    condition2: &Condition2,
) -> String {
    // A certificate connector matched but its name is not an accepted domain: 1a needs it.
    if let Condition2::TlsSenderCertificate { connector } = condition2 {
        if let Some(name) = tenant
            .inbound_connectors
            .iter()
            .find(|c| c.name == *connector)
            .and_then(|c| c.tls_sender_certificate_name.as_ref())
        {
            return format!(
                "add {} as an accepted domain: connector \"{connector}\" matched the certificate, but its TlsSenderCertificateName must itself be an accepted domain",
                name.domain()
            );
        }
    }
    let certificate_connector = tenant.inbound_connectors.iter().find(|c| {
        c.enabled
            && c.connector_type == ConnectorType::OnPremises
            && c.tls_sender_certificate_name
                .as_ref()
                .is_some_and(|n| tenant.accepted_domain(n.domain()).is_some())
    });
    let certificate = match certificate_connector {
        Some(c) if session.certificate_names.is_empty() => {
            let value = c.tls_sender_certificate_name.as_ref().expect("filtered");
            format!(
                "have the server present in STARTTLS a certificate matching connector \"{}\" (TlsSenderCertificateName {value}); it presented no trusted one",
                c.name
            )
        }
        _ => "present a client certificate whose name is an accepted domain (e.g. mail.<accepted domain>, itself added as an accepted domain) and set it as TlsSenderCertificateName of an OnPremises connector".to_string(),
    };
    match reverse_path {
        ReversePath::Null => format!(
            "the null sender (NDRs, out-of-office replies) has no domain, so only a certificate can attribute it since November 2023: {certificate}"
        ),
        ReversePath::Domain(p1) => {
            let p1 = normalise(p1);
            match header_sender {
                HeaderSender::Domain(p2) if tenant.accepted_domain(p2).is_some() => {
                    let p2 = normalise(p2);
                    format!(
                        "the From: header ({p2}) no longer counts since November 2023: send with a MAIL FROM in an accepted domain (e.g. @{p2}), or add {p1} as an accepted domain if you own it, or {certificate}"
                    )
                }
                _ => format!(
                    "send with a MAIL FROM in an accepted domain, or add {p1} as an accepted domain if you own it, or {certificate}"
                ),
            }
        }
    }
}
