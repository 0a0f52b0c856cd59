//! The command line: parse arguments, load and validate the configuration, run.

use clap::{Parser, Subcommand};
use relaygate::config::{Config, LogFormat, Settings, UpstreamSettings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "relaygate",
    version,
    about = "SMTP gate that applies Exchange Online's relay rules before the cloud does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gate.
    Serve {
        /// Configuration file.
        #[arg(long, default_value = "config/relaygate.toml")]
        config: PathBuf,
    },
    /// Explain the decision for one transaction: connectors, conditions 1 and 2, each
    /// recipient's reply. Exit 0 when every recipient is accepted, 1 otherwise, 2 on error.
    Check(CheckArgs),
    /// Work with the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Turn `Get-InboundConnector | ConvertTo-Json -Depth 5` and `Get-AcceptedDomain |
    /// ConvertTo-Json` output into relaygate's [[accepted_domains]] and [[inbound_connectors]].
    ImportExo {
        /// JSON from `Get-InboundConnector | ConvertTo-Json -Depth 5`.
        #[arg(long)]
        inbound_connectors: Option<PathBuf>,
        /// JSON from `Get-AcceptedDomain | ConvertTo-Json`.
        #[arg(long)]
        accepted_domains: Option<PathBuf>,
    },
    /// Group an audit run's JSON decision log into flows, breaking ones first. Exit 1 when
    /// some flow is refused under exo-2023.
    Report {
        /// The JSON log (`[log] format = "json"`), `-` for standard input.
        logfile: PathBuf,
        /// Also write a self-contained HTML report with a chart per flow.
        #[arg(long)]
        html: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the file and warn about relay pitfalls, each with its fix. Exit 1 on an error.
    Check {
        #[arg(long, default_value = "config/relaygate.toml")]
        config: PathBuf,
    },
}

#[derive(clap::Args)]
struct CheckArgs {
    #[arg(long, default_value = "config/relaygate.toml")]
    config: PathBuf,
    /// The sending server's address, as Exchange Online would see it.
    #[arg(long)]
    ip: std::net::IpAddr,
    /// A name of the client certificate (CN or SAN), taken as trusted. Repeatable.
    #[arg(long = "cert-name")]
    cert_names: Vec<String>,
    /// A client certificate (PEM, chain leaf first), checked against [tls] client_ca like a
    /// real handshake: its names count only when it is trusted.
    #[arg(long = "cert", conflicts_with = "cert_names")]
    cert: Option<PathBuf>,
    /// MAIL FROM address; `<>` or empty for the null sender.
    #[arg(long, allow_hyphen_values = true)]
    mail_from: String,
    /// The From: header address.
    #[arg(long)]
    header_from: Option<String>,
    /// A recipient. Repeatable.
    #[arg(long = "rcpt", required = true)]
    rcpts: Vec<String>,
    /// Show one profile only (`exo-2023` or `exo-legacy`); the exit status follows it.
    #[arg(long)]
    profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

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

/// SIGHUP: re-read and validate the configuration and certificates. On success new sessions
/// use it (running ones keep theirs); on failure the error is logged and the old one stays.
async fn reload_on_sighup(path: PathBuf, tx: tokio::sync::watch::Sender<Arc<Settings>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot install the SIGHUP handler: reload is unavailable");
            return;
        };
        while hup.recv().await.is_some() {
            match Config::load(&path).and_then(|c| c.validate()) {
                Ok(new) => {
                    if new.admin != tx.borrow().admin {
                        tracing::warn!("[admin] changed: restart relaygate to apply it");
                    }
                    if new.server.listen != tx.borrow().server.listen {
                        tracing::warn!("server.listen changed: restart relaygate to listen on the new addresses");
                    }
                    tracing::info!(config = %path.display(), "configuration reloaded");
                    let _ = tx.send(Arc::new(new));
                }
                Err(e) => {
                    tracing::error!(config = %path.display(), error = %e, "reload failed, keeping the running configuration")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, tx);
}

/// Raise the soft open-files limit to the hard one and return it. Each relayed session holds
/// two sockets, and container runtimes and shells often start processes at a soft limit of
/// 1024 while allowing far more.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // rlim_t is u64 on Linux but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

/// At start, before listening, clear what a killed gate left in a directory upstream's `.tmp/`
/// (never acknowledged to a client, so nothing is lost). Not on SIGHUP: the sessions of the
/// running configuration may have their temporary files open there.
fn remove_stale_temporary_files(settings: &Settings) {
    let UpstreamSettings::Directory { path } = &settings.upstream else {
        return;
    };
    let tmp = path.join(".tmp");
    match relaygate::upstream::DirectoryLeg::remove_stale_temporary_files(path) {
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

fn serve(config: PathBuf) -> ExitCode {
    let settings = match load_settings(&config) {
        Ok(s) => Arc::new(s),
        Err(code) => return code,
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
        let listeners = match relaygate::server::bind(&settings.server.listen).await {
            Ok(l) => l,
            Err((addr, e)) => {
                eprintln!("relaygate: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                tracing::info!(%addr, config = %config.display(), profile = settings.policy.profile.as_str(), "relaygate listening");
            }
        }
        let (tx, rx) = tokio::sync::watch::channel(Arc::clone(&settings));
        let health = match settings.admin {
            None => None,
            Some(admin) => {
                use relaygate::admin::http;
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
                tokio::spawn(http::probe_loop(Arc::clone(&health), rx.clone()));
                Some(health)
            }
        };
        tokio::spawn(reload_on_sighup(config.clone(), tx));
        let shutdown = async move {
            shutdown_signal().await;
            if let Some(h) = health {
                h.set_draining();
            }
        };
        relaygate::server::run_reloadable(listeners, rx, shutdown).await;
        tracing::info!("relaygate stopped");
        ExitCode::SUCCESS
    })
}

/// Load and validate a configuration before anything runs; exit status 2 when it fails.
fn load_settings(config: &std::path::Path) -> Result<Settings, ExitCode> {
    Config::load(config)
        .and_then(|c| c.validate())
        .map_err(|e| {
            eprintln!("relaygate: {e}");
            ExitCode::from(2)
        })
}

fn check(args: CheckArgs) -> ExitCode {
    use relaygate::admin::check::{bare_address, Explanation, Facts};
    use relaygate::policy::Profile;
    let profile = match args
        .profile
        .as_deref()
        .map(str::parse::<Profile>)
        .transpose()
    {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "relaygate: --profile {:?}: {why}",
                args.profile.unwrap_or_default()
            );
            return ExitCode::from(2);
        }
    };
    let settings = match load_settings(&args.config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (certificate_names, certificate_note) = match &args.cert {
        Some(path) => match relaygate::admin::check::certificate_identity(&settings, path) {
            Ok(identity) => identity,
            Err(e) => {
                eprintln!("relaygate: --cert {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None if args.cert_names.is_empty() => (Vec::new(), None),
        None => {
            let names: Vec<String> = args
                .cert_names
                .iter()
                .map(|n| relaygate::policy::normalise(n))
                .collect();
            let note = format!(
                "{} (given with --cert-name, taken as trusted)",
                names.join(", ")
            );
            (names, Some(note))
        }
    };
    let facts = Facts {
        peer_ip: args.ip,
        certificate_names,
        certificate_note,
        mail_from: bare_address(&args.mail_from),
        header_from: args.header_from.as_deref().map(bare_address),
        recipients: args.rcpts.iter().map(|r| bare_address(r)).collect(),
    };
    let explanation = Explanation::new(&settings, &facts, profile);
    if args.json {
        println!("{:#}", explanation.render_json());
    } else {
        print!("{}", explanation.render_text());
    }
    ExitCode::from(explanation.exit_status())
}

fn config_check(config: PathBuf) -> ExitCode {
    use relaygate::admin::config_check::{check, Severity};
    let findings = check(&config);
    for f in &findings {
        println!("{f}");
    }
    let errors = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    println!(
        "{}: {} error(s), {} warning(s)",
        config.display(),
        errors,
        findings.len() - errors
    );
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn import_exo(inbound_connectors: Option<PathBuf>, accepted_domains: Option<PathBuf>) -> ExitCode {
    use relaygate::admin::import_exo::{Importer, Note, NoteKind};
    if inbound_connectors.is_none() && accepted_domains.is_none() {
        eprintln!("relaygate: give --inbound-connectors and/or --accepted-domains");
        return ExitCode::from(2);
    }
    let mut importer = Importer::new();
    // Unsupported properties change mail flow: each one goes to the terminal. Ignored ones
    // (metadata, defaults) are only counted here, not kept; the TOML's comments list them all.
    let mut unsupported = Vec::new();
    let mut ignored = 0;
    let mut on_note = |n: Note| match n.kind {
        NoteKind::Unsupported => unsupported.push(n),
        NoteKind::Ignored => ignored += 1,
    };
    // Domains first: their tables come first in the TOML.
    for (path, domains) in [(accepted_domains, true), (inbound_connectors, false)] {
        let Some(path) = path else { continue };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("relaygate: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        };
        let input = std::io::BufReader::with_capacity(
            64 * 1024,
            relaygate::files::Limited::new(file, relaygate::files::EXCHANGE_EXPORT),
        );
        let read = if domains {
            importer.accepted_domains(input, &mut on_note)
        } else {
            importer.inbound_connectors(input, &mut on_note)
        };
        if let Err(e) = read {
            eprintln!("relaygate: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    // Printed only once every input is read: an error leaves no partial configuration.
    print!("{}", importer.finish());
    for n in &unsupported {
        eprintln!("{n}");
    }
    eprintln!("relaygate import-exo: {ignored} properties ignored (no bearing on relay; listed in the output's comments)");
    if unsupported.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn report(logfile: PathBuf, html: Option<PathBuf>) -> ExitCode {
    use relaygate::admin::report;
    let loaded = if logfile.as_os_str() == "-" {
        report::read(std::io::stdin().lock())
    } else {
        report::load(&logfile)
    };
    let r = match loaded {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relaygate: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", r.render_text());
    if let Some(path) = html {
        if let Err(e) = std::fs::write(&path, r.render_html()) {
            eprintln!("relaygate: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        eprintln!("relaygate: wrote {}", path.display());
    }
    if r.breaking_flows() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(config),
        Command::Check(args) => check(args),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config_check(config),
        Command::ImportExo {
            inbound_connectors,
            accepted_domains,
        } => import_exo(inbound_connectors, accepted_domains),
        Command::Report { logfile, html } => report(logfile, html),
    }
}
