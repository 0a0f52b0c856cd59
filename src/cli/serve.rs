//! `relaygate serve`: load the configuration, set up logging, the admin endpoint, signals
//! (SIGTERM drains, SIGHUP reloads) and the listeners, then run until told to stop.

use crate::config::{Config, LogFormat, Settings, UpstreamSettings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Keeps the configuration in force current: on SIGHUP the whole file is read again; when one
/// of its certificate, key or CA files changes (an ACME renewal, a secret update), the same
/// configuration is loaded again with the new files. Either way new sessions get the result and
/// running ones keep theirs; a configuration or set of files that does not load is logged and
/// the running one stays. Also publishes the certificates' expiry (metric, log, readiness).
async fn keep_current(
    path: PathBuf,
    mut config: Config,
    tx: tokio::sync::watch::Sender<Arc<Settings>>,
    health: Option<Arc<crate::observe::http::Health>>,
) {
    use crate::certs::{self, expiry};
    let mut files = certs::files(&config);
    let mut watch = certs::Watch::new(&files);
    let mut certificates = expiry::inspect_all(&files);
    expiry::publish(&certificates);
    let mut warnings = expiry::Warnings::default();
    let mut hangups = Hangups::install();
    let mut tick = tokio::time::interval(certs::POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = expiry::now();
        warnings.check(&certificates, now);
        if let Some(health) = &health {
            health.set_certificates(
                certificates
                    .iter()
                    .map(|c| (c.days_left(now) < expiry::WARN_BEFORE_DAYS, c.describe(now)))
                    .collect(),
            );
        }
        let loaded = tokio::select! {
            () = hangups.next() => match Config::load(&path).and_then(|c| Ok((c.validate()?, c))) {
                Ok((new, source)) => {
                    warn_what_needs_a_restart(&new, &tx.borrow());
                    config = source;
                    files = certs::files(&config);
                    watch.reset(&files);
                    Some((new, "configuration reloaded"))
                }
                Err(e) => {
                    tracing::error!(config = %path.display(), error = %e, "reload failed, keeping the running configuration");
                    None
                }
            },
            _ = tick.tick() => {
                if !watch.poll(&files) {
                    continue;
                }
                match config.validate() {
                    Ok(new) => Some((new, "certificate files changed: reloaded, new sessions use them")),
                    Err(e) => {
                        tracing::warn!(config = %path.display(), error = %e, "certificate files changed but do not load: keeping the running ones (tried again when the files change again)");
                        None
                    }
                }
            }
        };
        if let Some((new, said)) = loaded {
            let _ = tx.send(Arc::new(new));
            // Logged once sent: every client accepted from now on gets the new configuration
            // (and a fresh upstream pool), so the line is what an admin, or a test, may wait for.
            tracing::info!(config = %path.display(), "{said}");
            certificates = expiry::inspect_all(&files);
            expiry::publish(&certificates);
        }
    }
}

/// What a reload cannot change, said so.
fn warn_what_needs_a_restart(new: &Settings, old: &Settings) {
    if new.admin != old.admin {
        tracing::warn!("[admin] changed: restart relaygate to apply it");
    }
    let submission_listeners = |s: &Settings| {
        s.submission
            .as_ref()
            .map(|s| (s.listen.clone(), s.implicit_tls_listen.clone()))
    };
    if submission_listeners(new) != submission_listeners(old) {
        tracing::warn!(
            "[submission] listeners changed: restart relaygate to listen on the new addresses"
        );
    }
    if new.server.listen != old.server.listen {
        tracing::warn!("server.listen changed: restart relaygate to listen on the new addresses");
    }
}

/// SIGHUP, as a stream that never ends where there is no such signal (or no handler).
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn install() -> Hangups {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signal = signal(SignalKind::hangup()).ok();
            if signal.is_none() {
                tracing::warn!("cannot install the SIGHUP handler: reload is unavailable");
            }
            Hangups { signal }
        }
        #[cfg(not(unix))]
        Hangups {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Raise the soft open-files limit to the hard one and return it. Each relayed session holds
/// two sockets, and container runtimes and shells often start processes at a soft limit of
/// 1024 while allowing far more. (The `rlimit` crate does the get/setrlimit dance, and on
/// macOS also respects `kern.maxfilesperproc`.)
fn raise_open_files_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

/// At start, before listening, clear what a killed gate left in a directory upstream's `.tmp/`
/// (never acknowledged to a client, so nothing is lost). Not on SIGHUP: the sessions of the
/// running configuration may have their temporary files open there.
fn remove_stale_temporary_files(settings: &Settings) {
    for tenant in &settings.tenants {
        if let UpstreamSettings::Directory { path } = &tenant.upstream {
            remove_stale_temporary_files_in(path);
        }
    }
}

fn remove_stale_temporary_files_in(path: &std::path::Path) {
    let tmp = path.join(".tmp");
    match crate::upstream::DirectoryLeg::remove_stale_temporary_files(path) {
        Ok(0) => {}
        Ok(removed) => tracing::info!(
            removed,
            path = %tmp.display(),
            "removed the temporary files of messages a previous run never finished (none was acknowledged to a client)"
        ),
        // Not fatal: writing there would fail too, and the readiness probe says so.
        Err(e) => {
            tracing::warn!(path = %tmp.display(), error = %e, "cannot remove stale temporary files")
        }
    }
}

/// Run the gate on the configuration at `config` until SIGTERM or SIGINT.
pub fn run(config: PathBuf) -> ExitCode {
    // The file as written is kept: a certificate renewal reloads it with the new files.
    let (settings, source) = match Config::load(&config).and_then(|c| Ok((c.validate()?, c))) {
        Ok((s, c)) => (Arc::new(s), c),
        Err(e) => {
            eprintln!("relaygate: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    remove_stale_temporary_files(&settings);
    if let Some(files) = raise_open_files_limit() {
        // Two sockets per session, plus listeners, pooled upstream connections and files.
        let needed = settings.server.max_connections as u64 * 2 + 64;
        if files < needed {
            tracing::warn!(
                open_files = files,
                needed,
                "the open-files limit is below what server.max_connections needs: raise it (ulimit -n, LimitNOFILE=, --ulimit nofile=)"
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relaygate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let configured = crate::server::configured_listeners(&settings);
        let addrs: Vec<_> = configured.iter().map(|(a, _)| *a).collect();
        let listeners = match crate::server::bind(&addrs).await {
            Ok(l) => l,
            Err((addr, e)) => {
                eprintln!("relaygate: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for (l, (_, kind)) in listeners.iter().zip(&configured) {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, listener = ?kind, config = %config.display(), profile = settings.defaults.profile.as_str(), tenants = settings.tenants.len(), "relaygate listening");
            }
        }
        let listeners: Vec<_> = listeners
            .into_iter()
            .zip(configured.iter().map(|(_, k)| *k))
            .collect();
        let (tx, rx) = tokio::sync::watch::channel(Arc::clone(&settings));
        let health = match settings.admin {
            None => None,
            Some(admin) => {
                use crate::observe::http;
                let listener = match tokio::net::TcpListener::bind(admin.listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("relaygate: cannot listen on {} (admin.listen): {e}", admin.listen);
                        return ExitCode::FAILURE;
                    }
                };
                tracing::info!(addr = %admin.listen, "admin endpoint listening (/metrics, /health/live, /health/ready)");
                let health = http::Health::new(admin.probe_interval);
                health.set_listeners_bound();
                health.set_config_loaded();
                tokio::spawn(http::serve(listener, Arc::clone(&health)));
                tokio::spawn(probe_loop(Arc::clone(&health), rx.clone()));
                Some(health)
            }
        };
        tokio::spawn(keep_current(config.clone(), source, tx, health.clone()));
        let shutdown = async move {
            shutdown_signal().await;
            if let Some(h) = health {
                h.set_draining();
            }
        };
        crate::server::run_kinds(listeners, rx, shutdown).await;
        tracing::info!("relaygate stopped");
        ExitCode::SUCCESS
    })
}

/// Probe every tenant's upstream: the first failure, naming its tenant when there are several.
async fn probe_tenants(settings: &Settings) -> Result<(), String> {
    for tenant in &settings.tenants {
        crate::upstream::probe(&tenant.upstream, &settings.server.hostname)
            .await
            .map_err(|e| match tenant.name() {
                "" => e,
                name => format!("tenant \"{name}\": {e}"),
            })?;
    }
    Ok(())
}

/// Each configured upstream address's state as the failover has learned it (and the gauge
/// `relaygate_upstream_address_up` set from it, so it moves even when no mail flows).
fn address_states(settings: &Settings) -> Vec<(bool, String, String)> {
    let book = crate::upstream::failover::book();
    let mut states = Vec::new();
    for tenant in &settings.tenants {
        if let crate::config::UpstreamSettings::Smtp(s) = &tenant.upstream {
            for a in &s.addresses {
                book.publish(&a.address);
                let (up, detail) = book.state(&a.address);
                states.push((up, a.address.clone(), detail));
            }
        }
    }
    states
}

/// Probe the upstream of the configuration in force, every `probe_interval`, forever, for
/// `/health/ready`. Wired here, where the upstream and the endpoint meet, so the observation
/// module does not depend on the upstream leg it observes.
async fn probe_loop(
    health: Arc<crate::observe::http::Health>,
    settings: tokio::sync::watch::Receiver<Arc<Settings>>,
) {
    loop {
        let current = Arc::clone(&settings.borrow());
        let result = probe_tenants(&current).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e, "upstream probe failed: /health/ready answers 503");
        }
        health.record_probe(result);
        health.record_upstream_addresses(address_states(&current));
        tokio::time::sleep(health.probe_interval()).await;
    }
}
