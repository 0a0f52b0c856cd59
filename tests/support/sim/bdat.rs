//! The simulated client's BDAT (RFC 3030), when the gate offers CHUNKING: one chunk or many
//! (tiny to large, now and then an empty `BDAT 0 LAST`), pipelined behind the envelope, all
//! at once, or one chunk per reply; sometimes `BODY=BINARYMIME` with NUL and bare line breaks
//! as content, sometimes such octets without it, which the gate must refuse, and now and then
//! a chunk of a size the gate cannot skip.
//!
//! Every choice here comes from the client's `bdat_rng`; the draws DATA makes from the main
//! generator (RSET, leaving early, the pieces of the text: [`Client::data_draws`]) are made
//! where DATA makes them, so the rest of a session is what it was when its message went as
//! DATA.

use super::client::{read_reply, Body, Client, Closed, Reply};
use tokio::io::AsyncWriteExt;

/// Octets a client may send only with `BODY=BINARYMIME`.
const FORBIDDEN: [&[u8]; 5] = [
    b"a bare\nLF, then a dot line\n.\n\r\n",
    b"a bare\rCR\r\n",
    b"a NUL \x00 octet\r\n",
    b"\r.\r\n",
    b"smuggled\r\n.\nMAIL FROM:<x@example.org>\r\n",
];

impl Client {
    /// The message as BDAT will carry it, and what kind of body that is.
    pub(super) fn bdat_text(&mut self, mut text: Vec<u8>) -> (Vec<u8>, Body) {
        let binary_mime = self.bdat_rng.chance(25);
        let smuggled = !binary_mime && self.bdat_rng.chance(10);
        let body = text
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(text.len(), |p| p + 4);
        if binary_mime {
            let content: &[u8] = b"\x00\x01binary\n.\n\r.\r\xff\x00\r\n";
            text.splice(body..body, content.iter().copied());
            if self.bdat_rng.chance(50) {
                // Binary content need not end with a line break.
                text.extend_from_slice(b"\x00no final line break\r");
            }
            return (text, Body::BinaryMime);
        }
        if !smuggled {
            return (text, Body::Bdat);
        }
        let octets = *self.bdat_rng.pick(&FORBIDDEN);
        // In the body, or in the header block (the gate reads it for the P2 sender).
        let at = if self.bdat_rng.chance(70) { body } else { 0 };
        text.splice(at..at, octets.iter().copied());
        (text, Body::Smuggled)
    }

    /// The chunk sizes for `len` octets; the last is the `LAST` chunk.
    fn chunk_sizes(&mut self, len: usize) -> Vec<usize> {
        let max = if len > 16 * 1024 {
            *self.bdat_rng.pick(&[4096, 96 * 1024])
        } else {
            *self.bdat_rng.pick(&[64, 4096, 96 * 1024])
        };
        let mut sizes = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (self.bdat_rng.range(1, max) as usize).min(len - at);
            sizes.push(n);
            at += n;
        }
        if sizes.is_empty() || self.bdat_rng.chance(10) {
            sizes.push(0);
        }
        sizes
    }

    /// Each chunk on the wire: `BDAT <n> [LAST]` and its octets. Now and then one chunk's size
    /// is one the gate cannot skip (over `max_message_size`, or no number): it must answer it,
    /// close the connection, and deliver nothing of the message.
    fn chunks(&mut self, text: &[u8]) -> Vec<Vec<u8>> {
        let sizes = self.chunk_sizes(text.len());
        let count = sizes.len();
        let unskippable = self
            .bdat_rng
            .chance(3)
            .then(|| self.bdat_rng.below(count as u64) as usize);
        let bad_size = *self
            .bdat_rng
            .pick(&["999999999999", "18446744073709551616", "abc", "-1"]);
        if unskippable.is_some() {
            self.last_mut().unskippable = true;
        }
        let mut at = 0;
        sizes
            .into_iter()
            .enumerate()
            .map(|(i, n)| {
                let last = if i + 1 == count { " LAST" } else { "" };
                let size = match unskippable == Some(i) {
                    true => bad_size.to_string(),
                    false => n.to_string(),
                };
                let mut wire = format!("BDAT {size}{last}\r\n").into_bytes();
                wire.extend_from_slice(&text[at..at + n]);
                at += n;
                wire
            })
            .collect()
    }

    /// A transaction whose message goes as BDAT chunks. `data_len`: the message's length as
    /// DATA would have sent it (stuffed), for the draws DATA would have made.
    pub(super) async fn bdat_transaction(
        &mut self,
        mail: &str,
        rcpts: &[String],
        text: &[u8],
        data_len: usize,
        pipelined: bool,
    ) -> Result<(), Closed> {
        let chunks = self.chunks(text);
        self.trace.note(format!(
            "client: {} octets in {} BDAT chunks ({mail})",
            text.len(),
            chunks.len()
        ));
        if pipelined {
            // Exchange's way: the envelope and every chunk in one go. Whether the client leaves
            // half-way is BDAT's own draw: DATA's is made only once DATA got its 354, which a
            // client pipelining BDAT does not wait for.
            let mut wire = format!("{mail}\r\n").into_bytes();
            for r in rcpts {
                wire.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
            }
            let leave_early = self.bdat_rng.chance(3);
            self.last_mut().text_sent = true;
            wire.extend(chunks.concat());
            self.trace.note(format!(
                "client -> MAIL, {} RCPT and {} BDAT chunks in one go",
                rcpts.len(),
                chunks.len()
            ));
            let (replies, closed) = match self
                .pipeline(&wire, 1 + rcpts.len() + chunks.len(), leave_early)
                .await
            {
                Ok(replies) => (replies, false),
                Err(replies) => (replies, true),
            };
            if replies.first().is_some_and(|r| r.code == 250) {
                for (r, reply) in rcpts.iter().zip(&replies[1..]) {
                    self.note_rcpt(r, reply.code);
                    if reply.line.contains("answers it with the message") {
                        self.last_mut().ahead = true;
                    }
                }
            }
            if closed {
                return Err(Closed);
            }
            self.last_mut().final_code = replies.last().map(|r| r.code);
            if replies[0].code == 250 {
                let rcpt_replies = &replies[1..=rcpts.len()];
                if data_would_start(rcpt_replies) && self.data_draws(data_len).0 {
                    self.trace
                        .note("client leaves (where it would have left its DATA)".into());
                    return Err(Closed);
                }
            }
            return Ok(());
        }
        if self.command(mail).await? != 250 {
            return Ok(());
        }
        let mut rcpt_replies = Vec::new();
        for r in rcpts {
            let code = self.command(&format!("RCPT TO:<{r}>")).await?;
            self.note_rcpt(r, code);
            rcpt_replies.push(Reply {
                code,
                line: self.last_line.clone(),
                chunking: false,
            });
        }
        if self.last().accepted.is_empty() || self.rng.chance(3) {
            self.command("RSET").await?;
            return Ok(());
        }
        let leave_early = if data_would_start(&rcpt_replies) {
            self.data_draws(data_len).0
        } else {
            self.bdat_rng.chance(3)
        };
        self.last_mut().text_sent = true;
        if self.bdat_rng.chance(50) {
            self.trace
                .note(format!("client -> {} BDAT chunks in one go", chunks.len()));
            let replies = self
                .pipeline(&chunks.concat(), chunks.len(), leave_early)
                .await
                .map_err(|_| Closed)?;
            self.last_mut().final_code = replies.last().map(|r| r.code);
            return Ok(());
        }
        // One chunk per reply; a refused chunk ends the message (RFC 3030: no more BDAT).
        let count = chunks.len();
        for (i, chunk) in chunks.iter().enumerate() {
            if leave_early && i >= count / 2 {
                self.trace.note("client leaves between BDAT chunks".into());
                return Err(Closed);
            }
            let line = String::from_utf8_lossy(&chunk[..chunk.len().min(40)]);
            self.trace
                .note(format!("client -> {:?}", line.lines().next().unwrap_or("")));
            self.write(chunk).await?;
            let code = self.reply().await?;
            if i + 1 == count {
                self.last_mut().final_code = Some(code);
            } else if code != 250 {
                self.last_mut().final_code = Some(code);
                self.command("RSET").await?;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Write `wire` in pieces while reading `count` replies, as a pipelining client must
    /// (RFC 2920): the gate's replies never back up behind the client's writes, whatever the
    /// pipe's size. `leave_early`: write half of it, then leave. `Err` holds the replies read
    /// before the connection ended (or the client left): a recipient told 2xx on the way was
    /// told so, whatever happened next.
    async fn pipeline(
        &mut self,
        wire: &[u8],
        count: usize,
        leave_early: bool,
    ) -> Result<Vec<Reply>, Vec<Reply>> {
        let end = if leave_early {
            wire.len() / 2
        } else {
            wire.len()
        };
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < end {
            let n = (self.bdat_rng.range(1, 96 * 1024) as usize).min(end - at);
            pieces.push(at..at + n);
            at += n;
        }
        let Client { io, buf, trace, .. } = self;
        let (mut rd, mut wr) = tokio::io::split(io);
        let write = async {
            for piece in pieces {
                wr.write_all(&wire[piece]).await.map_err(|_| Closed)?;
            }
            Ok::<(), Closed>(())
        };
        let mut replies = Vec::new();
        let read = async {
            while replies.len() < count {
                replies.push(read_reply(&mut rd, buf, trace).await?);
            }
            Ok::<(), Closed>(())
        };
        if leave_early {
            // Keep reading (replies the client will not wait for) until the half is written.
            tokio::select! {
                _ = write => {}
                _ = read => {}
            }
            trace.note("client leaves in the middle of its BDAT chunks".into());
            return Err(replies);
        }
        let (written, read) = tokio::join!(write, read);
        match (written, read) {
            (Ok(()), Ok(())) => Ok(replies),
            _ => Err(replies),
        }
    }
}

/// Whether DATA would have got its 354 after these replies to RCPT: some recipient accepted,
/// and the upstream not lost after one was (which the gate answers `451 4.4.x` to the RCPTs
/// that follow, and to DATA).
fn data_would_start(rcpts: &[Reply]) -> bool {
    let Some(first) = rcpts.iter().position(|r| (200..300).contains(&r.code)) else {
        return false;
    };
    !rcpts[first..]
        .iter()
        .any(|r| r.line.get(4..).is_some_and(|l| l.starts_with("4.4.")))
}
