//! The recording upstream: an SMTP server on a loopback port that answers as its [`Script`]
//! says (refusals, drops, silence, stray lines, odd codes, STARTTLS, CHUNKING, DSN) and records
//! every transaction as it arrived, so a test can check what the gate forwarded, byte for byte.

mod serve;

use super::WAIT;
use relaygate::upstream::{Dial, Dialing, Transport};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

/// What the upstream does, per test.
#[derive(Clone, Default)]
pub struct Script {
    pub greeting: Option<&'static str>,
    /// Recipients answered with this line instead of 250.
    pub refuse_rcpt: Vec<(&'static str, &'static str)>,
    /// Answer MAIL with this instead of 250.
    pub mail_reply: Option<&'static str>,
    pub data_reply: Option<&'static str>,
    pub end_reply: Option<&'static str>,
    pub drop_after_mail: bool,
    /// Close the connection after this many bytes of message text.
    pub drop_during_data_after: Option<usize>,
    /// Receive the final dot, then close without answering.
    pub drop_after_dot: bool,
    /// Receive the final dot, then say nothing.
    pub silent_after_dot: bool,
    /// Close the connection after answering each message (an upstream that does not keep
    /// idle connections).
    pub hang_up_after_message: bool,
    /// Offer STARTTLS with this server configuration.
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Offer CHUNKING and take BDAT (RFC 3030).
    pub chunking: bool,
    /// Offer BINARYMIME too (with `chunking`).
    pub binarymime: bool,
    /// Answer the BDAT chunk with this number (1-based, not the LAST one) with this line.
    pub refuse_chunk: Option<(usize, &'static str)>,
    /// Do not offer PIPELINING.
    pub no_pipelining: bool,
    /// Offer DSN (RFC 3461), so the gate passes the DSN parameters on.
    pub offer_dsn: bool,
    /// At the RCPT with this number on a connection (1-based, counted per connection), fail
    /// instead of answering: a recipient the gate must not lose track of.
    pub rcpt_fault: Option<(usize, Fault)>,
    /// A line written right after the EHLO reply, in the same write: a reply to no command,
    /// which shifts every later reply by one if the gate reads it as the next one.
    pub ehlo_trailer: Option<&'static str>,
    /// A line written right after each RCPT reply, in the same write (as `ehlo_trailer`).
    pub rcpt_trailer: Option<&'static str>,
    /// The reply to the first message's end (final dot or `BDAT ... LAST`) this upstream
    /// receives, over any connection; later messages get `end_reply`. For faults that must not
    /// follow the connection into the next session.
    pub first_end_reply: Option<&'static str>,
    /// A line written on its own after the first message's final reply, when the test says so.
    pub stray_after_first_message: Option<Stray>,
    /// Hold the answer to DATA (354 or `data_reply`) until the test says so.
    pub hold_data_answer: Option<Hold>,
    /// Answer MAIL and RCPT only when the next other command (BDAT, DATA, RSET...) arrives,
    /// all in one write with its reply: a client that waits for those replies before sending
    /// its message waits until its reply timeout.
    pub envelope_replies_wait: bool,
    /// Accept `BDAT ... LAST` when no recipient was accepted (an upstream breaking RFC 3030:
    /// it takes a message for nobody). Otherwise LAST then gets `554 5.5.1`.
    pub text_for_nobody: bool,
}

/// The answer to DATA held back: the upstream notifies `seen` when DATA has arrived and
/// answers only once the test notifies `go`, so a test can do what it likes (the client's
/// whole message, say) while the gate still waits for that answer.
#[derive(Clone, Default)]
pub struct Hold {
    pub seen: Arc<tokio::sync::Notify>,
    pub go: Arc<tokio::sync::Notify>,
}

/// How the upstream fails at a RCPT (`Script::rcpt_fault`).
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Close the connection without a word.
    Close,
    /// Answer with this line, then close (as a server does after a 421).
    ReplyAndClose(&'static str),
    /// Never answer: keep the connection open and read (and ignore) whatever comes, until the
    /// gate gives up and closes it.
    Silent,
}

/// A reply to no command, arriving after a message's final reply in a write of its own.
///
/// The upstream waits for `go` before writing it, and the test gives `go` once the gate has
/// passed the final reply to its client: so the gate has certainly read that reply before the
/// stray line arrives, and cannot have seen both in one read. The upstream reads no further
/// command before the line is written, so the line precedes every later reply on the wire.
#[derive(Clone)]
pub struct Stray {
    pub line: &'static str,
    pub go: Arc<tokio::sync::Notify>,
    /// Notified once the line has been written.
    pub written: Arc<tokio::sync::Notify>,
}

impl Stray {
    pub fn new(line: &'static str) -> Stray {
        Stray {
            line,
            go: Arc::new(tokio::sync::Notify::new()),
            written: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Instead of a line, the upstream closes the connection (as one does whose idle timeout
    /// passed); `written` is notified once its FIN is out.
    pub fn close() -> Stray {
        Stray::new("")
    }
}

/// One transaction as the upstream saw it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub mail: String,
    pub rcpts: Vec<String>,
    /// DATA as on the wire (still dot-stuffed), without the final `.\r\n`.
    pub data: Vec<u8>,
    /// The final dot arrived.
    pub completed: bool,
    /// The transaction ran over TLS.
    pub tls: bool,
    /// The certificate the client presented in that TLS handshake (the leaf), when the
    /// script's server configuration asked for one and the client sent it.
    pub client_certificate: Option<rustls::pki_types::CertificateDer<'static>>,
    /// RCPT arrived together with MAIL (PIPELINING).
    pub pipelined: bool,
    /// BDAT commands received (0: the message came with DATA). With BDAT, `data` is the
    /// chunks' raw bytes, not dot-stuffed.
    pub bdat_chunks: usize,
    /// More input was already waiting when a non-LAST chunk was answered (the client did not
    /// wait for that reply: it pipelined).
    pub bdat_pipelined: bool,
    /// Bytes had arrived behind DATA before the upstream answered it: text sent without
    /// waiting for the 354, which no client may do.
    pub text_before_data_answer: bool,
    /// DATA had arrived behind an RCPT before that RCPT was answered: the client sent DATA
    /// as the last command of its group (RFC 2920).
    pub data_with_rcpt: bool,
    /// A BDAT command arrived while the replies to MAIL and RCPT were still unwritten
    /// (`Script::envelope_replies_wait`): the client sent its message without waiting for
    /// them.
    pub bdat_before_envelope_replies: bool,
}

/// A running recording upstream; it serves until the test's runtime ends.
pub struct Upstream {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    pub log: Arc<Mutex<Vec<Received>>>,
    done: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Upstream {
    /// Listen on a fresh loopback port and answer every connection as `script` says.
    pub async fn start(script: Script) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let l2 = Arc::clone(&log);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(serve::session(
                    Box::new(s),
                    script.clone(),
                    Arc::clone(&l2),
                    tx.clone(),
                ));
            }
        });
        Upstream {
            addr,
            connections,
            log,
            done: tokio::sync::Mutex::new(rx),
        }
    }

    /// The recording upstream over in-memory pipes, for sessions on tokio's paused clock:
    /// every dial of the returned [`Dial`] is a new pipe answered as `script` says, counted in
    /// `connections`. It has no address (`addr` is 0.0.0.0:0): the dial is the way in.
    pub fn piped(script: Script) -> (Upstream, Box<dyn Dial>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let dial = PipeDial {
            script,
            log: Arc::clone(&log),
            done: tx,
            connections: Arc::clone(&connections),
        };
        let up = Upstream {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            connections,
            log,
            done: tokio::sync::Mutex::new(rx),
        };
        (up, Box::new(dial))
    }

    /// Wait (bounded) until a transaction has received its final dot; return it.
    pub async fn next_completed(&self) -> Received {
        let mut rx = self.done.lock().await;
        timeout(WAIT, rx.recv())
            .await
            .expect("upstream got no complete message in time");
        drop(rx);
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|t| t.completed)
            .cloned()
            .unwrap()
    }

    /// How many messages arrived whole (final dot, or `BDAT ... LAST`).
    pub fn completed(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.completed)
            .count()
    }

    /// Every transaction so far, completed or not, in the order MAIL arrived.
    pub fn transactions(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// What the upstream got, readable, for failure messages: each transaction's envelope,
    /// whether its message was completed, and its text.
    pub fn view(&self) -> String {
        let t: Vec<String> = self
            .transactions()
            .iter()
            .map(|t| {
                format!(
                    "[{} {:?} completed={} text={:?}]",
                    t.mail,
                    t.rcpts,
                    t.completed,
                    String::from_utf8_lossy(&t.data)
                )
            })
            .collect();
        format!("upstream got {}", t.join(" "))
    }
}

/// [`Upstream::piped`]'s way in.
struct PipeDial {
    script: Script,
    log: Arc<Mutex<Vec<Received>>>,
    done: mpsc::UnboundedSender<()>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Dial for PipeDial {
    fn dial(&self) -> Dialing<'_> {
        Box::pin(async move {
            self.connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let (gate, far) = tokio::io::duplex(64 * 1024);
            tokio::spawn(serve::session(
                Box::new(far),
                self.script.clone(),
                Arc::clone(&self.log),
                self.done.clone(),
            ));
            Ok(Box::new(gate) as Box<dyn Transport>)
        })
    }
}
