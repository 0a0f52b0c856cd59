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
    /// The session is under TLS (a Partner connector's `RequireTls` asks for it).
    pub tls: bool,
    /// Why `tls` is what it is: given, implied by a certificate, or the gate's default.
    pub tls_note: String,
    /// The `MAIL FROM` address; empty for the null sender `<>`.
    pub mail_from: String,
    /// The `From:` header address, if any.
    pub header_from: Option<String>,
    pub recipients: Vec<String>,
    /// `--user`: the authenticated user, and whether its `allowed_senders` cover `mail_from`.
    pub user: Option<(String, bool)>,
    /// When a `[[rewrite]]` rule applies: its index and the sender as the client gives it
    /// (`mail_from` is then the rule's `new_sender`, what the gate judges and sends).
    pub rewritten_from: Option<(usize, String)>,
}

impl Facts {
    /// The authenticated user as the policy sees it.
    pub fn submitter(&self) -> Option<crate::policy::Submitter<'_>> {
        self.user
            .as_ref()
            .map(|(user, may_send_as)| crate::policy::Submitter {
                user,
                may_send_as: *may_send_as,
            })
    }
}

/// The sender as the gate would judge and send it: a `[[rewrite]]` rule's `new_sender` when
/// one applies (with the rule's index and the sender given), else the sender given.
fn rewritten(
    settings: &Settings,
    ip: IpAddr,
    certificate_names: &[String],
    user: Option<&str>,
    mail_from: String,
) -> (String, Option<(usize, String)>) {
    let client = crate::policy::rewrite::RewriteClient {
        ip,
        certificate_names,
        user,
    };
    match (settings.rewrites.iter().enumerate()).find(|(_, r)| r.matches(&client, &mail_from)) {
        Some((index, rule)) => (rule.new_sender.clone(), Some((index, mail_from))),
        None => (mail_from, None),
    }
}

/// `--user NAME`: the user of the configuration's users file, and whether it may send as
/// `mail_from`.
fn check_user(settings: &Settings, name: &str, mail_from: &str) -> Result<(String, bool), String> {
    let Some(submission) = &settings.submission else {
        return Err(format!(
            "--user {name}: the configuration has no submission listener ([submission])"
        ));
    };
    match submission.users.get(name) {
        Some(user) => Ok((user.name.clone(), user.may_send_as(mail_from))),
        None => Err(format!(
            "--user {name}: no such user in {}",
            submission.users_file.display()
        )),
    }
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

/// Whether the sending server is taken to use STARTTLS, and why: `asked` is `--tls` (`Some(true)`)
/// or `--no-tls` (`Some(false)`). Without either, a client certificate implies TLS (it is only
/// presented in STARTTLS); else a sender is taken to use STARTTLS exactly when the gate offers
/// it, as mail servers do.
pub fn tls_fact(asked: Option<bool>, certificate: bool, offered: bool) -> (bool, String) {
    match asked {
        Some(true) if offered => (true, "given with --tls".into()),
        Some(true) => (
            true,
            "given with --tls, but the gate offers no STARTTLS (no [tls] section), so no real session is".into(),
        ),
        Some(false) => (false, "given with --no-tls".into()),
        None if certificate => (
            true,
            "a client certificate is only presented in STARTTLS".into(),
        ),
        None if offered => (
            true,
            "assumed, since the gate offers STARTTLS; --no-tls for a sender that does not use it"
                .into(),
        ),
        None => (
            false,
            "the gate offers no STARTTLS (no [tls] section)".into(),
        ),
    }
}

/// The index of the tenant `--tenant` names (exactly, as `[[tenants]] name` spells it).
fn tenant_index(settings: &Settings, name: &str) -> Result<usize, String> {
    settings
        .tenants
        .iter()
        .position(|t| !t.name().is_empty() && t.name() == name)
        .ok_or_else(|| {
            let names: Vec<String> = settings
                .tenants
                .iter()
                .filter(|t| !t.name().is_empty())
                .map(|t| format!("{:?}", t.name()))
                .collect();
            if names.is_empty() {
                format!("--tenant {name:?}: the configuration has no [[tenants]]")
            } else {
                format!(
                    "--tenant {name:?}: no such tenant (the configuration has {})",
                    names.join(", ")
                )
            }
        })
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
    /// The server sends under TLS (STARTTLS). Default: when the gate offers STARTTLS ([tls])
    /// or a certificate is given.
    #[arg(long, conflicts_with = "no_tls")]
    pub tls: bool,
    /// The server sends without TLS (and so without a certificate).
    #[arg(long = "no-tls", conflicts_with_all = ["cert_names", "cert"])]
    pub no_tls: bool,
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
    /// Judge the transaction as this tenant's (`[[tenants]] name`). Default: the tenant is
    /// attributed from the facts, as the gate does (certificate, P1 domain, first recipient).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Judge the transaction as sent by this user of `[submission] users_file`, authenticated
    /// on a submission listener: the send-as check, then relay as for an authenticated mailbox.
    #[arg(long)]
    pub user: Option<String>,
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
    let tenant = match args
        .tenant
        .as_deref()
        .map(|n| tenant_index(&settings, n))
        .transpose()
    {
        Ok(t) => t,
        Err(why) => {
            eprintln!("relaygate: {why}");
            return ExitCode::from(2);
        }
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
    let asked = match (args.tls, args.no_tls) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let (tls, tls_note) = tls_fact(asked, certificate_note.is_some(), settings.tls.is_some());
    let (mail_from, rewritten_from) = rewritten(
        &settings,
        args.ip,
        &certificate_names,
        args.user.as_deref(),
        bare_address(&args.mail_from),
    );
    let user = match args
        .user
        .as_deref()
        .map(|n| check_user(&settings, n, &mail_from))
        .transpose()
    {
        Ok(u) => u,
        Err(why) => {
            eprintln!("relaygate: {why}");
            return ExitCode::from(2);
        }
    };
    let facts = Facts {
        peer_ip: args.ip,
        certificate_names,
        certificate_note,
        tls,
        tls_note,
        mail_from,
        header_from: args.header_from.as_deref().map(bare_address),
        recipients: args.rcpts.iter().map(|r| bare_address(r)).collect(),
        user,
        rewritten_from,
    };
    let explanation = Explanation::new(&settings, &facts, profile, tenant);
    if args.json {
        println!("{:#}", explanation.render_json());
    } else {
        print!("{}", explanation.render_text());
    }
    ExitCode::from(explanation.exit_status())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tls_tests {
    use super::tls_fact;

    #[test]
    fn tls_is_what_was_asked_else_implied_by_a_certificate_else_what_the_gate_offers() {
        let tls = |asked, certificate, offered| tls_fact(asked, certificate, offered).0;
        assert!(tls(Some(true), false, false));
        assert!(!tls(Some(false), false, true));
        assert!(tls(None, true, false), "a certificate comes with STARTTLS");
        assert!(tls(None, false, true));
        assert!(!tls(None, false, false));
        let (_, note) = tls_fact(Some(true), false, false);
        assert!(note.contains("offers no STARTTLS"), "{note}");
    }
}
