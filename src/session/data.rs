//! DATA: the message as dot-stuffed text after a 354, up to `CRLF . CRLF`. What happens to the
//! text is [`super::message`]'s, shared with BDAT.

use super::message::Text;
use super::{End, Session};
use crate::upstream::{Stage, UpstreamError};
use crate::wire::data::DataDecoder;
use crate::wire::reply::Reply;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn data(&mut self) -> Result<(), End> {
        let Some(txn) = self.txn.as_ref() else {
            self.error_reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return Ok(());
        };
        if txn.chunks.is_some() {
            self.error_reply(Reply::new(
                503,
                "5.5.1",
                "DATA after BDAT: the message is being sent with BDAT",
            ));
            return Ok(());
        }
        if txn.envelope.binary_mime {
            // RFC 3030 section 3: a BINARYMIME message can only be sent with BDAT.
            self.error_reply(Reply::new(
                503,
                "5.5.1",
                "BODY=BINARYMIME requires BDAT, not DATA",
            ));
            return Ok(());
        }
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
        let decoder = DataDecoder::new(self.settings.server.max_line_length);
        let mut message = self.new_message(decoder);
        // DATA upstream first, its answer not awaited: it is on its way while the client,
        // told 354 at once, sends the text.
        self.start_early(&mut message).await?;
        self.reply(&Reply::new(
            354,
            "",
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        if self.flush().await.is_err() {
            self.abandon(&message).await;
            return Err(End::Io);
        }
        loop {
            let done = match self.read_text(&mut message.text).await {
                Ok(done) => done,
                Err(end) => {
                    // The client is gone or too slow: nothing of this message may be
                    // delivered. The transaction is logged when the session ends.
                    self.abandon(&message).await;
                    return Err(end);
                }
            };
            self.take_text(&mut message).await?;
            if done {
                return self.end_message(message).await;
            }
        }
    }

    /// Read message text: `Ok(true)` at the end marker. `text.chunk` gets the decoded text of
    /// what was buffered.
    async fn read_text(&mut self, text: &mut Text) -> Result<bool, End> {
        text.chunk.clear();
        if self.buffered().is_empty() {
            self.fill_text().await?;
        }
        // Decoding never makes text longer: room for all of it, allocated once per size.
        text.chunk.reserve(self.buffered().len());
        let (used, done) = text
            .decoder
            .decode(&self.rbuf[self.rstart..], &mut text.chunk);
        self.consume(used);
        text.size += text.chunk.len() as u64;
        Ok(done)
    }
}
