//! The command line: parse arguments, load and validate the configuration, run.

use clap::{Parser, Subcommand};
use relaygate::config::{Config, LogFormat, Settings};
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

fn serve(config: PathBuf) -> ExitCode {
    let settings = match Config::load(&config).and_then(|c| c.validate()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("relaygate: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
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
        tokio::spawn(reload_on_sighup(config.clone(), tx));
        relaygate::server::run_reloadable(listeners, rx, shutdown_signal()).await;
        tracing::info!("relaygate stopped");
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => serve(config),
    }
}
