//! The session's connection I/O and its limits: the input buffer, command lines, replies, and
//! the deadlines every read AND write is bounded by.
//!
//! A write to the client is bounded like a read: a client that never reads our replies (a full
//! receive window, megabytes of pipelined NOOPs) would otherwise hold its session, and the
//! upstream connection with it, past `session_timeout_secs`.

use super::{Phase, Session};
use crate::upstream::UpstreamReply;
use crate::wire::reply::{exo_suffix, Reply};
use memchr::memchr;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Longest command line accepted (RFC 5321 says 512; extensions add parameters). Longer lines
/// are answered 500 and discarded without being buffered.
const MAX_COMMAND_LINE: usize = 2048;
/// How much is read from the client at a time while it sends commands: small, because an idle
/// session holds this buffer, and thousands of idle sessions are normal for a gate.
pub(super) const COMMAND_CHUNK: usize = 1024;
/// How much is read at a time during DATA, for throughput.
pub(super) const READ_CHUNK: usize = 64 * 1024;
/// The last flush and shutdown when a session ends: bounded, since the client may not read.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// When a wait of `wait` that starts now must end: never after the session's `end`.
pub(super) fn deadline(wait: Duration, end: Instant) -> Instant {
    Instant::now().checked_add(wait).unwrap_or(end).min(end)
}

/// A command line longer than the limit was answered `500 5.5.2` and skipped.
pub(super) struct LineTooLong;

/// The result of waiting for input.
pub(super) enum Input {
    Line(usize),
    /// The server is shutting down and the session has no transaction.
    ShuttingDown,
    Closed,
    TimedOut,
    Failed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) fn reply(&mut self, r: &Reply) {
        r.write_to(&mut self.wbuf);
    }

    pub(super) fn error_reply(&mut self, r: Reply) {
        self.errors += 1;
        self.reply(&r);
    }

    /// A refusal or temporary failure, with Exchange Online's suffix. Returns the line for the
    /// log.
    pub(super) fn reply_with_suffix(&mut self, r: &Reply) -> String {
        let mut r = r.clone();
        r.text.push_str(&self.suffix());
        r.write_to(&mut self.wbuf);
        r.to_line()
    }

    pub(super) fn suffix(&self) -> String {
        exo_suffix(&self.settings.server.hostname, SystemTime::now(), self.id)
    }

    /// The upstream's own reply, passed through verbatim.
    pub(super) fn reply_upstream(&mut self, r: &UpstreamReply) -> String {
        self.wbuf.extend_from_slice(&r.raw);
        r.summary()
    }

    /// A timeout (command, DATA or session): `421 4.4.2`, then the session ends.
    pub(super) fn timed_out(&mut self) {
        let host = &self.settings.server.hostname;
        let r = Reply::new(
            421,
            "4.4.2",
            format!("{host} Timeout exceeded, closing connection"),
        );
        self.reply(&r);
    }

    /// Send the pending replies, within the command timeout and the session deadline. The
    /// timer is only looked at if the socket does not take them at once.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let (wait, end) = (self.settings.server.command_timeout, self.session_deadline);
        let buf = std::mem::take(&mut self.wbuf);
        let io = self.io.as_mut().expect("stream present outside STARTTLS");
        let write = async {
            io.write_all(&buf).await?;
            io.flush().await
        };
        let r = self.timer.limit(|| deadline(wait, end), write).await;
        self.wbuf = buf;
        self.wbuf.clear();
        r.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// The session is over: last replies and the TLS close, bounded (the client may be the
    /// one that never reads).
    pub(super) async fn close(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            let _ = self.flush().await;
            if let Some(io) = self.io.as_mut() {
                let _ = io.shutdown().await;
            }
        })
        .await;
    }

    pub(super) fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rstart..]
    }

    pub(super) fn consume(&mut self, n: usize) {
        self.rstart += n;
        if self.rstart == self.rbuf.len() {
            self.rbuf.clear();
            self.rstart = 0;
        }
    }

    /// Drop everything buffered (after STARTTLS: it was sent in clear text).
    pub(super) fn discard_input(&mut self) {
        self.rbuf.clear();
        self.rstart = 0;
    }

    /// Whether the client has sent anything beyond what was consumed, looking at what already
    /// arrived on the socket without waiting for more.
    pub(super) fn input_pending(&mut self) -> bool {
        if !self.buffered().is_empty() {
            return true;
        }
        let Some(io) = self.io.as_mut() else {
            return false;
        };
        self.rbuf.reserve(COMMAND_CHUNK);
        let read = pin!(io.read_buf(&mut self.rbuf));
        matches!(
            read.poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(n)) if n > 0
        )
    }

    /// Read more from the client, within `wait` and the session deadline.
    pub(super) async fn fill(&mut self, wait: Duration, chunk: usize) -> Input {
        if self.rstart > 0 {
            self.rbuf.drain(..self.rstart);
            self.rstart = 0;
        }
        let end = self.session_deadline;
        self.rbuf.reserve(chunk);
        let idle = self.txn.is_none();
        let io = self.io.as_mut().expect("stream present");
        let phase = &mut self.phase;
        let draining = async {
            if !idle || phase.wait_for(|p| *p != Phase::Running).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        let read = self
            .timer
            .limit(|| deadline(wait, end), io.read_buf(&mut self.rbuf));
        tokio::select! {
            r = read => match r {
                Err(_) => Input::TimedOut,
                Ok(Err(_)) => Input::Failed,
                Ok(Ok(0)) => Input::Closed,
                Ok(Ok(_)) => Input::Line(0),
            },
            _ = draining => Input::ShuttingDown,
        }
    }

    /// Give the DATA-sized buffer back: idle sessions should stay small.
    pub(super) fn shrink_input(&mut self) {
        if self.rstart > 0 {
            self.rbuf.drain(..self.rstart);
            self.rstart = 0;
        }
        self.rbuf.shrink_to(COMMAND_CHUNK.max(self.rbuf.len()));
    }

    /// The next command line (its length including LF, at the start of `buffered()`). An
    /// over-long line is answered and skipped here, without being held in memory.
    pub(super) async fn next_line(&mut self) -> Input {
        loop {
            if let Ok(input) = self.read_line().await {
                return input;
            }
        }
    }

    /// [`Session::next_line`], but an over-long line, once answered `500 5.5.2` and skipped,
    /// is `Err(LineTooLong)`: inside an exchange (AUTH) it ends the exchange.
    pub(super) async fn read_line(&mut self) -> Result<Input, LineTooLong> {
        let mut discarding = false;
        loop {
            if let Some(nl) = memchr(b'\n', self.buffered()) {
                if discarding || nl + 1 > MAX_COMMAND_LINE {
                    self.consume(nl + 1);
                    self.error_reply(Reply::new(500, "5.5.2", "Line too long"));
                    return Err(LineTooLong);
                }
                return Ok(Input::Line(nl + 1));
            }
            if discarding || self.buffered().len() > MAX_COMMAND_LINE {
                let n = self.buffered().len();
                self.consume(n);
                discarding = true;
            }
            // Nothing more to answer from this batch: let the client see the replies.
            if self.flush().await.is_err() {
                return Ok(Input::Failed);
            }
            match self
                .fill(self.settings.server.command_timeout, COMMAND_CHUNK)
                .await
            {
                Input::Line(_) => {}
                other => return Ok(other),
            }
        }
    }

    /// Read and drop `n` bytes of input (a payload that must not be read as commands), within
    /// the DATA timeout and the session deadline. False when the client went away or stalled.
    pub(super) async fn skip(&mut self, mut n: u64) -> bool {
        loop {
            let take = (self.buffered().len() as u64).min(n) as usize;
            self.consume(take);
            n -= take as u64;
            if n == 0 {
                return true;
            }
            if !matches!(
                self.fill(self.settings.server.data_timeout, READ_CHUNK)
                    .await,
                Input::Line(_)
            ) {
                return false;
            }
        }
    }
}
