//! `[[tenants]]`: one gate in front of several Microsoft 365 tenants (message center MC1226222).
//!
//! Each tenant has what a single-tenant file has at its top level: its accepted domains, its
//! inbound connectors, its `[tenants.policy]` (each key defaulting to the top-level `[policy]`)
//! and its own `[tenants.upstream]`, since Exchange Online tells the tenants apart on the way in
//! by the client certificate the gate presents, one per tenant. A file without `[[tenants]]` is
//! one implicit tenant, named `""`, exactly as before.

use super::keyword;
use super::policy::{Mode, PolicyConfig, PolicySettings, RejectStage};
use super::tenant::{AcceptedDomainConfig, InboundConnectorConfig};
use super::upstream::{UpstreamConfig, UpstreamSettings};
use super::values::{invalid, quoted};
use super::ConfigError;
use crate::policy::{is_subdomain_or_equal, AcceptedDomain, DomainType, Profile, Tenant};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// `[[tenants]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// The tenant's name in the log, the metrics, `check` and the report. Required, unique.
    pub name: String,
    /// `[tenants.policy]`: this tenant's rule; each key absent takes the top-level `[policy]`'s.
    #[serde(default, skip_serializing_if = "TenantPolicyConfig::is_empty")]
    pub policy: TenantPolicyConfig,
    /// `[[tenants.accepted_domains]]`: this tenant's `Get-AcceptedDomain`. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_domains: Vec<AcceptedDomainConfig>,
    /// `[[tenants.inbound_connectors]]`: this tenant's `Get-InboundConnector`. Default none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_connectors: Vec<InboundConnectorConfig>,
    /// `[tenants.upstream]`: where this tenant's mail goes, with this tenant's client
    /// certificate. Required.
    pub upstream: UpstreamConfig,
}

/// `[tenants.policy]` as written: every key optional, the top-level `[policy]` filling in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantPolicyConfig {
    #[serde(with = "keyword::optional", skip_serializing_if = "Option::is_none")]
    pub profile: Option<Profile>,
    #[serde(with = "keyword::optional", skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(with = "keyword::optional", skip_serializing_if = "Option::is_none")]
    pub reject_stage: Option<RejectStage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reject_direct_send: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_tenant_domains: Option<Vec<String>>,
}

impl TenantPolicyConfig {
    fn is_empty(&self) -> bool {
        *self == TenantPolicyConfig::default()
    }

    /// This tenant's policy: its own keys over `defaults`.
    fn over(&self, defaults: &PolicyConfig) -> PolicyConfig {
        PolicyConfig {
            profile: self.profile.unwrap_or(defaults.profile),
            mode: self.mode.unwrap_or(defaults.mode),
            reject_stage: self.reject_stage.unwrap_or(defaults.reject_stage),
            reject_direct_send: self
                .reject_direct_send
                .unwrap_or(defaults.reject_direct_send),
            other_tenant_domains: self
                .other_tenant_domains
                .clone()
                .unwrap_or_else(|| defaults.other_tenant_domains.clone()),
        }
    }
}

/// One tenant, validated: its policy (the [`Tenant`] with its name, and how it is applied) and
/// its upstream.
#[derive(Debug, Clone)]
pub struct TenantSettings {
    pub policy: PolicySettings,
    pub upstream: UpstreamSettings,
}

impl TenantSettings {
    /// `[[tenants]] name`, or `""` for the implicit tenant of a file without `[[tenants]]`.
    pub fn name(&self) -> &str {
        &self.policy.tenant.name
    }
}

impl AsRef<Tenant> for TenantSettings {
    fn as_ref(&self) -> &Tenant {
        &self.policy.tenant
    }
}

/// `key` of a tenant's own section, under `tenants[i].`: the refusal names the key in the file.
fn under(prefix: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { key, value, reason } => ConfigError::Invalid {
            key: format!("{prefix}{key}"),
            value,
            reason,
        },
        ConfigError::Tls { key, source } => ConfigError::Tls {
            key: format!("{prefix}{key}"),
            source,
        },
        ConfigError::Misplaced { key, reason } => ConfigError::Misplaced {
            key: format!("{prefix}{key}"),
            reason,
        },
        other => other,
    }
}

/// Every `[[tenants]]`, validated against each other: names unique, no domain accepted by two
/// tenants (Exchange Online does not allow it either, and attribution could not choose).
pub(super) fn validate(
    tenants: &[TenantConfig],
    defaults: &PolicyConfig,
) -> Result<Vec<TenantSettings>, ConfigError> {
    let mut out: Vec<TenantSettings> = Vec::with_capacity(tenants.len());
    let mut names = HashSet::new();
    for (i, t) in tenants.iter().enumerate() {
        let prefix = format!("tenants[{i}].");
        let name = t.name.trim();
        if name.is_empty() || name != t.name || t.name.chars().any(|c| c.is_control() || c == '"') {
            return Err(invalid(
                format!("{prefix}name"),
                quoted(&t.name),
                "must be a non-empty name without surrounding spaces, quotes or control characters",
            ));
        }
        if !names.insert(name.to_lowercase()) {
            return Err(invalid(
                format!("{prefix}name"),
                quoted(&t.name),
                "is the name of another tenant",
            ));
        }
        let own = t.policy.over(defaults);
        let mut policy = own
            .validate(&t.accepted_domains, &t.inbound_connectors)
            .map_err(|e| under(&prefix, e))?;
        policy.tenant.name = t.name.clone();
        for (d, domain) in policy.tenant.accepted_domains.iter().enumerate() {
            if let Some(other) = out
                .iter()
                .find(|o| overlaps(&o.policy.tenant.accepted_domains, domain))
            {
                return Err(invalid(
                    format!("{prefix}accepted_domains[{d}].domain"),
                    quoted(&domain.domain),
                    format!(
                        "is also accepted by tenant \"{}\": a domain belongs to one tenant (Exchange Online allows no other)",
                        other.name()
                    ),
                ));
            }
        }
        let upstream = t.upstream.validate().map_err(|e| under(&prefix, e))?;
        out.push(TenantSettings { policy, upstream });
    }
    Ok(out)
}

/// Some domain would be accepted by both: the same domain, or one under the other where the
/// upper one is InternalRelay with MatchSubDomains.
fn overlaps(accepted: &[AcceptedDomain], domain: &AcceptedDomain) -> bool {
    let covers = |upper: &AcceptedDomain, lower: &str| {
        upper.domain == lower
            || (upper.match_subdomains
                && upper.domain_type == DomainType::InternalRelay
                && is_subdomain_or_equal(lower, &upper.domain))
    };
    accepted
        .iter()
        .any(|a| covers(a, &domain.domain) || covers(domain, &a.domain))
}
