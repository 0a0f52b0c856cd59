//! The one wording of every decision: what the log, `relaygate check`, the metrics and the
//! report call a relay decision, a branch of condition 1 or 2, a recipient's outcome, a verdict.
//!
//! An admin reads the same decision in four places (the log, `check`, the report, `/metrics`);
//! worded once, a term found in one can be searched for in the others. Each concept has at most
//! three forms, built from the same terms: a *token* (a metrics label, a log value), a *cell*
//! (`check`'s side-by-side table) and a *sentence* (`check`'s walk through the rules).

use super::enforcement::RefusedWhen;
use super::{
    AcceptReason, Condition1, Condition2, RecipientVerdict, Rejection, RelayDecision, RelayDenial,
    Verdict,
};
use std::fmt;
use std::net::IpAddr;

// ---------------------------------------------------------------------------------------------
// The relay decision
// ---------------------------------------------------------------------------------------------

/// The relay decision in a word: the log's `relay`, the metrics' `verdict` label.
pub fn relay(relay: &RelayDecision) -> &'static str {
    match relay {
        RelayDecision::Authorized { .. } | RelayDecision::Authenticated { .. } => {
            "relay authorized"
        }
        RelayDecision::AwaitingHeaderSender { .. } => "awaiting P2",
        RelayDecision::Denied(_) => "relay not authorized",
    }
}

/// The branch of condition 1 that held, or `none`: the metrics' `branch` label.
pub fn condition1_token(relay: &RelayDecision) -> &'static str {
    match relay {
        RelayDecision::Authorized { condition1, .. } => condition1.branch(),
        RelayDecision::Authenticated { .. } => "auth",
        _ => "none",
    }
}

/// How condition 2 held, or `none`: the metrics' `condition2` label.
pub fn condition2_token(relay: &RelayDecision) -> &'static str {
    relay.condition2().map_or("none", Condition2::branch)
}

/// The connector that gave condition 2, or empty: the log's `connector`.
pub fn connector(relay: &RelayDecision) -> &str {
    relay.condition2().map_or("", Condition2::connector)
}

/// Condition 2's failure, as `check` and the log both say it.
pub const CONDITION2_FAILED: &str =
    "failed: no enabled OnPremises connector matched the IP address or a trusted certificate";

/// Condition 1's failure, in brief (`check` lists each branch's reason).
const CONDITION1_FAILED: &str = "failed: neither certificate domain nor sender domain is accepted";

/// Which branches held and how, in brief: the log's `branch`
/// (`1b P1 domain contoso.com; 2 by ip`).
pub fn relay_branch(relay: &RelayDecision) -> String {
    match relay {
        RelayDecision::Authorized {
            condition1,
            condition2,
        } => format!(
            "{}; 2 by {}",
            condition1_label(condition1),
            condition2.branch()
        ),
        RelayDecision::AwaitingHeaderSender { condition2 } => {
            format!("2 by {}", condition2.branch())
        }
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector) => {
            format!("2 {CONDITION2_FAILED}")
        }
        RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 }) => {
            format!("2 by {}; 1 {CONDITION1_FAILED}", condition2.branch())
        }
        RelayDecision::Denied(RelayDenial::NoTenant) => NO_TENANT.into(),
        RelayDecision::Denied(RelayDenial::SendAsDenied { user }) => {
            format!("authenticated as {user}, not allowed to send as the P1 (allowed_senders)")
        }
        RelayDecision::Authenticated { user } => format!("authenticated as {user} (SMTP AUTH)"),
    }
}

/// How the sender was attributed to the tenant's own mail: which accepted domain made condition
/// 1 hold, in the branch's own words (`certificate domain` 1a, `P1 domain` 1b, `P2 domain` 1c),
/// `SMTP AUTH` for an authenticated submission, or `none`. The log's `condition1_by`: since
/// November 2023 a flow Exchange Online accepts only by its `P2 domain` is one it will refuse,
/// so an admin filters on this word rather than parsing `branch`.
pub fn attributed_by(relay: &RelayDecision) -> &'static str {
    match relay {
        RelayDecision::Authorized { condition1, .. } => condition1.subject(),
        RelayDecision::Authenticated { .. } => "SMTP AUTH",
        RelayDecision::AwaitingHeaderSender { .. } | RelayDecision::Denied(_) => "none",
    }
}

/// No tenant of several was attributed, as `check` and the log both say it.
pub const NO_TENANT: &str =
    "no tenant: neither the certificate, the P1 domain nor a recipient domain is an accepted domain of a tenant";

// ---------------------------------------------------------------------------------------------
// Conditions 1 and 2
// ---------------------------------------------------------------------------------------------

impl Condition1 {
    /// `1a`, `1b` or `1c`.
    pub fn branch(&self) -> &'static str {
        match self {
            Condition1::CertificateDomain { .. } => "1a",
            Condition1::EnvelopeSender { .. } => "1b",
            Condition1::HeaderSender { .. } => "1c",
        }
    }

    /// The accepted domain that made the branch hold.
    pub fn domain(&self) -> &str {
        match self {
            Condition1::CertificateDomain {
                accepted_domain, ..
            } => accepted_domain,
            Condition1::EnvelopeSender { domain } | Condition1::HeaderSender { domain } => domain,
        }
    }

    /// Whose domain it is.
    fn subject(&self) -> &'static str {
        match self {
            Condition1::CertificateDomain { .. } => "certificate domain",
            Condition1::EnvelopeSender { .. } => "P1 domain",
            Condition1::HeaderSender { .. } => "P2 domain",
        }
    }
}

impl Condition2 {
    /// `ip` or `certificate`.
    pub fn branch(&self) -> &'static str {
        match self {
            Condition2::SenderIpAddress { .. } => "ip",
            Condition2::TlsSenderCertificate { .. } => "certificate",
        }
    }

    /// What of the sender the connector matched.
    fn matched(&self) -> &'static str {
        match self {
            Condition2::SenderIpAddress { .. } => "the IP address",
            Condition2::TlsSenderCertificate { .. } => "the certificate",
        }
    }
}

/// `1b P1 domain contoso.com`
fn condition1_label(c: &Condition1) -> String {
    format!("{} {} {}", c.branch(), c.subject(), c.domain())
}

/// Condition 1 in a cell: `1c contoso.com` or `failed`.
pub fn condition1_cell(c: Option<&Condition1>) -> String {
    match c {
        Some(c) => format!("{} {}", c.branch(), c.domain()),
        None => "failed".into(),
    }
}

/// Condition 2 in a cell: `by ip "OnPrem by IP"` or `failed`.
pub fn condition2_cell(c: Option<&Condition2>) -> String {
    match c {
        Some(c) => format!("by {} \"{}\"", c.branch(), c.connector()),
        None => "failed".into(),
    }
}

/// Condition 2 in a sentence: `held: connector "OnPrem by IP" matched the IP address`.
pub fn condition2_sentence(c: Option<&Condition2>) -> String {
    match c {
        Some(c) => format!(
            "held: connector \"{}\" matched {}",
            c.connector(),
            c.matched()
        ),
        None => CONDITION2_FAILED.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// TLS and RequireTls
// ---------------------------------------------------------------------------------------------

/// Whether the session is under TLS, as `check` states the fact.
pub fn tls(tls: bool) -> &'static str {
    if tls {
        "under TLS (STARTTLS)"
    } else {
        "no TLS"
    }
}

/// A Partner connector's `RequireTls` against this session, for `check`'s list of connectors:
/// whether it applies to the P1 and whether the session meets it.
pub fn require_tls_sentence(connector: &str, covers_p1: bool, tls: bool) -> String {
    if !covers_p1 {
        return "RequireTls: its SenderDomains do not cover this P1".into();
    }
    if tls {
        return "RequireTls: met, the session is under TLS".into();
    }
    let refusal = Rejection::RequireTls {
        connector: connector.into(),
    };
    format!(
        "RequireTls: NOT met, no TLS: recipients in accepted domains get {} at RCPT TO",
        rejection_codes(&refusal)
    )
}

// ---------------------------------------------------------------------------------------------
// Recipients
// ---------------------------------------------------------------------------------------------

/// A refusal by its reply codes: `550 5.7.64`.
pub fn rejection_codes(r: &Rejection) -> String {
    let reply = r.reply();
    format!("{} {}", reply.code, reply.enhanced)
}

/// A recipient's outcome as a token: the log's `recipients` (`originating`, `inbound to
/// contoso.com`, `550 5.7.64`).
pub fn recipient_token(v: &RecipientVerdict) -> String {
    match v {
        RecipientVerdict::Accept(AcceptReason::Originating) => "originating".into(),
        RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => {
            format!("inbound to {accepted_domain}")
        }
        RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => {
            format!("inbound to other tenant {domain}")
        }
        RecipientVerdict::AwaitingHeaderSender => "awaiting P2".into(),
        RecipientVerdict::Reject(r) => rejection_codes(r),
    }
}

/// A recipient's outcome in a cell: `accepted (relay)`, `accepted (inbound)`, `550 5.7.64`.
pub fn recipient_cell(v: &RecipientVerdict) -> String {
    match v {
        RecipientVerdict::Accept(AcceptReason::Originating) => "accepted (relay)".into(),
        RecipientVerdict::Accept(_) => "accepted (inbound)".into(),
        RecipientVerdict::AwaitingHeaderSender => "undecided".into(),
        RecipientVerdict::Reject(r) => rejection_codes(r),
    }
}

/// An accepted recipient in a sentence; `None` for a refused one (see [`refusal_sentence`]).
pub fn acceptance_sentence(v: &RecipientVerdict) -> Option<String> {
    Some(match v {
        RecipientVerdict::Accept(AcceptReason::Originating) => {
            "accepted: relay authorised (Originating)".into()
        }
        RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => {
            format!("accepted: inbound to accepted domain {accepted_domain}")
        }
        RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => {
            format!("accepted: inbound to {domain}, hosted by another Microsoft 365 tenant")
        }
        RecipientVerdict::AwaitingHeaderSender => "undecided".into(),
        RecipientVerdict::Reject(_) => return None,
    })
}

/// When a refusal reaches the client, and whether it really does (`audit`: only logged).
pub fn refusal_sentence(when: RefusedWhen, audit: bool) -> String {
    let mut s = match when {
        RefusedWhen::AtRcpt => "refused at RCPT TO",
        RefusedWhen::AtEndOfData => "refused at the end of DATA",
    }
    .to_string();
    if audit {
        s.push_str(" (audit mode: logged, and the message forwarded)");
    }
    s
}

/// A recipient the gate did not pass to the upstream although it answered 250: held for a
/// refusal at the end of DATA.
pub const HELD_BACK: &str = " (held back from the upstream)";

/// A recipient refused at RCPT, with the reply line it got: the log's `recipients`.
pub fn refused_at_rcpt(address: &str, line: &str) -> String {
    format!("{address}=refused at RCPT: {line}")
}

/// The recipients past the log's limit, counted.
pub fn more_refused(n: usize) -> String {
    format!("and {n} more refused")
}

// ---------------------------------------------------------------------------------------------
// The transaction's verdict and the flow it belongs to
// ---------------------------------------------------------------------------------------------

/// A [`Verdict`] as the log keeps it: the refusal reduced to its reply codes, which is all the
/// audit report needs and all a log reader compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordedVerdict {
    Accepted,
    Refused {
        code: u16,
        enhanced: String,
    },
    /// `exo-legacy` for a transaction that ended before its header block.
    Undecided,
}

impl From<&Verdict> for RecordedVerdict {
    fn from(v: &Verdict) -> RecordedVerdict {
        match v {
            Verdict::Accepted => RecordedVerdict::Accepted,
            Verdict::Undecided => RecordedVerdict::Undecided,
            Verdict::Refused(r) => {
                let reply = r.reply();
                RecordedVerdict::Refused {
                    code: reply.code,
                    enhanced: reply.enhanced.to_string(),
                }
            }
        }
    }
}

impl fmt::Display for RecordedVerdict {
    /// `accepted`, `undecided` or `refused 550 5.7.64`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordedVerdict::Accepted => f.write_str("accepted"),
            RecordedVerdict::Undecided => f.write_str("undecided"),
            RecordedVerdict::Refused { code, enhanced } => write!(f, "refused {code} {enhanced}"),
        }
    }
}

impl std::str::FromStr for RecordedVerdict {
    type Err = String;

    /// The inverse of `Display`, for reading a log back: the log stores the verdict in the words
    /// an admin greps for, so its serialised form is that string.
    fn from_str(s: &str) -> Result<RecordedVerdict, String> {
        let refused = || {
            let (code, enhanced) = s.strip_prefix("refused ")?.split_once(' ')?;
            let code: u16 = code.parse().ok()?;
            let enhanced_ok = !enhanced.is_empty()
                && enhanced
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            enhanced_ok.then(|| RecordedVerdict::Refused {
                code,
                enhanced: enhanced.to_string(),
            })
        };
        match s {
            "accepted" => Ok(RecordedVerdict::Accepted),
            "undecided" => Ok(RecordedVerdict::Undecided),
            _ => refused().ok_or_else(|| {
                format!("{s:?} is not a verdict (accepted, undecided, refused CODE X.Y.Z)")
            }),
        }
    }
}

impl fmt::Display for Verdict {
    /// `accepted` or `refused 550 5.7.64`: the log's and `check`'s form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        RecordedVerdict::from(self).fmt(f)
    }
}

/// Who sent, as a flow of the audit report is keyed: `certificate <name>` for a trusted
/// certificate (its first name), else `ip <address>`.
pub fn identity(certificate_name: Option<&str>, peer_ip: IpAddr) -> String {
    match certificate_name {
        Some(name) => format!("certificate {name}"),
        None => format!("ip {peer_ip}"),
    }
}

/// An authenticated client's identity (the second door): the user is the identity, so the
/// report groups a user's flows whatever address they come from.
pub fn user_identity(user: &str) -> String {
    format!("user {user}")
}

/// A flow's verdict under one profile over `count` transactions: `accepted`, or the latest
/// refusal and how many were refused (`refused 550 5.7.64 (3 of 12)`).
pub fn flow_verdict(refused: u64, count: u64, latest: Option<&RecordedVerdict>) -> String {
    match (refused, latest) {
        (0, _) => "accepted".to_owned(),
        (n, Some(v)) => format!("{v} ({n} of {count})"),
        (n, None) => format!("refused ({n} of {count})"),
    }
}

/// A flow no transaction of which reached its header: `exo-legacy` never decided it.
pub const FLOW_UNDECIDED: &str = "undecided (no message reached its header)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_and_check_word_a_failed_condition_2_alike() {
        let denied = RelayDecision::Denied(RelayDenial::NoOnPremisesConnector);
        assert_eq!(
            relay_branch(&denied),
            format!("2 {}", condition2_sentence(denied.condition2()))
        );
        assert_eq!(connector(&denied), "");
        assert_eq!(condition2_token(&denied), "none");
    }

    #[test]
    fn attributed_by_names_the_accepted_domain_branch_that_held() {
        let by_ip = Condition2::SenderIpAddress {
            connector: "C".into(),
        };
        for (condition1, word) in [
            (
                Condition1::CertificateDomain {
                    connector: "C".into(),
                    accepted_domain: "contoso.com".into(),
                },
                "certificate domain",
            ),
            (
                Condition1::EnvelopeSender {
                    domain: "contoso.com".into(),
                },
                "P1 domain",
            ),
            (
                Condition1::HeaderSender {
                    domain: "contoso.com".into(),
                },
                "P2 domain",
            ),
        ] {
            let relay = RelayDecision::Authorized {
                condition1,
                condition2: by_ip.clone(),
            };
            assert_eq!(attributed_by(&relay), word);
            assert!(
                relay_branch(&relay).contains(word),
                "the same words as `branch`"
            );
        }
        let denied = RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2: by_ip });
        assert_eq!(attributed_by(&denied), "none");
        let user = RelayDecision::Authenticated {
            user: "scanner".into(),
        };
        assert_eq!(attributed_by(&user), "SMTP AUTH");
    }

    #[test]
    fn a_recorded_verdict_reads_back_as_written() {
        for v in [
            RecordedVerdict::Accepted,
            RecordedVerdict::Undecided,
            RecordedVerdict::Refused {
                code: 550,
                enhanced: "5.7.64".into(),
            },
        ] {
            assert_eq!(v.to_string().parse::<RecordedVerdict>(), Ok(v));
        }
        let refused = Verdict::Refused(Rejection::RecipientNotFound);
        assert_eq!(refused.to_string(), "refused 550 5.4.1");
    }

    #[test]
    fn a_temporary_refusal_is_recorded_and_read_back_with_its_4xx_code() {
        let v = Verdict::Refused(Rejection::RequireTls {
            connector: "P".into(),
        });
        assert_eq!(v.to_string(), "refused 454 4.7.0");
        let recorded = RecordedVerdict::from(&v);
        assert_eq!(
            recorded.to_string().parse::<RecordedVerdict>(),
            Ok(recorded)
        );
        assert_eq!(
            recipient_token(&RecipientVerdict::Reject(Rejection::RequireTls {
                connector: "P".into()
            })),
            "454 4.7.0"
        );
    }
}
