//! The simulated client: a sender whose every choice comes from the seed (one to five
//! recipients, pipelined or not, small and large messages, dot lines, 8-bit text, RSET,
//! leaving mid-message, and BDAT when the gate offers CHUNKING: [`super::bdat`]), recording
//! what the gate told it about each message.

use super::rng::Rng;
use super::Trace;
use crate::support::message::stuff;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The client's end of the connection: the pipe itself, or TLS over it (a submission session).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One message as the client saw it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The `X-Sim-Id` that names it in the upstream's store.
    pub id: String,
    /// Recipients the gate answered 2xx.
    pub accepted: Vec<String>,
    /// Recipients the gate refused (4xx or 5xx).
    pub refused: Vec<String>,
    /// The text as the client meant it (un-stuffed).
    pub text: Vec<u8>,
    /// The gate's reply to the end of the message (or to DATA when it refused DATA); `None`
    /// when the client never got one (it left, or the session ended first).
    pub final_code: Option<u16>,
    /// The message text was (at least partly) sent.
    pub text_sent: bool,
    /// How the text was sent.
    pub body: Body,
    /// One of its BDAT chunks had a size the gate cannot skip (over the limit, or no number):
    /// the session ends there, and nothing of the message may be held.
    pub unskippable: bool,
    /// Its recipient was answered ahead of the upstream (the envelope sent ahead, the
    /// upstream's replies read with the message's).
    pub ahead: bool,
}

/// How a message's text was sent, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// DATA, dot-stuffed.
    Data,
    /// BDAT chunks of lines ending in CRLF.
    Bdat,
    /// BDAT with `BODY=BINARYMIME`: NUL and bare line breaks are content.
    BinaryMime,
    /// BDAT without `BODY=BINARYMIME`, with a bare CR or LF or a NUL: never to be taken.
    Smuggled,
}

pub struct Client {
    pub(super) io: Box<dyn Io>,
    pub(super) buf: Vec<u8>,
    pub(super) rng: Rng,
    /// What BDAT adds (whether to use it, chunks, BINARYMIME) is drawn from a generator of its
    /// own, so the draws the seeds were made of before BDAT existed stay where they were.
    pub(super) bdat_rng: Rng,
    pub(super) trace: Trace,
    /// The gate offered CHUNKING in its EHLO reply.
    chunking: bool,
    /// The last line of the latest reply.
    pub(super) last_line: String,
    /// Every message this client tried.
    pub sent: Vec<Sent>,
    /// AUTH PLAIN's initial response to send after EHLO (a submission session), and whether
    /// it holds the right password.
    pub auth: Option<(String, bool)>,
    /// What the gate said that it must not have (checked by the scenario).
    pub broken: Option<String>,
}

/// The connection ended (the gate closed it).
#[derive(Debug)]
pub struct Closed;

impl Client {
    pub fn new(io: impl Io + 'static, rng: Rng, trace: Trace) -> Client {
        Client {
            io: Box::new(io),
            buf: Vec::new(),
            bdat_rng: rng.sibling(),
            rng,
            trace,
            chunking: false,
            last_line: String::new(),
            sent: Vec::new(),
            auth: None,
            broken: None,
        }
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        self.io.write_all(bytes).await.map_err(|_| Closed)
    }

    /// One whole reply's code (every line read).
    pub(super) async fn reply(&mut self) -> Result<u16, Closed> {
        let reply = read_reply(&mut self.io, &mut self.buf, &self.trace).await?;
        self.chunking |= reply.chunking;
        self.last_line = reply.line;
        Ok(reply.code)
    }

    pub(super) async fn command(&mut self, line: &str) -> Result<u16, Closed> {
        self.trace.note(format!("client -> {line:?}"));
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.reply().await
    }

    /// A whole session: banner, EHLO, one to three transactions, QUIT (or just leaving).
    pub async fn run(&mut self, session: usize) -> Result<(), Closed> {
        if self.reply().await? != 220 {
            return Ok(());
        }
        if self.command("EHLO client.sim").await? != 250 {
            return Ok(());
        }
        if let Some((response, right)) = self.auth.clone() {
            let code = self.command(&format!("AUTH PLAIN {response}")).await?;
            let expected = if right { 235 } else { 535 };
            // 421: the address is locked out after too many wrong passwords.
            if code != expected && code != 421 {
                self.broken = Some(format!(
                    "AUTH answered {code}, expected {expected}: {}",
                    self.last_line
                ));
            }
            if code != 235 {
                // Without AUTH every MAIL gets 530: try one, then leave.
                let mail = self.command("MAIL FROM:<app@contoso.com>").await?;
                if code == 535 && mail != 530 {
                    self.broken = Some(format!("MAIL without AUTH answered {mail}"));
                }
                return Ok(());
            }
        }
        let transactions = self.rng.range(1, 3);
        for t in 0..transactions {
            self.transaction(format!("{session}.{t}")).await?;
        }
        if self.rng.chance(90) {
            self.command("QUIT").await?;
        }
        Ok(())
    }

    async fn transaction(&mut self, id: String) -> Result<(), Closed> {
        let sender = *self.rng.pick(&[
            "app@contoso.com",
            "app@contoso.com",
            "app@contoso.com",
            "",
            "printer@fabrikam.com",
        ]);
        let n = self.rng.range(1, 5);
        let rcpts: Vec<String> = (0..n)
            .map(|i| {
                let who = *self.rng.pick(&["user", "user", "user", "refuse", "staff"]);
                let domain = *self
                    .rng
                    .pick(&["example.org", "example.org", "contoso.com"]);
                format!("{who}{i}@{domain}")
            })
            .collect();
        let text = self.message_text(&id);
        let data_len = stuff(&text).len();
        let bdat = self.chunking && self.bdat_rng.chance(50);
        let (text, body) = if bdat {
            self.bdat_text(text)
        } else {
            (text, Body::Data)
        };
        self.sent.push(Sent {
            id,
            accepted: Vec::new(),
            refused: Vec::new(),
            text: text.clone(),
            final_code: None,
            text_sent: false,
            body,
            unskippable: false,
            ahead: false,
        });
        let pipelined = self.rng.chance(50);
        if bdat {
            let mail = match body {
                Body::BinaryMime => format!("MAIL FROM:<{sender}> BODY=BINARYMIME"),
                _ => format!("MAIL FROM:<{sender}>"),
            };
            return self
                .bdat_transaction(&mail, &rcpts, &text, data_len, pipelined)
                .await;
        }
        let data_code = if pipelined {
            // RFC 2920: MAIL, the RCPTs and DATA in one go, DATA last.
            let mut batch = format!("MAIL FROM:<{sender}>\r\n");
            for r in &rcpts {
                batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
            }
            batch.push_str("DATA\r\n");
            self.trace.note(format!("client -> {batch:?}"));
            self.write(batch.as_bytes()).await?;
            if self.reply().await? != 250 {
                // Each RCPT and DATA still gets its reply.
                for _ in 0..=rcpts.len() {
                    self.reply().await?;
                }
                return Ok(());
            }
            for r in &rcpts {
                let code = self.reply().await?;
                self.note_rcpt(r, code);
                if self.last_line.contains("answers it with the message") {
                    self.last_mut().ahead = true;
                }
            }
            self.reply().await?
        } else {
            if self.command(&format!("MAIL FROM:<{sender}>")).await? != 250 {
                return Ok(());
            }
            for r in &rcpts {
                let code = self.command(&format!("RCPT TO:<{r}>")).await?;
                self.note_rcpt(r, code);
            }
            if self.last().accepted.is_empty() || self.rng.chance(3) {
                self.command("RSET").await?;
                return Ok(());
            }
            self.command("DATA").await?
        };
        if data_code == 354 && self.last().accepted.is_empty() {
            // However the upstream answered DATA, a client with no recipient accepted is
            // never told to send its text.
            self.broken = Some("354 to DATA with no recipient accepted".into());
        }
        if data_code != 354 {
            self.last_mut().final_code = Some(data_code);
            if data_code < 400 {
                return Ok(());
            }
            self.command("RSET").await?;
            return Ok(());
        }
        self.last_mut().text_sent = true;
        let wire = stuff(&text);
        let (leave_early, pieces) = self.data_draws(wire.len());
        let mut at = 0;
        for piece in pieces {
            if leave_early && at + piece >= wire.len() / 2 {
                self.trace
                    .note("client leaves in the middle of the message".into());
                return Err(Closed);
            }
            self.write(&wire[at..at + piece]).await?;
            at += piece;
        }
        self.write(b".\r\n").await?;
        let code = self.reply().await?;
        self.last_mut().final_code = Some(code);
        Ok(())
    }

    /// The draws DATA makes from the main generator once DATA got its 354, in their order:
    /// whether the client leaves half-way, and the pieces it writes the `len` octets of stuffed
    /// text in (with `leave`, up to the piece it leaves in). BDAT makes the same draws where
    /// DATA would have made them ([`super::bdat`]), so what a session does after a message sent
    /// as BDAT is what it did when that message went as DATA.
    pub(super) fn data_draws(&mut self, len: usize) -> (bool, Vec<usize>) {
        let leave = self.rng.chance(3);
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < len {
            let piece = (self.rng.range(1, 96 * 1024) as usize).min(len - at);
            pieces.push(piece);
            if leave && at + piece >= len / 2 {
                break;
            }
            at += piece;
        }
        (leave, pieces)
    }

    pub(super) fn note_rcpt(&mut self, rcpt: &str, code: u16) {
        let sent = self.last_mut();
        if (200..300).contains(&code) {
            sent.accepted.push(rcpt.to_string());
        } else {
            sent.refused.push(rcpt.to_string());
        }
    }

    pub(super) fn last(&self) -> &Sent {
        self.sent.last().expect("a message")
    }

    pub(super) fn last_mut(&mut self) -> &mut Sent {
        self.sent.last_mut().expect("a message")
    }

    /// A message: a header block naming it, then lines of every kind a relay must carry
    /// unchanged (dot lines, 8-bit text, a lone dot as text); now and then a large one.
    fn message_text(&mut self, id: &str) -> Vec<u8> {
        let mut t = format!(
            "From: App <app@contoso.com>\r\nTo: someone@example.org\r\nSubject: sim {id}\r\nX-Sim-Id: {id}\r\n\r\n"
        )
        .into_bytes();
        let target = if self.rng.chance(5) {
            self.rng.range(64 * 1024, 300 * 1024)
        } else {
            self.rng.range(0, 2048)
        } as usize;
        while t.len() < target {
            let line: &[u8] = match self.rng.below(6) {
                0 => b".leading dot\r\n",
                1 => b".\r\n",
                2 => b"caf\xc3\xa9 \xe2\x82\xac 8-bit\r\n",
                3 => b"..two dots\r\n",
                _ => b"an ordinary line of text in the simulated message body\r\n",
            };
            t.extend_from_slice(line);
        }
        t
    }
}

/// One whole reply, as the client reads it.
pub(super) struct Reply {
    pub(super) code: u16,
    /// Its last line, CRLF removed.
    pub(super) line: String,
    /// It offers CHUNKING (an EHLO reply).
    pub(super) chunking: bool,
}

/// One whole reply from `io`, every line of it noted in the trace.
pub(super) async fn read_reply(
    io: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    trace: &Trace,
) -> Result<Reply, Closed> {
    let mut chunking = false;
    loop {
        let Some(i) = buf.iter().position(|b| *b == b'\n') else {
            let mut chunk = [0u8; 4096];
            match io.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(Closed),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            continue;
        };
        let line: Vec<u8> = buf.drain(..=i).collect();
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        trace.note(format!("client <- {text:?}"));
        chunking |= line
            .get(4..)
            .is_some_and(|l| l.trim_ascii_end() == b"CHUNKING");
        if line.get(3) == Some(&b'-') {
            continue;
        }
        let code = std::str::from_utf8(line.get(..3).unwrap_or(b""))
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        return Ok(Reply {
            code,
            line: text,
            chunking,
        });
    }
}
