//! Listeners, admission, PROXY headers, graceful shutdown and reload.
//!
//! `run` takes the configuration as a watch channel and the shutdown signal as a future
//! (mini-redis style), so `main` wires them to SIGHUP and SIGTERM and tests drive them directly.
//! Every session reads the configuration once, when it starts: a reload changes new sessions,
//! never one in flight.

use crate::config::Settings;
use crate::observe::metrics::metrics;
use crate::proxy;
use crate::session::{run_session_at, Door, Peer, Phase, SharedThrottle};
use crate::stream::Prefixed;
use crate::submission::throttle::{AuthThrottle, ThrottleLimits};
use crate::upstream::{Connector, Legs};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, Notify};

/// Connections the kernel completes and holds for a listener until the accept loop takes them.
/// `TcpListener::bind` asks for 128, the standard library's figure: a burst of more clients
/// than that at once (printers reconnecting after a network blip, an application opening its
/// pool) while both cores are busy with TLS handshakes overflows it, and Linux then drops the
/// SYNs, so those clients wait a second or more for their retransmission before the gate sees
/// them (the WAN benchmark's 200 clients at once hit it). 1,024 holds a burst of the default
/// `max_connections`; the kernel caps it at `net.core.somaxconn` (4,096 by default).
pub const LISTEN_BACKLOG: u32 = 1024;

/// Bind every configured address; the first failure is returned with the address it concerns.
pub async fn bind(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, (SocketAddr, io::Error)> {
    let mut listeners = Vec::with_capacity(addrs.len());
    for addr in addrs {
        listeners.push(listen(*addr, LISTEN_BACKLOG).map_err(|e| (*addr, e))?);
    }
    Ok(listeners)
}

/// What `TcpListener::bind` does (`SO_REUSEADDR`, so a restart need not wait for TIME-WAIT),
/// with room for `backlog` connections not yet accepted ([`LISTEN_BACKLOG`] says why). Public
/// for the bench tools, which meet the same bursts.
pub fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Which kind of listener a socket is: the sessions it accepts know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// `[server] listen`: Exchange Online's MX, no AUTH.
    Relay,
    /// `[submission] listen`: STARTTLS, then AUTH (port 587 style).
    Submission,
    /// `[submission] implicit_tls_listen`: TLS from the first byte, then AUTH (port 465 style).
    SubmissionImplicitTls,
}

/// Every configured listener, each address with its kind, in configuration order.
pub fn configured_listeners(settings: &Settings) -> Vec<(SocketAddr, ListenerKind)> {
    let relay = settings
        .server
        .listen
        .iter()
        .map(|a| (*a, ListenerKind::Relay));
    let submission = settings.submission.iter().flat_map(|s| {
        let plain = s.listen.iter().map(|a| (*a, ListenerKind::Submission));
        let implicit = s
            .implicit_tls_listen
            .iter()
            .map(|a| (*a, ListenerKind::SubmissionImplicitTls));
        plain.chain(implicit)
    });
    relay.chain(submission).collect()
}

/// Sessions in progress, in total and per client address.
#[derive(Default)]
struct Admission {
    active: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    idle: Notify,
}

/// Holds a session's place; frees it when the session ends, however it ends.
struct Ticket {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    fn enter(self: &Arc<Self>, max: usize) -> Option<Ticket> {
        let mut n = self.active.load(Ordering::Relaxed);
        loop {
            if n >= max {
                return None;
            }
            match self
                .active
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    metrics().sessions_active.inc();
                    return Some(Ticket {
                        admission: Arc::clone(self),
                        ip: None,
                    });
                }
                Err(current) => n = current,
            }
        }
    }

    fn enter_ip(&self, ticket: &mut Ticket, ip: IpAddr, max: usize) -> bool {
        let mut map = self.per_ip.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.get(&ip).copied().unwrap_or(0);
        if n >= max {
            return false;
        }
        map.insert(ip, n + 1);
        ticket.ip = Some(ip);
        true
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = self
                .admission
                .per_ip
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
        metrics().sessions_active.dec();
        if self.admission.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.admission.idle.notify_waiters();
        }
    }
}

/// One configuration in force, with the runtime objects built from it: the upstream connectors
/// (and their pools) belong to the configuration that made them, so a reload starts new ones.
struct Generation {
    settings: Arc<Settings>,
    /// One per tenant, in the order of `settings.tenants`: each tenant's mail leaves with its
    /// own address and client certificate, and its connections are pooled apart.
    connectors: Vec<Arc<Connector>>,
}

/// The generation in force, built from the settings in force at the moment a client is
/// accepted. Built then, not by a task that watches the settings, so that once a reload has been
/// sent (and logged: "new sessions use them") no client accepted afterwards gets the previous
/// generation, nor a pooled upstream connection opened with its certificate.
struct Current {
    settings: watch::Receiver<Arc<Settings>>,
    generation: Mutex<Arc<Generation>>,
}

impl Current {
    fn new(settings: watch::Receiver<Arc<Settings>>) -> Current {
        let generation = Mutex::new(Generation::new(Arc::clone(&settings.borrow())));
        Current {
            settings,
            generation,
        }
    }

    /// The generation of the settings in force now: the one built last, unless a reload has
    /// replaced its settings since. The replaced one lives on only in the sessions it started
    /// (which keep their configuration, pool included) and goes, with its idle connections,
    /// when the last of them ends.
    fn get(&self) -> Arc<Generation> {
        let settings = Arc::clone(&self.settings.borrow());
        let mut generation = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        if !Arc::ptr_eq(&generation.settings, &settings) {
            *generation = Generation::new(settings);
        }
        Arc::clone(&generation)
    }
}

impl Generation {
    fn new(settings: Arc<Settings>) -> Arc<Generation> {
        let connectors = settings
            .tenants
            .iter()
            .map(|t| Arc::new(Connector::new(&t.upstream, &settings.server.hostname)))
            .collect();
        Arc::new(Generation {
            settings,
            connectors,
        })
    }
}

/// Run with a fixed configuration (tests, and callers without reload).
pub async fn run(
    listeners: Vec<TcpListener>,
    settings: Arc<Settings>,
    shutdown: impl Future<Output = ()>,
) {
    let (_tx, rx) = watch::channel(settings);
    run_reloadable(listeners, rx, shutdown).await
}

/// [`run_kinds`] with relay listeners only.
pub async fn run_reloadable(
    listeners: Vec<TcpListener>,
    settings: watch::Receiver<Arc<Settings>>,
    shutdown: impl Future<Output = ()>,
) {
    let relay = listeners
        .into_iter()
        .map(|l| (l, ListenerKind::Relay))
        .collect();
    run_kinds(relay, settings, shutdown).await
}

/// Accept clients until `shutdown` completes; then stop accepting, let sessions finish their
/// transactions for `shutdown_grace_secs` (idle ones are answered `421 4.3.2` at once), and
/// drop whatever is left. A dropped session's upstream loses its connection before the final
/// dot, so nothing half-received is ever delivered, and its client, never having had a 250,
/// keeps the message.
///
/// The AUTH throttle is one for the whole run: a reload does not forgive an address its
/// failures.
pub async fn run_kinds(
    listeners: Vec<(TcpListener, ListenerKind)>,
    settings: watch::Receiver<Arc<Settings>>,
    shutdown: impl Future<Output = ()>,
) {
    let throttle: SharedThrottle =
        Arc::new(Mutex::new(AuthThrottle::new(ThrottleLimits::default())));
    let admission = Arc::new(Admission::default());
    let (phase_tx, phase_rx) = watch::channel(Phase::Running);
    let current = Arc::new(Current::new(settings.clone()));
    let mut accept_tasks = tokio::task::JoinSet::new();
    for (listener, kind) in listeners {
        let door = match kind {
            ListenerKind::Relay => Door::Relay,
            ListenerKind::Submission | ListenerKind::SubmissionImplicitTls => Door::Submission {
                implicit_tls: kind == ListenerKind::SubmissionImplicitTls,
                throttle: Arc::clone(&throttle),
            },
        };
        accept_tasks.spawn(accept_loop(
            listener,
            door,
            Arc::clone(&current),
            Arc::clone(&admission),
            phase_rx.clone(),
        ));
    }
    shutdown.await;
    accept_tasks.abort_all();
    let grace = settings.borrow().server.shutdown_grace;
    let active = admission.active.load(Ordering::Acquire);
    tracing::info!(
        sessions = active,
        grace_secs = grace.as_secs(),
        "shutting down: no new connections"
    );
    let _ = phase_tx.send(Phase::Draining);
    let drained = tokio::time::timeout(grace, async {
        loop {
            let idle = admission.idle.notified();
            if admission.active.load(Ordering::Acquire) == 0 {
                break;
            }
            idle.await;
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            sessions = admission.active.load(Ordering::Acquire),
            "grace period over: closing the remaining sessions"
        );
        let _ = phase_tx.send(Phase::Stopped);
        // Give the dropped sessions a moment to close their sockets.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while admission.active.load(Ordering::Acquire) > 0 {
                let idle = admission.idle.notified();
                if admission.active.load(Ordering::Acquire) == 0 {
                    break;
                }
                idle.await;
            }
        })
        .await;
    }
}

/// Refuse a connection without spending a task on it: one non-blocking write, then close.
fn refuse(stream: TcpStream, hostname: &str, why: &str) {
    metrics().connections_refused.inc();
    let line = format!("421 4.7.0 {hostname} {why}, closing connection\r\n");
    let _ = stream.try_write(line.as_bytes());
}

async fn accept_loop(
    listener: TcpListener,
    door: Door,
    generation: Arc<Current>,
    admission: Arc<Admission>,
    phase: watch::Receiver<Phase>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        metrics().connections.inc();
        let current = generation.get();
        let server = &current.settings.server;
        let Some(mut ticket) = admission.enter(server.max_connections) else {
            tracing::info!(peer = %addr, "refused: max_connections reached");
            refuse(stream, &server.hostname, "Too many connections");
            continue;
        };
        // Behind a PROXY header the TCP peer is the load balancer: the per-address limit is
        // applied to the real client once the header has been read.
        if server.proxy_protocol.is_none()
            && !admission.enter_ip(&mut ticket, addr.ip(), server.max_connections_per_ip)
        {
            tracing::info!(peer = %addr, "refused: max_connections_per_ip reached");
            refuse(
                stream,
                &server.hostname,
                "Too many connections from your address",
            );
            continue;
        }
        let _ = stream.set_nodelay(true);
        let admission = Arc::clone(&admission);
        let session_phase = phase.clone();
        let mut phase = phase.clone();
        let door = door.clone();
        tokio::spawn(async move {
            let stopped = async {
                let _ = phase.wait_for(|p| *p == Phase::Stopped).await;
            };
            tokio::select! {
                _ = serve_connection(door, stream, addr, current, admission, ticket, session_phase) => {}
                _ = stopped => {}
            }
        });
    }
}

async fn serve_connection(
    door: Door,
    mut stream: TcpStream,
    addr: SocketAddr,
    generation: Arc<Generation>,
    admission: Arc<Admission>,
    mut ticket: Ticket,
    phase: watch::Receiver<Phase>,
) {
    let settings = &generation.settings;
    let server = &settings.server;
    let (peer, early) = match &server.proxy_protocol {
        None => (addr, Vec::new()),
        Some(trusted) => {
            match proxy::read_header(&mut stream, addr, trusted, server.proxy_header_timeout).await
            {
                Ok((client, rest)) => {
                    if !admission.enter_ip(&mut ticket, client.ip(), server.max_connections_per_ip)
                    {
                        tracing::info!(peer = %client, via = %addr, "refused: max_connections_per_ip reached");
                        refuse(
                            stream,
                            &server.hostname,
                            "Too many connections from your address",
                        );
                        return;
                    }
                    (client, rest)
                }
                Err(e) => {
                    // Closed without a word: whoever sent this is not a load balancer we trust.
                    tracing::warn!(peer = %addr, error = %e, "PROXY header refused");
                    return;
                }
            }
        }
    };
    let upstream = Legs::of(&generation.connectors);
    let settings = Arc::clone(settings);
    if let Door::Submission {
        implicit_tls: true, ..
    } = door
    {
        // What followed a PROXY header is the start of the TLS handshake, not SMTP.
        let stream = Prefixed::new(early, stream);
        let peer = Peer {
            addr: peer,
            early: Vec::new(),
        };
        run_session_at(door, stream, peer, settings, upstream, phase).await;
    } else {
        let peer = Peer { addr: peer, early };
        run_session_at(door, stream, peer, settings, upstream, phase).await;
    }
    drop(ticket);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_connections_waits_in_the_backlog_not_in_syn_retransmission() {
        // Nothing accepts: every connection must still complete its handshake at once, held
        // by the kernel. With the standard library's backlog of 128, the connections beyond
        // it would sit in SYN retransmission (1 s, 3 s, 7 s, ...) and never complete here.
        let listeners = bind(&["127.0.0.1:0".parse().unwrap()]).await.unwrap();
        let addr = listeners[0].local_addr().unwrap();
        let burst = 300;
        let connects: Vec<_> = (0..burst)
            .map(|_| tokio::spawn(TcpStream::connect(addr)))
            .collect();
        let mut held = Vec::with_capacity(burst);
        for c in connects {
            let stream = tokio::time::timeout(Duration::from_secs(30), c)
                .await
                .expect("a connection left in SYN retransmission: the backlog overflowed")
                .unwrap()
                .unwrap();
            held.push(stream);
        }
        assert_eq!(held.len(), burst);
    }
}
