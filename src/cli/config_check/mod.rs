//! `relaygate config check`: the configuration's errors, and the pitfalls Microsoft documents for
//! relay connectors, each with the reason and the fix.
//!
//! An error is a value the gate (or Exchange Online) refuses: the gate would not start. A warning
//! is a configuration that loads, and that Exchange Online would accept too, but that does not
//! do what admins usually mean: NDRs that cannot relay, a wildcard that lets every host under a
//! domain relay, settings Exchange Online silently ignores.

mod certificates;
mod rewrite;
mod submission;
mod tenants;

use crate::config::{Config, ConfigError, InboundConnectorConfig, Settings, TenantSettings};
use crate::policy::{
    is_subdomain_or_equal, CertificateName, ConnectorType, DomainType, InboundConnector, Tenant,
};
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// The configuration key it is about, e.g. `inbound_connectors[1] "OnPrem by IP"`.
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{s}: {}: {}\n  fix: {}",
            self.subject, self.problem, self.fix
        )
    }
}

/// An error that stops the gate, with the fix for it.
pub fn error_finding(e: &ConfigError) -> Finding {
    let text = e.to_string();
    let (subject, fix) = match e {
        ConfigError::Read { path, .. } => (
            path.display().to_string(),
            "pass the right file with --config, and check it is readable by this user".to_string(),
        ),
        ConfigError::Parse { path, .. } => (
            path.display().to_string(),
            "correct the TOML at the place named; every key is listed in README.md (Configuration reference), and unknown keys are refused so typos show".to_string(),
        ),
        ConfigError::Tls { key, .. } => (
            key.clone(),
            "point the key at a readable PEM file (certificate chain leaf first, or a PKCS#8/RSA/SEC1 private key)".to_string(),
        ),
        ConfigError::Misplaced { key, .. } if key == "upstream" && text.contains("missing") => (
            key.clone(),
            "add [upstream] (kind = \"smtp\" and its address, or kind = \"directory\" and a path)".to_string(),
        ),
        ConfigError::Misplaced { key, .. } if key.starts_with("submission.") => (
            key.clone(),
            "a submission listener needs [tls] (AUTH is offered only under TLS) and users_file (the users who may authenticate): add them, or remove the listener".to_string(),
        ),
        ConfigError::Misplaced { key, .. } => (
            key.clone(),
            format!("move {key} into each [[tenants]] entry ([[tenants.{key}]] or [tenants.{key}]), or remove the [[tenants]] to keep one tenant at the top level"),
        ),
        ConfigError::Invalid { key, reason, .. } => {
            let fix = if key.contains("sender_ip_addresses") {
                "list the IPv4 addresses (single, or CIDR /24 to /32) the server sends from, as Exchange Online requires; for IPv6 senders or large ranges use a certificate connector instead".to_string()
            } else if key.contains("tls_sender_certificate_name") {
                "use the exact host name in the sending server's certificate (mail.contoso.com), or *.contoso.com".to_string()
            } else {
                format!("correct {key}: it {reason} (README.md, Configuration reference)")
            };
            (key.clone(), fix)
        }
    };
    Finding {
        severity: Severity::Error,
        subject,
        problem: text,
        fix,
    }
}

fn connector_subject(prefix: &str, i: usize, c: &InboundConnector) -> String {
    format!("{prefix}inbound_connectors[{i}] \"{}\"", c.name)
}

/// The accepted domain that is a proper parent of `domain`, if any.
fn accepted_parent<'a>(tenant: &'a Tenant, domain: &str) -> Option<&'a str> {
    tenant
        .accepted_domains
        .iter()
        .find(|a| a.domain != domain && is_subdomain_or_equal(domain, &a.domain))
        .map(|a| a.domain.as_str())
}

/// Some certificate name would match both connector values.
fn names_overlap(x: &CertificateName, y: &CertificateName) -> bool {
    match (x, y) {
        // *.a and *.b overlap when one base is under the other (a.b.c matches *.c and *.b.c).
        (CertificateName::Wildcard(a), CertificateName::Wildcard(b)) => {
            is_subdomain_or_equal(a, b) || is_subdomain_or_equal(b, a)
        }
        (CertificateName::Exact(e), other) | (other, CertificateName::Exact(e)) => other.matches(e),
    }
}

/// The warnings for a configuration that validated. `config` is the file as written (for
/// settings that validation accepts and the tenant model drops), `settings` what the gate runs.
pub fn warnings(config: &Config, settings: &Settings) -> Vec<Finding> {
    let written: Vec<(String, &[InboundConnectorConfig])> = if config.tenants.is_empty() {
        vec![(String::new(), &config.inbound_connectors)]
    } else {
        config
            .tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("tenants[{i}]."), &t.inbound_connectors[..]))
            .collect()
    };
    let mut out = Vec::new();
    for (tenant, (prefix, connectors)) in settings.tenants.iter().zip(written) {
        out.extend(tenant_warnings(settings, tenant, &prefix, connectors));
    }
    out.extend(tenants::warnings(settings));
    out.extend(submission::warnings(config, settings));
    out.extend(certificates::warnings(config, settings));
    out.extend(rewrite::warnings(settings));
    out
}

/// The warnings about one tenant's own domains and connectors; `prefix` is `tenants[i].` for a
/// `[[tenants]]` entry, empty for the one tenant of a file without them.
fn tenant_warnings(
    settings: &Settings,
    tenant: &TenantSettings,
    prefix: &str,
    written: &[InboundConnectorConfig],
) -> Vec<Finding> {
    let tenant = &tenant.policy.tenant;
    let mut out = Vec::new();
    let mut warn = |subject: String, problem: String, fix: String| {
        out.push(Finding {
            severity: Severity::Warning,
            subject,
            problem,
            fix,
        })
    };
    let on_premises: Vec<(usize, &InboundConnector)> = tenant
        .inbound_connectors
        .iter()
        .enumerate()
        .filter(|(_, c)| c.enabled && c.connector_type == ConnectorType::OnPremises)
        .collect();
    if on_premises.is_empty() {
        warn(
            format!("{prefix}inbound_connectors"),
            "no enabled OnPremises connector: condition 2 can never hold, so nothing relays (every external recipient gets 5.7.64)".into(),
            "add an OnPremises connector with the SenderIPAddresses of your servers or a TlsSenderCertificateName".into(),
        );
    }
    let certificates_possible = settings
        .tls
        .as_ref()
        .is_some_and(|t| t.accepts_client_certificates());
    for (i, c) in tenant.inbound_connectors.iter().enumerate() {
        let subject = connector_subject(prefix, i, c);
        let raw = &written[i];
        if !c.enabled {
            warn(
                subject.clone(),
                "is disabled (Enabled = false): it matches nothing".into(),
                "remove it, or enable it if it should attribute mail".into(),
            );
            continue;
        }
        if c.connector_type == ConnectorType::Partner {
            if c.require_tls && settings.tls.is_none() {
                warn(
                    subject.clone(),
                    "require_tls = true, but the gate offers no STARTTLS (no [tls] section): every sender its sender_domains cover gets 454 4.7.0 for recipients in accepted domains".into(),
                    "add [tls] with the gate's certificate and private key, so that the partner can send under TLS".into(),
                );
            }
            continue;
        }
        // OnPremises from here on.
        let partner_only: Vec<&str> = [
            (raw.sender_domains != ["*"], "sender_domains"),
            (
                raw.restrict_domains_to_ip_addresses,
                "restrict_domains_to_ip_addresses",
            ),
            (
                raw.restrict_domains_to_certificate,
                "restrict_domains_to_certificate",
            ),
        ]
        .into_iter()
        .filter_map(|(set, k)| set.then_some(k))
        .collect();
        if !partner_only.is_empty() {
            warn(
                subject.clone(),
                format!(
                    "{} set on an OnPremises connector: these are Partner connector settings, and Exchange Online ignores them here (so does the gate)",
                    partner_only.join(", ")
                ),
                "remove them, or make a separate Partner connector if you meant to restrict inbound mail".into(),
            );
        }
        match &c.tls_sender_certificate_name {
            None => warn(
                subject.clone(),
                "is IP-only: mail through it relays only with an accepted P1 (MAIL FROM) domain, so null-sender NDRs, out-of-office replies and applications with a foreign MAIL FROM get 5.7.64 since November 2023".into(),
                "for servers that send NDRs or foreign senders, add a certificate connector: tls_sender_certificate_name = the name in their certificate, itself an accepted domain".into(),
            ),
            Some(name) => {
                if !certificates_possible {
                    warn(
                        subject.clone(),
                        format!("tls_sender_certificate_name = \"{name}\", but the gate asks for no client certificate (no [tls] section or no tls.client_ca), so it can never match"),
                        "add [tls] with client_ca = the CA that issued the senders' certificates".into(),
                    );
                }
                if let CertificateName::Wildcard(d) = name {
                    warn(
                        subject.clone(),
                        format!("tls_sender_certificate_name = \"*.{d}\" matches the certificate of every host under {d}, at any depth: any machine with such a certificate can relay any sender to anyone"),
                        format!("prefer the exact host name of the relaying server's certificate (e.g. mail.{d}), and add that name as an accepted domain"),
                    );
                }
                let domain = name.domain();
                if tenant.accepted_domain(domain).is_none() {
                    let problem = match accepted_parent(tenant, domain) {
                        Some(parent) => format!(
                            "{domain} is not an accepted domain, although its parent {parent} is: a subdomain is not accepted just because its parent is, so condition 1a fails and null-sender NDRs and out-of-office replies through this connector are refused (5.7.64)"
                        ),
                        None => format!(
                            "{domain} (the certificate name without \"*.\") is not an accepted domain, so condition 1a fails: null-sender NDRs and out-of-office replies through this connector are refused (5.7.64)"
                        ),
                    };
                    let problem = if settings.tenants.len() > 1 {
                        format!("{problem}; with several tenants the certificate does not attribute mail to this tenant either, so it is attributed by its P1 or first recipient domain, and an NDR to none (MC1226222)")
                    } else {
                        problem
                    };
                    warn(
                        subject.clone(),
                        problem,
                        format!("add [[accepted_domains]] domain = \"{domain}\" (Microsoft's guidance for certificate-based relay)"),
                    );
                }
            }
        }
    }
    // Overlapping OnPremises connectors: attribution is ambiguous (the gate reports the first).
    for (a, (i, c)) in on_premises.iter().enumerate() {
        for (j, d) in on_premises.iter().skip(a + 1) {
            let ip_overlap = c.sender_ip_addresses.iter().any(|n| {
                d.sender_ip_addresses
                    .iter()
                    .any(|m| n.contains(&m.network()) || m.contains(&n.network()))
            });
            let cert_overlap = match (
                &c.tls_sender_certificate_name,
                &d.tls_sender_certificate_name,
            ) {
                (Some(x), Some(y)) => names_overlap(x, y),
                _ => false,
            };
            if ip_overlap || cert_overlap {
                warn(
                    format!(
                        "{} and {}",
                        connector_subject(prefix, *i, c),
                        connector_subject(prefix, *j, d)
                    ),
                    format!(
                        "overlap ({}): the same sender matches both, so which connector attributes its mail is ambiguous (the gate names the first; Exchange Online does not say)",
                        if ip_overlap { "sender_ip_addresses" } else { "tls_sender_certificate_name" }
                    ),
                    "make the ranges and names disjoint, or merge the connectors".into(),
                );
            }
        }
    }
    // Subdomains named elsewhere in the configuration that are not accepted.
    for d in &tenant.other_tenant_domains {
        if tenant.accepted_domain(d).is_some() {
            warn(
                format!("{prefix}policy.other_tenant_domains \"{d}\""),
                "is also an accepted domain of this tenant: it is treated as ours".into(),
                "remove it from one of the two lists".into(),
            );
        }
    }
    for (i, a) in tenant.accepted_domains.iter().enumerate() {
        if a.domain_type == DomainType::Authoritative {
            continue;
        }
        if a.recipients.is_some() {
            warn(
                format!("{prefix}accepted_domains[{i}] \"{}\"", a.domain),
                "recipients is set on an InternalRelay domain: Directory-Based Edge Blocking applies to Authoritative domains only, so the list is ignored".into(),
                "remove the list, or make the domain Authoritative".into(),
            );
        }
    }
    out
}

/// Every finding for the file at `path`: the first error if it does not load, else warnings.
pub fn check(path: &std::path::Path) -> Vec<Finding> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return vec![error_finding(&e)],
    };
    match config.validate() {
        Ok(settings) => warnings(&config, &settings),
        Err(e) => vec![error_finding(&e)],
    }
}

/// `relaygate config check`: every finding, then a summary; exit 1 on an error.
pub fn run(config: PathBuf) -> ExitCode {
    use crate::cli::config_check::{check, Severity};
    let findings = check(&config);
    // Names and expiry of every certificate, when the file parses (a renewal is due when?).
    if let Ok(c) = Config::load(&config) {
        for line in certificates::lines(&c) {
            println!("{line}");
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The warnings for a configuration with one Partner connector requiring TLS.
    fn partner_warnings(tls: &str) -> Vec<Finding> {
        let text = format!(
            r#"
[server]
hostname = "gate.test"
{tls}
[upstream]
kind = "directory"
path = "/tmp/relaygate-config-check-test"
[[inbound_connectors]]
name = "Woodgrove"
connector_type = "Partner"
sender_domains = ["woodgrovebank.com"]
require_tls = true
"#
        );
        let config = Config::parse(&text).expect("parses");
        let settings = config.validate().expect("validates");
        warnings(&config, &settings)
    }

    #[test]
    fn require_tls_without_starttls_to_offer_is_warned_about() {
        let warned = |findings: &[Finding]| {
            findings
                .iter()
                .any(|f| f.subject.contains("Woodgrove") && f.problem.contains("454 4.7.0"))
        };
        assert!(warned(&partner_warnings("")));
        let dir = env!("CARGO_MANIFEST_DIR");
        let tls = format!(
            "[tls]\ncertificate = \"{dir}/certs/gate.pem\"\nprivate_key = \"{dir}/certs/gate.key\"\n"
        );
        assert!(!warned(&partner_warnings(&tls)));
    }
}
