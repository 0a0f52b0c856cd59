//! `[policy]`: which rule to apply and how, and the tenant it is applied to (built from
//! `[[accepted_domains]]` and `[[inbound_connectors]]`, see [`super::tenant`]).

use super::keyword::{self, Keyword};
use super::tenant::{AcceptedDomainConfig, InboundConnectorConfig};
use super::values::{domain_name, invalid, quoted};
use super::ConfigError;
pub use crate::policy::enforcement::{Mode, RejectStage};
use crate::policy::{Profile, Tenant};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

// How a decision is enforced belongs to the policy (it owns "what is answered when"); the
// configuration only spells its words.
impl Keyword for Mode {
    const ALL: &'static [Self] = &[Mode::Enforce, Mode::Audit];
    fn word(self) -> &'static str {
        self.as_str()
    }
}

impl Keyword for RejectStage {
    // The refusal has always listed "data" first: it is the default.
    const ALL: &'static [Self] = &[RejectStage::Data, RejectStage::Rcpt];
    fn word(self) -> &'static str {
        match self {
            RejectStage::Rcpt => "rcpt",
            RejectStage::Data => "data",
        }
    }
}

/// The rule Exchange Online applies today.
pub const fn default_profile() -> Profile {
    Profile::Exo2023
}

pub const fn default_mode() -> Mode {
    Mode::Enforce
}

/// Exchange Online's current behaviour: 5.7.64 after the message, not at RCPT.
pub const fn default_reject_stage() -> RejectStage {
    RejectStage::Data
}

/// `[policy]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// `"exo-2023"`: the rule since 1 November 2023; `"exo-legacy"`: the rule before it (the
    /// `From:` domain counts too). Default `"exo-2023"`.
    #[serde(with = "keyword")]
    pub profile: Profile,
    /// `"enforce"`, or `"audit"`: decide and log, but forward everything. Default `"enforce"`.
    #[serde(with = "keyword")]
    pub mode: Mode,
    /// Where 5.7.64 is answered: `"data"` (Exchange Online's current behaviour) or `"rcpt"`.
    /// Default `"data"`.
    #[serde(with = "keyword")]
    pub reject_stage: RejectStage,
    /// `RejectDirectSend` of the organisation (5.7.68). Default false.
    pub reject_direct_send: bool,
    /// Recipient domains hosted by other Microsoft 365 tenants (inbound there, not relay).
    /// Default `[]`.
    pub other_tenant_domains: Vec<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            profile: default_profile(),
            mode: default_mode(),
            reject_stage: default_reject_stage(),
            reject_direct_send: false,
            other_tenant_domains: Vec::new(),
        }
    }
}

/// Validated policy settings: the tenant plus how to apply it.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub profile: Profile,
    pub mode: Mode,
    pub reject_stage: RejectStage,
    pub tenant: Tenant,
}

impl PolicySettings {
    /// The profile, mode and stage alone.
    pub fn rule(&self) -> super::PolicyDefaults {
        super::PolicyDefaults {
            profile: self.profile,
            mode: self.mode,
            reject_stage: self.reject_stage,
        }
    }
}

impl PolicyConfig {
    /// The policy and the tenant: every domain and connector checked, none listed twice.
    pub(super) fn validate(
        &self,
        domains: &[AcceptedDomainConfig],
        connectors: &[InboundConnectorConfig],
    ) -> Result<PolicySettings, ConfigError> {
        let mut other_tenant_domains = Vec::new();
        for (i, d) in self.other_tenant_domains.iter().enumerate() {
            other_tenant_domains.push(domain_name(
                &format!("policy.other_tenant_domains[{i}]"),
                d,
            )?);
        }
        let mut accepted_domains = Vec::new();
        let mut seen = HashSet::new();
        for (i, d) in domains.iter().enumerate() {
            let key = format!("accepted_domains[{i}]");
            let domain = d.validate(&key)?;
            if !seen.insert(domain.domain.clone()) {
                return Err(invalid(
                    format!("{key}.domain"),
                    quoted(&d.domain),
                    "is listed twice",
                ));
            }
            accepted_domains.push(domain);
        }
        let mut inbound_connectors = Vec::new();
        let mut names = HashSet::new();
        for (i, c) in connectors.iter().enumerate() {
            let key = format!("inbound_connectors[{i}]");
            let connector = c.validate(&key)?;
            if !names.insert(connector.name.to_ascii_lowercase()) {
                return Err(invalid(
                    format!("{key}.name"),
                    quoted(&c.name),
                    "is used by another connector",
                ));
            }
            inbound_connectors.push(connector);
        }
        Ok(PolicySettings {
            profile: self.profile,
            mode: self.mode,
            reject_stage: self.reject_stage,
            tenant: Tenant {
                name: String::new(),
                accepted_domains,
                inbound_connectors,
                other_tenant_domains,
                reject_direct_send: self.reject_direct_send,
            },
        })
    }
}
