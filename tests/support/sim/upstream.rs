//! The simulated upstream: a real (small) SMTP server over an in-memory pipe, whose every reply
//! may be replaced by a fault drawn from the seed: a dropped connection, `421`, silence past
//! the gate's timeout, a stray extra line, an odd code, a multi-line reply mixing codes, a slow
//! reply, a stray line after a delivered message. It records what it holds: a message is held
//! once its text is complete and the server meant to accept it, before it says so (so a drop
//! right after the final dot still leaves the message held, as on a real server).

mod late;

use super::rng::Rng;
use super::Trace;
use relaygate::upstream::{Dial, Dialing, Transport};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// What can go wrong at one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Close the connection instead of answering.
    Drop,
    /// `421 4.3.2` and close.
    Closing,
    /// A temporary refusal (a legitimate verdict).
    Temporary,
    /// A permanent refusal (a legitimate verdict).
    Permanent,
    /// Never answer.
    Silence,
    /// The reply, then a stray `250` line in the same write.
    Stray,
    /// A code that does not fit: 354 to the final dot, 250 to DATA, 199, 999, 220.
    Odd,
    /// A multi-line reply whose lines carry different codes (554- then 250).
    Mixed,
    /// Answer after a delay of up to twice the gate's reply timeout.
    Slow,
    /// Answer, then later, while the connection sits idle, a stray `250` line or a close.
    StrayLater,
}

const FAULTS: [Fault; 10] = [
    Fault::Drop,
    Fault::Closing,
    Fault::Temporary,
    Fault::Permanent,
    Fault::Silence,
    Fault::Stray,
    Fault::Odd,
    Fault::Mixed,
    Fault::Slow,
    Fault::StrayLater,
];

/// How the upstream behaves in one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub pipelining: bool,
    pub chunking: bool,
    /// BINARYMIME, offered with CHUNKING.
    pub binarymime: bool,
    /// Chance of a fault at each reply, in percent.
    pub fault_percent: u64,
    /// Chance that a connection attempt fails (refused, or never answered), in percent.
    pub dial_fault_percent: u64,
    /// The gate's reply timeout, so slow replies sometimes outlast it.
    pub reply_timeout: Duration,
    /// Chance, in percent, that DATA's answer comes late (the client's text then reaches the
    /// gate first, which must hold it) and is drawn from [`late::LateAnswer`]s.
    pub late_data_percent: u64,
}

/// A message the upstream holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub rcpts: Vec<String>,
    /// The message as received (after un-stuffing for DATA; raw for BDAT).
    pub text: Vec<u8>,
}

/// Everything every simulated upstream connection of a scenario holds.
#[derive(Default)]
pub struct Store {
    pub held: Mutex<Vec<Held>>,
    /// What the gate did that this upstream never allowed (a BINARYMIME message where it
    /// cannot go): each one breaks the scenario.
    pub violations: Mutex<Vec<String>>,
    /// Answers to DATA that came late ([`Spec::late_data_percent`]).
    pub late_data_answers: AtomicUsize,
    /// DATAs that arrived behind an RCPT before it was answered (the gate pipelined DATA),
    /// and those of them answered when no recipient was accepted.
    pub data_with_rcpt: AtomicUsize,
    pub data_with_rcpt_no_recipient: AtomicUsize,
    /// Stray lines written while the gate had further commands out whose replies were owed:
    /// on the wire such a line is the next reply, and no client can tell (README, "What the
    /// gate cannot promise").
    pub strays_while_owed: Mutex<Vec<usize>>,
}

/// The gate's way to the simulated upstream: each dial is a new in-memory pipe with a server
/// task on the far end.
pub struct SimDial {
    pub spec: Spec,
    pub store: Arc<Store>,
    pub seed: u64,
    pub dials: AtomicUsize,
    pub trace: Trace,
}

impl Dial for SimDial {
    fn dial(&self) -> Dialing<'_> {
        Box::pin(async move {
            let n = self.dials.fetch_add(1, Ordering::SeqCst);
            let mut rng = Rng::new(self.seed ^ (n as u64).wrapping_mul(0xA076_1D64_78BD_642F));
            if rng.chance(self.spec.dial_fault_percent) {
                if rng.chance(50) {
                    self.trace.note(format!("up#{n}: connection refused"));
                    return Err(io::ErrorKind::ConnectionRefused.into());
                }
                self.trace.note(format!("up#{n}: connect never answered"));
                std::future::pending::<()>().await;
            }
            let (gate_end, server_end) = tokio::io::duplex(64 * 1024);
            tokio::spawn(serve(
                server_end,
                rng,
                self.spec,
                Arc::clone(&self.store),
                self.trace.clone(),
                n,
            ));
            Ok(Box::new(gate_end) as Box<dyn Transport>)
        })
    }
}

/// One upstream connection.
struct Server {
    io: DuplexStream,
    buf: Vec<u8>,
    rng: Rng,
    /// Draws added with the late answers to DATA: the existing ones stay in place.
    late_rng: Rng,
    /// The last command was DATA, refused: text the gate sent after it would come next.
    refused_data: bool,
    spec: Spec,
    trace: Trace,
    n: usize,
    store: Arc<Store>,
}

/// How a reply went out.
enum Sent {
    /// Answered; the connection goes on.
    Answered,
    /// The connection is over (dropped, closed, or silent until the gate left).
    Over,
}

impl Server {
    fn fault(&mut self) -> Option<Fault> {
        self.rng
            .chance(self.spec.fault_percent)
            .then(|| *self.rng.pick(&FAULTS))
    }

    /// Read one command line; `None` when the gate closed the connection.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line).trim_end().to_string());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.io.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Send `reply` (lines without the final CRLF), or what `fault` makes of it. `odd` is the
    /// out-of-step code this step can get.
    async fn send(&mut self, reply: &str, fault: Option<Fault>, odd: &str) -> Sent {
        let text = match fault {
            None | Some(Fault::Temporary) | Some(Fault::Permanent) => format!("{reply}\r\n"),
            Some(Fault::Drop) => {
                self.trace
                    .note(format!("up#{}: drops instead of {reply:?}", self.n));
                return Sent::Over;
            }
            Some(Fault::Closing) => "421 4.3.2 Service shutting down\r\n".to_string(),
            Some(Fault::Silence) => {
                self.trace
                    .note(format!("up#{}: silent instead of {reply:?}", self.n));
                // Wait for the gate to give up, reading (and ignoring) what it sends.
                while self.fill().await {
                    self.buf.clear();
                }
                return Sent::Over;
            }
            Some(Fault::Stray) => {
                if !self.buf.is_empty() {
                    self.store.strays_while_owed.lock().unwrap().push(self.n);
                }
                format!("{reply}\r\n250 2.0.0 stray\r\n")
            }
            Some(Fault::Odd) => format!("{odd} odd\r\n"),
            Some(Fault::Mixed) => "554-5.0.0 first line\r\n250 2.0.0 second line\r\n".to_string(),
            Some(Fault::Slow) => {
                let ms = self
                    .rng
                    .below(self.spec.reply_timeout.as_millis() as u64 * 2 + 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                format!("{reply}\r\n")
            }
            Some(Fault::StrayLater) => format!("{reply}\r\n"),
        };
        self.trace.note(format!(
            "up#{} <- {:?} ({fault:?})",
            self.n,
            text.trim_end()
        ));
        if self.io.write_all(text.as_bytes()).await.is_err() {
            return Sent::Over;
        }
        if fault == Some(Fault::Closing) {
            return Sent::Over;
        }
        if fault == Some(Fault::StrayLater) && self.buf.is_empty() {
            // Only while the connection is idle: a line that arrives after the gate has sent
            // its next command cannot be told from that command's reply by any SMTP client
            // (README, "What 250 means"), so it is not a fault the gate can be held to.
            let ms = self.rng.range(1, 3000);
            let close = self.rng.chance(50);
            let mut chunk = [0u8; 4096];
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {
                    if close {
                        self.trace.note(format!("up#{}: closes after {ms} ms idle", self.n));
                        return Sent::Over;
                    }
                    self.trace.note(format!("up#{}: stray line after {ms} ms idle", self.n));
                    if self.io.write_all(b"250 2.0.0 late stray\r\n").await.is_err() {
                        return Sent::Over;
                    }
                }
                read = self.io.read(&mut chunk) => match read {
                    Ok(0) | Err(_) => return Sent::Over,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                },
            }
        }
        Sent::Answered
    }

    /// Read DATA text up to `CRLF . CRLF`, un-stuffed; `None` if the gate left first.
    async fn read_dot_text(&mut self) -> Option<Vec<u8>> {
        let mut raw = std::mem::take(&mut self.buf);
        let mut scanned: usize = 0;
        let end = loop {
            if raw.starts_with(b".\r\n") {
                break 0;
            }
            let from = scanned.saturating_sub(4);
            if let Some(p) = raw[from..].windows(5).position(|w| w == b"\r\n.\r\n") {
                break from + p + 2;
            }
            scanned = raw.len();
            if !self.fill().await {
                return None;
            }
            raw.append(&mut self.buf);
        };
        self.buf = raw.split_off(end + 3);
        raw.truncate(end);
        // Un-stuff: a line starting with '.' lost its first dot on the way.
        let mut text = Vec::with_capacity(raw.len());
        let mut at_line_start = true;
        let mut i = 0;
        while i < raw.len() {
            if at_line_start && raw[i] == b'.' {
                i += 1;
            }
            if i < raw.len() {
                text.push(raw[i]);
                at_line_start = raw[i] == b'\n';
                i += 1;
            }
        }
        Some(text)
    }

    /// Exactly `n` bytes of a BDAT chunk; `None` if the gate left first.
    async fn read_chunk(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if !self.fill().await {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }
}

/// The transaction in progress on one connection.
#[derive(Default)]
struct Txn {
    open: bool,
    rcpts: Vec<String>,
    text: Vec<u8>,
    /// A chunk was refused: the message will not be taken.
    spoiled: bool,
    /// MAIL said `BODY=BINARYMIME`.
    binary_mime: bool,
}

async fn serve(io: DuplexStream, rng: Rng, spec: Spec, store: Arc<Store>, trace: Trace, n: usize) {
    let mut s = Server {
        io,
        buf: Vec::new(),
        late_rng: rng.sibling_for(1),
        refused_data: false,
        rng,
        spec,
        trace,
        n,
        store: Arc::clone(&store),
    };
    let f = s.fault();
    let greeting = match f {
        Some(Fault::Temporary) => "421 4.3.2 not now",
        Some(Fault::Permanent) => "554 5.3.2 go away",
        _ => "220 upstream.sim ESMTP",
    };
    if let Sent::Over = s.send(greeting, f, "250").await {
        return;
    }
    let mut txn = Txn::default();
    // DATA was already here when the latest RCPT was read.
    let mut data_with_rcpt = false;
    while let Some(line) = s.line().await {
        s.trace.note(format!("up#{} -> {line:?}", s.n));
        let upper = line.to_ascii_uppercase();
        let after_refused_data = std::mem::take(&mut s.refused_data);
        let f = s.fault();
        let sent = if upper.starts_with("EHLO") {
            let mut caps = vec!["250-upstream.sim"];
            if spec.pipelining {
                caps.push("250-PIPELINING");
            }
            if spec.chunking {
                caps.push("250-CHUNKING");
                if spec.binarymime {
                    caps.push("250-BINARYMIME");
                }
            }
            caps.extend([
                "250-8BITMIME",
                "250-ENHANCEDSTATUSCODES",
                "250-SMTPUTF8",
                "250 SIZE 100000000",
            ]);
            let reply = match f {
                Some(Fault::Temporary) => "421 4.3.2 busy".to_string(),
                Some(Fault::Permanent) => "550 5.7.1 no EHLO".to_string(),
                _ => caps.join("\r\n"),
            };
            s.send(&reply, f, "354").await
        } else if upper.starts_with("HELO") {
            s.send("250 upstream.sim", f, "354").await
        } else if upper.starts_with("MAIL") {
            txn = Txn::default();
            txn.binary_mime = upper.contains(" BODY=BINARYMIME");
            if txn.binary_mime && !(spec.chunking && spec.binarymime) {
                violation(
                    &s,
                    &store,
                    "MAIL with BODY=BINARYMIME, which it does not offer",
                );
            }
            let reply = match f {
                Some(Fault::Temporary) => "451 4.3.0 try later",
                Some(Fault::Permanent) => "550 5.7.1 sender refused",
                _ => {
                    txn.open = true;
                    "250 2.1.0 ok"
                }
            };
            s.send(reply, f, "999").await
        } else if upper.starts_with("RCPT") {
            data_with_rcpt = s.buf.len() >= 6 && s.buf[..6].eq_ignore_ascii_case(b"DATA\r\n");
            let address = line[line.find('<').map_or(0, |i| i + 1)..]
                .trim_end_matches('>')
                .to_string();
            let reply = if !txn.open {
                "503 5.5.1 need MAIL"
            } else if address.starts_with("refuse") {
                "550 5.1.1 unknown recipient"
            } else {
                match f {
                    Some(Fault::Temporary) => "450 4.2.0 mailbox busy",
                    Some(Fault::Permanent) => "550 5.1.1 no such user",
                    _ => {
                        txn.rcpts.push(address);
                        "250 2.1.5 ok"
                    }
                }
            };
            s.send(reply, f, "999").await
        } else if upper == "DATA" {
            if txn.binary_mime {
                violation(&s, &store, "DATA for a BODY=BINARYMIME message");
            }
            if !s.buf.is_empty() {
                violation(&s, &store, "bytes behind DATA before its answer");
            }
            if std::mem::take(&mut data_with_rcpt) {
                store.data_with_rcpt.fetch_add(1, Ordering::Relaxed);
                if !txn.open || txn.rcpts.is_empty() {
                    store
                        .data_with_rcpt_no_recipient
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            if !txn.open || txn.rcpts.is_empty() {
                s.send("554 5.5.1 no valid recipients", None, "250").await
            } else if s.late_rng.chance(spec.late_data_percent) {
                store.late_data_answers.fetch_add(1, Ordering::Relaxed);
                let answer = *s.late_rng.pick(&late::LATE_ANSWERS);
                late::answer(&mut s, &mut txn, &store, answer).await
            } else {
                let reply = match f {
                    Some(Fault::Temporary) => "451 4.3.0 not now",
                    Some(Fault::Permanent) => "554 5.6.0 no",
                    _ => "354 go ahead",
                };
                s.refused_data = reply != "354 go ahead";
                match s.send(reply, f, "250").await {
                    Sent::Over => Sent::Over,
                    // Refused or out of step: no text follows (the gate either sends nothing
                    // or drops the connection).
                    Sent::Answered
                        if reply != "354 go ahead" || f.is_some_and(|f| f != Fault::Slow) =>
                    {
                        Sent::Answered
                    }
                    Sent::Answered => match s.read_dot_text().await {
                        None => Sent::Over,
                        Some(text) => {
                            txn.text = text;
                            finish(&mut s, &mut txn, &store).await
                        }
                    },
                }
            }
        } else if upper.starts_with("BDAT ") && spec.chunking {
            let mut words = upper.split_whitespace().skip(1);
            let size: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            match s.read_chunk(size).await {
                None => Sent::Over,
                Some(bytes) => {
                    txn.text.extend_from_slice(&bytes);
                    if last {
                        if !txn.open || txn.rcpts.is_empty() || txn.spoiled {
                            txn = Txn::default();
                            s.send("554 5.5.1 no valid transaction", None, "250").await
                        } else {
                            finish(&mut s, &mut txn, &store).await
                        }
                    } else {
                        let reply = match f {
                            Some(Fault::Temporary) => "452 4.3.1 insufficient storage",
                            Some(Fault::Permanent) => "552 5.3.4 too big",
                            _ => "250 2.0.0 chunk ok",
                        };
                        if reply != "250 2.0.0 chunk ok" {
                            txn.spoiled = true;
                        }
                        s.send(reply, f, "354").await
                    }
                }
            }
        } else if upper == "RSET" {
            txn = Txn::default();
            s.send(
                "250 2.0.0 reset",
                f.filter(|f| *f != Fault::Temporary && *f != Fault::Permanent),
                "354",
            )
            .await
        } else if upper == "NOOP" {
            s.send(
                "250 2.0.0 ok",
                f.filter(|f| *f != Fault::Temporary && *f != Fault::Permanent),
                "354",
            )
            .await
        } else if upper == "QUIT" {
            let _ = s.io.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            if after_refused_data {
                // Text the gate sent although DATA was refused, read as a command.
                violation(&s, &store, &format!("text after a refused DATA: {line:?}"));
            }
            s.send("502 5.5.1 unknown", None, "250").await
        };
        if let Sent::Over = sent {
            return;
        }
    }
}

fn violation(s: &Server, store: &Store, what: &str) {
    s.trace.note(format!("up#{}: VIOLATION: {what}", s.n));
    store
        .violations
        .lock()
        .unwrap()
        .push(format!("up#{}: {what}", s.n));
}

/// The end of a message: decide, hold, then answer (held before answering, as a real server
/// commits before its 250).
async fn finish(s: &mut Server, txn: &mut Txn, store: &Store) -> Sent {
    let f = s.fault();
    let accept = !matches!(
        f,
        Some(Fault::Temporary) | Some(Fault::Permanent) | Some(Fault::Closing)
    );
    if accept {
        store.held.lock().unwrap().push(Held {
            rcpts: txn.rcpts.clone(),
            text: std::mem::take(&mut txn.text),
        });
        s.trace
            .note(format!("up#{}: holds a message for {:?}", s.n, txn.rcpts));
    }
    *txn = Txn::default();
    let reply = match f {
        Some(Fault::Temporary) => "451 4.3.0 try again",
        Some(Fault::Permanent) => "554 5.6.0 message refused",
        _ => "250 2.0.0 queued",
    };
    let odd = *s.rng.pick(&["354", "199", "999", "220"]);
    s.send(reply, f, odd).await
}
