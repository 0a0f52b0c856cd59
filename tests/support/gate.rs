//! The gate in the test's own process, on a loopback port: the library's server exactly as
//! `relaygate serve` runs it, minus the process (no signals, no log file), so a test can reload
//! it, shut it down and wait for it directly.

use super::config::{smtp_upstream, BASELINE_TENANT, HOSTNAME};
use super::upstream::Upstream;
use super::WAIT;
use relaygate::config::{Config, Settings};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A running gate; shut down when dropped.
pub struct Gate {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    /// The server itself: it returns once shutdown is over (every session ended).
    pub task: JoinHandle<()>,
    settings: watch::Sender<Arc<Settings>>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Gate {
    /// Serve `settings` on a fresh loopback port.
    pub async fn start(settings: Settings) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let (settings, rx) = watch::channel(Arc::new(settings));
        let task = tokio::spawn(relaygate::server::run_reloadable(
            vec![listener],
            rx,
            async {
                let _ = stopped.await;
            },
        ));
        Gate {
            addr,
            stop: Some(stop),
            task,
            settings,
        }
    }

    /// What SIGHUP does: new sessions get `settings`, running ones keep theirs.
    pub fn reload(&self, settings: Settings) {
        self.settings.send(Arc::new(settings)).unwrap();
    }

    /// What SIGTERM does: stop accepting, let transactions in flight finish.
    pub fn shut_down(&mut self) {
        self.stop.take().expect("shut down once").send(()).unwrap();
    }

    /// Wait (bounded) for the server to return after [`Gate::shut_down`].
    pub async fn ended(&mut self, what: &str) {
        timeout(WAIT, &mut self.task).await.expect(what).unwrap();
    }
}

/// Parse and validate a whole configuration; a test's own text must be valid.
pub fn settings_from(text: &str) -> Settings {
    Config::parse(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .validate()
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Start a gate named [`HOSTNAME`]: `server_extra` goes into `[server]`, `rest` is every other
/// section.
pub async fn start_gate(server_extra: &str, rest: &str) -> Gate {
    let text = format!("[server]\nhostname = \"{HOSTNAME}\"\n{server_extra}\n{rest}");
    Gate::start(settings_from(&text)).await
}

/// A gate for the baseline tenant that relays to the recording upstream `up`.
pub async fn relay_gate(up: &Upstream, server_extra: &str) -> Gate {
    start_gate(
        server_extra,
        &format!("{BASELINE_TENANT}\n{}", smtp_upstream(up.addr)),
    )
    .await
}

/// Check a refusal line: it starts with `expected` and ends with Exchange Online's suffix
/// ` [gate.contoso.com YYYY-MM-DDTHH:MM:SS.mmmZ 16HEX]`.
pub fn assert_exo_reply(reply: &str, expected: &str) {
    let line = reply.lines().last().unwrap_or("");
    assert!(
        line.starts_with(expected),
        "reply {reply:?} does not start with {expected:?}"
    );
    // The suffix is the last " [...]" of the line; any text between is the reply's own.
    let suffix = &line[line.rfind(" [").unwrap_or(expected.len())..];
    let b = suffix.as_bytes();
    let ok = suffix.len() == " [gate.contoso.com 2026-11-22T08:26:31.592Z 08DB72B25E50380B]".len()
        && suffix.starts_with(" [gate.contoso.com ")
        && suffix.ends_with(']')
        && b[23] == b'-'
        && b[26] == b'-'
        && b[29] == b'T'
        && b[38] == b'.'
        && b[42] == b'Z'
        && b[43] == b' '
        && suffix[44..60]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c));
    assert!(ok, "suffix {suffix:?} is not Exchange Online's shape");
}
