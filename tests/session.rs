//! Sessions without sockets: a real relaygate session over in-memory pipes on tokio's paused
//! clock, so the deadlines are tested in virtual time (a five-minute command timeout costs
//! milliseconds) and a hang is a failure, not a stuck test.

mod support;

use relaygate::config::Settings;
use relaygate::session::{run_session, Peer, Phase};
use relaygate::upstream::{Connector, Dial, Dialing, Transport};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{ip_tenant, settings_from, Client, Fault, Script, Upstream};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The fault simulation's tenant (127.0.0.1 relays by IP), relaying to an upstream that
/// [`SilentUpstream`] stands in for.
fn settings(server_extra: &str, upstream_extra: &str) -> Arc<Settings> {
    Arc::new(settings_from(&format!(
        "[server]\nhostname = \"gate.contoso.com\"\n{server_extra}\n{}\n[upstream]\nkind = \"smtp\"\naddress = \"upstream.test:25\"\ntls = \"none\"\n{upstream_extra}\n",
        ip_tenant("127.0.0.0/24")
    )))
}

/// An upstream that accepts the connection and then never says a word. The far ends are
/// kept open, so the gate waits rather than seeing a close.
#[derive(Default)]
struct SilentUpstream {
    far_ends: Mutex<Vec<DuplexStream>>,
}

impl Dial for SilentUpstream {
    fn dial(&self) -> Dialing<'_> {
        Box::pin(async move {
            let (gate, far) = tokio::io::duplex(4096);
            self.far_ends.lock().unwrap().push(far);
            Ok(Box::new(gate) as Box<dyn Transport>)
        })
    }
}

/// A session on one end of a pipe whose buffer holds `window` bytes each way; the client's end
/// is returned.
fn start(settings: Arc<Settings>, window: usize) -> (DuplexStream, JoinHandle<()>) {
    start_with(settings, window, Box::new(SilentUpstream::default()))
}

/// [`start`] with the upstream `dial` reaches.
fn start_with(
    settings: Arc<Settings>,
    window: usize,
    dial: Box<dyn Dial>,
) -> (DuplexStream, JoinHandle<()>) {
    let connector = Connector::with_dial(
        &settings.tenants[0].upstream,
        &settings.server.hostname,
        dial,
    );
    start_on(settings, window, &connector)
}

/// A session whose upstream legs come from `connector`: sessions started on one connector
/// share its pool.
fn start_on(
    settings: Arc<Settings>,
    window: usize,
    connector: &Connector,
) -> (DuplexStream, JoinHandle<()>) {
    let legs = connector.leg();
    let (client, gate) = tokio::io::duplex(window);
    let (_phase_tx, phase) = tokio::sync::watch::channel(Phase::Running);
    let session = tokio::spawn(async move {
        let _keep_phase = _phase_tx;
        run_session(
            gate,
            Peer {
                addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
                early: Vec::new(),
            },
            settings,
            legs,
            phase,
        )
        .await
    });
    (client, session)
}

/// A session over a pipe, greeted and past EHLO, whose gate relays to the recording upstream
/// answering as `script` over pipes.
async fn greeted(script: Script) -> (Upstream, Client, JoinHandle<()>) {
    let (up, dial) = Upstream::piped(script);
    let (pipe, session) = start_with(settings("", ""), 64 * 1024, dial);
    let mut c = Client::over(pipe);
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.contoso.com", "250").await;
    (up, c, session)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_never_reads_is_cut_off_within_its_deadlines() {
    let settings = settings("command_timeout_secs = 5\nsession_timeout_secs = 20", "");
    // 1 KB each way: the gate's replies fill the client's side within a few dozen NOOPs.
    let (client, session) = start(settings, 1024);
    let started = Instant::now();
    let (_reader, mut writer) = tokio::io::split(client);
    let flood = tokio::spawn(async move {
        // Bounded: far more than both pipe buffers hold, never read back.
        for _ in 0..100_000 {
            if writer.write_all(b"NOOP\r\n").await.is_err() {
                return;
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), session)
        .await
        .expect("the session outlived its deadlines: its writes to the client are unbounded")
        .unwrap();
    let took = started.elapsed();
    // The blocked write gives up at the command timeout (5 s); the session deadline (20 s)
    // and the bounded close (5 s) cap it in any case.
    assert!(took <= Duration::from_secs(25), "ended after {took:?}");
    flood.abort();
}

#[tokio::test(start_paused = true)]
async fn an_upstream_slower_than_the_session_deadline_gets_421_at_the_deadline() {
    // The upstream's own timeouts (30 s connect, 300 s per reply) are longer than the
    // session's 20 s: the session deadline must win.
    let settings = settings(
        "session_timeout_secs = 20",
        "connect_timeout_secs = 30\nreply_timeout_secs = 300",
    );
    let (pipe, session) = start(settings, 64 * 1024);
    let mut c = Client::over(pipe);
    let started = Instant::now();
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.contoso.com", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "421 4.4.2").await;
    assert!(r.contains("Timeout exceeded"), "{r:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(21),
        "answered after {took:?}"
    );
    assert_eq!(c.reply().await, "", "the session ends after the 421");
    session.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_gets_421_after_the_five_minute_command_timeout() {
    let (pipe, session) = start(settings("", ""), 64 * 1024);
    let mut c = Client::over(pipe);
    let started = Instant::now();
    assert!(c.reply().await.starts_with("220 "));
    let r = c.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r:?}");
    // RFC 5321 4.5.3.2.7's five minutes, in virtual time.
    assert_eq!(started.elapsed().as_secs(), 300);
    session.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_connection_held_between_messages_is_replaced_once_idle_longer_than_the_pool_keeps_one() {
    // A client that keeps its session open keeps the gate's upstream connection between its
    // messages. Idle for less than pool_idle_timeout_secs it carries the next message; idle
    // for longer (a firewall between may have forgotten it by then) it is dropped as an
    // expired pooled one would be, and the next message goes on a new connection.
    let (up, dial) = Upstream::piped(Script::default());
    let settings = settings("", "pool_idle_timeout_secs = 30");
    let (pipe, session) = start_with(settings, 64 * 1024, dial);
    let mut c = Client::over(pipe);
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO client.contoso.com", "250").await;
    let message = b"Subject: held\r\n\r\nhi\r\n";
    for (idle, dials) in [(0, 1), (20, 1), (31, 2), (5, 2)] {
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let r = c
            .send_message("app@contoso.com", &["bob@example.org"], message)
            .await;
        assert!(r.starts_with("250 "), "after {idle} s idle: {r:?}");
        assert_eq!(
            up.connections.load(Ordering::SeqCst),
            dials,
            "connections opened after a message {idle} s after the one before"
        );
    }
    assert_eq!(up.completed(), 4);
    c.cmd("QUIT", "221").await;
    session.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_envelope_goes_ahead_only_on_a_connection_that_answered_within_two_seconds() {
    // A connection idle longer may have been closed by the upstream: MAIL then goes on its
    // own, to be sent again on a new connection if it was (nothing of the message is out).
    let (up, mut c, session) = greeted(Script {
        chunking: true,
        ..Script::default()
    })
    .await;
    let ahead = "250 2.1.5 Recipient OK (the upstream answers it with the message)\r\n";
    let upstreams_own = "250 2.1.5 ok\r\n";
    for (idle, rcpt_reply) in [(0, ahead), (1, ahead), (3, upstreams_own), (0, ahead)] {
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let replies = c.pipelined_envelope(&["bob@example.org"]).await;
        assert_eq!(replies[1], rcpt_reply, "after {idle} s idle");
        assert!(replies[2].starts_with("354 "), "{replies:?}");
        c.send(b"Subject: ahead\r\n\r\nhi\r\n.\r\n").await;
        let r = c.reply().await;
        assert!(r.starts_with("250 "), "after {idle} s idle: {r:?}");
    }
    assert_eq!(up.completed(), 4);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    c.cmd("QUIT", "221").await;
    session.await.unwrap();
}

/// What an ahead recipient's client says: MAIL, the RCPT and DATA in one write.
const AHEAD: &str = "250 2.1.5 Recipient OK (the upstream answers it with the message)\r\n";

#[tokio::test(start_paused = true)]
async fn a_refusal_sent_ahead_stays_the_final_reply_when_the_upstream_then_hangs_up() {
    // The upstream refuses the recipient and closes at once: the gate's write of the message
    // fails, and the refusal it has not read yet is still the answer, word for word.
    let (up, mut c, session) = greeted(Script {
        chunking: true,
        rcpt_fault: Some((1, Fault::ReplyAndClose("550 5.1.1 no such user"))),
        ..Script::default()
    })
    .await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_eq!(replies[1], AHEAD);
    c.send(b"Subject: refused\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await, "550 5.1.1 no such user\r\n");
    assert_eq!(up.completed(), 0);
    c.cmd("QUIT", "221").await;
    session.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_that_leaves_mid_message_after_its_envelope_went_ahead_delivers_nothing() {
    let (up, mut c, session) = greeted(Script {
        chunking: true,
        ..Script::default()
    })
    .await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_eq!(replies[1], AHEAD);
    c.send(b"Subject: half\r\n\r\nthe first half").await;
    drop(c);
    session.await.unwrap();
    assert_eq!(up.completed(), 0, "{}", up.view());
    assert!(up.transactions()[0].data.is_empty(), "{}", up.view());
}

#[tokio::test(start_paused = true)]
async fn a_pooled_connection_ages_from_its_last_reply_not_from_when_it_was_pooled() {
    // A client that idles before QUIT hands its upstream connection to the pool already idle;
    // the upstream (or a firewall between) counts from the last reply, and so does the pool.
    let (up, dial) = Upstream::piped(Script::default());
    let settings = settings("", "pool_idle_timeout_secs = 30");
    let connector = Connector::with_dial(
        &settings.tenants[0].upstream,
        &settings.server.hostname,
        dial,
    );
    let message = b"Subject: pooled\r\n\r\nhi\r\n";
    // Per session: the connections opened once it has sent its message, then how long it idles
    // before QUIT, and how long the pool then waits for the next session. The third session
    // finds the connection 28 s after its last reply and reuses it; the fourth finds it 35 s
    // after, past pool_idle_timeout_secs, though only 10 s in the pool, and opens another.
    for (dials, before_quit, pooled) in [(1, 0, 0), (1, 25, 3), (1, 25, 10), (2, 0, 0)] {
        let (pipe, session) = start_on(Arc::clone(&settings), 64 * 1024, &connector);
        let mut c = Client::over(pipe);
        assert!(c.reply().await.starts_with("220 "));
        c.cmd("EHLO client.contoso.com", "250").await;
        let r = c
            .send_message("app@contoso.com", &["bob@example.org"], message)
            .await;
        assert!(r.starts_with("250 "), "{r:?}");
        assert_eq!(
            up.connections.load(Ordering::SeqCst),
            dials,
            "connections opened"
        );
        tokio::time::sleep(Duration::from_secs(before_quit)).await;
        c.cmd("QUIT", "221").await;
        session.await.unwrap();
        tokio::time::sleep(Duration::from_secs(pooled)).await;
    }
}
