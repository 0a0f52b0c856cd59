//! One client connection, from banner to QUIT.
//!
//! "Parse what is buffered, else read more" (mini-redis): commands are taken from the input
//! buffer one line at a time, so pipelined commands need no special code, and replies are
//! flushed whenever the buffer holds no further complete command (RFC 2920). The session
//! gathers facts and asks the policy; it never decides a rule itself.
//!
//! The upstream legs come in as a parameter ([`Legs`]: one [`crate::upstream::Upstream`] per
//! tenant, each built by that tenant's [`crate::upstream::Connector`]; one leg converts into
//! them), and the stream is any `AsyncRead + AsyncWrite`, so a
//! session runs as well over an in-memory pipe against a scripted upstream as over TCP to
//! Exchange Online: that is how the fault simulation drives it.
//!
//! One file per phase: [`io`] (reading, writing and their limits), [`hello`] (EHLO, HELO,
//! STARTTLS), [`envelope`] (MAIL, RCPT), [`data`] (DATA) and [`bdat`] (BDAT chunks), which both
//! hand their text to [`message`] (decision, forwarding, final answer), [`record`] (the
//! transaction event and its metrics).

/// Await an upstream step within the session deadline. Past it the step is abandoned (the leg
/// loses its connection, so nothing half-sent is delivered), the client gets `421 4.4.2`, and
/// the enclosing command handler returns the session's end.
macro_rules! within_deadline {
    ($session:ident, $step:expr) => {{
        let end = $session.session_deadline;
        match $session.timer.limit(|| end, $step).await {
            Ok(r) => r,
            Err(_) => return Err($session.deadline_passed().await),
        }
    }};
}

mod auth;
mod bdat;
mod data;
mod envelope;
mod hello;
mod id;
mod io;
mod message;
mod record;

use crate::config::Settings;
use crate::deadline::Timer;
use crate::policy::{Attribution, RecipientVerdict, RelayDecision};
use crate::stream::MaybeTls;
use crate::tls::ClientIdentity;
use crate::upstream::{Envelope, Legs};
use crate::wire::command::parse_command;
use crate::wire::reply::Reply;
pub use id::SessionId;
use smtp_proto::Request;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// Errors in one session before it is ended with 421.
const MAX_ERRORS: u32 = 10;

/// Who is on the other end, as the policy should see it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address (from the PROXY header when one is used).
    pub addr: SocketAddr,
    /// Bytes already read from the client (after a PROXY header).
    pub early: Vec<u8>,
}

/// The listener a session came from: the relay listener (Exchange Online's MX, no AUTH) or a
/// submission listener (its client submission endpoint, AUTH under TLS).
#[derive(Clone)]
pub enum Door {
    Relay,
    Submission {
        /// Port 465 style: TLS from the first byte, before the banner (RFC 8314).
        implicit_tls: bool,
        /// The failed-AUTH state per client address, shared by every session of the gate.
        throttle: SharedThrottle,
    },
}

impl Door {
    /// The log's and the metrics' name for the listener.
    pub fn as_str(&self) -> &'static str {
        match self {
            Door::Relay => "relay",
            Door::Submission {
                implicit_tls: false,
                ..
            } => "submission",
            Door::Submission {
                implicit_tls: true, ..
            } => "submission-implicit-tls",
        }
    }
}

/// The AUTH throttle as sessions share it: held only for a lookup or an update, never across
/// an await.
pub type SharedThrottle = Arc<std::sync::Mutex<crate::submission::throttle::AuthThrottle>>;

/// Where the server is in its life; sessions watch it to end politely on shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// No new transactions: idle sessions get `421 4.3.2`, busy ones finish their transaction.
    Draining,
    /// The grace period is over.
    Stopped,
}

/// Serve one client connection until it quits, times out or breaks. `upstream` is this
/// session's legs, one per tenant in the order of `settings.tenants` (a single
/// [`crate::upstream::Upstream`] will do for one tenant); a connection a leg holds between
/// transactions goes back to its pool at the end.
pub async fn run_session<S>(
    stream: S,
    peer: Peer,
    settings: Arc<Settings>,
    upstream: impl Into<Legs>,
    phase: tokio::sync::watch::Receiver<Phase>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    run_session_at(Door::Relay, stream, peer, settings, upstream, phase).await
}

/// [`run_session`] for a client of the listener `door`.
pub async fn run_session_at<S>(
    door: Door,
    stream: S,
    peer: Peer,
    settings: Arc<Settings>,
    upstream: impl Into<Legs>,
    phase: tokio::sync::watch::Receiver<Phase>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session_deadline = Instant::now() + settings.server.session_timeout;
    let mut s = Session {
        io: Some(MaybeTls::Plain(stream)),
        rbuf: peer.early,
        rstart: 0,
        wbuf: Vec::with_capacity(1024),
        phase,
        settings,
        id: SessionId::new(),
        peer: Peer {
            addr: peer.addr,
            early: Vec::new(),
        },
        helo: None,
        esmtp: false,
        identity: ClientIdentity::default(),
        tls_description: None,
        txn: None,
        upstream: upstream.into(),
        timer: Timer::default(),
        errors: 0,
        session_deadline,
        transactions: 0,
        door,
        user: None,
    };
    tracing::debug!(session = %s.id, peer = %s.peer.addr, listener = s.door.as_str(), "connection opened");
    let end = match s.door {
        Door::Submission {
            implicit_tls: true, ..
        } => match s.handshake().await {
            Ok(()) => s.serve().await,
            Err(end) => end,
        },
        _ => s.serve().await,
    };
    s.end_transaction(&format!("session ended ({end:?})")).await;
    s.upstream.quit().await;
    s.close().await;
    tracing::debug!(session = %s.id, peer = %s.peer.addr, end = ?end, "connection closed");
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Quit,
    Shutdown,
    ClientClosed,
    Timeout,
    TooManyErrors,
    TlsFailed,
    /// The client broke the protocol in a way that leaves its input unreadable as commands
    /// (message text before 354, a BDAT payload that cannot be skipped).
    OutOfStep,
    Io,
}

/// A recipient the gate answered 250 for.
struct Recipient {
    address: String,
    /// What enforce mode decides for it (at RCPT; re-judged after the header when pending).
    verdict: RecipientVerdict,
    /// Whether the upstream has it (it accepted our RCPT).
    forwarded: bool,
}

struct Transaction {
    /// `mail_from` is the sender the policy judges and the upstream gets: a `[[rewrite]]`
    /// rule's `new_sender` when one applied.
    envelope: Envelope,
    /// The sender as the client gave it, when a `[[rewrite]]` rule replaced it.
    client_mail_from: Option<String>,
    /// The tenant the transaction belongs to: known at MAIL when the certificate or the P1
    /// domain shows it, else at the first recipient of a tenant; `None` until then.
    tenant: Option<Attribution>,
    relay: RelayDecision,
    recipients: Vec<Recipient>,
    /// Recipients answered with a refusal at RCPT (for the log; at most `max_recipients`).
    refused: Vec<(String, String)>,
    /// Refusals beyond that, only counted, so a client cannot grow the session's memory.
    refused_unlisted: usize,
    upstream_open: bool,
    /// The upstream transaction that holds recipients the client was told 250 for was lost
    /// (a drop, a 421, silence, a reply out of step). A new upstream transaction would carry
    /// only the recipients named from now on, so the rest of this one is answered 4xx.
    upstream_lost: bool,
    /// DSN parameters the upstream holds this transaction without (it does not offer DSN).
    dsn_dropped: crate::wire::dsn::Dropped,
    /// The message coming in BDAT chunks, between its chunks.
    chunks: Option<bdat::Chunks>,
    /// When MAIL FROM was accepted, for the transaction latency histogram.
    started: Instant,
}

impl Transaction {
    fn has_forwarded(&self) -> bool {
        self.recipients.iter().any(|r| r.forwarded)
    }
}

struct Session<S> {
    io: Option<MaybeTls<S>>,
    phase: tokio::sync::watch::Receiver<Phase>,
    rbuf: Vec<u8>,
    rstart: usize,
    wbuf: Vec<u8>,
    settings: Arc<Settings>,
    id: SessionId,
    peer: Peer,
    helo: Option<String>,
    esmtp: bool,
    identity: ClientIdentity,
    tls_description: Option<String>,
    txn: Option<Transaction>,
    upstream: Legs,
    /// Every wait of the session, on the client and (bounded by the session deadline) on the
    /// upstream: one timer, armed only when a wait waits.
    timer: Timer,
    errors: u32,
    session_deadline: Instant,
    transactions: u32,
    door: Door,
    /// The user the client authenticated as (AUTH on a submission listener). A reload that
    /// removes the user does not end this session: it read its configuration when it started.
    user: Option<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self) -> End {
        self.reply(&self.banner());
        loop {
            let len = match self.next_line().await {
                io::Input::Line(_)
                    if self.txn.is_none() && *self.phase.borrow() != Phase::Running =>
                {
                    return self.shutting_down().await;
                }
                io::Input::ShuttingDown => return self.shutting_down().await,
                io::Input::Line(n) => n,
                io::Input::Closed => return End::ClientClosed,
                io::Input::Failed => return End::Io,
                io::Input::TimedOut => {
                    self.timed_out();
                    let _ = self.flush().await;
                    return End::Timeout;
                }
            };
            let line = self.buffered()[..len].to_vec();
            self.consume(len);
            if let Err(end) = self.command(&line).await {
                let _ = self.flush().await;
                return end;
            }
            if self.errors >= MAX_ERRORS {
                self.reply(&Reply::new(
                    421,
                    "4.7.0",
                    format!(
                        "{} Too many errors, closing connection",
                        self.settings.server.hostname
                    ),
                ));
                let _ = self.flush().await;
                return End::TooManyErrors;
            }
        }
    }

    /// The session deadline passed during an upstream step.
    async fn deadline_passed(&mut self) -> End {
        self.upstream.leg().abort().await;
        self.timed_out();
        End::Timeout
    }

    async fn shutting_down(&mut self) -> End {
        let host = self.settings.server.hostname.clone();
        self.reply(&Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, closing connection"),
        ));
        let _ = self.flush().await;
        End::Shutdown
    }

    async fn command(&mut self, line: &[u8]) -> Result<(), End> {
        if is_verb(line, b"AUTH") {
            // Parsed here, not by smtp-proto: its answers to unknown mechanisms and to `=`
            // are not RFC 4954's.
            return self.auth(line).await;
        }
        let req = match parse_command(line) {
            Ok(r) => r,
            Err(r) if is_bdat(line) => {
                // Without a size we cannot know where its payload ends: nothing after this
                // line can be read as a command.
                self.error_reply(r);
                return Err(End::OutOfStep);
            }
            Err(r) => {
                self.error_reply(r);
                return Ok(());
            }
        };
        match req {
            Request::Ehlo { host } => self.hello(host, true).await,
            Request::Helo { host } => self.hello(host, false).await,
            Request::Lhlo { .. } => self.error_reply(Reply::new(500, "5.5.1", "LHLO is for LMTP")),
            Request::StartTls => return self.starttls().await,
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => return self.rcpt(to).await,
            Request::Data => return self.data().await,
            Request::Bdat {
                chunk_size,
                is_last,
            } => return self.bdat(chunk_size, is_last).await,
            Request::Rset => {
                self.end_transaction("RSET").await;
                self.reply(&Reply::new(250, "2.0.0", "Resetting"));
            }
            Request::Noop { .. } => self.reply(&Reply::new(250, "2.0.0", "OK")),
            Request::Quit => {
                self.reply(&Reply::new(
                    221,
                    "2.0.0",
                    "Service closing transmission channel",
                ));
                return Err(End::Quit);
            }
            Request::Vrfy { .. } => self.reply(&Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(&Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT",
            )),
            other => self.error_reply(Reply::new(
                502,
                "5.5.1",
                format!("{} is not implemented", other.name()),
            )),
        }
        Ok(())
    }
}

/// Whether a command line is a BDAT command (whatever its arguments).
fn is_bdat(line: &[u8]) -> bool {
    is_verb(line, b"BDAT")
}

/// Whether a command line is the command `verb` (four letters), whatever its arguments.
fn is_verb(line: &[u8], verb: &[u8; 4]) -> bool {
    line.len() >= 4
        && line[..4].eq_ignore_ascii_case(verb)
        && line.get(4).is_none_or(|b| b.is_ascii_whitespace())
}
