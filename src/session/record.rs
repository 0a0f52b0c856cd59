//! The transaction record: one decision event per transaction (what the report and the audit
//! read back) and the transaction's metrics.

use super::{Session, Transaction};
use crate::config::Mode;
use crate::observe::metrics::metrics;
use crate::policy::{
    self, suggest_fix, AcceptReason, Comparison, Condition1, Condition2, HeaderSender,
    RecipientVerdict, RelayDecision, RelayDenial, ReversePath, SessionFacts,
};
use crate::upstream::ClientFacts;
use crate::wire::header::domain_of;
use std::borrow::Cow;
use tokio::io::{AsyncRead, AsyncWrite};

/// How a transaction's final answer came about, for the log.
pub(super) struct Outcome {
    pub(super) reply: String,
    /// What enforce mode would have answered, when audit mode answered differently.
    pub(super) enforce_reply: Option<String>,
}

impl Outcome {
    pub(super) fn new(reply: String) -> Outcome {
        Outcome {
            reply,
            enforce_reply: None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) fn client_facts(&self) -> ClientFacts {
        ClientFacts {
            session_id: self.id.to_string(),
            peer: self.peer.addr.to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls_description.is_some(),
            certificate_names: self.identity.names.clone(),
            certificate_trusted: self.identity.trusted,
        }
    }

    /// Count the transaction for `/metrics` and write its decision event. `header` is
    /// `NotYetKnown` for a transaction that ended before its header block.
    pub(super) fn log_transaction(
        &self,
        txn: &Transaction,
        header: HeaderSender<'_>,
        p2: Option<&str>,
        relay: &RelayDecision,
        outcome: &Outcome,
        size: u64,
    ) {
        let (verdict, branch, connector) = describe(relay);
        let m = metrics();
        m.decision(
            verdict,
            match relay {
                RelayDecision::Authorized { condition1, .. } => condition1.branch(),
                _ => "none",
            },
            relay.condition2().map_or("none", |c| c.branch()),
        );
        m.message_bytes.inc_by(size);
        m.transaction_seconds
            .observe(txn.started.elapsed().as_secs_f64());
        if !tracing::enabled!(target: "relaygate::transaction", tracing::Level::INFO) {
            return;
        }
        let p = &self.settings.policy;
        // Both profiles over every recipient the client named (also those refused at RCPT), so
        // an audit log shows what each rule generation would do with this flow, and the fix.
        let facts = SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
        };
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let named: Vec<&str> = txn
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .chain(txn.refused.iter().map(|(a, _)| a.as_str()))
            .collect();
        let comparison = Comparison::evaluate(&p.tenant, &facts, p1, header, &named);
        let (exo_2023, exo_legacy) = (
            comparison.exo_2023.verdict(),
            comparison.exo_legacy.verdict(),
        );
        let fix = suggest_fix(&p.tenant, &facts, p1, header, &comparison.exo_2023);
        let identity = match facts.certificate_names.first() {
            Some(name) => format!("certificate {}", sanitize(name)),
            None => format!("ip {}", facts.peer_ip),
        };
        let flow_domain = |address: Option<&str>| {
            address
                .and_then(domain_of)
                .map(|d| sanitize(&policy::normalise(d)))
                .unwrap_or_default()
        };
        let recipients: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| {
                let held = if r.forwarded {
                    ""
                } else {
                    " (held back from the upstream)"
                };
                format!("{}={}{held}", r.address, describe_recipient(&r.verdict))
            })
            .chain(
                txn.refused
                    .iter()
                    .map(|(a, line)| format!("{a}=refused at RCPT: {line}")),
            )
            .chain(
                (txn.refused_unlisted > 0)
                    .then(|| format!("and {} more refused", txn.refused_unlisted)),
            )
            .collect();
        tracing::info!(
            target: "relaygate::transaction",
            session = %self.id,
            peer = %self.peer.addr,
            helo = self.helo.as_deref().unwrap_or(""),
            tls = self.tls_description.as_deref().unwrap_or("none"),
            certificate_names = ?self.identity.names,
            certificate_trusted = self.identity.trusted,
            p1 = %txn.envelope.mail_from,
            p2 = p2.unwrap_or(""),
            recipients = ?recipients,
            size,
            profile = p.profile.as_str(),
            mode = match p.mode { Mode::Enforce => "enforce", Mode::Audit => "audit" },
            relay = verdict,
            branch = %branch,
            connector = %connector,
            reply = %outcome.reply,
            enforce_would_reply = outcome.enforce_reply.as_deref().unwrap_or(""),
            identity = %identity,
            p1_domain = flow_domain(Some(&txn.envelope.mail_from)),
            p2_domain = flow_domain(p2),
            exo_2023 = %exo_2023,
            exo_legacy = %exo_legacy,
            broken_by_november_2023 = Comparison::breaks(&exo_2023, &exo_legacy),
            // A sentence, with the P2 domain in it: control characters out, spaces kept.
            fix = fix
                .unwrap_or_default()
                .replace(|c: char| c.is_control(), "?"),
            "transaction"
        );
    }
}

fn condition2_text(c: &Condition2) -> (&'static str, &str) {
    (c.branch(), c.connector())
}

/// (verdict, branch, connector) of a relay decision, for the log.
fn describe(relay: &RelayDecision) -> (&'static str, String, String) {
    match relay {
        RelayDecision::Authorized {
            condition1,
            condition2,
        } => {
            let c1 = match condition1 {
                Condition1::CertificateDomain {
                    accepted_domain, ..
                } => format!("1a certificate domain {accepted_domain}"),
                Condition1::EnvelopeSender { domain } => format!("1b P1 domain {domain}"),
                Condition1::HeaderSender { domain } => format!("1c P2 domain {domain}"),
            };
            let (by, name) = condition2_text(condition2);
            (
                "relay authorized",
                format!("{c1}; 2 by {by}"),
                name.to_string(),
            )
        }
        RelayDecision::AwaitingHeaderSender { condition2 } => {
            let (by, name) = condition2_text(condition2);
            ("awaiting P2", format!("2 by {by}"), name.to_string())
        }
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector) => (
            "relay not authorized",
            "2 failed: no enabled OnPremises connector matched the IP or a trusted certificate"
                .into(),
            String::new(),
        ),
        RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 }) => {
            let (by, name) = condition2_text(condition2);
            (
                "relay not authorized",
                format!(
                    "2 by {by}; 1 failed: neither certificate domain nor sender domain is accepted"
                ),
                name.to_string(),
            )
        }
    }
}

fn describe_recipient(v: &RecipientVerdict) -> String {
    match v {
        RecipientVerdict::Accept(AcceptReason::Originating) => "originating".into(),
        RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => {
            format!("inbound to {accepted_domain}")
        }
        RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => {
            format!("inbound to other tenant {domain}")
        }
        RecipientVerdict::AwaitingHeaderSender => "awaiting P2".into(),
        RecipientVerdict::Reject(r) => {
            let (code, enhanced, _) = r.reply();
            format!("{code} {enhanced}")
        }
    }
}

/// Keep a client-supplied name printable and single-line for headers and logs.
pub(super) fn sanitize(s: &str) -> String {
    let cleaned: Cow<'_, str> = if s.chars().all(|c| c.is_ascii_graphic()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect(),
        )
    };
    cleaned.chars().take(255).collect()
}
