//! The relay-attribution engine: Exchange Online's rules for mail arriving from on-premises
//! senders (`docs/exo-relay-rules.md` is the contract).
//!
//! This module is pure: facts in, verdict out. No I/O, no clock, no async. The session gathers
//! the facts (peer address, trusted certificate names, P1 and P2 senders, recipients) and asks;
//! it decides nothing itself. That keeps every rule testable as a table row.

mod attribution;
mod canonical;
pub mod enforcement;
mod engine;
mod explain;
pub mod rewrite;
mod tenant;
pub mod wording;

pub use attribution::{
    attribute_recipient, attribute_sender, authorize_relay_among, certificate_points_at,
    evaluate_among, judge_recipient_among, tenant_name, tenant_of_domain, AttributedBy,
    Attribution,
};
pub use canonical::{ipv4_of, is_subdomain_or_equal, normalise, normalise_address, unmap_ipv4};
pub use engine::{
    authorize_relay, condition1, judge_recipient, send_as_refusal, AcceptReason, Condition1,
    Condition2, HeaderSender, RecipientVerdict, Rejection, RelayDecision, RelayDenial,
};
pub use explain::{evaluate, suggest_fix, Comparison, Evaluation, Verdict};
pub use tenant::{
    AcceptedDomain, CertificateName, ConnectorType, DomainType, InboundConnector, SenderDomain,
    Tenant,
};
pub use wording::RecordedVerdict;

use std::net::IpAddr;

/// Which generation of Exchange Online's relay rule to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    /// Since 1 November 2023: condition 1 is the certificate's domain (1a) or the P1 domain (1b).
    #[serde(rename = "exo-2023")]
    Exo2023,
    /// Before: the P2 (`From:` header) domain also satisfied condition 1 (branch 1c).
    #[serde(rename = "exo-legacy")]
    ExoLegacy,
}

impl Profile {
    /// The name used in the configuration file and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Exo2023 => "exo-2023",
            Profile::ExoLegacy => "exo-legacy",
        }
    }
}

impl std::str::FromStr for Profile {
    type Err = String;

    /// `exo-2023` or `exo-legacy`, as in the configuration file and on the command line.
    fn from_str(s: &str) -> Result<Profile, String> {
        match s {
            "exo-2023" => Ok(Profile::Exo2023),
            "exo-legacy" => Ok(Profile::ExoLegacy),
            _ => Err("must be \"exo-2023\" or \"exo-legacy\"".into()),
        }
    }
}

/// What the gate knows about the connection before any transaction: who is speaking.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    /// The peer address the policy sees (after PROXY protocol, when that is configured).
    pub peer_ip: IpAddr,
    /// Subject CN and SAN dNSNames of the client certificate, lower-cased, and only when the
    /// certificate chained to a trust anchor and was within its validity period. An untrusted
    /// certificate gives an empty slice: it is no identity at all.
    pub certificate_names: &'a [String],
    /// The session is under TLS (STARTTLS completed), whatever certificate came with it, if any.
    /// A Partner connector with `RequireTls` refuses mail without it (454 4.7.0).
    pub tls: bool,
    /// The user the client authenticated as on a submission listener (SMTP AUTH), with what
    /// the users file says of the transaction's P1; `None` on the relay listener and before AUTH.
    pub submitter: Option<Submitter<'a>>,
}

/// An authenticated client (the second door): the user is the identity, as an authenticated
/// mailbox is for Exchange Online's client submission. The session looks the user up in the
/// users file; the engine decides what follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitter<'a> {
    /// The user name as the users file has it.
    pub user: &'a str,
    /// Whether the user's `allowed_senders` cover the P1 (the gate's Send As permission).
    pub may_send_as: bool,
}

/// The envelope sender (P1), `MAIL FROM:<...>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReversePath<'a> {
    /// `MAIL FROM:<>`: NDRs, DSNs, out-of-office replies. It has no domain.
    Null,
    /// The domain part of a non-null reverse path (any case, maybe with a trailing dot).
    Domain(&'a str),
}

impl<'a> ReversePath<'a> {
    /// The reverse path of a `MAIL FROM` address as the session parsed it (`""` for `<>`).
    pub fn of_address(address: &'a str) -> ReversePath<'a> {
        domain_of(address).map_or(ReversePath::Null, ReversePath::Domain)
    }
}

impl<'a> HeaderSender<'a> {
    /// The P2 sender once the header block is read: the first `From:` address, if it had one.
    pub fn of_address(address: Option<&'a str>) -> HeaderSender<'a> {
        address
            .and_then(domain_of)
            .map_or(HeaderSender::Absent, HeaderSender::Domain)
    }
}

/// The domain of `local@domain` (after the last `@`, as an upstream reads it), if not empty.
pub fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests;
