//! One upstream SMTP connection: commands out, replies in, and the rule that every reply must
//! fit the command it answers.
//!
//! A relay that matches replies to commands by position alone believes whatever comes next: an
//! upstream (or a middlebox) that sends one line too many shifts every later reply onto the
//! wrong command, and a `250` meant for RCPT ends up answering the final dot of a message that
//! was never sent. So each reply is checked against what its command allows (RFC 5321 4.2,
//! 4.3.2; RFC 3030), every line of a multi-line reply must carry the same code, and bytes that
//! arrive when no reply is owed mean the connection is out of step. Any of these is
//! [`UpstreamError::OutOfStep`]: the transaction gets `451 4.4.3` and the connection is closed,
//! never pooled.

pub use super::capabilities::Capabilities;
use super::failover::Target;
use super::{Stage, Transport, UpstreamError, UpstreamReply};
use crate::deadline::Timer;
use crate::stream::MaybeTls;
use memchr::memchr;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout, Instant};

/// Bounds on an upstream reply, so a broken upstream cannot make the gate buffer without end.
const MAX_REPLY_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 128;
/// Read room reserved per read: large enough that a reply and anything stuck behind it arrive
/// in one read, which is what lets a stray line be seen at once.
const READ_ROOM: usize = 4096;

/// What a command may be answered with. Anything else is an upstream out of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The greeting and the reply to STARTTLS: 220, or a 4xx/5xx refusal.
    Ready,
    /// EHLO, HELO, MAIL, RCPT, RSET and NOOP: 2xx, 4xx or 5xx (RFC 5321 4.3.2).
    Completion,
    /// The message's text: each BDAT chunk and the final dot or `BDAT LAST` (RFC 3030 2), as
    /// [`Expect::Completion`], except that an acceptance carrying an address status (`2.1.x`,
    /// RFC 3463 3.2: "destination address valid" and the like) is no verdict on a message. It
    /// is a reply to MAIL or RCPT read one behind: a stray line took the place of a pipelined
    /// RCPT's reply, and that reply came late, after the text went out. Taken for the verdict,
    /// it would tell the client 250 for a message the upstream has not yet judged. Refusals are
    /// taken as they come: read one behind, they only make the client retry or bounce.
    Verdict,
    /// DATA: 354 or 4xx/5xx. A 250 to DATA is a reply to something else.
    StartInput,
    /// QUIT: whatever comes, the connection is closed after it.
    Any,
}

impl Expect {
    fn fits(self, reply: &UpstreamReply) -> bool {
        let code = reply.code;
        let refusal = (400..600).contains(&code);
        match self {
            Expect::Ready => code == 220 || refusal,
            Expect::Completion => (200..300).contains(&code) || refusal,
            Expect::Verdict => {
                ((200..300).contains(&code) && !is_address_status(&reply.raw)) || refusal
            }
            Expect::StartInput => code == 354 || refusal,
            Expect::Any => true,
        }
    }
}

/// Whether a positive reply's first line carries an enhanced status code of the addressing
/// subject, `2.1.x` (RFC 3463 3.2; RFC 2034 puts it right after the reply code).
fn is_address_status(raw: &[u8]) -> bool {
    raw.get(4..8) == Some(b"2.1.".as_slice())
}

/// A reply code as RFC 5321 4.2 allows it: first digit 2 to 5, second 0 to 5.
fn valid_code(text: &[u8]) -> Option<u16> {
    let d = text.get(..3)?;
    if !(b'2'..=b'5').contains(&d[0]) || !(b'0'..=b'5').contains(&d[1]) || !d[2].is_ascii_digit() {
        return None;
    }
    if !matches!(text.get(3), None | Some(b' ') | Some(b'-')) {
        return None;
    }
    Some(u16::from(d[0] - b'0') * 100 + u16::from(d[1] - b'0') * 10 + u16::from(d[2] - b'0'))
}

/// One upstream SMTP connection, past greeting, EHLO and (when configured) STARTTLS.
pub struct Connection {
    pub(super) stream: MaybeTls<Box<dyn Transport>>,
    rbuf: Vec<u8>,
    pub(super) caps: Capabilities,
    /// Every wait for the upstream: one timer, armed only when a write or read waits.
    timer: Timer,
    /// The address it was opened to (None behind a scripted [`super::Dial`]): a failure
    /// before anything is committed marks that address. Boxed: a session's leg holds its
    /// connection inline, and this is read only when something fails.
    pub(super) via: Option<Box<Target>>,
    /// When the last complete reply came: how long the connection has been idle since.
    pub(super) last_reply: Instant,
}

impl Connection {
    /// Between sessions, idle in the pool: no timer left armed (see [`Timer::disarm`]).
    pub(super) fn rest(&mut self) {
        self.timer.disarm();
    }

    pub(super) fn new(stream: Box<dyn Transport>) -> Connection {
        Connection {
            stream: MaybeTls::Plain(stream),
            rbuf: Vec::with_capacity(READ_ROOM),
            caps: Capabilities::default(),
            timer: Timer::default(),
            via: None,
            last_reply: Instant::now(),
        }
    }

    /// Forget what was read before a TLS handshake: it came in clear text and is not to be
    /// trusted (CVE-2011-0411 class, from the upstream's side).
    pub(super) fn clear_input(&mut self) {
        self.rbuf.clear();
    }

    /// EHLO (HELO if refused); records what the upstream offers.
    pub(super) async fn hello(&mut self, name: &str, wait: Duration) -> Result<(), UpstreamError> {
        let reply = self
            .command(
                &format!("EHLO {name}"),
                Expect::Completion,
                wait,
                Stage::Ehlo,
            )
            .await?;
        if reply.code == 250 {
            self.caps = Capabilities::from_ehlo(&reply);
            return Ok(());
        }
        let reply = self
            .command(
                &format!("HELO {name}"),
                Expect::Completion,
                wait,
                Stage::Helo,
            )
            .await?;
        if reply.code != 250 {
            return Err(UpstreamError::Refused {
                stage: Stage::Helo,
                reply: reply.summary(),
            });
        }
        self.caps = Capabilities::default();
        Ok(())
    }

    /// Whether the connection is in step: no reply owed, and none arrived. Checked before a
    /// command is written while nothing is in flight; costs no system call when nothing has
    /// arrived (the socket is polled once, not waited on). A connection the upstream closed
    /// is `Dropped`.
    pub(super) fn ensure_in_step(&mut self, stage: Stage) -> Result<(), UpstreamError> {
        match self.after_reply(stage)? {
            true => Ok(()),
            false => Err(UpstreamError::Dropped(stage)),
        }
    }

    /// Nothing may follow a reply that ends what was asked: `Ok(true)` when the connection
    /// is quiet and can carry more, `Ok(false)` when the upstream has closed it (after a final
    /// reply that is no fault: the message was answered), out of step when bytes are there.
    fn after_reply(&mut self, stage: Stage) -> Result<bool, UpstreamError> {
        if self.rbuf.is_empty() {
            match self.poll_arrived() {
                Poll::Pending => return Ok(true),
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Ok(false),
                Poll::Ready(Ok(_)) => {}
            }
        }
        Err(UpstreamError::OutOfStep {
            stage,
            seen: format!(
                "unexpected bytes from the upstream at {stage}: {:?}",
                String::from_utf8_lossy(&self.rbuf[..self.rbuf.len().min(80)])
            ),
        })
    }

    /// Read whatever has already arrived, without waiting.
    fn poll_arrived(&mut self) -> Poll<std::io::Result<usize>> {
        self.rbuf.reserve(READ_ROOM);
        let read = pin!(self.stream.read_buf(&mut self.rbuf));
        read.poll(&mut Context::from_waker(Waker::noop()))
    }

    /// Write bytes, bounded by `wait`.
    pub(super) async fn write(
        &mut self,
        bytes: &[u8],
        wait: Duration,
        stage: Stage,
    ) -> Result<(), UpstreamError> {
        let write = self.stream.write_all(bytes);
        match self.timer.limit(|| Instant::now() + wait, write).await {
            Err(_) => Err(UpstreamError::Timeout(stage)),
            Ok(Err(_)) => Err(UpstreamError::Dropped(stage)),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Send `lines` in one write and read one reply for each, in order, each checked against
    /// `expect`; nothing may follow the last one.
    pub(super) async fn commands(
        &mut self,
        lines: &[String],
        expect: Expect,
        wait: Duration,
        stage: Stage,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        self.group(lines, expect, expect, wait, stage).await
    }

    /// [`Connection::commands`] whose last command's reply is checked against `last` (DATA at
    /// the end of a pipelined group, RFC 2920 section 3.1).
    pub(super) async fn group(
        &mut self,
        lines: &[String],
        expect: Expect,
        last: Expect,
        wait: Duration,
        stage: Stage,
    ) -> Result<Vec<UpstreamReply>, UpstreamError> {
        self.ensure_in_step(stage)?;
        let mut buf = Vec::with_capacity(lines.iter().map(|l| l.len() + 2).sum());
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.write(&buf, wait, stage).await?;
        let mut replies = Vec::with_capacity(lines.len());
        for i in 0..lines.len() {
            let fits = if i + 1 == lines.len() { last } else { expect };
            replies.push(self.read_expected(fits, wait, stage).await?);
        }
        if !self.rbuf.is_empty() {
            return Err(self.leftover(stage));
        }
        Ok(replies)
    }

    pub(super) async fn command(
        &mut self,
        line: &str,
        expect: Expect,
        wait: Duration,
        stage: Stage,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut replies = self
            .commands(std::slice::from_ref(&line.to_string()), expect, wait, stage)
            .await?;
        Ok(replies.remove(0))
    }

    fn leftover(&self, stage: Stage) -> UpstreamError {
        UpstreamError::OutOfStep {
            stage,
            seen: format!(
                "more than one reply to {stage}: {:?}",
                String::from_utf8_lossy(&self.rbuf[..self.rbuf.len().min(80)])
            ),
        }
    }

    /// Read the one reply owed (DATA's, read after its command went out on its own): it must
    /// fit, and nothing may be buffered behind it.
    pub(super) async fn read_sole(
        &mut self,
        expect: Expect,
        wait: Duration,
        stage: Stage,
    ) -> Result<UpstreamReply, UpstreamError> {
        let reply = self.read_expected(expect, wait, stage).await?;
        if !self.rbuf.is_empty() {
            return Err(self.leftover(stage));
        }
        Ok(reply)
    }

    /// Whether a reply (or the connection's end) has arrived, without waiting: reading it
    /// then will not block.
    pub(super) fn reply_arrived(&mut self) -> bool {
        if memchr(b'\n', &self.rbuf).is_some() {
            return true;
        }
        match self.poll_arrived() {
            Poll::Pending => false,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(_)) => memchr(b'\n', &self.rbuf).is_some(),
        }
    }

    /// The reply to a message (final dot or `BDAT LAST`): it must fit, and nothing may follow
    /// it, neither buffered nor already arrived. Also says whether the connection can carry
    /// another transaction (the upstream may have closed it after answering).
    pub(super) async fn read_final(
        &mut self,
        wait: Duration,
        stage: Stage,
    ) -> Result<(UpstreamReply, bool), UpstreamError> {
        let reply = self.read_expected(Expect::Verdict, wait, stage).await?;
        if !self.rbuf.is_empty() {
            return Err(self.leftover(stage));
        }
        let open = self.after_reply(stage)?;
        Ok((reply, open))
    }

    /// Read one reply and check that it fits its command.
    pub(super) async fn read_expected(
        &mut self,
        expect: Expect,
        wait: Duration,
        stage: Stage,
    ) -> Result<UpstreamReply, UpstreamError> {
        let reply = self.read_reply(wait, stage).await?;
        if !expect.fits(&reply) {
            return Err(UpstreamError::OutOfStep {
                stage,
                seen: format!("reply that does not fit {stage}: {}", reply.summary()),
            });
        }
        Ok(reply)
    }

    /// Read one complete (possibly multi-line) reply whose lines all carry one valid code.
    async fn read_reply(
        &mut self,
        wait: Duration,
        stage: Stage,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut deadline = None;
        let mut raw = Vec::new();
        let mut code = None;
        let mut lines = 0;
        loop {
            if let Some(nl) = memchr(b'\n', &self.rbuf) {
                let text = &self.rbuf[..nl];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                let line_code = valid_code(text).ok_or_else(|| UpstreamError::OutOfStep {
                    stage,
                    seen: format!(
                        "malformed reply at {stage}: {:?}",
                        String::from_utf8_lossy(&text[..text.len().min(80)])
                    ),
                })?;
                if *code.get_or_insert(line_code) != line_code {
                    return Err(UpstreamError::OutOfStep {
                        stage,
                        seen: format!(
                            "multi-line reply at {stage} mixes codes {} and {line_code}",
                            code.unwrap_or_default()
                        ),
                    });
                }
                let more = text.get(3) == Some(&b'-');
                raw.extend_from_slice(text);
                raw.extend_from_slice(b"\r\n");
                self.rbuf.drain(..=nl);
                lines += 1;
                if !more {
                    self.last_reply = Instant::now();
                    return Ok(UpstreamReply {
                        code: line_code,
                        raw,
                    });
                }
                if lines >= MAX_REPLY_LINES {
                    return Err(UpstreamError::OutOfStep {
                        stage,
                        seen: format!("reply at {stage} is too long"),
                    });
                }
                continue;
            }
            if self.rbuf.len() > MAX_REPLY_LINE {
                return Err(UpstreamError::OutOfStep {
                    stage,
                    seen: format!("reply line at {stage} is too long"),
                });
            }
            // Read straight into the buffer's spare room: no zeroed bounce buffer per read.
            self.rbuf.reserve(READ_ROOM);
            let read = self.stream.read_buf(&mut self.rbuf);
            let until = || *deadline.get_or_insert_with(|| Instant::now() + wait);
            match self.timer.limit(until, read).await {
                Err(_) => return Err(UpstreamError::Timeout(stage)),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(UpstreamError::Dropped(stage)),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Close politely: QUIT (its reply is not awaited long), then shut the stream down.
    pub(super) async fn close(mut self) {
        let _ = self
            .write(b"QUIT\r\n", Duration::from_secs(5), Stage::Quit)
            .await;
        let _ = timeout(
            Duration::from_secs(5),
            self.read_expected(Expect::Any, Duration::from_secs(5), Stage::Quit),
        )
        .await;
        let _ = self.stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_follow_rfc_5321() {
        assert_eq!(valid_code(b"250 ok"), Some(250));
        assert_eq!(valid_code(b"250-ok"), Some(250));
        assert_eq!(valid_code(b"354"), Some(354));
        assert_eq!(valid_code(b"199 what"), None);
        assert_eq!(valid_code(b"999 what"), None);
        assert_eq!(valid_code(b"260 odd second digit"), None);
        assert_eq!(valid_code(b"25"), None);
        assert_eq!(valid_code(b"2500 no"), None);
        assert_eq!(valid_code(b"abc"), None);
    }

    fn fits(expect: Expect, line: &str) -> bool {
        let code = valid_code(line.as_bytes()).expect("a valid code");
        expect.fits(&UpstreamReply {
            code,
            raw: format!("{line}\r\n").into_bytes(),
        })
    }

    #[test]
    fn each_command_takes_only_its_replies() {
        use Expect::*;
        assert!(fits(StartInput, "354 go ahead"));
        assert!(!fits(StartInput, "250 ok"), "250 to DATA is out of step");
        assert!(fits(Completion, "250 ok") && fits(Completion, "554 no"));
        assert!(!fits(Completion, "354 go ahead"), "354 to the final dot");
        assert!(!fits(Completion, "334 VXNlcm5hbWU6"));
        assert!(fits(Ready, "220 ready") && !fits(Ready, "250 ok"));
    }

    #[test]
    fn a_recipient_status_is_no_verdict_on_a_message() {
        use Expect::*;
        // What servers say to the text: Postfix, Exchange Online, no enhanced code at all.
        assert!(fits(Verdict, "250 2.0.0 Ok: queued as 4XyZ"));
        assert!(fits(
            Verdict,
            "250 2.6.0 <id@contoso.com> Queued mail for delivery"
        ));
        assert!(fits(Verdict, "250 ok"));
        assert!(fits(Verdict, "250-2.0.0 first"));
        // What they say to MAIL and RCPT: a verdict read one behind.
        assert!(!fits(Verdict, "250 2.1.5 Recipient OK"));
        assert!(!fits(Verdict, "250-2.1.0 Sender OK"));
        assert!(
            fits(Completion, "250 2.1.5 Recipient OK"),
            "RCPT's own reply"
        );
        // A refusal is taken as it comes, whatever its status.
        assert!(fits(Verdict, "550 5.1.1 unknown recipient"));
        assert!(fits(Verdict, "451 4.1.8 sender domain unresolvable"));
        assert!(!fits(Verdict, "354 go ahead"));
        // Subject 10 is not subject 1.
        assert!(fits(Verdict, "250 2.10.0 odd but no address status"));
    }
}
