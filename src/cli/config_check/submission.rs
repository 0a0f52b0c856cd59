//! The second door's pitfall: a user allowed to send as a domain that Exchange Online would
//! refuse from the gate. The gate relays an authenticated user's mail through the
//! organisation's connector, where Exchange Online judges it as any relayed mail: the P1 domain
//! must be an accepted domain of the tenant (1b), or the gate's upstream certificate must name
//! one (1a). Otherwise the application gets `235`, then its mail a 5.7.64 upstream.
//!
//! With `[[tenants]]`, a domain that is a tenant's accepted domain attributes the transaction
//! to that tenant, whose rule 1b then holds. A domain no tenant accepts leaves the tenant to the
//! first recipient, so any tenant's upstream may carry it: it is safe only when every tenant's
//! upstream presents a certificate named after one of its own accepted domains.

use super::{Finding, Severity};
use crate::config::{Config, Settings, UpstreamConfig};
use crate::policy::{domain_of, tenant_of_domain, Tenant};
use crate::submission::users::AllowedSender;

pub(super) fn warnings(config: &Config, settings: &Settings) -> Vec<Finding> {
    let Some(submission) = &settings.submission else {
        return Vec::new();
    };
    let upstreams: Vec<Option<&UpstreamConfig>> = if config.tenants.is_empty() {
        vec![config.upstream.as_ref()]
    } else {
        config.tenants.iter().map(|t| Some(&t.upstream)).collect()
    };
    let certified = settings
        .tenants
        .iter()
        .zip(upstreams)
        .all(|(t, u)| presents_accepted_certificate(&t.policy.tenant, u));
    let mut out = Vec::new();
    let mut users: Vec<_> = submission.users.iter().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    for user in users {
        for sender in &user.allowed_senders {
            let (written, domain) = match sender {
                AllowedSender::Address(a) => (a.clone(), domain_of(a)),
                AllowedSender::Domain(d) => (format!("*@{d}"), Some(d.as_str())),
            };
            let Some(domain) = domain else { continue };
            if tenant_of_domain(&settings.tenants, domain).is_some() || certified {
                continue;
            }
            out.push(Finding {
                severity: Severity::Warning,
                subject: format!(
                    "{} user \"{}\" allowed_senders \"{written}\"",
                    submission.users_file.display(),
                    user.name
                ),
                problem: format!(
                    "{domain} is not an accepted domain{}, and the upstream presents no client certificate named after one: Exchange Online answers this user's mail 550 5.7.64 after the gate accepted it",
                    if settings.named_tenants() { " of any tenant" } else { "" }
                ),
                fix: format!(
                    "add {domain} as an accepted domain, or give the upstream a client_certificate whose name is an accepted domain (with a certificate connector for it), or remove the sender from allowed_senders"
                ),
            });
        }
    }
    out
}

/// Whether `upstream` presents a client certificate whose name (or, for a `*.` connector, its
/// parent) is one of `tenant`'s accepted domains: condition 1a upstream, whatever the P1.
fn presents_accepted_certificate(tenant: &Tenant, upstream: Option<&UpstreamConfig>) -> bool {
    let Some(path) = upstream.and_then(|u| u.client_certificate.as_ref()) else {
        return false;
    };
    let Ok(pem) = crate::files::read(path, crate::files::PEM) else {
        return false;
    };
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    let Some(Ok(leaf)) = CertificateDer::pem_slice_iter(&pem).next() else {
        return false;
    };
    crate::tls::certificate_names(&leaf).iter().any(|n| {
        tenant.accepted_domain(n).is_some()
            || n.split_once('.')
                .is_some_and(|(_, parent)| tenant.accepted_domain(parent).is_some())
    })
}
