//! The message, however it comes (DATA here; BDAT chunks in [`super::bdat`]): streamed to the
//! upstream while it arrives, with the header block held back (bounded) until the P2 sender is
//! known and the policy has had its final say.
//!
//! The client is answered only after the upstream answered the end of the message: its verdict
//! is passed through, and any trouble on the way becomes a 4xx, so a client told 250 knows the
//! upstream has the message. DATA and BDAT share everything from the decoded text on ([`Message`]:
//! the decision, the refusals, the forwarding, the final answer), so they cannot drift apart.

use super::io::READ_CHUNK;
use super::{End, Session};
use crate::policy::enforcement::{refusal_at_end_of_data, refusals_answered};
use crate::policy::{self, HeaderSender, RecipientVerdict, Rejection, RelayDecision, ReversePath};
use crate::upstream::{ClientFacts, Stage, UpstreamError, UpstreamReply};
use crate::wire::data::{DataDecoder, DataError};
use crate::wire::header::{sender_and_message_id, HeaderCollector};
use crate::wire::reply::{rfc5322_date, Reply};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite};

/// One message's text as it is read.
pub(super) struct Text {
    pub(super) decoder: DataDecoder,
    /// Decoded text of the latest read (reused: one buffer per message, not per read).
    pub(super) chunk: Vec<u8>,
    pub(super) size: u64,
    max_size: u64,
}

impl Text {
    /// Nothing wrong with the text so far: it may still go to the upstream.
    fn acceptable(&self) -> bool {
        self.decoder.error().is_none() && self.size <= self.max_size
    }

    /// Why the text is refused, once all of it was read.
    fn refusal(&self, max_line_length: usize) -> Option<Reply> {
        match self.decoder.error() {
            Some(DataError::BareLineBreak) => Some(Reply::new(
                550,
                "5.5.2",
                "Message contains a bare CR or LF; lines must end with CRLF (SMTP smuggling protection)",
            )),
            Some(DataError::Nul) => Some(Reply::new(
                550,
                "5.6.0",
                "Message contains a NUL character, which is allowed only with BODY=BINARYMIME",
            )),
            Some(DataError::LineTooLong) => Some(Reply::new(
                500,
                "5.5.2",
                format!("Message contains a line longer than {max_line_length} octets"),
            )),
            None if self.size > self.max_size => Some(Reply::new(
                552,
                "5.3.4",
                format!(
                    "Message size exceeds fixed maximum message size of {} bytes",
                    self.max_size
                ),
            )),
            None => None,
        }
    }
}

/// Where the message stands with the upstream.
enum Forwarding {
    /// Not sent: the message is refused before a byte went upstream.
    NotSent,
    /// The text is going to the upstream.
    Sending,
    /// The upstream refused DATA itself: that is the verdict.
    Refused(UpstreamReply),
    /// Upstream trouble: this (a 4xx) is the client's answer.
    Failed(Reply),
}

/// The policy's final say, once the header block is known.
struct Decision {
    relay: RelayDecision,
    /// The refusal enforce mode answers at the end of DATA (5.7.64), if any.
    refusal: Option<Reply>,
}

/// One message in progress, DATA or BDAT.
pub(super) struct Message {
    pub(super) text: Text,
    /// The header block while it is being collected; `None` once the message is decided.
    headers: Option<HeaderCollector>,
    p2: Option<String>,
    /// The `Message-ID` header, for the log (Message Trace searches by it).
    message_id: Option<String>,
    decision: Option<Decision>,
    /// A refusal known once the header block is (policy in enforce mode, header size).
    early_refusal: Option<Reply>,
    forwarding: Forwarding,
    binary_mime: bool,
}

impl Message {
    /// Whether text of this message is going to the upstream: only closing that connection
    /// keeps the upstream from delivering it if the message is abandoned.
    pub(super) fn sending(&self) -> bool {
        matches!(self.forwarding, Forwarding::Sending)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// A message for the transaction, its text read through `decoder`.
    pub(super) fn new_message(&mut self, decoder: DataDecoder) -> Message {
        self.transactions += 1;
        let server = &self.settings.server;
        Message {
            text: Text {
                decoder,
                // Grown to the reads' size as they come (`read_text`): a small message costs
                // a small buffer, not a 64 KiB one per message.
                chunk: Vec::new(),
                size: 0,
                max_size: server.max_message_size,
            },
            headers: Some(HeaderCollector::new(server.max_header_size)),
            p2: None,
            message_id: None,
            decision: None,
            early_refusal: None,
            forwarding: Forwarding::NotSent,
            binary_mime: self.txn.as_ref().is_some_and(|t| t.envelope.binary_mime),
        }
    }

    /// Take the text just decoded (`message.text.chunk`): held with the header block until that
    /// is complete, which decides the message; streamed to the upstream from then on.
    pub(super) async fn take_text(&mut self, message: &mut Message) -> Result<(), End> {
        if let Some(headers) = message.headers.as_mut() {
            if headers.push(&message.text.chunk) {
                self.decide(message).await?;
            }
            return Ok(());
        }
        if message.sending() && message.text.acceptable() {
            if let Err(e) =
                within_deadline!(self, self.upstream.leg().write_text(&message.text.chunk))
            {
                tracing::warn!(session = %self.id, error = %e, "upstream write failed");
                message.forwarding = Forwarding::Failed(e.reply());
            }
        }
        Ok(())
    }

    /// The header block is complete: the policy's final say, and the message started upstream
    /// with what was held, unless it is already known to be refused (policy, header size, bare
    /// line break, long line, size): the upstream is not asked to start a message that will
    /// be abandoned.
    async fn decide(&mut self, message: &mut Message) -> Result<(), End> {
        let headers = message.headers.take().expect("undecided message");
        (message.p2, message.message_id) = sender_and_message_id(headers.header());
        let decision = self.final_decision(message.p2.as_deref());
        message.early_refusal = if headers.too_large() {
            Some(Reply::new(
                552,
                "5.3.4",
                "Message header size exceeds limit",
            ))
        } else if refusals_answered(self.rule(self.txn.as_ref().and_then(|t| t.tenant)).mode) {
            decision.refusal.clone()
        } else {
            None
        };
        message.decision = Some(decision);
        let refused = message.early_refusal.is_some() || !message.text.acceptable();
        message.forwarding = match std::mem::replace(&mut message.forwarding, Forwarding::NotSent) {
            // Started when the client sent DATA, refused now: closing before a byte of text
            // is the only way to take DATA back.
            Forwarding::Sending if refused => {
                self.upstream.leg().abort().await;
                Forwarding::NotSent
            }
            Forwarding::Sending => self.send_head(headers.collected()).await?,
            Forwarding::NotSent if !refused => {
                match self.start_upstream(message.binary_mime).await? {
                    Forwarding::Sending => self.send_head(headers.collected()).await?,
                    other => other,
                }
            }
            // Not sent, or trouble (or a refusal) from the early start, which stays the answer.
            other => other,
        };
        Ok(())
    }

    /// Start the message upstream as the client sends DATA, before its text, so the
    /// upstream's answer to DATA is on its way while the text comes in (the leg holds the text
    /// until it has it: `upstream::smtp::text`). Not when the policy may still refuse the
    /// message once its header block is known (enforce mode, a recipient awaiting the header
    /// sender): such a message is not started upstream at all, and the upstream connection is
    /// kept. Nor for a directory, which records the client when the message starts.
    pub(super) async fn start_early(&mut self, message: &mut Message) -> Result<(), End> {
        let Some(txn) = self.txn.as_ref() else {
            return Ok(());
        };
        let may_refuse = refusals_answered(self.rule(txn.tenant).mode)
            && txn
                .recipients
                .iter()
                .any(|r| matches!(r.verdict, RecipientVerdict::AwaitingHeaderSender));
        if !txn.upstream_open || may_refuse || self.upstream.leg().records_client() {
            return Ok(());
        }
        message.forwarding = self.start_upstream(message.binary_mime).await?;
        Ok(())
    }

    /// The message was cut off (the client left, stalled, or broke the protocol).
    pub(super) async fn abandon(&mut self, message: &Message) {
        if message.sending() {
            self.upstream.leg().abort().await;
        }
    }

    /// The end of the message (the final dot, or `BDAT ... LAST`): its one final answer, and
    /// the end of its transaction.
    pub(super) async fn end_message(&mut self, mut message: Message) -> Result<(), End> {
        if let Some(headers) = message.headers.as_mut() {
            // The data ended within the header block: all of it is the header block.
            headers.finish();
            self.decide(&mut message).await?;
        }
        let Message {
            text,
            p2,
            message_id,
            decision,
            early_refusal,
            forwarding,
            ..
        } = message;
        let decision = decision.expect("decided");
        let sending = matches!(forwarding, Forwarding::Sending);
        let refusal = early_refusal.or_else(|| text.refusal(self.settings.server.max_line_length));
        let mut upstream_reply = None;
        let reply = match (refusal, forwarding) {
            (Some(r), f) => {
                if matches!(f, Forwarding::Sending) {
                    self.upstream.leg().abort().await;
                }
                self.reply_with_suffix(&r)
            }
            (None, Forwarding::Refused(r)) => {
                upstream_reply = Some(r.summary());
                self.reply_upstream(&r)
            }
            (None, Forwarding::Failed(r)) => self.reply_with_suffix(&r),
            (None, Forwarding::NotSent) => {
                self.reply_with_suffix(&UpstreamError::Dropped(Stage::Data).reply())
            }
            (None, Forwarding::Sending) => {
                match within_deadline!(self, self.upstream.leg().finish_data()) {
                    Ok(r) => {
                        upstream_reply = Some(r.summary());
                        self.reply_upstream(&r)
                    }
                    Err(e) => {
                        tracing::warn!(session = %self.id, error = %e, "upstream end of DATA failed");
                        self.reply_with_suffix(&e.reply())
                    }
                }
            }
        };
        let mut outcome = super::record::Outcome::new(reply);
        outcome.upstream_reply = upstream_reply;
        outcome.message_id = message_id;
        let tenant = self.txn.as_ref().and_then(|t| t.tenant);
        if !refusals_answered(self.rule(tenant).mode) {
            outcome.enforce_reply = decision.refusal.map(|mut r| {
                r.text.push_str(&self.suffix());
                r.to_line()
            });
        }
        self.shrink_input();
        // The upstream transaction is over (answered, aborted, or never started).
        let txn = self.txn.take().expect("txn");
        self.log_transaction(
            &txn,
            HeaderSender::of_address(p2.as_deref()),
            p2.as_deref(),
            &decision.relay,
            &outcome,
            text.size,
        );
        if txn.upstream_open && !sending {
            within_deadline!(self, self.upstream.leg().reset());
        }
        Ok(())
    }

    /// Start the message upstream: DATA (or BDAT). `Sending` when text may follow.
    async fn start_upstream(&mut self, binary_mime: bool) -> Result<Forwarding, End> {
        if !self.txn.as_ref().is_some_and(|t| t.upstream_open) {
            return Ok(Forwarding::Failed(
                UpstreamError::Dropped(Stage::Data).reply(),
            ));
        }
        // Built only for the directory kind: no per-message copies for an SMTP upstream.
        let facts = if self.upstream.leg().records_client() {
            self.client_facts()
        } else {
            ClientFacts::default()
        };
        match within_deadline!(self, self.upstream.leg().data(&facts, binary_mime)) {
            Ok(r) if r.code == 354 => {}
            Ok(r) => return Ok(Forwarding::Refused(r)),
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "upstream DATA failed");
                return Ok(Forwarding::Failed(e.reply()));
            }
        }
        Ok(Forwarding::Sending)
    }

    /// The message's first text upstream: the `Received:` field and the header block held so
    /// far.
    async fn send_head(&mut self, header: &[u8]) -> Result<Forwarding, End> {
        let received = self.received_header();
        let leg = self.upstream.leg();
        let written = within_deadline!(self, async {
            leg.write_text(&received).await?;
            leg.write_text(header).await
        });
        Ok(match written {
            Ok(()) => Forwarding::Sending,
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "upstream write failed");
                Forwarding::Failed(e.reply())
            }
        })
    }

    /// Wait for more message text (DATA or a BDAT payload), within the DATA timeout.
    pub(super) async fn fill_text(&mut self) -> Result<(), End> {
        match self
            .fill(self.settings.server.data_timeout, READ_CHUNK)
            .await
        {
            super::io::Input::Line(_) => Ok(()),
            super::io::Input::Closed => Err(End::ClientClosed),
            super::io::Input::Failed | super::io::Input::ShuttingDown => Err(End::Io),
            super::io::Input::TimedOut => {
                self.timed_out();
                Err(End::Timeout)
            }
        }
    }

    /// Re-judge the transaction once the P2 sender is known.
    fn final_decision(&mut self, p2: Option<&str>) -> Decision {
        let settings = Arc::clone(&self.settings);
        let tenants = &settings.tenants;
        let tenant = self.txn.as_ref().and_then(|t| t.tenant);
        let profile = self.rule(tenant).profile;
        let mail_from = self
            .txn
            .as_ref()
            .map(|t| t.envelope.mail_from.clone())
            .unwrap_or_default();
        let facts = crate::policy::SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
            tls: self.tls_description.is_some(),
            submitter: super::envelope::submitter(&settings, self.user.as_deref(), &mail_from),
        };
        let txn = self.txn.as_mut().expect("txn");
        let header = HeaderSender::of_address(p2);
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let own = tenant.map(|a| a.tenant);
        let relay = policy::authorize_relay_among(tenants, own, profile, &facts, p1, header);
        let mut refusal = None;
        for r in txn.recipients.iter_mut() {
            if matches!(r.verdict, RecipientVerdict::AwaitingHeaderSender) {
                r.verdict =
                    policy::judge_recipient_among(tenants, own, &facts, p1, &relay, &r.address);
            }
            if refusal.is_none() {
                refusal = refusal_at_end_of_data(&r.verdict).map(Rejection::reply);
            }
        }
        Decision { relay, refusal }
    }

    fn received_header(&self) -> Vec<u8> {
        let proto = match (self.esmtp, self.tls_description.is_some()) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, true) => "SMTPS",
            (false, false) => "SMTP",
        };
        let tls = self
            .tls_description
            .as_ref()
            .map(|d| format!(" (using {d})"))
            .unwrap_or_default();
        format!(
            "Received: from {} ([{}])\r\n\tby {} (relaygate) with {proto}{tls} id {}-{};\r\n\t{}\r\n",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.addr.ip(),
            self.settings.server.hostname,
            self.id,
            self.transactions,
            rfc5322_date(SystemTime::now())
        )
        .into_bytes()
    }
}
