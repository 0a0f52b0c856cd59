//! The message's text to the upstream: how it starts (DATA, or BDAT chunks where offered:
//! [`super::bdat`]), how it goes out, and the verdict at its end.
//!
//! With DATA the 354 round trip is overlapped: DATA goes out as the message starts and the
//! session tells its client to go on at once, so the upstream's answer is on its way while the
//! client's text comes in. The text is gathered meanwhile, bounded ([`GO_AHEAD_BUFFER`]: when
//! it is full the gate waits for the answer, and the client, not read, waits with it), and goes
//! out only after the 354: text written after a refusal would be read as commands. A refusal of
//! DATA (4xx/5xx) is the message's verdict: the rest of the text is read and discarded, and
//! the client hears the refusal as its final reply, exactly as if it had answered its DATA.
//! Anything else (a 250 to DATA, a stray line after the 354) is an upstream out of step. The
//! client's final reply still waits for the upstream's verdict on the text, so what a 250
//! means does not change: only the upstream's 250 to the final dot makes one.

use super::bdat::{Bdat, BDAT_HEADROOM};
use super::SmtpLeg;
use crate::upstream::connection::Expect;
use crate::upstream::{count, Stage, UpstreamError, UpstreamReply};
use crate::wire::data::DotStuffer;

/// Bytes of stuffed text gathered before a write to the upstream.
const WRITE_CHUNK: usize = 64 * 1024;
/// Most text held while the upstream's answer to DATA is on its way. Enough for nearly every
/// message to be read whole before the 354 arrives from across a WAN; small enough to hold
/// for many sessions at once.
const GO_AHEAD_BUFFER: usize = 256 * 1024;

impl SmtpLeg {
    /// Start the message. With CHUNKING there is nothing to ask: the text goes as BDAT chunks
    /// and the upstream's verdict comes with the last one. With DATA the command goes out and
    /// its answer is read later, with the text (the module's doc says why). Either way the
    /// client is told to go on at once: the local 354 never reaches it as an acceptance; only
    /// the final reply does.
    ///
    /// A `BODY=BINARYMIME` message to an upstream that cannot take it is refused here, before
    /// a byte of it is sent: with DATA its NULs and bare line breaks would be refused or,
    /// worse, read as line ends, and RFC 3030 lets no relay turn it into something else. The
    /// upstream transaction stays open for the session's RSET.
    pub async fn data(&mut self, binary_mime: bool) -> Result<UpstreamReply, UpstreamError> {
        // DATA went with the last RCPT and is answered already: a 354 lets the text go
        // straight out; a refusal is the message's verdict.
        let answered = self.take_data_answer();
        self.stuffer = DotStuffer::default();
        self.wbuf.clear();
        self.last_text_ended_crlf = true;
        self.bdat = None;
        self.awaiting_354 = false;
        self.data_refusal = None;
        if !self.in_transaction {
            return Err(UpstreamError::Dropped(Stage::Data));
        }
        if let Some(answer) = answered {
            // Never for BODY=BINARYMIME: the session sends such a message as BDAT only.
            return Ok(answer);
        }
        let caps = self.conn.as_ref().map(|c| c.caps).unwrap_or_default();
        if binary_mime && !self.takes_binary_mime(caps) {
            return Ok(UpstreamReply::local(
                554,
                "5.6.1 The upstream does not support BINARYMIME (BODY=BINARYMIME); the message was not sent",
            ));
        }
        if self.shared.settings.chunking && caps.chunking {
            self.bdat = Some(Bdat::new(caps.pipelining));
            self.wbuf.resize(BDAT_HEADROOM, 0);
            return Ok(UpstreamReply::local(
                354,
                "send the message (BDAT upstream)",
            ));
        }
        self.ensure_in_step(Stage::Data)?;
        self.wbuf.extend_from_slice(b"DATA\r\n");
        self.write_wbuf(0, Stage::Data).await?;
        self.awaiting_354 = true;
        Ok(UpstreamReply::local(
            354,
            "send the message (the upstream's answer to DATA is on its way)",
        ))
    }

    /// Whether the go-ahead for the message in progress was the gate's own: BDAT, or DATA
    /// whose answer is still on its way (it is counted when it is read).
    pub fn go_ahead_is_local(&self) -> bool {
        self.bdat.is_some() || self.awaiting_354
    }

    /// Read the upstream's answer to DATA if it is still owed: a 354 lets the held text go
    /// out; a refusal becomes the verdict and the held text is dropped. A 421, trouble, or a
    /// reply that does not fit DATA (or has anything behind it) drops the connection.
    async fn await_go_ahead(&mut self) -> Result<(), UpstreamError> {
        if !self.awaiting_354 {
            return Ok(());
        }
        let wait = self.reply_timeout();
        let r = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(Stage::Data)),
            Some(c) => c
                .read_sole(Expect::StartInput, wait, Stage::Data)
                .await
                .map(|r| vec![r]),
        };
        let reply = match self.settle(r, Stage::Data) {
            Ok(mut replies) => replies.remove(0),
            Err(e) => {
                self.abort();
                return Err(e);
            }
        };
        self.awaiting_354 = false;
        if reply.code == 354 {
            count(&Ok(&reply));
        } else {
            self.wbuf.clear();
            self.data_refusal = Some(Box::new(reply));
        }
        Ok(())
    }

    /// Give back what the text held for a 354 grew the write buffer to: a session between
    /// messages keeps no more than two write chunks.
    pub(super) fn shrink_wbuf(&mut self) {
        self.wbuf.shrink_to(2 * WRITE_CHUNK);
    }

    /// Write `wbuf[from..]` and empty the buffer down to `from`; on failure the connection
    /// (and the message with it) is dropped.
    pub(super) async fn write_wbuf(
        &mut self,
        from: usize,
        stage: Stage,
    ) -> Result<(), UpstreamError> {
        let wait = self.reply_timeout();
        let r = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(stage)),
            Some(c) => c.write(&self.wbuf[from..], wait, stage).await,
        };
        self.wbuf.truncate(from);
        if r.is_err() {
            self.abort();
        }
        r
    }

    /// Nothing may have arrived from the upstream while nothing was owed: a reply now would be
    /// read as the answer to what comes next. Checked before DATA, the final dot or LAST.
    pub(super) fn ensure_in_step(&mut self, stage: Stage) -> Result<(), UpstreamError> {
        let r = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(stage)),
            Some(c) => c.ensure_in_step(stage),
        };
        if r.is_err() {
            self.abort();
        }
        r
    }

    /// The upstream's verdict on the whole message; trouble, a 421 or anything after the
    /// verdict drops the connection.
    pub(super) async fn read_final_reply(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let wait = self.shared.settings.data_end_timeout;
        let Some(c) = self.conn.as_mut() else {
            return Err(UpstreamError::Dropped(Stage::EndOfData));
        };
        let r = c.read_final(wait, Stage::EndOfData).await;
        self.in_transaction = false;
        match r {
            Ok((reply, _)) if reply.code == 421 => {
                self.conn = None;
                Err(UpstreamError::Refused {
                    stage: Stage::EndOfData,
                    reply: reply.summary(),
                })
            }
            Ok((reply, open)) => {
                if !open {
                    self.conn = None;
                }
                Ok(reply)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    pub async fn write_text(&mut self, text: &[u8]) -> Result<(), UpstreamError> {
        if text.is_empty() {
            return Ok(());
        }
        if let Some(bdat) = &self.bdat {
            if bdat.refused.is_some() {
                // The upstream has refused this message: the rest would only be discarded.
                return Ok(());
            }
            self.wbuf.extend_from_slice(text);
            if self.wbuf.len() - BDAT_HEADROOM >= WRITE_CHUNK {
                self.send_chunk(false).await?;
            }
            return Ok(());
        }
        if self.data_refusal.is_some() {
            // DATA was refused: the rest of the text is read and discarded.
            return Ok(());
        }
        self.stuffer.stuff(text, &mut self.wbuf);
        self.last_text_ended_crlf = text.ends_with(b"\r\n");
        if self.wbuf.len() < WRITE_CHUNK {
            return Ok(());
        }
        if self.awaiting_354 {
            // A chunk is ready: send it if the answer to DATA is here; else hold the text
            // until the buffer is full, then wait for the answer (backpressure).
            let arrived = self.conn.as_mut().is_some_and(|c| c.reply_arrived());
            if !arrived && self.wbuf.len() < GO_AHEAD_BUFFER {
                return Ok(());
            }
            self.await_go_ahead().await?;
            if self.data_refusal.is_some() {
                return Ok(());
            }
        }
        self.write_wbuf(0, Stage::Data).await
    }

    pub async fn finish_data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        if self.bdat.is_some() {
            return self.finish_bdat().await;
        }
        self.await_go_ahead().await?;
        if let Some(reply) = self.data_refusal.take() {
            // No text went out, so the upstream is in step, its transaction still open: RSET
            // keeps the connection for the next one.
            self.shrink_wbuf();
            self.reset().await;
            return Ok(*reply);
        }
        self.ensure_in_step(Stage::EndOfData)?;
        self.stuffer
            .finish(self.last_text_ended_crlf, &mut self.wbuf);
        self.write_wbuf(0, Stage::Data).await?;
        self.shrink_wbuf();
        self.read_final_reply().await
    }
}
