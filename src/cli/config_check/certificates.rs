//! The certificates the configuration names: each one's names and expiry for the admin to read,
//! and a warning when the gate's own upstream client certificate carries no accepted domain.
//!
//! Exchange Online attributes a message to a tenant by the sending server's certificate only
//! when a name in it is one of the tenant's accepted domains; otherwise only by the P1 sender.
//! The gate relays NDRs (null sender) and mail of senders outside the accepted domains, which
//! then have nothing to be attributed by: 550 5.7.64 TenantAttribution.

use super::{Finding, Severity};
use crate::certs::{self, expiry, Role};
use crate::config::{Config, Settings};

/// One line per certificate (`certificate ROLE FILE [names]: expires ...`), and the files that
/// cannot be read.
pub fn lines(config: &Config) -> Vec<String> {
    let now = expiry::now();
    certs::files(config)
        .iter()
        .flat_map(|f| match expiry::inspect(f) {
            Ok(found) => found.iter().map(|c| c.describe(now)).collect(),
            Err(e) => vec![format!("certificate {}: {e}", f.role.as_str())],
        })
        .collect()
}

/// An upstream client certificate none of whose names is an accepted domain of its tenant.
pub fn warnings(config: &Config, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    for file in certs::files(config) {
        if file.role != Role::UpstreamClient {
            continue;
        }
        let Some(tenant) = settings.tenants.iter().find(|t| t.name() == file.tenant) else {
            continue;
        };
        let Ok(found) = expiry::inspect(&file) else {
            continue;
        };
        for leaf in found {
            let tenant_model: &crate::policy::Tenant = tenant.as_ref();
            if leaf
                .names
                .iter()
                .any(|n| crate::policy::certificate_points_at(tenant_model, n))
            {
                continue;
            }
            let key = match file.tenant.as_str() {
                "" => "upstream.client_certificate".to_string(),
                t => format!("tenants \"{t}\" upstream.client_certificate"),
            };
            out.push(Finding {
                severity: Severity::Warning,
                subject: format!("{key} {}", file.path.display()),
                problem: format!(
                    "none of its names ({}) is an accepted domain{}: Exchange Online attributes the gate's mail by the P1 sender only, so NDRs (null sender) and senders outside the accepted domains relayed through the gate fail with 550 5.7.64 TenantAttribution",
                    if leaf.names.is_empty() { "none".to_string() } else { leaf.names.join(", ") },
                    if file.tenant.is_empty() { String::new() } else { format!(" of tenant \"{}\"", file.tenant) }
                ),
                fix: "use a certificate whose subject or a SAN is an accepted domain (e.g. contoso.com), and name that domain in the OnPremises connector's TlsSenderCertificateName".to_string(),
            });
        }
    }
    out
}
