//! The configuration file: serde structs that mirror what an admin writes, one module per
//! section, then one `validate()` that turns them into the typed [`Settings`] the gate runs on.
//!
//! Parsing and validation happen once, before anything listens, so that a bad value is refused
//! with one message naming the key, the value and what is wrong (and, for values Exchange Online
//! itself would refuse, saying so). Names mirror Exchange's own properties
//! (`tls_sender_certificate_name` is `TlsSenderCertificateName`). Relative paths are taken from
//! the working directory the gate is started in.
//!
//! Each section's defaults are named `const fn`s beside it (units in the names: `*_secs`,
//! `*_bytes`), and every field's doc comment gives its default. The file structs serialize too:
//! `relaygate config show` prints a file with every default filled in, and README.md's
//! "Configuration reference" is checked against that output (`tests/config_reference.rs`).

mod admin;
mod decode;
mod keyword;
mod log;
mod policy;
mod rewrite;
mod server;
mod submission;
mod tenant;
mod tenants;
mod tls;
mod upstream;
mod values;

#[cfg(test)]
mod tests;

pub use admin::{AdminConfig, AdminSettings};
pub use log::{LogConfig, LogFormat};
pub use policy::{Mode, PolicyConfig, PolicySettings, RejectStage};
pub use rewrite::RewriteConfig;
pub use server::{ServerConfig, ServerSettings};
pub use submission::{SubmissionConfig, SubmissionSettings};
pub(crate) use tenant::{certificate_name, sender_ip_address};
pub use tenant::{AcceptedDomainConfig, InboundConnectorConfig};
pub use tenants::{TenantConfig, TenantPolicyConfig, TenantSettings};
pub use tls::TlsConfig;
pub use upstream::{
    AddressList, SmtpUpstreamSettings, UpstreamAddress, UpstreamConfig, UpstreamKind,
    UpstreamSettings, UpstreamTls,
};
pub(crate) use values::domain_name;

use crate::files;
use crate::tls::{ServerTls, TlsError};
use decode::{decode, Refusal};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not TOML, or not this file's shape: an unknown or missing key, a value of the wrong type.
    #[error("configuration {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("configuration key {key} = {value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("configuration key {key}: {source}")]
    Tls { key: String, source: TlsError },
    /// A section where the file's shape does not allow it (a top-level `[upstream]` beside
    /// `[[tenants]]`), or missing where it must be.
    #[error("configuration key {key}: {reason}")]
    Misplaced { key: String, reason: String },
}

/// The whole file as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: the listening side. Required, although every key in it has a default.
    pub server: ServerConfig,
    /// `[tls]`: STARTTLS towards the clients. Default absent: STARTTLS is not offered.
    pub tls: Option<TlsConfig>,
    /// `[policy]`: which rule, and how it is applied; with `[[tenants]]`, every tenant's
    /// defaults. Default: every key's default.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[[accepted_domains]]`: the tenant's `Get-AcceptedDomain`. Default none. Not with
    /// `[[tenants]]`, where each tenant has its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_domains: Vec<AcceptedDomainConfig>,
    /// `[[inbound_connectors]]`: the tenant's `Get-InboundConnector`. Default none. Not with
    /// `[[tenants]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inbound_connectors: Vec<InboundConnectorConfig>,
    /// `[upstream]`: where accepted transactions go. Required, except with `[[tenants]]`, where
    /// it is refused: each tenant has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamConfig>,
    /// `[[tenants]]`: several Microsoft 365 tenants behind one gate. Default none: the file's
    /// top level is the one tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantConfig>,
    /// `[[rewrite]]`: envelope senders the gate sets before the policy decides, first match
    /// wins. Default none: no sender is ever changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrite: Vec<RewriteConfig>,
    /// `[submission]`: the second door, SMTP AUTH for applications (port 587 and 465 style).
    /// Default absent: no submission listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub submission: Option<SubmissionConfig>,
    /// `[log]`: format and level. Default: every key's default.
    #[serde(default)]
    pub log: LogConfig,
    /// `[admin]`: metrics and health over HTTP. Default absent: no admin endpoint.
    pub admin: Option<AdminConfig>,
}

/// Everything the gate runs on, validated. Shared read-only by all sessions (`Arc`); a reload
/// builds a new one.
pub struct Settings {
    pub server: ServerSettings,
    pub tls: Option<ServerTls>,
    /// `[submission]` with its users, when a submission listener is configured.
    pub submission: Option<SubmissionSettings>,
    /// The tenants in configuration order, at least one: for a file without `[[tenants]]`, the
    /// one implicit tenant (named `""`) built from its top level.
    pub tenants: Vec<TenantSettings>,
    /// `[[rewrite]]`, in order (first match wins); empty when there are none.
    pub rewrites: Vec<crate::policy::rewrite::RewriteRule>,
    /// The top-level `[policy]`: how a transaction no tenant is attributed to is answered.
    pub defaults: PolicyDefaults,
    pub log_format: LogFormat,
    pub log_level: String,
    pub admin: Option<AdminSettings>,
}

/// How refusals are answered where no tenant's own policy applies: a transaction of a gate with
/// several tenants that none of them was attributed to (the top-level `[policy]`).
#[derive(Debug, Clone, Copy)]
pub struct PolicyDefaults {
    pub profile: crate::policy::Profile,
    pub mode: Mode,
    pub reject_stage: RejectStage,
}

impl Settings {
    /// Whether the gate serves several tenants (a `[[tenants]]` file), so that logs and `check`
    /// name them. A `[[tenants]]` file with one tenant names it too.
    pub fn named_tenants(&self) -> bool {
        self.tenants.iter().any(|t| !t.name().is_empty())
    }
}

impl Config {
    /// Read and parse a configuration file (no validation yet), at most
    /// [`files::CONFIGURATION`] of it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = files::read(path, files::CONFIGURATION).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        decode(&text).map_err(|refusal| match refusal {
            Refusal::Value(e) => e,
            Refusal::Shape(message) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
        })
    }

    /// Parse TOML text (no validation yet). The error is the message [`Config::load`] would give,
    /// less the file name.
    pub fn parse(text: &str) -> Result<Config, String> {
        decode(text).map_err(|refusal| match refusal {
            Refusal::Value(e) => e.to_string(),
            Refusal::Shape(message) => message,
        })
    }

    /// Check every value and build the settings the gate runs on. Loads TLS material, so a
    /// missing or mismatched certificate is refused here, before anything listens.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        crate::tls::install_crypto_provider();
        let server = self.server.validate()?;
        let tls = self.tls.as_ref().map(TlsConfig::load).transpose()?;
        let submission = match &self.submission {
            Some(s) => s.validate(&server.listen, tls.is_some())?,
            None => None,
        };
        let tenants = self.tenants()?;
        let rewrites = rewrite::validate(&self.rewrite)?;
        log::log_level(&self.log.level)?;
        let admin = self
            .admin
            .as_ref()
            .map(|a| a.validate(&server.listen, submission.as_ref()))
            .transpose()?;
        Ok(Settings {
            server,
            tls,
            submission,
            tenants,
            rewrites,
            defaults: PolicyDefaults {
                profile: self.policy.profile,
                mode: self.policy.mode,
                reject_stage: self.policy.reject_stage,
            },
            log_format: self.log.format,
            log_level: self.log.level.clone(),
            admin,
        })
    }

    /// The tenants: the `[[tenants]]`, or the top level as the one implicit tenant.
    fn tenants(&self) -> Result<Vec<TenantSettings>, ConfigError> {
        if self.tenants.is_empty() {
            let upstream = self.upstream.as_ref().ok_or_else(|| ConfigError::Misplaced {
                key: "upstream".into(),
                reason: "is missing: [upstream] says where accepted mail goes (or use [[tenants]], each with its [tenants.upstream])".into(),
            })?;
            let policy = self
                .policy
                .validate(&self.accepted_domains, &self.inbound_connectors)?;
            let upstream = upstream.validate()?;
            return Ok(vec![TenantSettings { policy, upstream }]);
        }
        let misplaced = [
            (!self.accepted_domains.is_empty(), "accepted_domains"),
            (!self.inbound_connectors.is_empty(), "inbound_connectors"),
            (self.upstream.is_some(), "upstream"),
        ];
        if let Some((_, key)) = misplaced.iter().find(|(set, _)| *set) {
            return Err(ConfigError::Misplaced {
                key: (*key).into(),
                reason: format!(
                    "is not allowed beside [[tenants]]: each tenant has its own (tenants[].{key})"
                ),
            });
        }
        tenants::validate(&self.tenants, &self.policy)
    }
}
