//! DATA: the message text, streamed to the upstream while it arrives, with the header block
//! held back (bounded) until the P2 sender is known and the policy has had its final say.
//!
//! The client is answered only after the upstream answered the final dot: its verdict is passed
//! through, and any trouble on the way becomes a 4xx, so a client told 250 knows the upstream
//! has the message. BDAT is not offered; a client that sends it anyway has its payload skipped
//! (never read as commands).

use super::io::READ_CHUNK;
use super::{End, Session};
use crate::policy::enforcement::{refusal_at_end_of_data, refusals_answered};
use crate::policy::{self, HeaderSender, RecipientVerdict, Rejection, RelayDecision, ReversePath};
use crate::upstream::{ClientFacts, Stage, UpstreamError, UpstreamReply};
use crate::wire::data::{DataDecoder, DataError};
use crate::wire::header::{header_sender, HeaderCollector};
use crate::wire::reply::{rfc5322_date, Reply};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite};

/// One message's text as it is read.
struct Text {
    decoder: DataDecoder,
    /// Decoded text of the latest read (reused: one buffer per message, not per read).
    chunk: Vec<u8>,
    size: u64,
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

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn data(&mut self) -> Result<(), End> {
        let Some(txn) = self.txn.as_ref() else {
            self.error_reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return Ok(());
        };
        if txn.recipients.is_empty() {
            self.error_reply(Reply::new(554, "5.5.1", "No valid recipients"));
            return Ok(());
        }
        let lost = txn.upstream_lost;
        if self.input_pending() {
            // Text before our 354: the client did not wait for it (RFC 2920 3.1 forbids
            // that), so nothing it sent from here can be told apart from commands. Postfix's
            // smtpd_forbid_unauth_pipelining answer, then the connection is closed.
            self.reply(&Reply::new(
                554,
                "5.5.0",
                "Error: SMTP protocol synchronization",
            ));
            return Err(End::OutOfStep);
        }
        if lost {
            // Recipients were accepted in an upstream transaction that is gone: the message
            // cannot reach all of them, so none of it is taken.
            let line = self.reply_with_suffix(&UpstreamError::Dropped(Stage::Data).reply());
            self.end_transaction(&format!("DATA answered {line}")).await;
            return Ok(());
        }
        self.transactions += 1;
        self.reply(&Reply::new(
            354,
            "",
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        self.flush().await.map_err(|_| End::Io)?;

        let server = &self.settings.server;
        let mut text = Text {
            decoder: DataDecoder::new(server.max_line_length),
            chunk: Vec::with_capacity(READ_CHUNK),
            size: 0,
            max_size: server.max_message_size,
        };
        let mut headers = HeaderCollector::new(server.max_header_size);

        // Phase 1: the header block, buffered (bounded) to find the P2 sender.
        let mut done = false;
        while !headers.is_complete() {
            done = self.read_text(&mut text).await?;
            headers.push(&text.chunk);
            if done {
                headers.finish();
            }
        }
        let p2 = header_sender(headers.header());
        let decision = self.final_decision(p2.as_deref());
        let enforce = refusals_answered(self.settings.policy.mode);
        let early_refusal = if headers.too_large() {
            Some(Reply::new(
                552,
                "5.3.4",
                "Message header size exceeds limit",
            ))
        } else if enforce {
            decision.refusal.clone()
        } else {
            None
        };
        // Already known to be refused (policy, header size, bare line break, long line,
        // size): the upstream is not asked to start a message that will be abandoned.
        let mut forwarding = if early_refusal.is_none() && text.acceptable() {
            self.open_message(headers.collected()).await?
        } else {
            Forwarding::NotSent
        };
        drop(headers);

        // Phase 2: stream the rest.
        while !done {
            done = match self.read_text(&mut text).await {
                Ok(d) => d,
                Err(end) => {
                    // The client is gone or too slow: nothing of this message may be delivered.
                    // The transaction is logged when the session ends.
                    self.upstream.abort().await;
                    return Err(end);
                }
            };
            if matches!(forwarding, Forwarding::Sending) && text.acceptable() {
                if let Err(e) = within_deadline!(self, self.upstream.write_text(&text.chunk)) {
                    tracing::warn!(session = %self.id, error = %e, "upstream write failed");
                    forwarding = Forwarding::Failed(e.reply());
                }
            }
        }

        // The final answer.
        let sending = matches!(forwarding, Forwarding::Sending);
        let refusal = early_refusal.or_else(|| text.refusal(self.settings.server.max_line_length));
        let reply = match (refusal, forwarding) {
            (Some(r), f) => {
                if matches!(f, Forwarding::Sending) {
                    self.upstream.abort().await;
                }
                self.reply_with_suffix(&r)
            }
            (None, Forwarding::Refused(r)) => self.reply_upstream(&r),
            (None, Forwarding::Failed(r)) => self.reply_with_suffix(&r),
            (None, Forwarding::NotSent) => {
                self.reply_with_suffix(&UpstreamError::Dropped(Stage::Data).reply())
            }
            (None, Forwarding::Sending) => {
                match within_deadline!(self, self.upstream.finish_data()) {
                    Ok(r) => self.reply_upstream(&r),
                    Err(e) => {
                        tracing::warn!(session = %self.id, error = %e, "upstream end of DATA failed");
                        self.reply_with_suffix(&e.reply())
                    }
                }
            }
        };
        let mut outcome = super::record::Outcome::new(reply);
        if !enforce {
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
            within_deadline!(self, self.upstream.reset());
        }
        Ok(())
    }

    /// Start the message upstream: DATA (or BDAT), then the `Received:` field and the header
    /// block held so far.
    async fn open_message(&mut self, header: &[u8]) -> Result<Forwarding, End> {
        if !self.txn.as_ref().is_some_and(|t| t.upstream_open) {
            return Ok(Forwarding::Failed(
                UpstreamError::Dropped(Stage::Data).reply(),
            ));
        }
        // Built only for the directory kind: no per-message copies for an SMTP upstream.
        let facts = if self.upstream.records_client() {
            self.client_facts()
        } else {
            ClientFacts::default()
        };
        match within_deadline!(self, self.upstream.data(&facts)) {
            Ok(r) if r.code == 354 => {}
            Ok(r) => return Ok(Forwarding::Refused(r)),
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "upstream DATA failed");
                return Ok(Forwarding::Failed(e.reply()));
            }
        }
        let received = self.received_header();
        let written = within_deadline!(self, async {
            self.upstream.write_text(&received).await?;
            self.upstream.write_text(header).await
        });
        Ok(match written {
            Ok(()) => Forwarding::Sending,
            Err(e) => {
                tracing::warn!(session = %self.id, error = %e, "upstream write failed");
                Forwarding::Failed(e.reply())
            }
        })
    }

    /// Read message text: `Ok(true)` at the end marker. `text.chunk` gets the decoded text of
    /// what was buffered.
    async fn read_text(&mut self, text: &mut Text) -> Result<bool, End> {
        text.chunk.clear();
        if self.buffered().is_empty() {
            match self
                .fill(self.settings.server.data_timeout, READ_CHUNK)
                .await
            {
                super::io::Input::Line(_) => {}
                super::io::Input::Closed => return Err(End::ClientClosed),
                super::io::Input::Failed | super::io::Input::ShuttingDown => return Err(End::Io),
                super::io::Input::TimedOut => {
                    self.timed_out();
                    return Err(End::Timeout);
                }
            }
        }
        let (used, done) = text
            .decoder
            .decode(&self.rbuf[self.rstart..], &mut text.chunk);
        self.consume(used);
        text.size += text.chunk.len() as u64;
        Ok(done)
    }

    /// Re-judge the transaction once the P2 sender is known.
    fn final_decision(&mut self, p2: Option<&str>) -> Decision {
        let settings = Arc::clone(&self.settings);
        let p = &settings.policy;
        let facts = crate::policy::SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
            tls: self.tls_description.is_some(),
        };
        let txn = self.txn.as_mut().expect("txn");
        let header = HeaderSender::of_address(p2);
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let relay = policy::authorize_relay(&p.tenant, p.profile, &facts, p1, header);
        let mut refusal = None;
        for r in txn.recipients.iter_mut() {
            if matches!(r.verdict, RecipientVerdict::AwaitingHeaderSender) {
                r.verdict = policy::judge_recipient(&p.tenant, &facts, p1, &relay, &r.address);
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

    /// BDAT while CHUNKING is not offered: its payload is skipped (bounded by the message size
    /// limit), never read as commands; one that cannot be skipped ends the session.
    pub(super) async fn bdat_not_offered(&mut self, size: usize) -> Result<(), End> {
        let max = self.settings.server.max_message_size;
        if size as u64 > max {
            self.error_reply(Reply::new(
                552,
                "5.3.4",
                format!("BDAT (CHUNKING) is not offered, and a chunk over the maximum message size of {max} bytes cannot be skipped"),
            ));
            return Err(End::OutOfStep);
        }
        if !self.skip(size as u64).await {
            return Err(End::Io);
        }
        self.error_reply(Reply::new(502, "5.5.1", "BDAT (CHUNKING) is not offered"));
        Ok(())
    }
}
