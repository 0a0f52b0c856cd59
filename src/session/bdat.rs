//! BDAT (RFC 3030 CHUNKING, and BINARYMIME): a message in chunks, each `BDAT <size> [LAST]`
//! followed by exactly `<size>` octets, pipelined as the client likes.
//!
//! A payload is never read as commands: its octets are counted off the input, whatever they
//! look like, in `READ_CHUNK` pieces (a chunk is never held whole, whatever its size). From
//! the decoded text on, a chunked message is DATA's [`Message`]: the same header capture,
//! policy decision, refusals, forwarding and final answer, so the two cannot drift apart.
//!
//! The rules where RFC 3030 leaves a choice:
//!
//! - The message's only verdict is the reply to `LAST`, as DATA's is the reply to the final
//!   dot: every earlier chunk gets `250 2.0.0 <n> octets received`, even once the message is
//!   known to be refused (size over the sum of the chunks, a bare line break, the policy), and
//!   `LAST` gets the upstream's own reply or the refusal.
//! - A chunk the gate refuses outright (no recipient yet, an upstream transaction lost) fails
//!   the message: every later chunk of the transaction gets the same reply, its payload skipped,
//!   and `LAST` ends the transaction (so does RSET). No later recipient can make a message of
//!   the chunks that follow.
//! - A chunk announced larger than `max_message_size` is refused `552 5.3.4` and the
//!   connection closed: skipping it would mean reading up to that many octets for nothing.
//! - While a chunked message is open, `DATA` and `RCPT` get `503 5.5.1`; RSET, EHLO, QUIT and
//!   a lost client abandon it (the upstream connection is closed if text was going to it).

use super::message::Message;
use super::{End, Session};
use crate::upstream::{Stage, UpstreamError};
use crate::wire::data::DataDecoder;
use crate::wire::reply::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

/// The chunked message of a transaction, between its chunks.
pub(super) enum Chunks {
    /// Being taken (boxed: it waits in the transaction between chunks).
    Taking(Box<Message>),
    /// A chunk was refused with this reply (suffix included): the answer to every later chunk.
    Refused(Reply),
}

impl Chunks {
    /// Whether text is going to the upstream (the connection must close if it is abandoned).
    pub(super) fn sending(&self) -> bool {
        matches!(self, Chunks::Taking(m) if m.sending())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> Result<(), End> {
        let max = self.settings.server.max_message_size;
        if size as u64 > max {
            self.reply_with_suffix(&Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum message size of {max} bytes (a BDAT chunk of {size} octets; closing the connection)"),
            ));
            return Err(End::OutOfStep);
        }
        let Some(txn) = self.txn.as_mut() else {
            return self
                .refuse_chunk(size, Reply::new(503, "5.5.1", "Need MAIL command first"))
                .await;
        };
        let message = match txn.chunks.take() {
            Some(Chunks::Taking(message)) => message,
            Some(Chunks::Refused(reply)) => return self.fail_chunk(size, last, reply, false).await,
            None if txn.recipients.is_empty() => {
                let reply = Reply::new(
                    503,
                    "5.5.1",
                    "Need RCPT command first (no valid recipients)",
                );
                return self.fail_chunk(size, last, reply, true).await;
            }
            None if txn.upstream_lost => {
                // As DATA: recipients were accepted in an upstream transaction that is gone,
                // so the message cannot reach all of them.
                let mut reply = UpstreamError::Dropped(Stage::Data).reply();
                reply.text.push_str(&self.suffix());
                return self.fail_chunk(size, last, reply, true).await;
            }
            None => {
                let binary_mime = txn.envelope.binary_mime;
                let max_line = self.settings.server.max_line_length;
                Box::new(self.new_message(DataDecoder::for_bdat(max_line, binary_mime)))
            }
        };
        self.take_chunk(message, size as u64, last).await
    }

    /// Read one chunk's payload into the message, then answer it: `LAST` with the message's
    /// verdict, any other with `250`.
    async fn take_chunk(
        &mut self,
        mut message: Box<Message>,
        mut left: u64,
        last: bool,
    ) -> Result<(), End> {
        let size = left;
        while left > 0 {
            if self.buffered().is_empty() {
                if let Err(end) = self.fill_text().await {
                    self.abandon(&message).await;
                    return Err(end);
                }
            }
            let take = (self.buffered().len() as u64).min(left) as usize;
            let text = &mut message.text;
            text.chunk.clear();
            text.decoder
                .decode(&self.rbuf[self.rstart..self.rstart + take], &mut text.chunk);
            text.size += take as u64;
            self.consume(take);
            left -= take as u64;
            self.take_text(&mut message).await?;
        }
        if last {
            message.text.decoder.end_of_chunks();
            return self.end_message(*message).await;
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.chunks = Some(Chunks::Taking(message));
        }
        self.reply(&Reply::new(250, "2.0.0", format!("{size} octets received")));
        Ok(())
    }

    /// Skip a chunk's payload, then answer it with `reply` (an error).
    async fn refuse_chunk(&mut self, size: usize, reply: Reply) -> Result<(), End> {
        if !self.skip(size as u64).await {
            return Err(End::Io);
        }
        self.error_reply(reply);
        Ok(())
    }

    /// A chunk of a message that failed (the first, or a later one): skipped and answered
    /// `reply`; every later chunk gets the same until `LAST`, which ends the transaction.
    async fn fail_chunk(
        &mut self,
        size: usize,
        last: bool,
        reply: Reply,
        first: bool,
    ) -> Result<(), End> {
        if !self.skip(size as u64).await {
            return Err(End::Io);
        }
        if first {
            self.errors += 1;
        }
        self.reply(&reply);
        if last {
            let line = reply.to_line();
            self.end_transaction(&format!("BDAT LAST answered {line}"))
                .await;
        } else if let Some(txn) = self.txn.as_mut() {
            txn.chunks = Some(Chunks::Refused(reply));
        }
        Ok(())
    }
}
