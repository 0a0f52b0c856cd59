//! The command line: parse the arguments and dispatch to the command's module in [`relaygate::cli`].

use clap::{Parser, Subcommand};
use relaygate::cli::{self, check::CheckArgs};
use std::path::PathBuf;
use std::process::ExitCode;

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
        /// Write a `[[tenants]]` block of this name, the tables under it (one tenant of a gate
        /// in front of several).
        #[arg(long)]
        tenant: Option<String>,
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
    /// Tell the story of the transactions a JSON decision log holds for one message: who
    /// connected, how it was identified, the decision under both profiles, what the upstream
    /// said. Exit 1 when none matches.
    Trace {
        /// The JSON log (`[log] format = "json"`), `-` for standard input.
        logfile: PathBuf,
        /// A `Message-ID` (with or without `<>`), a session id, or an address (P1, From: or a
        /// recipient).
        key: String,
    },
    /// Read a password from standard input (one line) and print its argon2id PHC string, the
    /// `password_hash` of a user in the [submission] users file.
    Passwd,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the file and warn about relay pitfalls, each with its fix. Exit 1 on an error.
    Check {
        #[arg(long, default_value = "config/relaygate.toml")]
        config: PathBuf,
    },
    /// Print the effective configuration: the file with every default filled in, as TOML.
    /// Exit 2 when the file cannot be read or parsed.
    Show {
        #[arg(long, default_value = "config/relaygate.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve { config } => cli::serve::run(config),
        Command::Check(args) => cli::check::run(args),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => cli::config_check::run(config),
        Command::Config {
            command: ConfigCommand::Show { config },
        } => cli::config_show::run(config),
        Command::ImportExo {
            inbound_connectors,
            accepted_domains,
            tenant,
        } => cli::import_exo::run(inbound_connectors, accepted_domains, tenant),
        Command::Report { logfile, html } => cli::report::run(logfile, html),
        Command::Trace { logfile, key } => cli::trace::run(logfile, key),
        Command::Passwd => cli::passwd::run(),
    }
}
