//! MAIL and RCPT: the envelope, judged by the policy as it arrives, and each recipient the
//! policy lets through asked of the upstream, whose own verdict the client then gets.
//!
//! The gate's promise starts here: a recipient is answered 250 only when the upstream
//! transaction that will carry the message has accepted it, or, for the only recipient of a
//! pipelined transaction whose envelope goes ahead of its replies (`upstream::Follows`), when
//! the upstream's reply to it will be read before the message's final reply and a refusal
//! will be that final reply. If that upstream transaction is
//! lost after a recipient was accepted, a new one would carry only the recipients named from
//! then on, so the rest of the client's transaction is answered 4xx instead.

use super::{Door, End, Recipient, Session, Transaction};
use crate::config::{PolicyDefaults, Settings};
use crate::observe::metrics::metrics;
use crate::policy::enforcement::{answer_rcpt, RcptAnswer};
use crate::policy::rewrite::{rewrite, RewriteClient};
use crate::policy::{
    self, Attribution, HeaderSender, RecipientVerdict, RelayDenial, ReversePath, SessionFacts,
    Submitter,
};
use crate::upstream::{Envelope, Follows, Stage, UpstreamError, UpstreamReply};
use crate::wire::dsn::{Dropped, MailDsn, RcptDsn};
use crate::wire::reply::Reply;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// The authenticated `user`, with whether the users file lets it send as `mail_from`. A user
/// the session's users file no longer has may send as nobody.
pub(super) fn submitter<'a>(
    settings: &Settings,
    user: Option<&'a str>,
    mail_from: &str,
) -> Option<Submitter<'a>> {
    let user = user?;
    let may_send_as = settings
        .submission
        .as_ref()
        .and_then(|s| s.users.get(user))
        .is_some_and(|u| u.may_send_as(mail_from));
    Some(Submitter { user, may_send_as })
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// What the policy judges the transaction by; its P1 is the transaction's.
    pub(super) fn facts(&self) -> SessionFacts<'_> {
        let p1 = self
            .txn
            .as_ref()
            .map_or("", |t| t.envelope.mail_from.as_str());
        self.facts_for(p1)
    }

    /// [`Session::facts`] for a transaction whose P1 is `mail_from` (at MAIL, before it is one).
    pub(super) fn facts_for(&self, mail_from: &str) -> SessionFacts<'_> {
        SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
            tls: self.tls_description.is_some(),
            submitter: self.submitter(mail_from),
        }
    }

    fn submitter(&self, mail_from: &str) -> Option<Submitter<'_>> {
        submitter(&self.settings, self.user.as_deref(), mail_from)
    }

    /// The profile, mode and stage in force for a transaction of `tenant`: that tenant's, or the
    /// top-level `[policy]` for a transaction no tenant was attributed to.
    pub(super) fn rule(&self, tenant: Option<Attribution>) -> PolicyDefaults {
        match tenant {
            Some(a) => self.settings.tenants[a.tenant].policy.rule(),
            None => self.settings.defaults,
        }
    }

    /// The transaction's relay decision once its tenant is known (or known to be none).
    fn relay_for(&self, tenant: Option<Attribution>, mail_from: &str) -> policy::RelayDecision {
        policy::authorize_relay_among(
            &self.settings.tenants,
            tenant.map(|a| a.tenant),
            self.rule(tenant).profile,
            &self.facts_for(mail_from),
            ReversePath::of_address(mail_from),
            HeaderSender::NotYetKnown,
        )
    }

    /// The sender the first `[[rewrite]]` rule that matches sets instead of `mail_from`, if any.
    fn rewritten_sender(&self, mail_from: &str) -> Option<String> {
        let client = RewriteClient {
            ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
            user: self.user.as_deref(),
        };
        rewrite(&self.settings.rewrites, &client, mail_from).map(|r| r.new_sender.clone())
    }

    pub(super) fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            self.error_reply(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
            return;
        }
        if self.txn.is_some() {
            self.error_reply(Reply::new(503, "5.5.1", "Sender already specified"));
            return;
        }
        if matches!(self.door, Door::Submission { .. }) && self.user.is_none() {
            self.not_authenticated();
            return;
        }
        let max = self.settings.server.max_message_size;
        if from.size as u64 > max {
            self.reply_with_suffix(&Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum message size of {max} bytes"),
            ));
            return;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if smtputf8 && !self.esmtp {
            self.error_reply(Reply::new(555, "5.5.4", "SMTPUTF8 needs EHLO"));
            return;
        }
        let dsn = MailDsn::of(&from);
        let mut envelope = Envelope {
            mail_from: from.address,
            size: (from.size > 0).then_some(from.size as u64),
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
            dsn,
            binary_mime: from.flags & smtp_proto::MAIL_BODY_BINARYMIME != 0,
        };
        // A [[rewrite]] rule sets the sender before anything judges it: the policy then decides
        // on what the upstream (and Exchange Online) will actually get.
        let client_mail_from = self
            .rewritten_sender(&envelope.mail_from)
            .map(|new| std::mem::replace(&mut envelope.mail_from, new));
        if let Some(sent) = &client_mail_from {
            tracing::info!(session = %self.id, peer = %self.peer.addr, p1 = %super::record::sanitize(sent), rewritten_to = %envelope.mail_from, "sender rewritten");
        }
        // The certificate or the P1 domain may show the tenant now; else its first recipient will.
        let tenant = policy::attribute_sender(
            &self.settings.tenants,
            self.identity.policy_names(),
            ReversePath::of_address(&envelope.mail_from),
        );
        if let Some(a) = tenant {
            self.upstream.select(a.tenant);
        }
        let relay = self.relay_for(tenant, &envelope.mail_from);
        if let policy::RelayDecision::Denied(RelayDenial::SendAsDenied { user }) = &relay {
            let line = self.reply_with_suffix(&policy::send_as_refusal());
            tracing::info!(session = %self.id, peer = %self.peer.addr, user = %user, p1 = %super::record::sanitize(&envelope.mail_from), reply = %line, "refused at MAIL: not allowed to send as this sender");
            metrics().send_as_refused();
            return;
        }
        self.txn = Some(Transaction {
            envelope,
            client_mail_from,
            tenant,
            relay,
            recipients: Vec::new(),
            refused: Vec::new(),
            refused_unlisted: 0,
            upstream_open: false,
            upstream_lost: false,
            dsn_dropped: Dropped::default(),
            chunks: None,
            started: Instant::now(),
        });
        self.reply(&Reply::new(250, "2.1.0", "Sender OK"));
    }

    pub(super) async fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Result<(), End> {
        let Some(txn) = self.txn.as_ref() else {
            self.error_reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return Ok(());
        };
        if txn.chunks.is_some() {
            // The message is already going to the upstream: no recipient can join it.
            self.error_reply(Reply::new(503, "5.5.1", "RCPT after BDAT"));
            return Ok(());
        }
        if txn.recipients.len() >= self.settings.server.max_recipients {
            self.reply_with_suffix(&Reply::new(452, "4.5.3", "Too many recipients"));
            return Ok(());
        }
        let dsn = RcptDsn::of(&to);
        let address = to.address;
        if address.is_empty() {
            self.error_reply(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
            return Ok(());
        }
        let settings = Arc::clone(&self.settings);
        if txn.tenant.is_none() {
            if let Some(a) = policy::attribute_recipient(&settings.tenants, &address) {
                let relay = self.relay_for(Some(a), &txn.envelope.mail_from);
                let txn = self.txn.as_mut().expect("txn");
                txn.tenant = Some(a);
                txn.relay = relay;
                self.upstream.select(a.tenant);
            }
        }
        let txn = self.txn.as_ref().expect("txn");
        let verdict = policy::judge_recipient_among(
            &settings.tenants,
            txn.tenant.map(|a| a.tenant),
            &self.facts(),
            ReversePath::of_address(&txn.envelope.mail_from),
            &txn.relay,
            &address,
        );
        let rule = self.rule(txn.tenant);
        match answer_rcpt(rule.mode, rule.reject_stage, &verdict) {
            RcptAnswer::Refuse(r) => {
                let line = self.reply_with_suffix(&r.reply());
                self.note_refused(address, line);
            }
            RcptAnswer::Hold => self.accept_recipient(address, verdict, false),
            RcptAnswer::Forward => {
                let follows = self.follows(&verdict);
                self.forward(address, verdict, &dsn, follows).await?;
            }
        }
        Ok(())
    }

    /// Ask the upstream about a recipient the policy lets through; the client gets the
    /// upstream's own answer.
    async fn forward(
        &mut self,
        address: String,
        verdict: RecipientVerdict,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<(), End> {
        match self.forward_rcpt(&address, dsn, follows).await? {
            Ok(reply) if reply.is_positive() => {
                self.reply_upstream(&reply);
                self.accept_recipient(address, verdict, true);
            }
            Ok(reply) => {
                let line = self.reply_upstream(&reply);
                self.note_refused(address, line);
            }
            Err(e) => {
                let line = self.reply_with_suffix(&e.reply());
                self.note_refused(address, line);
            }
        }
        Ok(())
    }

    /// What the client already sent right behind this RCPT, when that lets the upstream
    /// transaction save a round trip: DATA may go upstream with this recipient (RFC 2920: the
    /// last command of a group), so its 354 comes back with the RCPT replies; and DATA or BDAT
    /// behind the transaction's only recipient lets the envelope go ahead of its replies, the
    /// message right behind it. Only when nothing but the upstream can still refuse the
    /// message before its text (every recipient, this one included, decided at RCPT and
    /// forwarded). Any doubt is [`Follows::Nothing`]: each reply is awaited.
    fn follows(&self, verdict: &RecipientVerdict) -> Follows {
        let Some(txn) = self.txn.as_ref() else {
            return Follows::Nothing;
        };
        let undecided = |v: &RecipientVerdict| matches!(v, RecipientVerdict::AwaitingHeaderSender);
        let decided = !undecided(verdict)
            && !txn.envelope.binary_mime
            && txn.chunks.is_none()
            && !txn.upstream_lost
            && txn
                .recipients
                .iter()
                .all(|r| r.forwarded && !undecided(&r.verdict));
        let next = self.buffered();
        match next.get(..5) {
            _ if !decided => Follows::Nothing,
            Some(verb) if verb.eq_ignore_ascii_case(b"BDAT ") => Follows::Bdat,
            Some(verb) if verb.eq_ignore_ascii_case(b"DATA\r") && next.get(5) == Some(&b'\n') => {
                Follows::Data
            }
            _ => Follows::Nothing,
        }
    }

    fn accept_recipient(&mut self, address: String, verdict: RecipientVerdict, forwarded: bool) {
        if !forwarded {
            self.reply(&Reply::new(250, "2.1.5", "Recipient OK"));
        }
        self.txn.as_mut().expect("txn").recipients.push(Recipient {
            address,
            verdict,
            forwarded,
        });
    }

    fn note_refused(&mut self, address: String, line: String) {
        let max = self.settings.server.max_recipients;
        let txn = self.txn.as_mut().expect("txn");
        if txn.refused.len() < max {
            txn.refused.push((address, line));
        } else {
            txn.refused_unlisted += 1;
        }
    }

    /// Open the upstream transaction if needed, then ask the upstream about this recipient.
    /// `follows`: what the client sent right behind it ([`Session::follows`]). The outer error ends
    /// the session (its deadline passed).
    async fn forward_rcpt(
        &mut self,
        address: &str,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<Result<UpstreamReply, UpstreamError>, End> {
        let txn = self.txn.as_ref().expect("txn");
        if txn.upstream_lost {
            return Ok(Err(UpstreamError::Dropped(Stage::Rcpt)));
        }
        let result = if txn.upstream_open {
            within_deadline!(self, self.upstream.leg().rcpt(address, dsn, follows))
        } else {
            let env = txn.envelope.clone();
            match within_deadline!(
                self,
                self.upstream.leg().mail_rcpt(&env, address, dsn, follows)
            ) {
                // MAIL refused: its reply is the answer to this RCPT.
                Ok((mail, None)) => Ok(mail),
                Ok((_, Some(rcpt))) => {
                    self.txn.as_mut().expect("txn").upstream_open = true;
                    self.note_dsn_dropped(None);
                    Ok(rcpt)
                }
                Err(e) => Err(e),
            }
        };
        if matches!(&result, Ok(reply) if reply.is_positive()) {
            self.note_dsn_dropped(Some(dsn));
        }
        if let Err(e) = &result {
            tracing::warn!(session = %self.id, error = %e, "upstream MAIL/RCPT failed");
            // Any upstream error drops its connection, and the upstream transaction with it.
            let txn = self.txn.as_mut().expect("txn");
            txn.upstream_open = false;
            txn.upstream_lost = txn.has_forwarded();
        }
        Ok(result)
    }

    /// Note the DSN parameters the upstream now holds the transaction without (it does not
    /// offer DSN): MAIL's once it accepted MAIL, a recipient's once it accepted that recipient.
    fn note_dsn_dropped(&mut self, rcpt: Option<&RcptDsn>) {
        if self.upstream.leg().offers_dsn() {
            return;
        }
        let txn = self.txn.as_mut().expect("txn");
        match rcpt {
            None => txn.dsn_dropped.mail(&txn.envelope.dsn),
            Some(dsn) => txn.dsn_dropped.rcpt(dsn),
        }
    }

    /// End a transaction that never reached the end of DATA (RSET, EHLO, QUIT, a lost client):
    /// it is logged all the same, since its refusals at RCPT are what an admin looks for.
    pub(super) async fn end_transaction(&mut self, why: &str) {
        if let Some(txn) = self.txn.take() {
            self.log_transaction(
                &txn,
                HeaderSender::NotYetKnown,
                None,
                &txn.relay,
                &super::record::Outcome::new(format!("no message: {why}")),
                0,
            );
            if txn.chunks.as_ref().is_some_and(|c| c.sending()) {
                // A BDAT message half sent: only a closed connection keeps the upstream from
                // delivering it (an RSET could cross the replies to its chunks).
                self.upstream.leg().abort().await;
            } else if txn.upstream_open
                && tokio::time::timeout_at(self.session_deadline, self.upstream.leg().reset())
                    .await
                    .is_err()
            {
                self.upstream.leg().abort().await;
            }
        }
    }
}
