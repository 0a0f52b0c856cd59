//! `[[rewrite]]`: fixing a flow at the gate by setting its envelope sender (P1), before the
//! policy decides.
//!
//! Pure, as the rest of the engine: the client's facts and the P1 in, the rule that applies
//! (and so the new sender) out. Rules are tried in order and the first that matches wins, as an
//! admin reads a list. Only the envelope sender changes: the `From:` header is the author's
//! (DKIM signs it, DMARC aligns on it), so the gate never touches it.
//!
//! The null sender is special (RFC 5321 4.5.5): it marks a message that must never be answered
//! with another one (bounces, delivery reports, out-of-office replies). Giving it a sender
//! invites the next failure to bounce back to that sender and round again: a bounce loop. So no
//! rule ever matches the null sender unless it says `null_sender = true`, whatever its
//! `senders` say.

use super::canonical::{normalise, unmap_ipv4};
use super::CertificateName;
use ipnet::IpNet;
use std::net::IpAddr;

/// One `senders` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderPattern {
    /// `app@example.net` (stored lower-case): that address.
    Address(String),
    /// `*@example.net` (stored as the normalised domain): every address of that domain.
    Domain(String),
}

impl SenderPattern {
    fn matches(&self, p1: &str) -> bool {
        let Some((local, domain)) = p1.rsplit_once('@') else {
            return false;
        };
        match self {
            SenderPattern::Address(a) => super::normalise_address(local, domain) == *a,
            SenderPattern::Domain(d) => normalise(domain) == *d,
        }
    }
}

/// One `[[rewrite]]` rule, validated. An empty client list means any client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteRule {
    pub client_ips: Vec<IpNet>,
    pub client_certificate_names: Vec<CertificateName>,
    /// Submission users (as in the users file).
    pub client_users: Vec<String>,
    /// Empty: every sender but the null sender.
    pub senders: Vec<SenderPattern>,
    /// The null sender matches (as well as `senders`, if any; alone, if none).
    pub null_sender: bool,
    pub new_sender: String,
}

/// What the rules look at of the client.
#[derive(Debug, Clone, Copy)]
pub struct RewriteClient<'a> {
    pub ip: IpAddr,
    /// Trusted certificate names only: an untrusted certificate shows nothing.
    pub certificate_names: &'a [String],
    /// The authenticated submission user, if any.
    pub user: Option<&'a str>,
}

impl RewriteRule {
    /// Whether this rule applies to `p1` (empty: the null sender) from `client`.
    pub fn matches(&self, client: &RewriteClient<'_>, p1: &str) -> bool {
        let ip = unmap_ipv4(client.ip);
        let by_ip = self.client_ips.is_empty() || self.client_ips.iter().any(|n| n.contains(&ip));
        let by_certificate = self.client_certificate_names.is_empty()
            || self
                .client_certificate_names
                .iter()
                .any(|c| client.certificate_names.iter().any(|n| c.matches(n)));
        let by_user = self.client_users.is_empty()
            || client
                .user
                .is_some_and(|u| self.client_users.iter().any(|x| x == u));
        by_ip && by_certificate && by_user && self.matches_sender(p1)
    }

    fn matches_sender(&self, p1: &str) -> bool {
        if p1.is_empty() {
            return self.null_sender;
        }
        if self.senders.is_empty() {
            return !self.null_sender;
        }
        self.senders.iter().any(|s| s.matches(p1))
    }
}

/// The first rule that applies to `p1` (empty: the null sender) from `client`, if any.
pub fn rewrite<'a>(
    rules: &'a [RewriteRule],
    client: &RewriteClient<'_>,
    p1: &str,
) -> Option<&'a RewriteRule> {
    rules.iter().find(|r| r.matches(client, p1))
}

#[cfg(test)]
mod tests;
