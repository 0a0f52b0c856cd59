//! The deterministic fault simulation: real relaygate sessions, driven over in-memory pipes on
//! tokio's paused clock, between a simulated client and a simulated upstream whose every
//! choice and fault comes from one seed. After each scenario the invariant of "What 250 means"
//! (README) is checked against what the upstream holds.
//!
//! Generation is fixed: a seed names one scenario for good (the named seeds in
//! `tests/simulation.rs` depend on it), so a change to what the client, the upstream or the
//! configuration draw from the seed changes every seed's meaning. Choices added later (BDAT,
//! BINARYMIME) are drawn from generators of their own ([`rng::Rng::sibling`]), never from the
//! existing streams, so the existing draws stay in place; so are the sessions that authenticate
//! ([`submission`]: forked from that generator after its last draw).

mod bdat;
pub mod client;
pub mod rng;
mod submission;
pub mod upstream;

use crate::support::config::ip_tenant;
use crate::support::message::{stuff, without_received};
use client::{Body, Client, Sent};
use relaygate::config::{Config, Settings};
use relaygate::session::{run_session_at, Door, Peer, Phase};
use relaygate::upstream::Connector;
use rng::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use upstream::{Held, SimDial, Spec, Store};

/// What happened, line by line: collected only when a seed is replayed to be looked at.
#[derive(Clone, Default)]
pub struct Trace(Option<Arc<Mutex<Vec<String>>>>);

impl Trace {
    pub fn recording() -> Trace {
        Trace(Some(Arc::default()))
    }

    pub fn note(&self, line: String) {
        if let Some(lines) = &self.0 {
            // Virtual time since the scenario started (the paused clock starts at its own
            // epoch when the runtime is built).
            let at = tokio::time::Instant::now();
            let mut lines = lines.lock().unwrap();
            let start = *START.get_or_init(|| at);
            lines.push(format!("{:>9.3}s {line}", (at - start).as_secs_f64()));
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.0
            .as_ref()
            .map(|l| l.lock().unwrap().clone())
            .unwrap_or_default()
    }
}

/// When the replayed scenario started (one scenario is traced per process).
static START: OnceLock<tokio::time::Instant> = OnceLock::new();

/// The tenant: contoso.com, and the OnPremises connector that the simulated clients' address
/// (127.0.0.1) matches.
pub fn tenant() -> String {
    ip_tenant("127.0.0.0/24")
}

/// The session deadlines scenarios run under: a long one, and one short enough that slow
/// upstream replies run into it.
const SESSION_TIMEOUTS: [Duration; 2] = [Duration::from_secs(600), Duration::from_secs(30)];
/// How long after its deadline a session may take to end: the last flush to the client and the
/// upstream's QUIT, each bounded.
const END_SLACK: Duration = Duration::from_secs(30);

/// The gate's configuration for a scenario. `added`: choices added after the seeds were named.
fn settings(rng: &mut Rng, added: &mut Rng, session_timeout: Duration) -> Settings {
    let mode = *rng.pick(&["enforce", "enforce", "audit"]);
    let stage = *rng.pick(&["rcpt", "data"]);
    let pool = *rng.pick(&[0, 4]);
    let chunking = rng.chance(70);
    // Added later still, drawn from a generator of its own (nothing else shifts).
    let early = !rng.sibling_for(2).chance(25);
    // Now and then a limit the large messages run into, over DATA and over BDAT's chunks.
    let max_size = if added.chance(15) {
        format!(
            "max_message_size = {}",
            added.pick(&[48 * 1024, 128 * 1024])
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
[server]
hostname = "gate.sim"
listen = ["127.0.0.1:2525"]
command_timeout_secs = 60
data_timeout_secs = 60
session_timeout_secs = {session}
{max_size}
[policy]
mode = "{mode}"
reject_stage = "{stage}"
{tenant}
[upstream]
kind = "smtp"
address = "upstream.sim:25"
tls = "none"
connect_timeout_secs = 5
reply_timeout_secs = 10
data_end_timeout_secs = 20
pool_max_idle = {pool}
chunking = {chunking}
answer_sole_recipient_early = {early}
{submission}
"#,
        session = session_timeout.as_secs(),
        tenant = tenant(),
        submission = submission::sections(),
    );
    Config::parse(&text)
        .and_then(|c| c.validate().map_err(|e| e.to_string()))
        .expect("simulation configuration")
}

/// What scenarios exercised, counted so a run can show it: a promise that held says little
/// about a path no message took.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Messages the client tried.
    pub messages: u64,
    /// Messages told 2xx, sent as DATA, as BDAT, as BDAT with `BODY=BINARYMIME`.
    pub data_taken: u64,
    pub bdat_taken: u64,
    pub binary_mime_taken: u64,
    /// BINARYMIME messages answered 5xx (an upstream without BINARYMIME, among others).
    pub binary_mime_refused: u64,
    /// Messages with a bare line break or NUL but no `BODY=BINARYMIME` the gate answered
    /// (never 2xx).
    pub smuggled_answered: u64,
    /// Messages answered 552 (over `max_message_size`, or refused so by the upstream).
    pub too_large: u64,
    /// Sessions on the submission listener (implicit TLS, AUTH PLAIN), and those of them whose
    /// password was wrong.
    pub authenticated: u64,
    pub wrong_password: u64,
    /// Answers to DATA that came late, after the client's text ([`upstream::Spec`]); and
    /// messages sent as DATA, told 2xx, whose text was larger than the gate holds while it
    /// waits for the 354.
    pub late_data_answers: u64,
    pub data_over_held_buffer_taken: u64,
    /// DATAs the gate sent in the group with the last RCPT (its client had pipelined DATA),
    /// and those of them the upstream got with no recipient accepted.
    pub data_with_rcpt: u64,
    pub data_with_rcpt_no_recipient: u64,
    /// Messages whose sole recipient was answered ahead of the upstream, told 2xx, and
    /// refused (the upstream's refusal of MAIL or RCPT, or of the text, as the final reply).
    pub ahead_taken: u64,
    pub ahead_refused: u64,
    /// Scenarios in which a stray line took the place of a reply still owed, and the gate, a
    /// reply behind without knowing it, spoke while the upstream owed an answer to DATA.
    pub out_of_turn_after_stray: u64,
}

impl Tally {
    fn count(&mut self, sent: &[Sent]) {
        for s in sent {
            self.messages += 1;
            let taken = s.final_code.is_some_and(|c| (200..300).contains(&c));
            let refused = s.final_code.is_some_and(|c| c >= 500);
            if s.ahead {
                self.ahead_taken += u64::from(taken);
                self.ahead_refused += u64::from(s.final_code.is_some_and(|c| c >= 400));
            }
            self.too_large += u64::from(s.final_code == Some(552));
            if s.body == Body::Data && stuff(&s.text).len() > 256 * 1024 {
                self.data_over_held_buffer_taken += u64::from(taken);
            }
            match s.body {
                Body::Data => self.data_taken += u64::from(taken),
                Body::Bdat => self.bdat_taken += u64::from(taken),
                Body::BinaryMime => {
                    self.binary_mime_taken += u64::from(taken);
                    self.binary_mime_refused += u64::from(refused);
                }
                Body::Smuggled => self.smuggled_answered += u64::from(s.final_code.is_some()),
            }
        }
    }

    pub fn add(&mut self, other: &Tally) {
        self.messages += other.messages;
        self.data_taken += other.data_taken;
        self.bdat_taken += other.bdat_taken;
        self.binary_mime_taken += other.binary_mime_taken;
        self.binary_mime_refused += other.binary_mime_refused;
        self.smuggled_answered += other.smuggled_answered;
        self.too_large += other.too_large;
        self.authenticated += other.authenticated;
        self.wrong_password += other.wrong_password;
        self.late_data_answers += other.late_data_answers;
        self.data_over_held_buffer_taken += other.data_over_held_buffer_taken;
        self.data_with_rcpt += other.data_with_rcpt;
        self.data_with_rcpt_no_recipient += other.data_with_rcpt_no_recipient;
        self.ahead_taken += other.ahead_taken;
        self.ahead_refused += other.ahead_refused;
        self.out_of_turn_after_stray += other.out_of_turn_after_stray;
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages; told 2xx: {} as DATA, {} as BDAT, {} as BDAT with BODY=BINARYMIME \
             ({} more of those refused 5xx); {} with a bare line break or NUL without \
             BINARYMIME answered, none 2xx; {} answered 552; {} sessions with AUTH ({} with a \
             wrong password); {} answers to DATA late, after the text; {} DATA messages larger \
             than the text held for a 354 told 2xx; {} DATAs upstream in the group with the \
             last RCPT ({} of them with no recipient accepted); {} messages with their sole \
             recipient answered ahead of the upstream told 2xx, {} of them refused 4xx/5xx; {} \
             scenarios where a stray line in the place of an owed reply left the gate a reply \
             behind (nothing lost; README's limit)",
            self.messages,
            self.data_taken,
            self.bdat_taken,
            self.binary_mime_taken,
            self.binary_mime_refused,
            self.smuggled_answered,
            self.too_large,
            self.authenticated,
            self.wrong_password,
            self.late_data_answers,
            self.data_over_held_buffer_taken,
            self.data_with_rcpt,
            self.data_with_rcpt_no_recipient,
            self.ahead_taken,
            self.ahead_refused,
            self.out_of_turn_after_stray
        )
    }
}

/// Run one scenario and check the invariant. `Err` says what broke.
pub fn run(seed: u64, trace: Trace) -> Result<Tally, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(scenario(seed, trace))
}

async fn scenario(seed: u64, trace: Trace) -> Result<Tally, String> {
    let mut rng = Rng::new(seed);
    // Choices added with BDAT, from a generator of their own (the seeds keep their meaning).
    let mut added = rng.sibling();
    let session_timeout = *rng.pick(&SESSION_TIMEOUTS);
    let settings = Arc::new(settings(&mut rng, &mut added, session_timeout));
    let spec = Spec {
        pipelining: rng.chance(70),
        chunking: rng.chance(50),
        binarymime: added.chance(60),
        fault_percent: *rng.pick(&[0, 3, 8, 20]),
        dial_fault_percent: *rng.pick(&[0, 0, 10]),
        reply_timeout: Duration::from_secs(10),
        late_data_percent: 0,
    };
    // Sessions that authenticate, added later still: drawn after every draw of `added`.
    let mut auth_rng = added.fork();
    // Late answers to DATA, added after that: drawn from `added` after the fork.
    let spec = Spec {
        late_data_percent: *added.pick(&[0, 0, 30, 70]),
        ..spec
    };
    let throttle = submission::throttle();
    let mut tally = Tally::default();
    let store = Arc::new(Store::default());
    let dial = SimDial {
        spec,
        store: Arc::clone(&store),
        seed: rng.next(),
        dials: AtomicUsize::new(0),
        trace: trace.clone(),
    };
    trace.note(format!(
        "scenario {seed}: {spec:?}, session timeout {session_timeout:?}, upstream {:?}",
        settings.tenants[0].upstream
    ));
    let connector = Arc::new(Connector::with_dial(
        &settings.tenants[0].upstream,
        &settings.server.hostname,
        Box::new(dial),
    ));
    let (_phase_tx, phase) = tokio::sync::watch::channel(Phase::Running);
    let mut sent: Vec<Sent> = Vec::new();
    let sessions = rng.range(1, 3);
    for session in 0..sessions {
        // Now and then a pause between sessions, long enough for a pooled connection to be
        // checked with NOOP before reuse, or for the upstream to have sent something.
        if rng.chance(30) {
            tokio::time::sleep(Duration::from_millis(rng.below(5000))).await;
        }
        let (client_end, gate_end) = tokio::io::duplex(*rng.pick(&[512, 16 * 1024, 256 * 1024]));
        let peer = Peer {
            addr: SocketAddr::from(([127, 0, 0, 1], 40000 + session as u16)),
            early: Vec::new(),
        };
        let started = tokio::time::Instant::now();
        let auth = auth_rng.chance(10).then(|| auth_rng.chance(85));
        let door = match auth {
            None => Door::Relay,
            Some(_) => Door::Submission {
                implicit_tls: true,
                throttle: Arc::clone(&throttle),
            },
        };
        let gate = tokio::spawn(run_session_at(
            door,
            gate_end,
            peer,
            Arc::clone(&settings),
            connector.leg(),
            phase.clone(),
        ));
        let mut client = match auth {
            None => Client::new(client_end, rng.fork(), trace.clone()),
            Some(right) => {
                tally.authenticated += 1;
                tally.wrong_password += u64::from(!right);
                trace.note(format!(
                    "session {session}: implicit TLS, AUTH PLAIN (right password: {right})"
                ));
                let Some(tls) = submission::handshake(client_end).await else {
                    return Err(format!(
                        "session {session}: the implicit TLS handshake failed"
                    ));
                };
                let mut client = Client::new(tls, rng.fork(), trace.clone());
                client.auth = Some((submission::plain(right), right));
                client
            }
        };
        let outcome =
            tokio::time::timeout(session_timeout + END_SLACK, client.run(session as usize)).await;
        sent.append(&mut client.sent);
        if let Some(why) = client.broken.take() {
            return Err(format!("session {session}: {why}"));
        }
        drop(client);
        if outcome.is_err() {
            return Err(format!(
                "session {session}: the client got no reply within the session deadline"
            ));
        }
        match tokio::time::timeout(session_timeout + END_SLACK, gate).await {
            Err(_) => {
                return Err(format!(
                    "session {session} did not end within its deadline (hang)"
                ))
            }
            Ok(Err(e)) if e.is_panic() => return Err(format!("session {session} panicked: {e}")),
            Ok(_) => {}
        }
        let took = started.elapsed();
        if took > session_timeout + END_SLACK {
            return Err(format!("session {session} took {took:?}"));
        }
    }
    // Let every upstream finish what it was doing (late stray lines, slow replies).
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let violations = store.violations.lock().unwrap().clone();
    if let Some(v) = violations.first() {
        // The one limit no relay can see on the wire (README, "What the gate cannot
        // promise"): a stray line in the place of a reply still owed shifts every later reply
        // by one, and the gate, its replies all read as it sees it, sends its next command
        // while the upstream still owes an answer to DATA. Tolerated only then, and only
        // that; what the client was told is still checked below, as in every scenario.
        // On a connection that got such a stray line, and only there.
        let strays = store.strays_while_owed.lock().unwrap().clone();
        let out_of_turn = |v: &String| {
            let on_that_connection = strays.iter().any(|n| v.starts_with(&format!("up#{n}: ")));
            on_that_connection
                && (v.ends_with("text before the answer to DATA")
                    || v.contains("text after a refused DATA"))
        };
        if !violations.iter().all(out_of_turn) {
            return Err(format!("the gate broke the upstream's protocol: {v}"));
        }
        tally.out_of_turn_after_stray += 1;
    }
    let held = store.held.lock().unwrap().clone();
    check(&sent, &held)?;
    tally.count(&sent);
    tally.late_data_answers = store.late_data_answers.load(Ordering::Relaxed) as u64;
    tally.data_with_rcpt = store.data_with_rcpt.load(Ordering::Relaxed) as u64;
    tally.data_with_rcpt_no_recipient =
        store.data_with_rcpt_no_recipient.load(Ordering::Relaxed) as u64;
    Ok(tally)
}

/// The promise: a message the client was told 2xx for is held exactly once, for exactly the
/// recipients it was told 2xx, byte for byte (BDAT's octets as sent; DATA's un-stuffed);
/// nothing told 5xx is held; nothing is held that the client did not send. And a message with
/// a bare line break or a NUL but no `BODY=BINARYMIME` is never told 2xx nor held.
fn check(sent: &[Sent], held: &[Held]) -> Result<(), String> {
    let id_of = |h: &Held| -> Option<String> {
        let text = String::from_utf8_lossy(&h.text);
        text.lines()
            .find_map(|l| l.strip_prefix("X-Sim-Id: ").map(str::to_string))
    };
    for h in held {
        let Some(id) = id_of(h) else {
            return Err(format!("the upstream holds a message nobody sent: {h:?}"));
        };
        if !sent.iter().any(|s| s.id == id && s.text_sent) {
            return Err(format!(
                "the upstream holds message {id}, whose text was never sent"
            ));
        }
    }
    for s in sent {
        let copies: Vec<&Held> = held
            .iter()
            .filter(|h| id_of(h).as_deref() == Some(s.id.as_str()))
            .collect();
        for c in &copies {
            if let Some(extra) = c.rcpts.iter().find(|r| !s.accepted.contains(r)) {
                return Err(format!(
                    "message {}: the upstream holds it for {extra}, whom the client was not told 2xx",
                    s.id
                ));
            }
            if without_received(&c.text) != Some(&s.text[..]) {
                return Err(format!(
                    "message {}: the bytes held differ from the bytes sent",
                    s.id
                ));
            }
        }
        if s.unskippable && !copies.is_empty() {
            return Err(format!(
                "message {} had a BDAT chunk of a size the gate cannot skip and is held",
                s.id
            ));
        }
        if s.body == Body::Smuggled && !copies.is_empty() {
            return Err(format!(
                "message {} has a bare line break or NUL without BODY=BINARYMIME and is held",
                s.id
            ));
        }
        match s.final_code {
            Some(code) if s.body == Body::Smuggled && (200..300).contains(&code) => {
                return Err(format!(
                    "message {} has a bare line break or NUL without BODY=BINARYMIME and was answered {code}",
                    s.id
                ));
            }
            Some(code) if (200..300).contains(&code) => {
                if copies.len() != 1 {
                    return Err(format!(
                        "message {} was answered {code} and is held {} times",
                        s.id,
                        copies.len()
                    ));
                }
                let mut held_for = copies[0].rcpts.clone();
                let mut told = s.accepted.clone();
                held_for.sort();
                told.sort();
                if held_for != told {
                    return Err(format!(
                        "message {} was answered {code}: recipients told 2xx {told:?}, held for {held_for:?}",
                        s.id
                    ));
                }
            }
            Some(code) if code >= 500 && !copies.is_empty() => {
                return Err(format!("message {} was answered {code} but is held", s.id));
            }
            _ if copies.len() > 1 => {
                return Err(format!("message {} is held {} times", s.id, copies.len()));
            }
            _ => {}
        }
    }
    Ok(())
}
