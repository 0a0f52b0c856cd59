//! `relaygate check`: one transaction explained the way Microsoft's compliance guide walks it.
//!
//! An admin asks "will this printer / application / NDR still relay?" before Exchange Online
//! answers it with a 5.7.64. The walk is: which connector matched and by what (condition 2),
//! which branch of condition 1 held or why none did, what each recipient gets and the exact
//! reply line. Both rule generations are shown unless one is asked for, and the November 2023
//! change is named when it is what makes the difference.
//!
//! [`explain`] computes the walk (the decisions come from the policy, their words from
//! [`crate::policy::wording`]); [`render`] lays it out as text or JSON.

mod explain;
mod render;

pub use explain::Explanation;

use super::load_settings;
use crate::config::Settings;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// What the admin describes: the sending server and one transaction.
#[derive(Debug, Clone)]
pub struct Facts {
    pub peer_ip: IpAddr,
    /// Certificate names the policy may use (trusted); empty when none or untrusted.
    pub certificate_names: Vec<String>,
    /// How the certificate came about, for the report: `None` when no certificate was given.
    pub certificate_note: Option<String>,
    /// The `MAIL FROM` address; empty for the null sender `<>`.
    pub mail_from: String,
    /// The `From:` header address, if any.
    pub header_from: Option<String>,
    pub recipients: Vec<String>,
}

/// An address as an admin types it: `app@contoso.com`, `<app@contoso.com>`,
/// `"App" <app@contoso.com>`, or `<>` / empty for the null sender.
pub fn bare_address(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    inner.trim().to_string()
}

/// Why `--cert` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read the certificate: {0}")]
    Read(String),
    #[error("the file holds no PEM certificate")]
    Empty,
}

/// The names a client certificate gives the policy, checked against the configured `client_ca`
/// exactly as during a STARTTLS handshake: (trusted names, a note on the outcome).
pub fn certificate_identity(
    settings: &Settings,
    path: &std::path::Path,
) -> Result<(Vec<String>, Option<String>), CertificateError> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, UnixTime};
    let pem = crate::files::read(path, crate::files::PEM)
        .map_err(|e| CertificateError::Read(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Read(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertificateError::Empty);
    }
    let (names, trusted, reason) = match &settings.tls {
        None => (
            crate::tls::certificate_names(&chain[0]),
            false,
            "no [tls] section: the gate offers no STARTTLS".to_string(),
        ),
        Some(tls) => {
            let identity = tls.check_chain(&chain, UnixTime::now());
            (
                identity.names,
                identity.trusted,
                identity.untrusted_reason.unwrap_or_default(),
            )
        }
    };
    let shown = names.join(", ");
    if trusted {
        Ok((names, Some(format!("{shown} (trusted by tls.client_ca)"))))
    } else {
        Ok((
            Vec::new(),
            Some(format!(
                "{shown}: NOT trusted ({reason}), so it is no identity"
            )),
        ))
    }
}

/// `relaygate check`'s arguments.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "config/relaygate.toml")]
    pub config: PathBuf,
    /// The sending server's address, as Exchange Online would see it.
    #[arg(long)]
    pub ip: std::net::IpAddr,
    /// A name of the client certificate (CN or SAN), taken as trusted. Repeatable.
    #[arg(long = "cert-name")]
    pub cert_names: Vec<String>,
    /// A client certificate (PEM, chain leaf first), checked against [tls] client_ca like a
    /// real handshake: its names count only when it is trusted.
    #[arg(long = "cert", conflicts_with = "cert_names")]
    pub cert: Option<PathBuf>,
    /// MAIL FROM address; `<>` or empty for the null sender.
    #[arg(long, allow_hyphen_values = true)]
    pub mail_from: String,
    /// The From: header address.
    #[arg(long)]
    pub header_from: Option<String>,
    /// A recipient. Repeatable.
    #[arg(long = "rcpt", required = true)]
    pub rcpts: Vec<String>,
    /// Show one profile only (`exo-2023` or `exo-legacy`); the exit status follows it.
    #[arg(long)]
    pub profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `relaygate check`: explain one transaction; exit 0 when every recipient is accepted, 1
/// otherwise, 2 on error.
pub fn run(args: CheckArgs) -> ExitCode {
    use crate::policy::Profile;
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
        Some(path) => match certificate_identity(&settings, path) {
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
                .map(|n| crate::policy::normalise(n))
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
