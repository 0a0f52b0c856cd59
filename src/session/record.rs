//! The transaction record: one decision event per transaction (a [`TransactionRecord`], which
//! the report reads back) and the transaction's metrics.

use super::{Session, Transaction};
use crate::observe::metrics::metrics;
use crate::policy::{
    self, domain_of, suggest_fix, wording, Comparison, HeaderSender, RecordedVerdict,
    RelayDecision, ReversePath, SessionFacts,
};
use crate::record::{self, FlowRecord, TransactionRecord};
use crate::upstream::ClientFacts;
use std::borrow::Cow;
use tokio::io::{AsyncRead, AsyncWrite};

/// How a transaction's final answer came about, for the log.
pub(super) struct Outcome {
    pub(super) reply: String,
    /// What enforce mode would have answered, when audit mode answered differently.
    pub(super) enforce_reply: Option<String>,
    /// The upstream's final reply to the message, when it answered one.
    pub(super) upstream_reply: Option<String>,
    /// The message's `Message-ID`, once its header block was read.
    pub(super) message_id: Option<String>,
}

impl Outcome {
    pub(super) fn new(reply: String) -> Outcome {
        Outcome {
            reply,
            enforce_reply: None,
            upstream_reply: None,
            message_id: None,
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
        let m = metrics();
        m.decision(
            self.tenant_name(txn),
            wording::relay(relay),
            wording::condition1_token(relay),
            wording::condition2_token(relay),
        );
        m.message_bytes.inc_by(size);
        m.transaction_seconds
            .observe(txn.started.elapsed().as_secs_f64());
        if tracing::enabled!(target: record::TARGET, tracing::Level::INFO) {
            self.record(txn, header, p2, relay, outcome, size).emit();
        }
    }

    fn record(
        &self,
        txn: &Transaction,
        header: HeaderSender<'_>,
        p2: Option<&str>,
        relay: &RelayDecision,
        outcome: &Outcome,
        size: u64,
    ) -> TransactionRecord {
        let p = self.rule(txn.tenant);
        TransactionRecord {
            session: self.id.to_string(),
            tenant: self.tenant_name(txn).to_string(),
            user: self.user.clone().unwrap_or_default(),
            listener: self.door.as_str().to_string(),
            peer: self.peer.addr.to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            tls: self
                .tls_description
                .clone()
                .unwrap_or_else(|| "none".into()),
            certificate_names: record::list_text(&self.identity.names),
            certificate_trusted: self.identity.trusted,
            p1: txn
                .client_mail_from
                .clone()
                .unwrap_or_else(|| txn.envelope.mail_from.clone()),
            rewritten_to: if txn.client_mail_from.is_some() {
                txn.envelope.mail_from.clone()
            } else {
                String::new()
            },
            p2: p2.unwrap_or_default().to_string(),
            recipients: record::list_text(&recipients(txn)),
            size,
            profile: p.profile,
            mode: p.mode,
            relay: wording::relay(relay).to_string(),
            branch: wording::relay_branch(relay),
            condition1_by: wording::attributed_by(relay).to_string(),
            connector: wording::connector(relay).to_string(),
            reply: outcome.reply.clone(),
            enforce_would_reply: outcome.enforce_reply.clone().unwrap_or_default(),
            dsn_dropped: txn.dsn_dropped.to_string(),
            message_id: outcome.message_id.clone().unwrap_or_default(),
            upstream_reply: outcome.upstream_reply.clone().unwrap_or_default(),
            flow: self.flow(txn, header, p2),
        }
    }

    /// The name of the transaction's tenant: empty when none was attributed, or when the gate
    /// serves its one unnamed tenant.
    fn tenant_name(&self, txn: &Transaction) -> &str {
        policy::tenant_name(&self.settings.tenants, txn.tenant)
    }

    /// Both profiles over every recipient the client named (also those refused at RCPT), so
    /// an audit log shows what each rule generation would do with this flow, and the fix.
    fn flow(&self, txn: &Transaction, header: HeaderSender<'_>, p2: Option<&str>) -> FlowRecord {
        let tenants = &self.settings.tenants;
        let facts = SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
            tls: self.tls_description.is_some(),
            submitter: super::envelope::submitter(
                &self.settings,
                self.user.as_deref(),
                &txn.envelope.mail_from,
            ),
        };
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let named: Vec<&str> = txn
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .chain(txn.refused.iter().map(|(a, _)| a.as_str()))
            .collect();
        let comparison = Comparison::evaluate_among(tenants, None, &facts, p1, header, &named);
        let (exo_2023, exo_legacy) = (
            comparison.exo_2023.verdict(),
            comparison.exo_legacy.verdict(),
        );
        let attributed = comparison.exo_2023.attribution.map_or(0, |a| a.tenant);
        let fix = suggest_fix(
            tenants[attributed].as_ref(),
            &facts,
            p1,
            header,
            &comparison.exo_2023,
        );
        let flow_domain = |address: Option<&str>| {
            address
                .and_then(domain_of)
                .map(|d| sanitize(&policy::normalise(d)))
                .unwrap_or_default()
        };
        let certificate = facts.certificate_names.first().map(|n| sanitize(n));
        FlowRecord {
            identity: match self.user.as_deref() {
                Some(user) => wording::user_identity(user),
                None => wording::identity(certificate.as_deref(), facts.peer_ip),
            },
            // The flow is the client's: its own sender, even when a rule rewrote it.
            p1_domain: flow_domain(Some(
                txn.client_mail_from
                    .as_deref()
                    .unwrap_or(&txn.envelope.mail_from),
            )),
            p2_domain: flow_domain(p2),
            broken_by_november_2023: Comparison::breaks(&exo_2023, &exo_legacy),
            exo_2023: RecordedVerdict::from(&exo_2023),
            exo_legacy: RecordedVerdict::from(&exo_legacy),
            // A sentence, with the P2 domain in it: control characters out, spaces kept.
            fix: fix
                .unwrap_or_default()
                .replace(|c: char| c.is_control(), "?"),
        }
    }
}

/// Each recipient with its outcome: those accepted (and whether the upstream saw them), then
/// those refused at RCPT with the reply they got.
fn recipients(txn: &Transaction) -> Vec<String> {
    txn.recipients
        .iter()
        .map(|r| {
            let held = if r.forwarded { "" } else { wording::HELD_BACK };
            format!(
                "{}={}{held}",
                r.address,
                wording::recipient_token(&r.verdict)
            )
        })
        .chain(
            txn.refused
                .iter()
                .map(|(a, line)| wording::refused_at_rcpt(a, line)),
        )
        .chain((txn.refused_unlisted > 0).then(|| wording::more_refused(txn.refused_unlisted)))
        .collect()
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
