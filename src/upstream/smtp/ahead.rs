//! The envelope sent ahead: MAIL and the transaction's sole RCPT go out without their replies
//! being awaited, and the message follows as BDAT right behind them (RFC 3030 section 4.2
//! pipelines a whole transaction this way). A message of one chunk (up to 64 KiB) then costs
//! one upstream round trip instead of two (the envelope, then the text); a larger one reads the
//! envelope's replies with its first chunk's, before LAST, and costs two as before.
//!
//! The session asks for it only when its client pipelined DATA or BDAT right behind the only
//! recipient going upstream (recipients the policy refused do not count), and nothing but the
//! upstream can still refuse the message before its text (every recipient decided at RCPT).
//! The client's RCPT is answered at once; the upstream's replies to MAIL and RCPT are read in
//! order with the message's:
//! - both accepted: the verdict on the message is the upstream's reply to its text, as ever;
//! - MAIL or RCPT refused: with its only recipient refused, the upstream has nobody to deliver
//!   to and must refuse the text (RFC 3030); that first refusal, word for word, is the
//!   client's final reply. For a transaction of one recipient a refusal at RCPT and one at the
//!   end of the message mean the same to the client: bounce it (5xx) or try again (4xx). The
//!   same when the connection breaks after that refusal was read: it is still the verdict;
//! - a 421, trouble, or the text accepted after a refused envelope: an upstream out of step,
//!   so the client gets a 4xx and keeps the message.
//!
//! Only to an upstream offering ENHANCEDSTATUSCODES: with a stray line and a late reply, the
//! RCPT's `250 2.1.5` would be read as the verdict on the message, and only its address status
//! gives it away ([`Expect::Verdict`]). Only on a connection that answered within
//! [`POOL_CHECK_AFTER`]: a connection idle longer
//! may have been closed by the upstream, and then MAIL is better sent on its own, to be sent
//! again on a new connection (nothing of the message is out yet). Nor on a new connection
//! with another configured address to fail over to at MAIL (`SmtpLeg::mail_rcpt`).

use super::{SmtpLeg, POOL_CHECK_AFTER};
use crate::upstream::connection::{Capabilities, Expect};
use crate::upstream::{count, Stage, UpstreamError, UpstreamReply};
use std::sync::atomic::Ordering;

/// What [`SmtpLeg::mail_rcpt`] answers for an envelope sent ahead: MAIL's and RCPT's
/// acceptance stand for the upstream's, whose replies are read with the message's.
pub(super) fn provisional() -> (UpstreamReply, Option<UpstreamReply>) {
    (
        UpstreamReply::local(250, "2.1.0 Sender OK (sent ahead)"),
        Some(UpstreamReply::local(
            250,
            "2.1.5 Recipient OK (the upstream answers it with the message)",
        )),
    )
}

impl SmtpLeg {
    /// Whether the envelope may go ahead on the connection in use, which offers `caps`:
    /// configured so, the message will go as BDAT chunks pipelined behind it, every reply
    /// carries an enhanced status code, and the connection answered recently.
    pub(super) fn may_send_ahead(&self, caps: Capabilities) -> bool {
        let settings = &self.shared.settings;
        settings.answer_sole_recipient_early
            && settings.chunking
            && caps.chunking
            && caps.pipelining
            && caps.enhanced_status_codes
            && !self.shared.ahead_distrusted.load(Ordering::Relaxed)
            && self
                .conn
                .as_ref()
                .is_some_and(|c| c.last_reply.elapsed() < POOL_CHECK_AFTER)
    }

    /// Write MAIL and RCPT without reading their replies. Trouble drops the connection, as
    /// [`SmtpLeg::exchange`] does.
    pub(super) async fn send_ahead(&mut self, lines: &[String]) -> Result<(), UpstreamError> {
        let wait = self.reply_timeout();
        let c = self.conn().await?;
        let mut r = c.ensure_in_step(Stage::Mail);
        if r.is_ok() {
            let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
            for l in lines {
                buf.extend_from_slice(l.as_bytes());
                buf.extend_from_slice(b"\r\n");
            }
            r = c.write(&buf, wait, Stage::Mail).await;
        }
        self.settle(r.map(|()| Vec::new()), Stage::Mail).map(drop)
    }

    /// Whether the replies to an envelope sent ahead are still owed.
    pub fn envelope_ahead(&self) -> bool {
        self.envelope_ahead
    }

    /// Read the replies to an envelope sent ahead, if owed: the first refusal among them, if
    /// any. A 421 or trouble drops the connection, and is the answer unless a refusal was read
    /// before it: with its sole recipient refused the upstream has nothing to deliver, so that
    /// refusal stays the verdict. Acceptances are counted here; a refusal is counted as the
    /// message's verdict, where it is returned.
    pub(super) async fn settle_envelope(&mut self) -> Result<Option<UpstreamReply>, UpstreamError> {
        if !std::mem::take(&mut self.envelope_ahead) {
            return Ok(None);
        }
        let wait = self.reply_timeout();
        let mut refusal = None;
        for stage in [Stage::Mail, Stage::Rcpt] {
            let read = match self.conn.as_mut() {
                None => Err(UpstreamError::Dropped(stage)),
                Some(c) => c.read_expected(Expect::Completion, wait, stage).await,
            };
            let trouble = match read {
                Ok(r) if r.code == 421 => UpstreamError::Refused {
                    stage,
                    reply: r.summary(),
                },
                Ok(r) => {
                    if r.is_positive() {
                        count(&Ok(&r));
                    } else if refusal.is_none() {
                        refusal = Some(r);
                    }
                    continue;
                }
                Err(e) => e,
            };
            self.abort();
            return refusal.map(Some).ok_or(trouble);
        }
        Ok(refusal)
    }

    /// The end of a message whose envelope is still unanswered (it went as one chunk): `BDAT
    /// LAST` behind it with a NOOP behind that, then the replies in order. The first refusal
    /// is the verdict; the text accepted after a refused envelope is an upstream out of step.
    ///
    /// The NOOP is the check on the verdict. A stray line right behind the RCPT's reply that
    /// arrives after LAST went out is, on the wire, LAST's reply; an acceptance from nowhere
    /// would then tell the client 250 for a message the upstream may refuse. Behind NOOP it
    /// cannot hide: LAST's own reply then sits in NOOP's place, and only a 2xx may be there.
    /// A refusal there (the message was refused), or no reply at all, is an upstream out of
    /// step: 451, and no envelope goes ahead to that upstream any more. Both 2xx: the message
    /// was accepted whichever was which, so the client's 250 is true.
    pub(super) async fn finish_ahead(&mut self) -> Result<UpstreamReply, UpstreamError> {
        // Written without dropping the connection on failure: an upstream that refused the
        // envelope and closed makes the write fail, and its refusal is still there to be read.
        let start = self.frame_chunk(true);
        self.wbuf.extend_from_slice(b"NOOP\r\n");
        let wait = self.reply_timeout();
        let written = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(Stage::BdatLast)),
            Some(c) => c.write(&self.wbuf[start..], wait, Stage::BdatLast).await,
        };
        self.bdat = None;
        self.wbuf.clear();
        let refusal = self.settle_envelope().await?;
        if let Err(e) = written {
            self.abort();
            return refusal.ok_or(e);
        }
        let verdict = match self.read_ahead_verdict().await {
            Ok(v) => v,
            Err(e) => {
                self.abort();
                return refusal.ok_or(e);
            }
        };
        match refusal {
            None => Ok(verdict),
            Some(r) if verdict.is_positive() => {
                self.abort();
                Err(UpstreamError::OutOfStep {
                    stage: Stage::EndOfData,
                    seen: format!(
                        "message accepted after its envelope was refused ({}): {}",
                        r.summary(),
                        verdict.summary()
                    ),
                })
            }
            Some(r) => {
                // The upstream may still hold the failed transaction: closed, not pooled.
                self.abort();
                Ok(r)
            }
        }
    }

    /// LAST's reply and the NOOP's behind it ([`SmtpLeg::finish_ahead`] says why). The
    /// connection is kept only when nothing follows.
    async fn read_ahead_verdict(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let (wait, noop_wait) = (self.shared.settings.data_end_timeout, self.reply_timeout());
        self.in_transaction = false;
        let Some(c) = self.conn.as_mut() else {
            return Err(UpstreamError::Dropped(Stage::EndOfData));
        };
        let verdict = c
            .read_expected(Expect::Verdict, wait, Stage::EndOfData)
            .await?;
        if verdict.code == 421 {
            return Err(UpstreamError::Refused {
                stage: Stage::EndOfData,
                reply: verdict.summary(),
            });
        }
        let noop = c
            .read_expected(Expect::Completion, noop_wait, Stage::Noop)
            .await;
        match noop {
            Ok(n) if (200..300).contains(&n.code) => {}
            // The message's own refusal came first: whatever NOOP got, the verdict stands
            // (a refusal read one behind only makes the client retry or bounce).
            _ if !verdict.is_positive() => {
                self.abort();
                return Ok(verdict);
            }
            other => {
                self.shared.ahead_distrusted.store(true, Ordering::Relaxed);
                tracing::warn!(
                    "upstream did not answer the NOOP behind a message as NOOP: envelopes are no longer sent ahead to it"
                );
                return Err(UpstreamError::OutOfStep {
                    stage: Stage::Noop,
                    seen: format!(
                        "the reply behind the message's ({}) was not NOOP's: {}",
                        verdict.summary(),
                        match other {
                            Ok(n) => n.summary(),
                            Err(e) => e.to_string(),
                        }
                    ),
                });
            }
        }
        // Anything behind NOOP's reply: not pooled (the message's verdict stands either way).
        if !matches!(c.ensure_in_step(Stage::Noop), Ok(())) {
            self.conn = None;
        }
        Ok(verdict)
    }
}
