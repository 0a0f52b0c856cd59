//! `[admin]`: the HTTP endpoint for `/metrics`, `/health/live` and `/health/ready`.

use super::server::no_listen_conflict;
use super::values::seconds;
use super::ConfigError;
use super::SubmissionSettings;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

pub const fn default_probe_interval_secs() -> u64 {
    30
}

/// `[admin]` as written. Absent: no admin endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where the endpoint listens, e.g. `"127.0.0.1:9025"`. Required. Plain HTTP without
    /// authentication: keep it on loopback or a management network.
    pub listen: SocketAddr,
    /// How often readiness probes the upstream (connect, greeting, EHLO, STARTTLS as
    /// configured, QUIT). Readiness fails when the last probe failed or is older than three
    /// intervals. Default 30.
    #[serde(default = "default_probe_interval_secs")]
    pub probe_interval_secs: u64,
}

/// Validated `[admin]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub probe_interval: Duration,
}

impl AdminConfig {
    /// `smtp_listeners`: the validated `server.listen`, which the endpoint must not collide with.
    pub(super) fn validate(
        &self,
        smtp_listeners: &[SocketAddr],
        submission: Option<&SubmissionSettings>,
    ) -> Result<AdminSettings, ConfigError> {
        no_listen_conflict("admin.listen", self.listen, smtp_listeners)?;
        if let Some(s) = submission {
            let named = s.named_listeners();
            super::server::no_listen_conflict_among("admin.listen", self.listen, &named)?;
        }
        Ok(AdminSettings {
            listen: self.listen,
            probe_interval: seconds("admin.probe_interval_secs", self.probe_interval_secs, 1)?,
        })
    }
}
