//! A message sent with BDAT (RFC 3030), when the upstream offers CHUNKING: raw text in
//! chunks, no dot-stuffing, and no 354 to wait for.

use super::SmtpLeg;
use crate::upstream::connection::Expect;
use crate::upstream::{Stage, UpstreamError, UpstreamReply};

/// Room kept at the front of the write buffer for a `BDAT <size> [LAST]` command line, so a
/// chunk goes out in one write without copying it behind its command.
pub(super) const BDAT_HEADROOM: usize = 32;
/// BDAT chunks sent before their replies are read, when the upstream offers PIPELINING (RFC
/// 3030 lets a client pipeline chunks only then): enough to keep the upstream busy, few enough
/// that its replies never fill its send buffer while the gate is still writing. Without
/// PIPELINING each chunk's reply is read before the next chunk.
const MAX_CHUNKS_IN_FLIGHT: usize = 4;

/// A message being sent with BDAT.
pub(super) struct Bdat {
    /// Chunks that may be sent before the oldest reply is read.
    max_in_flight: usize,
    /// Chunks sent whose 250 has not been read yet.
    in_flight: usize,
    /// The first refused chunk: the rest of the message is discarded and this is the verdict.
    pub(super) refused: Option<UpstreamReply>,
}

impl Bdat {
    pub(super) fn new(pipelining: bool) -> Bdat {
        Bdat {
            max_in_flight: if pipelining { MAX_CHUNKS_IN_FLIGHT } else { 0 },
            in_flight: 0,
            refused: None,
        }
    }
}

impl SmtpLeg {
    /// Send what `wbuf` holds after its headroom as one BDAT chunk, then read replies to
    /// earlier chunks down to the in-flight bound (the caller reads the last chunk's reply).
    pub(super) async fn send_chunk(&mut self, last: bool) -> Result<(), UpstreamError> {
        let start = self.frame_chunk(last);
        self.write_wbuf(start, Stage::Bdat).await?;
        // The headroom again, for the next chunk's command.
        self.wbuf.resize(BDAT_HEADROOM, 0);
        if last {
            return Ok(());
        }
        let bdat = self.bdat.as_mut().expect("BDAT mode");
        bdat.in_flight += 1;
        while self
            .bdat
            .as_ref()
            .is_some_and(|b| b.in_flight > b.max_in_flight)
        {
            self.read_chunk_reply().await?;
        }
        Ok(())
    }

    /// Put the chunk's `BDAT <size> [LAST]` line in the headroom in front of it; returns where
    /// the chunk, command included, starts in `wbuf`.
    pub(super) fn frame_chunk(&mut self, last: bool) -> usize {
        let size = self.wbuf.len() - BDAT_HEADROOM;
        let command = if last {
            format!("BDAT {size} LAST\r\n")
        } else {
            format!("BDAT {size}\r\n")
        };
        let start = BDAT_HEADROOM - command.len();
        self.wbuf[start..BDAT_HEADROOM].copy_from_slice(command.as_bytes());
        start
    }

    /// Read the reply to the oldest chunk in flight (behind an envelope sent ahead, that
    /// envelope's first: [`super::ahead`]); a refusal becomes the message's verdict.
    async fn read_chunk_reply(&mut self) -> Result<(), UpstreamError> {
        if let Some(refusal) = self.settle_envelope().await? {
            match self.bdat.as_mut() {
                Some(bdat) => {
                    bdat.refused.get_or_insert(refusal);
                }
                None => return self.refused_then_lost(refusal),
            }
        }
        let wait = self.reply_timeout();
        let read = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(Stage::Bdat)),
            Some(c) => c.read_expected(Expect::Verdict, wait, Stage::Bdat).await,
        };
        let trouble = match read {
            Ok(r) if r.code == 421 => UpstreamError::Refused {
                stage: Stage::Bdat,
                reply: r.summary(),
            },
            Ok(reply) => {
                let bdat = self.bdat.as_mut().expect("BDAT mode");
                bdat.in_flight -= 1;
                if !reply.is_positive() && bdat.refused.is_none() {
                    bdat.refused = Some(reply);
                }
                return Ok(());
            }
            Err(e) => e,
        };
        // A refusal already read (of the envelope, or of an earlier chunk) is the verdict
        // still when the connection breaks after it: nothing of the message can be delivered.
        match self.bdat.as_mut().and_then(|b| b.refused.take()) {
            Some(refusal) => self.refused_then_lost(refusal),
            None => {
                self.abort();
                Err(trouble)
            }
        }
    }

    /// The connection is gone after a refusal of this message: closed, with the refusal kept
    /// as the verdict ([`SmtpLeg::finish_data`] answers with it; the rest of the text is
    /// discarded meanwhile).
    fn refused_then_lost(&mut self, refusal: UpstreamReply) -> Result<(), UpstreamError> {
        self.abort();
        self.data_refusal = Some(Box::new(refusal));
        Ok(())
    }

    /// The last chunk, then every reply still owed: the first refusal, or the final verdict.
    ///
    /// Every earlier chunk's reply is read before LAST goes out: LAST must never follow a
    /// refused chunk (an upstream could then deliver the message, or part of it, while the
    /// client is told to retry). That costs one round trip, and only for messages of more than
    /// one chunk. A refused message's connection is closed, not pooled: the upstream may still
    /// hold the failed transaction.
    pub(super) async fn finish_bdat(&mut self) -> Result<UpstreamReply, UpstreamError> {
        while self.bdat.as_ref().is_some_and(|b| b.in_flight > 0) {
            self.read_chunk_reply().await?;
        }
        if self.bdat.is_none() {
            // The connection broke after a refusal, which is the verdict (`refused_then_lost`).
            let refusal = self.data_refusal.take();
            return refusal
                .map(|r| *r)
                .ok_or(UpstreamError::Dropped(Stage::BdatLast));
        }
        let refused = self.bdat.as_ref().and_then(|b| b.refused.clone());
        if let Some(reply) = refused {
            self.abort();
            return Ok(reply);
        }
        if self.envelope_ahead {
            // A message of one chunk behind its envelope: the one round trip.
            return self.finish_ahead().await;
        }
        self.ensure_in_step(Stage::BdatLast)?;
        // The octets exactly as the client sent them: a BDAT message (BINARYMIME above all)
        // need not end with a line break, and adding one would change it. (DATA's text always
        // ends with one.)
        self.send_chunk(true).await?;
        self.bdat = None;
        self.wbuf.clear();
        self.read_final_reply().await
    }
}
