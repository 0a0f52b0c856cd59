//! The SMTP client leg, driven command by command.
//!
//! SMTP client crates abort on the first refused RCPT and want the whole message in memory, so
//! the gate speaks the client side itself: it needs each recipient's own reply and a streamed
//! DATA. Commands are rebuilt from parsed values, never copied from the client.

use super::{format_path, Envelope, UpstreamError, UpstreamReply};
use crate::config::{SmtpUpstreamSettings, UpstreamTls};
use crate::smtp::data::DotStuffer;
use crate::stream::MaybeTls;
use memchr::memchr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A pooled connection idle longer than this is checked with NOOP before reuse.
const POOL_CHECK_AFTER: Duration = Duration::from_secs(2);
/// Bytes of stuffed text gathered before a write to the upstream.
const WRITE_CHUNK: usize = 64 * 1024;
/// Room kept at the front of the write buffer for a `BDAT <size> [LAST]` command line, so a
/// chunk goes out in one write without copying it behind its command.
const BDAT_HEADROOM: usize = 32;
/// BDAT chunks sent before their replies are read, when the upstream offers PIPELINING (RFC
/// 3030 lets a client pipeline chunks only then): enough to keep the upstream busy, few enough
/// that its replies never fill its send buffer while the gate is still writing. Without
/// PIPELINING each chunk's reply is read before the next chunk.
const MAX_CHUNKS_IN_FLIGHT: usize = 4;
/// Bounds on an upstream reply, so a broken upstream cannot make the gate buffer without end.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 128;

/// What the upstream's EHLO reply offered.
#[derive(Debug, Default, Clone, Copy)]
struct Capabilities {
    pipelining: bool,
    starttls: bool,
    size: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
    chunking: bool,
}

impl Capabilities {
    fn from_ehlo(reply: &UpstreamReply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in String::from_utf8_lossy(&reply.raw).lines().skip(1) {
            let kw = line
                .get(4..)
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            match kw.to_ascii_uppercase().as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SIZE" => caps.size = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "CHUNKING" => caps.chunking = true,
                _ => {}
            }
        }
        caps
    }
}

/// One upstream SMTP connection, past greeting, EHLO and STARTTLS.
pub struct Connection {
    stream: MaybeTls<TcpStream>,
    rbuf: Vec<u8>,
    caps: Capabilities,
}

/// One client session's SMTP upstream.
pub struct SmtpLeg {
    settings: Arc<SmtpUpstreamSettings>,
    helo_name: String,
    conn: Option<Connection>,
    /// The connection came from the pool (it may have been closed by the upstream meanwhile).
    reused: bool,
    in_transaction: bool,
    stuffer: DotStuffer,
    wbuf: Vec<u8>,
    last_text_ended_crlf: bool,
    /// The message in progress goes as BDAT chunks (the upstream offers CHUNKING).
    bdat: Option<Bdat>,
}

/// A message being sent with BDAT (RFC 3030): raw text, no dot-stuffing, no 354 to wait for.
struct Bdat {
    /// Chunks that may be sent before the oldest reply is read.
    max_in_flight: usize,
    /// Chunks sent whose 250 has not been read yet.
    in_flight: usize,
    /// The first refused chunk: the rest of the message is discarded and this is the verdict.
    refused: Option<UpstreamReply>,
}

impl SmtpLeg {
    pub fn new(settings: Arc<SmtpUpstreamSettings>, helo_name: &str) -> SmtpLeg {
        SmtpLeg {
            settings,
            helo_name: helo_name.to_string(),
            conn: None,
            reused: false,
            in_transaction: false,
            stuffer: DotStuffer::default(),
            wbuf: Vec::new(),
            last_text_ended_crlf: true,
            bdat: None,
        }
    }

    async fn connect(&self) -> Result<Connection, UpstreamError> {
        let s = &self.settings;
        let tcp = match timeout(s.connect_timeout, TcpStream::connect(&s.address)).await {
            Err(_) => return Err(UpstreamError::Timeout("connect")),
            Ok(Err(e)) => return Err(UpstreamError::Connect(e.to_string())),
            Ok(Ok(t)) => t,
        };
        let _ = tcp.set_nodelay(true);
        let mut c = Connection {
            stream: MaybeTls::Plain(tcp),
            rbuf: Vec::with_capacity(1024),
            caps: Capabilities::default(),
        };
        let greeting = c.read_reply(s.reply_timeout, "greeting").await?;
        if greeting.code != 220 {
            return Err(UpstreamError::Refused {
                stage: "greeting",
                reply: greeting.summary(),
            });
        }
        c.hello(&self.helo_name, s.reply_timeout).await?;
        match (s.tls, c.caps.starttls) {
            (UpstreamTls::None, _) | (UpstreamTls::Opportunistic, false) => {}
            (UpstreamTls::Required, false) => {
                return Err(UpstreamError::Tls(
                    "the upstream does not offer STARTTLS and upstream.tls is \"required\"".into(),
                ))
            }
            (_, true) => {
                let reply = c.command("STARTTLS", s.reply_timeout, "STARTTLS").await?;
                if reply.code != 220 {
                    return Err(UpstreamError::Tls(format!(
                        "STARTTLS refused: {}",
                        reply.summary()
                    )));
                }
                // Anything the upstream sent before the handshake is not to be trusted.
                c.rbuf.clear();
                let config = s
                    .tls_config
                    .clone()
                    .ok_or_else(|| UpstreamError::Tls("no TLS configuration".into()))?;
                let connector = tokio_rustls::TlsConnector::from(config);
                let MaybeTls::Plain(tcp) = c.stream else {
                    return Err(UpstreamError::Protocol("STARTTLS twice".into()));
                };
                let tls = match timeout(
                    s.connect_timeout,
                    connector.connect(s.tls_server_name.clone(), tcp),
                )
                .await
                {
                    Err(_) => return Err(UpstreamError::Timeout("TLS handshake")),
                    Ok(Err(e)) => return Err(UpstreamError::Tls(e.to_string())),
                    Ok(Ok(t)) => t,
                };
                c.stream = MaybeTls::Client(Box::new(tls));
                c.hello(&self.helo_name, s.reply_timeout).await?;
            }
        }
        Ok(c)
    }

    /// Readiness probe: a fresh connection through greeting, EHLO and STARTTLS as configured,
    /// then QUIT. The pool is not used, so a probe sees what a new connection would meet.
    pub async fn probe(&self) -> Result<(), UpstreamError> {
        let mut c = self.connect().await?;
        let _ = c.command("QUIT", self.settings.reply_timeout, "QUIT").await;
        let _ = c.stream.shutdown().await;
        Ok(())
    }

    async fn conn(&mut self) -> Result<&mut Connection, UpstreamError> {
        if self.conn.is_none() {
            self.reused = false;
            while let Some((mut c, idle)) = self.settings.pool.take() {
                // A connection idle for a while may have been closed by the upstream: check it
                // with NOOP first. A recently used one is tried directly (MAIL is retried on a
                // fresh connection if it turns out to be dead).
                if idle < POOL_CHECK_AFTER
                    || matches!(c.command("NOOP", self.settings.reply_timeout, "NOOP").await, Ok(r) if r.code == 250)
                {
                    self.conn = Some(c);
                    self.reused = true;
                    break;
                }
            }
        }
        if self.conn.is_none() {
            self.conn = Some(self.connect().await?);
        }
        Ok(self.conn.as_mut().expect("just connected"))
    }

    /// Run commands (several only when the upstream offers PIPELINING); on trouble the
    /// connection is dropped so the next transaction starts clean.
    async fn exchange(
        &mut self,
        lines: &[String],
        stage: &'static str,
        wait: Duration,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        let c = self.conn().await?;
        let r = c.commands(lines, wait, stage).await;
        let closing = matches!(&r, Ok(replies) if replies.iter().any(|reply| reply.code == 421));
        if r.is_err() || closing {
            self.conn = None;
            self.in_transaction = false;
        }
        match r {
            // 421 means the upstream is closing: for the client that is trouble, not a verdict.
            Ok(replies) if closing => {
                let reply = replies.iter().find(|r| r.code == 421).expect("found above");
                Err(UpstreamError::Refused {
                    stage,
                    reply: reply.summary(),
                })
            }
            other => other,
        }
    }

    async fn exchange_one(
        &mut self,
        line: String,
        stage: &'static str,
    ) -> Result<UpstreamReply, UpstreamError> {
        let wait = self.settings.reply_timeout;
        let mut replies = self.exchange(&[line], stage, wait).await?;
        Ok(replies.remove(0))
    }

    /// Open the transaction with its first recipient: MAIL and RCPT in one round trip when the
    /// upstream offers PIPELINING (RFC 2920). Returns MAIL's reply and, if MAIL was accepted,
    /// RCPT's.
    pub async fn mail_rcpt(
        &mut self,
        env: &Envelope,
        address: &str,
    ) -> Result<(UpstreamReply, Option<UpstreamReply>), UpstreamError> {
        let caps = self.conn().await?.caps;
        if env.smtputf8 && !caps.smtputf8 {
            // RFC 6531 section 3.2: a relay must not pass such a message to a server without
            // SMTPUTF8. A permanent answer, like Exchange's own.
            let r = UpstreamReply::local(553, "5.6.7 The upstream does not support SMTPUTF8");
            return Ok((r, None));
        }
        let mut mail = format!("MAIL FROM:{}", format_path(&env.mail_from));
        if let (Some(size), true) = (env.size, caps.size) {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if env.eight_bit && caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if env.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        let rcpt = format!("RCPT TO:{}", format_path(address));
        let lines = if caps.pipelining {
            vec![mail, rcpt.clone()]
        } else {
            vec![mail]
        };
        let wait = self.settings.reply_timeout;
        let mut replies = match self.exchange(&lines, "MAIL", wait).await {
            // A pooled connection the upstream had closed: once more on a fresh one.
            Err(UpstreamError::Dropped(_) | UpstreamError::Timeout(_)) if self.reused => {
                self.conn = None;
                let fresh = self.connect().await?;
                self.conn = Some(fresh);
                self.reused = false;
                self.exchange(&lines, "MAIL", wait).await?
            }
            other => other?,
        };
        let mail_reply = replies.remove(0);
        self.in_transaction = mail_reply.is_positive();
        if !mail_reply.is_positive() {
            // A pipelined RCPT after a refused MAIL only says "need MAIL"; MAIL's reply counts.
            return Ok((mail_reply, None));
        }
        let rcpt_reply = match replies.pop() {
            Some(r) => r,
            None => self.exchange_one(rcpt, "RCPT").await?,
        };
        Ok((mail_reply, Some(rcpt_reply)))
    }

    pub async fn rcpt(&mut self, address: &str) -> Result<UpstreamReply, UpstreamError> {
        self.exchange_one(format!("RCPT TO:{}", format_path(address)), "RCPT")
            .await
    }

    /// Start the message. With CHUNKING there is nothing to ask: the text goes as BDAT chunks
    /// and the upstream's verdict comes with the last one, so the client is told to go on at
    /// once (the local 354 never reaches it as an acceptance; only the final reply does).
    pub async fn data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        self.stuffer = DotStuffer::default();
        self.wbuf.clear();
        self.last_text_ended_crlf = true;
        self.bdat = None;
        let caps = self.conn.as_ref().map(|c| c.caps).unwrap_or_default();
        if self.settings.chunking && caps.chunking {
            self.bdat = Some(Bdat {
                max_in_flight: if caps.pipelining {
                    MAX_CHUNKS_IN_FLIGHT
                } else {
                    0
                },
                in_flight: 0,
                refused: None,
            });
            self.wbuf.resize(BDAT_HEADROOM, 0);
            return Ok(UpstreamReply::local(
                354,
                "send the message (BDAT upstream)",
            ));
        }
        self.exchange_one("DATA".into(), "DATA").await
    }

    /// Whether the message in progress goes as BDAT chunks (its 354 was the gate's own).
    pub fn sends_bdat(&self) -> bool {
        self.bdat.is_some()
    }

    /// Send what `wbuf` holds after its headroom as one BDAT chunk, then read replies to
    /// earlier chunks down to the in-flight bound (the caller reads the last chunk's reply).
    async fn send_chunk(&mut self, last: bool) -> Result<(), UpstreamError> {
        let size = self.wbuf.len() - BDAT_HEADROOM;
        let command = if last {
            format!("BDAT {size} LAST\r\n")
        } else {
            format!("BDAT {size}\r\n")
        };
        let start = BDAT_HEADROOM - command.len();
        self.wbuf[start..BDAT_HEADROOM].copy_from_slice(command.as_bytes());
        self.write_wbuf(start, "BDAT").await?;
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

    /// Read the reply to the oldest chunk in flight; a refusal becomes the message's verdict.
    async fn read_chunk_reply(&mut self) -> Result<(), UpstreamError> {
        let wait = self.settings.reply_timeout;
        let Some(c) = self.conn.as_mut() else {
            return Err(UpstreamError::Dropped("BDAT"));
        };
        let reply = match c.read_reply(wait, "BDAT").await {
            Ok(r) => r,
            Err(e) => {
                self.abort();
                return Err(e);
            }
        };
        if reply.code == 421 {
            self.abort();
            return Err(UpstreamError::Refused {
                stage: "BDAT",
                reply: reply.summary(),
            });
        }
        if (300..400).contains(&reply.code) {
            // A chunk is answered 2xx, 4xx or 5xx; anything else is not an SMTP server we can
            // trust with the rest of the message.
            self.abort();
            return Err(UpstreamError::Protocol(format!(
                "unexpected reply to BDAT: {}",
                reply.summary()
            )));
        }
        let bdat = self.bdat.as_mut().expect("BDAT mode");
        bdat.in_flight -= 1;
        if !reply.is_positive() && bdat.refused.is_none() {
            bdat.refused = Some(reply);
        }
        Ok(())
    }

    /// Write `wbuf[from..]` and empty the buffer down to `from`; on failure the connection
    /// (and the message with it) is dropped.
    async fn write_wbuf(&mut self, from: usize, stage: &'static str) -> Result<(), UpstreamError> {
        let wait = self.settings.reply_timeout;
        let r = match self.conn.as_mut() {
            None => Err(UpstreamError::Dropped(stage)),
            Some(c) => match timeout(wait, c.stream.write_all(&self.wbuf[from..])).await {
                Err(_) => Err(UpstreamError::Timeout(stage)),
                Ok(Err(_)) => Err(UpstreamError::Dropped(stage)),
                Ok(Ok(())) => Ok(()),
            },
        };
        self.wbuf.truncate(from);
        if r.is_err() {
            self.abort();
        }
        r
    }

    async fn flush_wbuf(&mut self) -> Result<(), UpstreamError> {
        self.write_wbuf(0, "DATA").await
    }

    /// The upstream's verdict on the whole message; a 421 or no reply drops the connection.
    async fn read_final_reply(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let wait = self.settings.data_end_timeout;
        let Some(c) = self.conn.as_mut() else {
            return Err(UpstreamError::Dropped("end of DATA"));
        };
        let r = c.read_reply(wait, "end of DATA").await;
        self.in_transaction = false;
        match r {
            Ok(reply) if reply.code == 421 => {
                self.conn = None;
                Err(UpstreamError::Refused {
                    stage: "end of DATA",
                    reply: reply.summary(),
                })
            }
            Ok(reply) => Ok(reply),
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
            self.last_text_ended_crlf = text.ends_with(b"\r\n");
            if self.wbuf.len() - BDAT_HEADROOM >= WRITE_CHUNK {
                self.send_chunk(false).await?;
            }
            return Ok(());
        }
        self.stuffer.stuff(text, &mut self.wbuf);
        self.last_text_ended_crlf = text.ends_with(b"\r\n");
        if self.wbuf.len() >= WRITE_CHUNK {
            self.flush_wbuf().await?;
        }
        Ok(())
    }

    pub async fn finish_data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        if self.bdat.is_some() {
            return self.finish_bdat().await;
        }
        self.stuffer
            .finish(self.last_text_ended_crlf, &mut self.wbuf);
        self.flush_wbuf().await?;
        self.read_final_reply().await
    }

    /// The last chunk, then every reply still owed: the first refusal, or the final verdict.
    ///
    /// Every earlier chunk's reply is read before LAST goes out: LAST must never follow a
    /// refused chunk (an upstream could then deliver the message, or part of it, while the
    /// client is told to retry). That costs one round trip, and only for messages of more than
    /// one chunk. A refused message's connection is closed, not pooled: the upstream may still
    /// hold the failed transaction.
    async fn finish_bdat(&mut self) -> Result<UpstreamReply, UpstreamError> {
        while self.bdat.as_ref().is_some_and(|b| b.in_flight > 0) {
            self.read_chunk_reply().await?;
        }
        let refused = self.bdat.as_ref().and_then(|b| b.refused.clone());
        if let Some(reply) = refused {
            self.abort();
            return Ok(reply);
        }
        if !self.last_text_ended_crlf {
            // As with DATA, the message ends with a line break.
            self.wbuf.extend_from_slice(b"\r\n");
        }
        self.send_chunk(true).await?;
        self.bdat = None;
        self.wbuf.clear();
        let reply = self.read_final_reply().await?;
        if (300..400).contains(&reply.code) {
            self.conn = None;
            return Err(UpstreamError::Protocol(format!(
                "unexpected reply to BDAT LAST: {}",
                reply.summary()
            )));
        }
        Ok(reply)
    }

    pub fn abort(&mut self) {
        // There is no way to cancel DATA in SMTP but to close before the final dot; an upstream
        // then discards what it received.
        self.conn = None;
        self.in_transaction = false;
        self.wbuf.clear();
        self.bdat = None;
    }

    pub async fn reset(&mut self) {
        if self.in_transaction && self.conn.is_some() {
            match self.exchange_one("RSET".into(), "RSET").await {
                Ok(r) if r.code == 250 => {}
                _ => self.conn = None,
            }
        }
        self.in_transaction = false;
    }

    /// The session is over: a connection between transactions goes back to the pool; any
    /// other is closed politely.
    pub async fn quit(&mut self) {
        if let Some(c) = self.conn.take() {
            let mut c = if !self.in_transaction && c.rbuf.is_empty() {
                match self.settings.pool.put(c) {
                    None => return,
                    Some(c) => c,
                }
            } else {
                c
            };
            let _ = c.command("QUIT", Duration::from_secs(5), "QUIT").await;
            let _ = c.stream.shutdown().await;
        }
    }
}

impl Connection {
    async fn hello(&mut self, name: &str, wait: Duration) -> Result<(), UpstreamError> {
        let reply = self.command(&format!("EHLO {name}"), wait, "EHLO").await?;
        if reply.code == 250 {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        let reply = self.command(&format!("HELO {name}"), wait, "HELO").await?;
        if reply.code != 250 {
            return Err(UpstreamError::Refused {
                stage: "HELO",
                reply: reply.summary(),
            });
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Send `lines` in one write and read one reply for each, in order.
    async fn commands(
        &mut self,
        lines: &[String],
        wait: Duration,
        stage: &'static str,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        match timeout(wait, self.stream.write_all(&buf)).await {
            Err(_) => return Err(UpstreamError::Timeout(stage)),
            Ok(Err(_)) => return Err(UpstreamError::Dropped(stage)),
            Ok(Ok(())) => {}
        }
        let mut replies = Vec::with_capacity(lines.len());
        for _ in lines {
            replies.push(self.read_reply(wait, stage).await?);
        }
        Ok(replies)
    }

    async fn command(
        &mut self,
        line: &str,
        wait: Duration,
        stage: &'static str,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut buf = Vec::with_capacity(line.len() + 2);
        buf.extend_from_slice(line.as_bytes());
        buf.extend_from_slice(b"\r\n");
        match timeout(wait, self.stream.write_all(&buf)).await {
            Err(_) => return Err(UpstreamError::Timeout(stage)),
            Ok(Err(_)) => return Err(UpstreamError::Dropped(stage)),
            Ok(Ok(())) => {}
        }
        self.read_reply(wait, stage).await
    }

    /// Read one complete (possibly multi-line) reply.
    async fn read_reply(
        &mut self,
        wait: Duration,
        stage: &'static str,
    ) -> Result<UpstreamReply, UpstreamError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut raw = Vec::new();
        let mut lines = 0;
        loop {
            if let Some(nl) = memchr(b'\n', &self.rbuf) {
                let line: Vec<u8> = self.rbuf.drain(..=nl).collect();
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if text.len() < 3 || !text[..3].iter().all(u8::is_ascii_digit) {
                    return Err(UpstreamError::Protocol(format!(
                        "malformed reply at {stage}: {:?}",
                        String::from_utf8_lossy(text)
                    )));
                }
                let code = (text[0] - b'0') as u16 * 100
                    + (text[1] - b'0') as u16 * 10
                    + (text[2] - b'0') as u16;
                raw.extend_from_slice(text);
                raw.extend_from_slice(b"\r\n");
                lines += 1;
                if text.get(3) != Some(&b'-') {
                    return Ok(UpstreamReply { code, raw });
                }
                if lines >= MAX_REPLY_LINES {
                    return Err(UpstreamError::Protocol(format!(
                        "reply at {stage} is too long"
                    )));
                }
                continue;
            }
            if self.rbuf.len() > MAX_REPLY_LINE {
                return Err(UpstreamError::Protocol(format!(
                    "reply line at {stage} is too long"
                )));
            }
            // Read straight into the buffer's spare room: no zeroed bounce buffer per read.
            self.rbuf.reserve(1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Err(UpstreamError::Timeout(stage)),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(UpstreamError::Dropped(stage)),
                Ok(Ok(_)) => {}
            }
        }
    }
}
