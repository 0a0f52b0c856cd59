//! `relaygate check`: one transaction explained the way Microsoft's compliance guide walks it.
//!
//! An admin asks "will this printer / application / NDR still relay?" before Exchange Online
//! answers it with a 5.7.64. The walk is: which connector matched and by what (condition 2),
//! which branch of condition 1 held or why none did, what each recipient gets and the exact
//! reply line. Both rule generations are shown unless one is asked for, and the November 2023
//! change is named when it is what makes the difference.

use super::load_settings;
use crate::config::{Mode, RejectStage, Settings};
use crate::policy::{
    self, domain_of, suggest_fix, AcceptReason, Comparison, Condition1, Condition2, ConnectorType,
    Evaluation, HeaderSender, Profile, RecipientVerdict, Rejection, RelayDecision, RelayDenial,
    ReversePath, SessionFacts, Tenant, Verdict,
};
use crate::session::SessionId;
use crate::wire::reply::exo_suffix;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

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

/// The whole explanation, computed once and rendered as text or JSON.
pub struct Explanation<'a> {
    settings: &'a Settings,
    facts: &'a Facts,
    /// The profiles to show, in order.
    profiles: Vec<Profile>,
    comparison: Comparison,
    fix: Option<String>,
    /// The profile whose verdict decides the exit status.
    deciding: Profile,
    suffix: String,
}

impl<'a> Explanation<'a> {
    /// `profile`: show only this one; `None`: both, and the exit status follows the profile the
    /// configuration enforces.
    pub fn new(settings: &'a Settings, facts: &'a Facts, profile: Option<Profile>) -> Self {
        let tenant = &settings.policy.tenant;
        let session = SessionFacts {
            peer_ip: facts.peer_ip,
            certificate_names: &facts.certificate_names,
        };
        let p1 = ReversePath::of_address(&facts.mail_from);
        let p2 = HeaderSender::of_address(facts.header_from.as_deref());
        let comparison = Comparison::evaluate(tenant, &session, p1, p2, &facts.recipients);
        let fix = suggest_fix(tenant, &session, p1, p2, &comparison.exo_2023);
        Explanation {
            settings,
            facts,
            profiles: match profile {
                Some(p) => vec![p],
                None => vec![Profile::Exo2023, Profile::ExoLegacy],
            },
            comparison,
            fix,
            deciding: profile.unwrap_or(settings.policy.profile),
            suffix: exo_suffix(
                &settings.server.hostname,
                SystemTime::now(),
                SessionId::new(),
            ),
        }
    }

    /// 0 when every recipient is accepted under the deciding profile, 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        match self.comparison.get(self.deciding).verdict() {
            Verdict::Accepted => 0,
            Verdict::Refused(_) | Verdict::Undecided => 1,
        }
    }

    fn tenant(&self) -> &Tenant {
        &self.settings.policy.tenant
    }

    fn accepted_text(&self, domain: &str) -> String {
        match self.tenant().accepted_domain(domain) {
            Some(a) if a.domain == policy::normalise(domain) => {
                format!("an accepted domain ({:?})", a.domain_type)
            }
            Some(a) => format!(
                "accepted through {} ({:?}, MatchSubDomains)",
                a.domain, a.domain_type
            ),
            None => "not an accepted domain".to_string(),
        }
    }

    /// One line per inbound connector: does it match this sender, and by what.
    fn connectors(&self) -> Vec<(String, String)> {
        self.tenant()
            .inbound_connectors
            .iter()
            .map(|c| {
                let kind = c.connector_type.as_str();
                let by_ip = c.matches_ip(self.facts.peer_ip);
                let by_cert = c.matches_certificate(&self.facts.certificate_names);
                let what = if !c.enabled {
                    "disabled: matches nothing".to_string()
                } else if c.connector_type == ConnectorType::Partner {
                    "Partner: never authorises relay".to_string()
                } else {
                    let mut parts = Vec::new();
                    if !c.sender_ip_addresses.is_empty() {
                        let list: Vec<String> = c
                            .sender_ip_addresses
                            .iter()
                            .map(|n| n.to_string())
                            .collect();
                        parts.push(format!(
                            "SenderIPAddresses {}: {}",
                            list.join(", "),
                            if by_ip { "matched" } else { "no match" }
                        ));
                    }
                    if let Some(name) = &c.tls_sender_certificate_name {
                        let result = if by_cert {
                            "matched"
                        } else if self.facts.certificate_names.is_empty() {
                            "no trusted certificate presented"
                        } else {
                            "no match"
                        };
                        parts.push(format!("TlsSenderCertificateName {name}: {result}"));
                    }
                    if parts.is_empty() {
                        "neither SenderIPAddresses nor TlsSenderCertificateName: matches nothing"
                            .to_string()
                    } else {
                        parts.join("; ")
                    }
                };
                (format!("{} ({kind})", c.name), what)
            })
            .collect()
    }

    fn condition2(&self, e: &Evaluation) -> String {
        let Some(c2) = e.relay.condition2() else {
            return "failed: no enabled OnPremises connector matched the IP address or a trusted certificate".into();
        };
        match c2 {
            Condition2::SenderIpAddress { connector } => {
                format!("held: connector \"{connector}\" matched the IP address")
            }
            Condition2::TlsSenderCertificate { connector } => {
                format!("held: connector \"{connector}\" matched the certificate")
            }
        }
    }

    /// Why each branch of condition 1 held or not, under `profile`.
    /// Condition 1 judged on its own: the engine stops at a failed condition 2, the admin
    /// still wants to know whether the sender would be attributed.
    fn condition1_held(&self, profile: Profile) -> Option<Condition1> {
        let session = SessionFacts {
            peer_ip: self.facts.peer_ip,
            certificate_names: &self.facts.certificate_names,
        };
        policy::condition1(
            self.tenant(),
            profile,
            &session,
            ReversePath::of_address(&self.facts.mail_from),
            HeaderSender::of_address(self.facts.header_from.as_deref()),
        )
    }

    fn condition1(&self, e: &Evaluation) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(c1) = self.condition1_held(e.profile) {
            lines.push(match &c1 {
                Condition1::CertificateDomain {
                    connector,
                    accepted_domain,
                } => format!(
                    "held by 1a: connector \"{connector}\" matched the certificate and its name's domain {accepted_domain} is an accepted domain"
                ),
                Condition1::EnvelopeSender { domain } => {
                    format!("held by 1b: the P1 (MAIL FROM) domain {domain} is {}", self.accepted_text(domain))
                }
                Condition1::HeaderSender { domain } => format!(
                    "held by 1c: the P2 (From:) domain {domain} is {} (exo-legacy only)",
                    self.accepted_text(domain)
                ),
            });
            if e.relay.condition2().is_none() {
                lines.push("  (but condition 2 failed, so relay is not authorised)".to_string());
            }
            return lines;
        }
        lines.push("failed:".into());
        // 1a
        let cert_connectors: Vec<_> = self
            .tenant()
            .inbound_connectors
            .iter()
            .filter(|c| {
                c.connector_type == ConnectorType::OnPremises
                    && c.matches_certificate(&self.facts.certificate_names)
            })
            .collect();
        if cert_connectors.is_empty() {
            lines.push(if self.facts.certificate_names.is_empty() {
                "  1a: no trusted client certificate".to_string()
            } else {
                "  1a: no OnPremises connector's TlsSenderCertificateName matches the certificate"
                    .to_string()
            });
        } else {
            for c in cert_connectors {
                let d = c
                    .tls_sender_certificate_name
                    .as_ref()
                    .map(|n| n.domain())
                    .unwrap_or_default();
                lines.push(format!(
                    "  1a: connector \"{}\" matched the certificate, but {d} is {}",
                    c.name,
                    self.accepted_text(d)
                ));
            }
        }
        // 1b
        lines.push(match domain_of(&self.facts.mail_from) {
            None => "  1b: the P1 is the null sender <>, which has no domain".to_string(),
            Some(d) => format!("  1b: the P1 domain {d} is {}", self.accepted_text(d)),
        });
        // 1c
        let p2 = self.facts.header_from.as_deref().and_then(domain_of);
        lines.push(match (e.profile, p2) {
            (Profile::Exo2023, Some(d)) => format!(
                "  1c: the P2 (From:) domain {d} does not count since 1 November 2023, whether accepted or not"
            ),
            (Profile::Exo2023, None) => {
                "  1c: the From: header does not count since 1 November 2023".to_string()
            }
            (Profile::ExoLegacy, Some(d)) => {
                format!(
                    "  1c: the P2 (From:) domain {d} is {}",
                    self.accepted_text(d)
                )
            }
            (Profile::ExoLegacy, None) => "  1c: no From: header address".to_string(),
        });
        lines
    }

    /// The reply a recipient gets and when, as Exchange Online would answer it.
    fn recipient(&self, profile: Profile, v: &RecipientVerdict) -> (String, Option<String>) {
        match v {
            RecipientVerdict::Accept(AcceptReason::Originating) => {
                ("accepted: relay authorised (Originating)".into(), None)
            }
            RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => (
                format!("accepted: inbound to accepted domain {accepted_domain}"),
                None,
            ),
            RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => (
                format!("accepted: inbound to {domain}, hosted by another Microsoft 365 tenant"),
                None,
            ),
            RecipientVerdict::AwaitingHeaderSender => ("undecided".into(), None),
            RecipientVerdict::Reject(r) => {
                let (code, enhanced, text) = r.reply();
                // exo-legacy waits for the header before it refuses relay, whatever
                // reject_stage says (the P2 sender may still attribute the message).
                let at_data = match r {
                    Rejection::RelayAccessDenied(denial) => {
                        self.settings.policy.reject_stage == RejectStage::Data
                            || (profile == Profile::ExoLegacy
                                && matches!(denial, RelayDenial::SenderNotAttributed { .. }))
                    }
                    _ => false,
                };
                let mut stage = if at_data {
                    "refused at the end of DATA".to_string()
                } else {
                    "refused at RCPT TO".to_string()
                };
                if self.settings.policy.mode == Mode::Audit {
                    stage.push_str(" (audit mode: logged, and the message forwarded)");
                }
                (
                    stage,
                    Some(format!("{code} {enhanced} {text}{}", self.suffix)),
                )
            }
        }
    }

    /// The fix is for exo-2023: shown only when that profile is.
    fn shown_fix(&self) -> Option<&str> {
        if self.profiles.contains(&Profile::Exo2023) {
            self.fix.as_deref()
        } else {
            None
        }
    }

    fn profile_title(p: Profile) -> &'static str {
        match p {
            Profile::Exo2023 => "exo-2023: Exchange Online since 1 November 2023",
            Profile::ExoLegacy => "exo-legacy: Exchange Online before 1 November 2023",
        }
    }

    fn change_note(&self) -> Option<&'static str> {
        (self.profiles.len() == 2 && self.comparison.broken_by_november_2023()).then_some(
            "The November 2023 change is what makes the difference: before it, the From: header domain (1c) attributed this message to the tenant; now only the certificate (1a) or the MAIL FROM domain (1b) do.",
        )
    }

    pub fn render_text(&self) -> String {
        let f = self.facts;
        let mut out = String::new();
        let _ = writeln!(out, "Sender");
        let _ = writeln!(out, "  peer IP          {}", f.peer_ip);
        let _ = writeln!(
            out,
            "  certificate      {}",
            f.certificate_note.as_deref().unwrap_or("none")
        );
        let p1 = if f.mail_from.is_empty() {
            "<> (null sender: no domain)".to_string()
        } else {
            match domain_of(&f.mail_from) {
                Some(d) => format!("<{}>: {d} is {}", f.mail_from, self.accepted_text(d)),
                None => format!("<{}>: no domain", f.mail_from),
            }
        };
        let _ = writeln!(out, "  P1 MAIL FROM     {p1}");
        let p2 = match f.header_from.as_deref() {
            None => "none given".to_string(),
            Some(a) => match domain_of(a) {
                Some(d) => format!("{a}: {d} is {}", self.accepted_text(d)),
                None => format!("{a}: no domain"),
            },
        };
        let _ = writeln!(out, "  P2 From:         {p2}");
        let _ = writeln!(out, "\nInbound connectors");
        let connectors = self.connectors();
        if connectors.is_empty() {
            let _ = writeln!(out, "  (none configured)");
        }
        for (name, what) in connectors {
            let _ = writeln!(out, "  {name}: {what}");
        }
        if self.profiles.len() == 2 {
            out.push_str(&self.side_by_side());
        }
        for &p in &self.profiles {
            let e = self.comparison.get(p);
            let _ = writeln!(out, "\n{}", Self::profile_title(p));
            let _ = writeln!(out, "  condition 2  {}", self.condition2(e));
            let c1 = self.condition1(e);
            let _ = writeln!(out, "  condition 1  {}", c1[0]);
            for l in &c1[1..] {
                let _ = writeln!(out, "             {l}");
            }
            for (address, v) in &e.recipients {
                let (what, line) = self.recipient(p, v);
                let _ = writeln!(out, "  RCPT <{address}>  {what}");
                if let Some(line) = line {
                    let _ = writeln!(out, "      {line}");
                }
            }
            let _ = writeln!(out, "  verdict      {}", e.verdict());
        }
        if let Some(note) = self.change_note() {
            let _ = writeln!(out, "\n{note}");
        }
        if let Some(fix) = self.shown_fix() {
            let _ = writeln!(out, "\nFix (exo-2023): {fix}");
        }
        out
    }

    /// The two profiles in two columns, one short cell per step, before the details.
    fn side_by_side(&self) -> String {
        fn c2(e: &Evaluation) -> String {
            match e.relay.condition2() {
                Some(c) => format!("by {} \"{}\"", c.branch(), c.connector()),
                None => "failed".into(),
            }
        }
        let c1 = |e: &Evaluation| match self.condition1_held(e.profile) {
            Some(condition1) => {
                let domain = match &condition1 {
                    Condition1::CertificateDomain {
                        accepted_domain, ..
                    } => accepted_domain,
                    Condition1::EnvelopeSender { domain } | Condition1::HeaderSender { domain } => {
                        domain
                    }
                };
                format!("{} {domain}", condition1.branch())
            }
            None => "failed".to_string(),
        };
        fn rcpt(v: &RecipientVerdict) -> String {
            match v {
                RecipientVerdict::Accept(AcceptReason::Originating) => "accepted (relay)".into(),
                RecipientVerdict::Accept(_) => "accepted (inbound)".into(),
                RecipientVerdict::AwaitingHeaderSender => "undecided".into(),
                RecipientVerdict::Reject(r) => {
                    let (code, enhanced, _) = r.reply();
                    format!("{code} {enhanced}")
                }
            }
        }
        let (new, old) = (&self.comparison.exo_2023, &self.comparison.exo_legacy);
        let mut rows = vec![
            ("condition 2".to_string(), c2(new), c2(old)),
            ("condition 1".to_string(), c1(new), c1(old)),
        ];
        for ((address, a), (_, b)) in new.recipients.iter().zip(&old.recipients) {
            rows.push((format!("<{address}>"), rcpt(a), rcpt(b)));
        }
        rows.push((
            "verdict".into(),
            new.verdict().to_string(),
            old.verdict().to_string(),
        ));
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(11);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(8);
        let mut out = format!(
            "\nSide by side\n  {:w0$}  {:w1$}  exo-legacy\n",
            "", "exo-2023"
        );
        for (step, a, b) in rows {
            let mark = if a != b { "  <- differs" } else { "" };
            let _ = writeln!(out, "  {step:w0$}  {a:w1$}  {b}{mark}");
        }
        out
    }

    pub fn render_json(&self) -> Value {
        let f = self.facts;
        let profiles: serde_json::Map<String, Value> = self
            .profiles
            .iter()
            .map(|&p| {
                let e = self.comparison.get(p);
                let recipients: Vec<Value> = e
                    .recipients
                    .iter()
                    .map(|(a, v)| {
                        let (what, line) = self.recipient(p, v);
                        json!({"address": a, "outcome": what, "reply": line})
                    })
                    .collect();
                let (branch1, branch2, connector) = match &e.relay {
                    RelayDecision::Authorized {
                        condition1,
                        condition2,
                    } => (
                        Some(condition1.branch()),
                        Some(condition2.branch()),
                        Some(condition2.connector()),
                    ),
                    RelayDecision::AwaitingHeaderSender { condition2 }
                    | RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 }) => (
                        None,
                        Some(condition2.branch()),
                        Some(condition2.connector()),
                    ),
                    RelayDecision::Denied(RelayDenial::NoOnPremisesConnector) => (None, None, None),
                };
                (
                    p.as_str().to_string(),
                    json!({
                        "relay_authorized": matches!(e.relay, RelayDecision::Authorized { .. }),
                        "condition1_branch": branch1,
                        "condition1": self.condition1(e).join("\n"),
                        "condition2_by": branch2,
                        "connector": connector,
                        "condition2": self.condition2(e),
                        "recipients": recipients,
                        "verdict": e.verdict().to_string(),
                    }),
                )
            })
            .collect();
        json!({
            "peer_ip": f.peer_ip.to_string(),
            "certificate_names": f.certificate_names,
            "certificate": f.certificate_note,
            "mail_from": f.mail_from,
            "header_from": f.header_from,
            "connectors": self.connectors().into_iter().map(|(n, w)| json!({"connector": n, "match": w})).collect::<Vec<_>>(),
            "profiles": Value::Object(profiles),
            "broken_by_november_2023": self.comparison.broken_by_november_2023(),
            "fix": self.shown_fix(),
            "deciding_profile": self.deciding.as_str(),
            "exit_status": self.exit_status(),
        })
    }
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
    use crate::cli::check::{bare_address, Explanation, Facts};
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
        Some(path) => match crate::cli::check::certificate_identity(&settings, path) {
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
