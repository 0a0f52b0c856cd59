//! The configuration file: serde structs that mirror what an admin writes, then one
//! `validate()` that turns them into the typed [`Settings`] the gate runs on.
//!
//! Parsing and validation happen once, before anything listens, so that a bad value is refused
//! with one message naming the key, the value and what is wrong (and, for values Exchange Online
//! itself would refuse, saying so). Names mirror Exchange's own properties
//! (`tls_sender_certificate_name` is `TlsSenderCertificateName`). Relative paths are taken from
//! the working directory the gate is started in.

use crate::files;
use crate::policy::{
    AcceptedDomain, CertificateName, ConnectorType, DomainType, InboundConnector, Profile,
    SenderDomain, Tenant,
};
use crate::tls::{self, ServerTls, TlsError};
use ipnet::Ipv4Net;
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
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
}

/// A TLS error under the exact key that names the file at fault (`tls.private_key`, not `tls`).
fn tls_error(source: TlsError) -> ConfigError {
    ConfigError::Tls {
        key: source.key().to_string(),
        source,
    }
}

fn invalid(
    key: impl Into<String>,
    value: impl fmt::Display,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------------------

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    /// Absent: STARTTLS is not offered.
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub accepted_domains: Vec<AcceptedDomainConfig>,
    #[serde(default)]
    pub inbound_connectors: Vec<InboundConnectorConfig>,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// Absent: no admin endpoint.
    pub admin: Option<AdminConfig>,
}

const fn default_probe_interval_secs() -> u64 {
    30
}

/// `[admin]`: the HTTP endpoint for `/metrics`, `/health/live` and `/health/ready`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// e.g. `"127.0.0.1:9025"`. Plain HTTP without authentication: keep it on loopback or a
    /// management network.
    pub listen: SocketAddr,
    /// How often readiness probes the upstream (connect, greeting, EHLO, STARTTLS as
    /// configured, QUIT). Readiness fails when the last probe failed or is older than three
    /// intervals.
    #[serde(default = "default_probe_interval_secs")]
    pub probe_interval_secs: u64,
}

const fn default_max_message_size() -> u64 {
    // Exchange Online's default maximum message size (35 MB).
    36_700_160
}
const fn default_max_recipients() -> usize {
    500
}
const fn default_command_timeout_secs() -> u64 {
    // RFC 5321 section 4.5.3.2.7: server timeout of at least 5 minutes.
    300
}
const fn default_data_timeout_secs() -> u64 {
    // RFC 5321 section 4.5.3.2.5: data block, 3 minutes.
    180
}
const fn default_tls_handshake_timeout_secs() -> u64 {
    30
}
const fn default_session_timeout_secs() -> u64 {
    3600
}
const fn default_max_connections() -> usize {
    1000
}
const fn default_max_connections_per_ip() -> usize {
    100
}
const fn default_shutdown_grace_secs() -> u64 {
    30
}
const fn default_proxy_header_timeout_secs() -> u64 {
    10
}
fn default_proxy_trusted_networks() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}
const fn default_max_header_size() -> usize {
    // Exchange Online's header size limit (256 KB); the header block is the only part of a
    // message the gate buffers.
    262_144
}
const fn default_max_line_length() -> usize {
    // RFC 5321 allows 1000 octets; real applications send longer lines and Exchange Online
    // accepts them, so the gate is generous but bounded.
    65_536
}
fn default_hostname() -> String {
    "relaygate.localdomain".to_string()
}
fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 2525))]
}

/// `[server]`: the listening side.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Name in the banner, the EHLO reply, `Received:` headers and the reply suffix.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Addresses to listen on, IPv4 and IPv6. Default `["127.0.0.1:2525"]`.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted, in bytes, advertised in `SIZE`. Default 36700160 (35 MB).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: u64,
    /// Most recipients in one transaction; more get `452 4.5.3`. Default 500.
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// Wait for a command (also banner to first command). Default 300 (RFC 5321 4.5.3.2.7).
    #[serde(default = "default_command_timeout_secs")]
    pub command_timeout_secs: u64,
    /// Wait for each read while receiving DATA. Default 180 (RFC 5321 4.5.3.2.5).
    #[serde(default = "default_data_timeout_secs")]
    pub data_timeout_secs: u64,
    /// Whole STARTTLS handshake. Default 30.
    #[serde(default = "default_tls_handshake_timeout_secs")]
    pub tls_handshake_timeout_secs: u64,
    /// Whole session, however active. Default 3600.
    #[serde(default = "default_session_timeout_secs")]
    pub session_timeout_secs: u64,
    /// Largest header block, in bytes (it is buffered to find the `From:` header). Default 262144.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: usize,
    /// Longest line of message text, in bytes including CRLF. Default 65536.
    #[serde(default = "default_max_line_length")]
    pub max_line_length: usize,
    /// Sessions at once; more are answered `421 4.7.0` and closed. Default 1000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Sessions at once from one client address. Default 100.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// On SIGTERM/SIGINT, how long transactions in flight may take to finish. Default 30.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Expect a PROXY protocol (v1 or v2) header before the banner. Default false.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Peers allowed to send a PROXY header (CIDR). Default loopback only.
    #[serde(default = "default_proxy_trusted_networks")]
    pub proxy_trusted_networks: Vec<String>,
    /// Wait for the PROXY header. Default 10.
    #[serde(default = "default_proxy_header_timeout_secs")]
    pub proxy_header_timeout_secs: u64,
}

/// `[tls]`: STARTTLS towards the clients.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first.
    pub certificate: PathBuf,
    /// PEM private key of the leaf.
    pub private_key: PathBuf,
    /// PEM trust anchors for client certificates. Absent: no client certificate is requested.
    pub client_ca: Option<PathBuf>,
}

/// `[policy]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `"exo-2023"` (default) or `"exo-legacy"`.
    #[serde(default = "default_profile")]
    pub profile: String,
    /// `"enforce"` (default) or `"audit"`: decide and log, but forward everything.
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Where 5.7.64 is answered: `"data"` (default, Exchange Online's current behaviour) or `"rcpt"`.
    #[serde(default = "default_reject_stage")]
    pub reject_stage: String,
    /// `RejectDirectSend` of the organisation (5.7.68). Default false.
    #[serde(default)]
    pub reject_direct_send: bool,
    /// Recipient domains hosted by other Microsoft 365 tenants.
    #[serde(default)]
    pub other_tenant_domains: Vec<String>,
}

fn default_profile() -> String {
    "exo-2023".into()
}
fn default_mode() -> String {
    "enforce".into()
}
fn default_reject_stage() -> String {
    "data".into()
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

/// `[[accepted_domains]]` (`Get-AcceptedDomain`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptedDomainConfig {
    /// `DomainName`.
    pub domain: String,
    /// `DomainType`: `"Authoritative"` (default) or `"InternalRelay"`.
    #[serde(default = "default_domain_type")]
    pub domain_type: String,
    /// `MatchSubDomains`: only with InternalRelay.
    #[serde(default)]
    pub match_subdomains: bool,
    /// Known recipient addresses: enables 5.4.1 (Directory-Based Edge Blocking) for others.
    pub recipients: Option<Vec<String>>,
}

fn default_domain_type() -> String {
    "Authoritative".into()
}

/// `[[inbound_connectors]]` (`New-InboundConnector`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConnectorConfig {
    /// `Name`.
    pub name: String,
    /// `ConnectorType`: `"OnPremises"` or `"Partner"`.
    pub connector_type: String,
    /// `Enabled`. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `SenderIPAddresses`: IPv4 addresses or CIDR /24 to /32.
    #[serde(default)]
    pub sender_ip_addresses: Vec<String>,
    /// `TlsSenderCertificateName`: a host name or `*.` followed by one.
    pub tls_sender_certificate_name: Option<String>,
    /// `SenderDomains` (Partner only). Default `["*"]`.
    #[serde(default = "default_sender_domains")]
    pub sender_domains: Vec<String>,
    /// `RestrictDomainsToIPAddresses` (Partner only).
    #[serde(default)]
    pub restrict_domains_to_ip_addresses: bool,
    /// `RestrictDomainsToCertificate` (Partner only).
    #[serde(default)]
    pub restrict_domains_to_certificate: bool,
    /// `RequireTls`: accepted for completeness; Exchange Online enforces it on Partner
    /// connectors only, and the gate does not enforce it.
    #[serde(default)]
    pub require_tls: bool,
}

fn default_true() -> bool {
    true
}
fn default_sender_domains() -> Vec<String> {
    vec!["*".into()]
}

/// `[upstream]`: where accepted transactions go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `"smtp"` or `"directory"`.
    pub kind: String,
    /// `host:port` of the upstream SMTP server (kind smtp).
    pub address: Option<String>,
    /// `"required"` (default), `"opportunistic"` or `"none"`.
    #[serde(default = "default_upstream_tls")]
    pub tls: String,
    /// Name to verify the upstream certificate against. Default: the host part of `address`.
    pub tls_server_name: Option<String>,
    /// PEM trust anchors for the upstream. Default: the public web PKI roots.
    pub ca: Option<PathBuf>,
    /// Certificate presented upstream (how Exchange Online recognises the gate).
    pub client_certificate: Option<PathBuf>,
    pub client_private_key: Option<PathBuf>,
    /// Directory messages are written to (kind directory).
    pub path: Option<PathBuf>,
    /// TCP connect timeout. Default 30.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Wait for each upstream reply. Default 300 (RFC 5321 4.5.3.2).
    #[serde(default = "default_command_timeout_secs")]
    pub reply_timeout_secs: u64,
    /// Wait for the upstream's reply to the final dot. Default 600 (RFC 5321 4.5.3.2.6).
    #[serde(default = "default_data_end_timeout_secs")]
    pub data_end_timeout_secs: u64,
    /// Idle upstream connections kept for reuse (0: a new connection per client session).
    /// Default 32.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle: usize,
    /// How long an idle upstream connection is kept. Default 30.
    #[serde(default = "default_pool_idle_timeout_secs")]
    pub pool_idle_timeout_secs: u64,
    /// Send messages with BDAT (RFC 3030 CHUNKING) when the upstream offers it, as Exchange
    /// Online does: no DATA/354 round trip per message. Default true.
    #[serde(default = "default_true")]
    pub chunking: bool,
}

const fn default_pool_max_idle() -> usize {
    32
}
const fn default_pool_idle_timeout_secs() -> u64 {
    30
}

fn default_upstream_tls() -> String {
    "required".into()
}
const fn default_connect_timeout_secs() -> u64 {
    30
}
const fn default_data_end_timeout_secs() -> u64 {
    600
}

/// `[log]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `"text"` (default) or `"json"`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// tracing filter, e.g. `"info"` (default) or `"relaygate=debug"`: levels or target=level
    /// only (checked by `log_level`). `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

fn default_log_format() -> String {
    "text".into()
}
fn default_log_level() -> String {
    "info".into()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The validated result
// ---------------------------------------------------------------------------------------------

/// Enforce or only observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Decide and log, but forward everything.
    Audit,
}

/// Where 5.7.64 is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStage {
    Rcpt,
    Data,
}

/// `[upstream] tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTls {
    Required,
    Opportunistic,
    None,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated listening-side settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub hostname: String,
    pub listen: Vec<SocketAddr>,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub command_timeout: Duration,
    pub data_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub session_timeout: Duration,
    pub max_header_size: usize,
    pub max_line_length: usize,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub shutdown_grace: Duration,
    /// `Some(trusted networks)` when a PROXY header is expected.
    pub proxy_protocol: Option<Vec<ipnet::IpNet>>,
    pub proxy_header_timeout: Duration,
}

/// Validated policy settings: the tenant plus how to apply it.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub profile: Profile,
    pub mode: Mode,
    pub reject_stage: RejectStage,
    pub tenant: Tenant,
}

/// Validated upstream settings.
#[derive(Clone)]
pub enum UpstreamSettings {
    /// Shared by every session: it carries the connection pool.
    Smtp(Arc<SmtpUpstreamSettings>),
    Directory {
        path: PathBuf,
    },
}

/// Validated SMTP upstream settings.
pub struct SmtpUpstreamSettings {
    /// `host:port` as configured (resolved at connect time, so DNS changes are followed).
    pub address: String,
    pub tls: UpstreamTls,
    pub tls_server_name: rustls_pki_types::ServerName<'static>,
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    pub data_end_timeout: Duration,
    /// Use BDAT when the upstream offers CHUNKING.
    pub chunking: bool,
    /// Idle upstream connections kept for reuse across sessions (the pool itself belongs to
    /// the `upstream::Connector` built from these settings; a reload starts a new one).
    pub pool_max_idle: usize,
    pub pool_idle_timeout: Duration,
}

impl fmt::Debug for UpstreamSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamSettings::Smtp(s) => f
                .debug_struct("Smtp")
                .field("address", &s.address)
                .field("tls", &s.tls)
                .finish_non_exhaustive(),
            UpstreamSettings::Directory { path } => {
                f.debug_struct("Directory").field("path", path).finish()
            }
        }
    }
}

/// Everything the gate runs on, validated. Shared read-only by all sessions (`Arc`); a reload
/// builds a new one.
pub struct Settings {
    pub server: ServerSettings,
    pub tls: Option<ServerTls>,
    pub policy: PolicySettings,
    pub upstream: UpstreamSettings,
    pub log_format: LogFormat,
    pub log_level: String,
    pub admin: Option<AdminSettings>,
}

/// Validated `[admin]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub probe_interval: Duration,
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
        Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parse TOML text (no validation yet).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().replace('\n', " "))
    }

    /// Check every value and build the settings the gate runs on. Loads TLS material, so a
    /// missing or mismatched certificate is refused here, before anything listens.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        tls::install_crypto_provider();
        let server = self.server.validate()?;
        let tls = match &self.tls {
            None => None,
            Some(t) => Some(
                ServerTls::load(&t.certificate, &t.private_key, t.client_ca.as_deref())
                    .map_err(tls_error)?,
            ),
        };
        let policy = self.validate_policy()?;
        let upstream = self.upstream.validate()?;
        let log_format = match self.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log.format",
                    quoted(other),
                    "must be \"text\" or \"json\"",
                ))
            }
        };
        log_level(&self.log.level)?;
        let admin = match &self.admin {
            None => None,
            Some(a) => {
                no_listen_conflict("admin.listen", a.listen, &server.listen)?;
                Some(AdminSettings {
                    listen: a.listen,
                    probe_interval: seconds("admin.probe_interval_secs", a.probe_interval_secs, 1)?,
                })
            }
        };
        Ok(Settings {
            server,
            tls,
            policy,
            upstream,
            log_format,
            log_level: self.log.level.clone(),
            admin,
        })
    }

    fn validate_policy(&self) -> Result<PolicySettings, ConfigError> {
        let p = &self.policy;
        let profile: Profile = p
            .profile
            .parse()
            .map_err(|why: String| invalid("policy.profile", quoted(&p.profile), why))?;
        let mode = match p.mode.as_str() {
            "enforce" => Mode::Enforce,
            "audit" => Mode::Audit,
            other => {
                return Err(invalid(
                    "policy.mode",
                    quoted(other),
                    "must be \"enforce\" or \"audit\"",
                ))
            }
        };
        let reject_stage = match p.reject_stage.as_str() {
            "data" => RejectStage::Data,
            "rcpt" => RejectStage::Rcpt,
            other => {
                return Err(invalid(
                    "policy.reject_stage",
                    quoted(other),
                    "must be \"data\" or \"rcpt\"",
                ))
            }
        };
        let mut other_tenant_domains = Vec::new();
        for (i, d) in p.other_tenant_domains.iter().enumerate() {
            other_tenant_domains.push(domain_name(
                &format!("policy.other_tenant_domains[{i}]"),
                d,
            )?);
        }

        let mut accepted_domains = Vec::new();
        let mut seen = HashSet::new();
        for (i, d) in self.accepted_domains.iter().enumerate() {
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
        for (i, c) in self.inbound_connectors.iter().enumerate() {
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
            profile,
            mode,
            reject_stage,
            tenant: Tenant {
                accepted_domains,
                inbound_connectors,
                other_tenant_domains,
                reject_direct_send: p.reject_direct_send,
            },
        })
    }
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// The longest any `*_secs` setting may be: one day. No SMTP wait is meaningful beyond that
/// (RFC 5321's longest timeout is 10 minutes), and a bound this low keeps every
/// `Instant + Duration` the gate computes far from overflowing, which panics (in every
/// session, for the session timeout) instead of failing here with the key named.
const MAX_SECS: u64 = 86_400;

/// A `*_secs` value: from `min` to [`MAX_SECS`] seconds.
fn seconds(key: &str, value: u64, min: u64) -> Result<Duration, ConfigError> {
    if value < min {
        return Err(invalid(
            key,
            value,
            format!("must be at least {min} second"),
        ));
    }
    if value > MAX_SECS {
        return Err(invalid(
            key,
            value,
            format!("must be at most {MAX_SECS} seconds (one day)"),
        ));
    }
    Ok(Duration::from_secs(value))
}

/// Whether the two listening addresses cannot both be bound ("address in use"): the same port
/// (port 0 asks the system for a free one each time, so never), and the same address or an
/// unspecified one covering the other. `0.0.0.0` covers IPv4 only; `[::]` is dual-stack (the
/// Linux default), so it covers IPv4 as well. IPv4-mapped addresses count as IPv4.
fn listeners_conflict(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    let covers = |unspecified: IpAddr, other: IpAddr| match unspecified {
        IpAddr::V6(v6) => v6.is_unspecified(),
        IpAddr::V4(v4) => v4.is_unspecified() && other.is_ipv4(),
    };
    let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
    x == y || covers(x, y) || covers(y, x)
}

/// `key = addr` must not conflict with any SMTP listener before it, so that a configuration
/// that cannot be bound is refused here (exit 2, nothing bound) and not halfway through binding.
fn no_listen_conflict(
    key: &str,
    addr: SocketAddr,
    smtp_listeners: &[SocketAddr],
) -> Result<(), ConfigError> {
    match smtp_listeners
        .iter()
        .position(|&other| listeners_conflict(addr, other))
    {
        None => Ok(()),
        Some(i) => Err(invalid(
            key,
            addr,
            format!(
                "conflicts with server.listen[{i}] = {}: both cannot be bound (the same port, and the same address or an unspecified one covering the other)",
                smtp_listeners[i]
            ),
        )),
    }
}

/// The levels a `log.level` directive may name (any case).
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// `log.level`: EnvFilter takes any word it does not know for a target name, so a misspelt
/// level (`"inf"`) would enable one target nobody has and silence every log. Every
/// comma-separated directive must therefore be a level or `target[span{field}]=level` with one
/// of [`LOG_LEVELS`]; EnvFilter itself then refuses any other syntax error.
fn log_level(value: &str) -> Result<(), ConfigError> {
    const ACCEPTED: &str = "each comma-separated directive must be a level or target=level, and \
                            the levels are trace, debug, info, warn, error and off";
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if directives.is_empty() {
        return Err(invalid(
            "log.level",
            quoted(value),
            format!("is empty: {ACCEPTED}"),
        ));
    }
    for directive in directives {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, l)| l.trim());
        if !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(invalid(
                "log.level",
                quoted(value),
                format!("names {level:?}, which is not a level: {ACCEPTED}"),
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| ())
        .map_err(|e| invalid("log.level", quoted(value), format!("is not a filter: {e}")))
}

/// A DNS domain name: lower-cased, trailing dot removed, labels of letters, digits and hyphens
/// (punycode for IDNs), 1 to 63 octets each.
pub(crate) fn domain_name(key: &str, value: &str) -> Result<String, ConfigError> {
    let d = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| invalid(key, quoted(value), why.to_string());
    if d.is_empty() {
        return Err(bad("is empty"));
    }
    if d.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("has an empty label or one longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(bad(
                "is not a domain name (letters, digits and hyphens; write IDNs in punycode, xn--)",
            ));
        }
    }
    Ok(d)
}

impl ServerConfig {
    fn validate(&self) -> Result<ServerSettings, ConfigError> {
        if self.hostname.is_empty() || self.hostname.contains(char::is_whitespace) {
            return Err(invalid(
                "server.hostname",
                quoted(&self.hostname),
                "must be a host name without spaces",
            ));
        }
        if self.listen.is_empty() {
            return Err(invalid("server.listen", "[]", "needs at least one address"));
        }
        for (i, addr) in self.listen.iter().enumerate() {
            no_listen_conflict(&format!("server.listen[{i}]"), *addr, &self.listen[..i])?;
        }
        if self.max_message_size < 1024 {
            return Err(invalid(
                "server.max_message_size",
                self.max_message_size,
                "must be at least 1024 bytes",
            ));
        }
        if self.max_recipients == 0 {
            return Err(invalid("server.max_recipients", 0, "must be at least 1"));
        }
        for (key, v, min) in [
            ("server.command_timeout_secs", self.command_timeout_secs, 1),
            ("server.data_timeout_secs", self.data_timeout_secs, 1),
            (
                "server.tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
                1,
            ),
            ("server.session_timeout_secs", self.session_timeout_secs, 1),
            (
                "server.proxy_header_timeout_secs",
                self.proxy_header_timeout_secs,
                1,
            ),
            // 0: drop transactions in flight at once.
            ("server.shutdown_grace_secs", self.shutdown_grace_secs, 0),
        ] {
            seconds(key, v, min)?;
        }
        if self.max_header_size < 1024 {
            return Err(invalid(
                "server.max_header_size",
                self.max_header_size,
                "must be at least 1024 bytes",
            ));
        }
        if self.max_line_length < 1000 {
            return Err(invalid(
                "server.max_line_length",
                self.max_line_length,
                "must be at least 1000 (RFC 5321 section 4.5.3.1.6)",
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("server.max_connections", 0, "must be at least 1"));
        }
        if self.max_connections_per_ip == 0 {
            return Err(invalid(
                "server.max_connections_per_ip",
                0,
                "must be at least 1",
            ));
        }
        let mut trusted = Vec::new();
        for (i, n) in self.proxy_trusted_networks.iter().enumerate() {
            let key = format!("server.proxy_trusted_networks[{i}]");
            let net =
                match n.parse::<ipnet::IpNet>() {
                    Ok(net) => net,
                    Err(_) => ipnet::IpNet::from(n.parse::<IpAddr>().map_err(|_| {
                        invalid(&key, quoted(n), "is not an IP address or CIDR range")
                    })?),
                };
            trusted.push(net.trunc());
        }
        Ok(ServerSettings {
            hostname: self.hostname.clone(),
            listen: self.listen.clone(),
            max_message_size: self.max_message_size,
            max_recipients: self.max_recipients,
            command_timeout: Duration::from_secs(self.command_timeout_secs),
            data_timeout: Duration::from_secs(self.data_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_secs),
            session_timeout: Duration::from_secs(self.session_timeout_secs),
            max_header_size: self.max_header_size,
            max_line_length: self.max_line_length,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            proxy_protocol: self.proxy_protocol.then_some(trusted),
            proxy_header_timeout: Duration::from_secs(self.proxy_header_timeout_secs),
        })
    }
}

impl AcceptedDomainConfig {
    fn validate(&self, key: &str) -> Result<AcceptedDomain, ConfigError> {
        let domain = domain_name(&format!("{key}.domain"), &self.domain)?;
        let domain_type = match self.domain_type.as_str() {
            "Authoritative" => DomainType::Authoritative,
            "InternalRelay" => DomainType::InternalRelay,
            other => {
                return Err(invalid(
                    format!("{key}.domain_type"),
                    quoted(other),
                    "must be \"Authoritative\" or \"InternalRelay\"",
                ))
            }
        };
        if self.match_subdomains && domain_type != DomainType::InternalRelay {
            return Err(invalid(
                format!("{key}.match_subdomains"),
                true,
                "is only allowed with domain_type = \"InternalRelay\" (Exchange Online refuses it too)",
            ));
        }
        let recipients = match &self.recipients {
            None => None,
            Some(list) => {
                let mut set = HashSet::new();
                for (i, r) in list.iter().enumerate() {
                    let rkey = format!("{key}.recipients[{i}]");
                    let Some((local, dom)) = r.rsplit_once('@') else {
                        return Err(invalid(rkey, quoted(r), "is not an address (local@domain)"));
                    };
                    let dom = domain_name(&rkey, dom)?;
                    let belongs = dom == domain
                        || (self.match_subdomains && dom.ends_with(&format!(".{domain}")));
                    if local.is_empty() || !belongs {
                        return Err(invalid(
                            rkey,
                            quoted(r),
                            format!("is not an address in {domain}"),
                        ));
                    }
                    set.insert(format!("{}@{dom}", local.to_lowercase()));
                }
                Some(set)
            }
        };
        Ok(AcceptedDomain {
            domain,
            domain_type,
            match_subdomains: self.match_subdomains,
            recipients,
        })
    }
}

/// `SenderIPAddresses` as Exchange Online accepts them: IPv4, single or CIDR /24 to /32.
pub(crate) fn sender_ip_address(key: &str, value: &str) -> Result<Ipv4Net, ConfigError> {
    let exo = "Exchange Online accepts only IPv4 addresses and CIDR ranges from /24 to /32, and would refuse it too";
    let v = value.trim();
    if v.contains('-') {
        return Err(invalid(
            key,
            quoted(value),
            format!("address ranges (a-b) are not supported; {exo}"),
        ));
    }
    let net: ipnet::IpNet = if v.contains('/') {
        v.parse().map_err(|_| {
            invalid(
                key,
                quoted(value),
                format!("is not an address or CIDR range; {exo}"),
            )
        })?
    } else {
        let ip: IpAddr = v
            .parse()
            .map_err(|_| invalid(key, quoted(value), format!("is not an IP address; {exo}")))?;
        ipnet::IpNet::from(ip)
    };
    match net {
        ipnet::IpNet::V6(_) => Err(invalid(key, quoted(value), format!("is IPv6; {exo}"))),
        ipnet::IpNet::V4(n) if n.prefix_len() < 24 => Err(invalid(
            key,
            quoted(value),
            format!("a /{} range is larger than /24; {exo}", n.prefix_len()),
        )),
        ipnet::IpNet::V4(n) => Ok(n.trunc()),
    }
}

/// `TlsSenderCertificateName`: `host.name` or `*.host.name`, nothing else.
pub(crate) fn certificate_name(key: &str, value: &str) -> Result<CertificateName, ConfigError> {
    match value.strip_prefix("*.") {
        Some(rest) => {
            if rest.contains('*') {
                return Err(invalid(key, quoted(value), "only a leading \"*.\" is allowed (Exchange Online refuses other wildcards too)"));
            }
            Ok(CertificateName::Wildcard(domain_name(key, rest)?))
        }
        None => {
            if value.contains('*') {
                return Err(invalid(key, quoted(value), "only a leading \"*.\" is allowed (Exchange Online refuses other wildcards too)"));
            }
            Ok(CertificateName::Exact(domain_name(key, value)?))
        }
    }
}

impl InboundConnectorConfig {
    fn validate(&self, key: &str) -> Result<InboundConnector, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(invalid(
                format!("{key}.name"),
                quoted(&self.name),
                "must not be empty",
            ));
        }
        let connector_type = match self.connector_type.as_str() {
            "OnPremises" => ConnectorType::OnPremises,
            "Partner" => ConnectorType::Partner,
            other => {
                return Err(invalid(
                    format!("{key}.connector_type"),
                    quoted(other),
                    "must be \"OnPremises\" or \"Partner\"",
                ))
            }
        };
        let mut sender_ip_addresses = Vec::new();
        for (i, a) in self.sender_ip_addresses.iter().enumerate() {
            sender_ip_addresses.push(sender_ip_address(
                &format!("{key}.sender_ip_addresses[{i}]"),
                a,
            )?);
        }
        let tls_sender_certificate_name = match &self.tls_sender_certificate_name {
            None => None,
            Some(n) => Some(certificate_name(
                &format!("{key}.tls_sender_certificate_name"),
                n,
            )?),
        };
        if connector_type == ConnectorType::OnPremises
            && sender_ip_addresses.is_empty()
            && tls_sender_certificate_name.is_none()
        {
            return Err(invalid(
                key,
                quoted(&self.name),
                "an OnPremises connector needs sender_ip_addresses or tls_sender_certificate_name (Exchange Online requires one)",
            ));
        }
        let mut sender_domains = Vec::new();
        for (i, d) in self.sender_domains.iter().enumerate() {
            let dkey = format!("{key}.sender_domains[{i}]");
            sender_domains.push(if d == "*" {
                SenderDomain::Any
            } else if let Some(rest) = d.strip_prefix("*.") {
                SenderDomain::WithSubdomains(domain_name(&dkey, rest)?)
            } else {
                SenderDomain::Exact(domain_name(&dkey, d)?)
            });
        }
        if self.restrict_domains_to_certificate && tls_sender_certificate_name.is_none() {
            return Err(invalid(
                format!("{key}.restrict_domains_to_certificate"),
                true,
                "needs tls_sender_certificate_name on the same connector",
            ));
        }
        if self.restrict_domains_to_ip_addresses && sender_ip_addresses.is_empty() {
            return Err(invalid(
                format!("{key}.restrict_domains_to_ip_addresses"),
                true,
                "needs sender_ip_addresses on the same connector",
            ));
        }
        Ok(InboundConnector {
            name: self.name.clone(),
            connector_type,
            enabled: self.enabled,
            sender_ip_addresses,
            tls_sender_certificate_name,
            sender_domains,
            restrict_domains_to_ip_addresses: self.restrict_domains_to_ip_addresses,
            restrict_domains_to_certificate: self.restrict_domains_to_certificate,
        })
    }
}

impl UpstreamConfig {
    fn validate(&self) -> Result<UpstreamSettings, ConfigError> {
        // Bounded whatever the kind, so that no value in the file is left to overflow later;
        // the lower bounds apply to kind smtp only, below.
        for (key, v) in [
            ("upstream.connect_timeout_secs", self.connect_timeout_secs),
            ("upstream.reply_timeout_secs", self.reply_timeout_secs),
            ("upstream.data_end_timeout_secs", self.data_end_timeout_secs),
            (
                "upstream.pool_idle_timeout_secs",
                self.pool_idle_timeout_secs,
            ),
        ] {
            seconds(key, v, 0)?;
        }
        match self.kind.as_str() {
            "directory" => {
                let path = self.path.clone().ok_or_else(|| {
                    invalid(
                        "upstream.path",
                        "(missing)",
                        "is required with kind = \"directory\"",
                    )
                })?;
                Ok(UpstreamSettings::Directory { path })
            }
            "smtp" => {
                let address = self.address.clone().ok_or_else(|| {
                    invalid(
                        "upstream.address",
                        "(missing)",
                        "is required with kind = \"smtp\" (host:port)",
                    )
                })?;
                let (host, port) = address.rsplit_once(':').ok_or_else(|| {
                    invalid("upstream.address", quoted(&address), "must be host:port")
                })?;
                if port.parse::<u16>().is_err() {
                    return Err(invalid(
                        "upstream.address",
                        quoted(&address),
                        "the port is not a number from 0 to 65535",
                    ));
                }
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let tls = match self.tls.as_str() {
                    "required" => UpstreamTls::Required,
                    "opportunistic" => UpstreamTls::Opportunistic,
                    "none" => UpstreamTls::None,
                    other => {
                        return Err(invalid(
                            "upstream.tls",
                            quoted(other),
                            "must be \"required\", \"opportunistic\" or \"none\"",
                        ))
                    }
                };
                let name = self.tls_server_name.as_deref().unwrap_or(host).to_string();
                let tls_server_name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| {
                        invalid(
                            "upstream.tls_server_name",
                            quoted(&name),
                            "is not a valid DNS name or IP address",
                        )
                    })?;
                match (&self.client_certificate, &self.client_private_key) {
                    (Some(_), None) => {
                        return Err(invalid(
                            "upstream.client_certificate",
                            "(set)",
                            "upstream.client_private_key is missing: a certificate needs its key",
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(invalid(
                            "upstream.client_private_key",
                            "(set)",
                            "upstream.client_certificate is missing: a key needs its certificate",
                        ))
                    }
                    _ => {}
                }
                let tls_config = if tls == UpstreamTls::None {
                    None
                } else {
                    Some(
                        tls::upstream_client_config(
                            self.ca.as_deref(),
                            self.client_certificate.as_deref(),
                            self.client_private_key.as_deref(),
                        )
                        .map_err(tls_error)?,
                    )
                };
                for (key, v) in [
                    ("upstream.connect_timeout_secs", self.connect_timeout_secs),
                    ("upstream.reply_timeout_secs", self.reply_timeout_secs),
                    ("upstream.data_end_timeout_secs", self.data_end_timeout_secs),
                ] {
                    if v == 0 {
                        return Err(invalid(key, v, "must be at least 1 second"));
                    }
                }
                if self.pool_idle_timeout_secs == 0 {
                    return Err(invalid(
                        "upstream.pool_idle_timeout_secs",
                        0,
                        "must be at least 1 second",
                    ));
                }
                Ok(UpstreamSettings::Smtp(Arc::new(SmtpUpstreamSettings {
                    address,
                    tls,
                    tls_server_name,
                    tls_config,
                    connect_timeout: Duration::from_secs(self.connect_timeout_secs),
                    reply_timeout: Duration::from_secs(self.reply_timeout_secs),
                    data_end_timeout: Duration::from_secs(self.data_end_timeout_secs),
                    chunking: self.chunking,
                    pool_max_idle: self.pool_max_idle,
                    pool_idle_timeout: Duration::from_secs(self.pool_idle_timeout_secs),
                })))
            }
            other => Err(invalid(
                "upstream.kind",
                quoted(other),
                "must be \"smtp\" or \"directory\"",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[server]
hostname = "gate.contoso.com"
[upstream]
kind = "directory"
path = "out"
"#;

    fn check(extra: &str) -> Result<Settings, String> {
        let text = format!("{BASE}\n{extra}");
        let config = Config::parse(&text)?;
        config.validate().map_err(|e| e.to_string())
    }

    fn refused(extra: &str) -> String {
        match check(extra) {
            Ok(_) => panic!("accepted:\n{extra}"),
            Err(e) => e,
        }
    }

    #[test]
    fn shipped_default_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/relaygate.toml");
        let config = Config::load(&path).expect("parses");
        // Paths in the shipped file are relative to the repository root, which is where
        // cargo runs unit tests.
        let s = config.validate().expect("valid");
        assert_eq!(
            s.server.listen,
            vec!["127.0.0.1:2525".parse::<SocketAddr>().unwrap()]
        );
        assert!(s.tls.is_some());
        assert_eq!(s.policy.profile, Profile::Exo2023);
        assert_eq!(s.policy.reject_stage, RejectStage::Data);
        assert_eq!(s.policy.tenant.inbound_connectors.len(), 2);
        assert!(matches!(s.upstream, UpstreamSettings::Directory { .. }));
    }

    #[test]
    fn ipv6_sender_ip_address_is_refused_like_exchange_online() {
        let e = refused(
            "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"2001:db8::/64\"]\n",
        );
        assert!(
            e.contains("inbound_connectors[0].sender_ip_addresses[0] = \"2001:db8::/64\""),
            "{e}"
        );
        assert!(e.contains("IPv6") && e.contains("Exchange Online"), "{e}");
    }

    #[test]
    fn ranges_larger_than_slash_24_are_refused() {
        let e = refused(
            "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"10.0.0.0/16\"]\n",
        );
        assert!(e.contains("/16 range is larger than /24"), "{e}");
        let e = refused(
            "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"10.0.0.1-10.0.0.9\"]\n",
        );
        assert!(e.contains("ranges (a-b)"), "{e}");
    }

    #[test]
    fn single_addresses_and_slash_24_to_32_are_accepted() {
        let s = check(
            "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"203.0.113.7\", \"198.51.100.0/24\", \"192.0.2.9/32\"]\n",
        )
        .unwrap();
        let nets: Vec<String> = s.policy.tenant.inbound_connectors[0]
            .sender_ip_addresses
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["203.0.113.7/32", "198.51.100.0/24", "192.0.2.9/32"]);
    }

    #[test]
    fn certificate_name_forms() {
        let ok = |v: &str| {
            check(&format!(
                "[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\ntls_sender_certificate_name = \"{v}\"\n"
            ))
            .map(|s| s.policy.tenant.inbound_connectors[0].tls_sender_certificate_name.clone())
        };
        assert_eq!(
            ok("Mail.Contoso.com.").unwrap(),
            Some(CertificateName::Exact("mail.contoso.com".into()))
        );
        assert_eq!(
            ok("*.contoso.com").unwrap(),
            Some(CertificateName::Wildcard("contoso.com".into()))
        );
        for bad in [
            "mail.*.contoso.com",
            "*contoso.com",
            "*.*.contoso.com",
            "contoso..com",
            "-x.com",
        ] {
            assert!(ok(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn match_subdomains_only_with_internal_relay() {
        let e =
            refused("[[accepted_domains]]\ndomain = \"contoso.com\"\nmatch_subdomains = true\n");
        assert!(
            e.contains("accepted_domains[0].match_subdomains") && e.contains("InternalRelay"),
            "{e}"
        );
        check("[[accepted_domains]]\ndomain = \"fabrikam.com\"\ndomain_type = \"InternalRelay\"\nmatch_subdomains = true\n")
            .unwrap();
    }

    #[test]
    fn certificate_without_key_is_refused() {
        let text = r#"
[server]
[upstream]
kind = "smtp"
address = "127.0.0.1:25"
client_certificate = "certs/gate.pem"
"#;
        let e = Config::parse(text)
            .unwrap()
            .validate()
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("upstream.client_certificate") && e.contains("needs its key"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_enums_are_refused() {
        let e = Config::parse(&format!("{BASE}\n[policy]\nprofle = \"exo-2023\"\n"))
            .err()
            .unwrap();
        assert!(e.contains("profle"), "{e}");
        let e = refused("[policy]\nprofile = \"exo-2019\"\n");
        assert!(e.contains("policy.profile = \"exo-2019\""), "{e}");
        let e = refused("[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"Onpremises\"\nsender_ip_addresses = [\"192.0.2.1\"]\n");
        assert!(e.contains("connector_type"), "{e}");
    }

    /// Every `*_secs` key, in the section it belongs to.
    const SECONDS_KEYS: [(&str, &str); 11] = [
        ("server", "command_timeout_secs"),
        ("server", "data_timeout_secs"),
        ("server", "tls_handshake_timeout_secs"),
        ("server", "session_timeout_secs"),
        ("server", "proxy_header_timeout_secs"),
        ("server", "shutdown_grace_secs"),
        ("upstream", "connect_timeout_secs"),
        ("upstream", "reply_timeout_secs"),
        ("upstream", "data_end_timeout_secs"),
        ("upstream", "pool_idle_timeout_secs"),
        ("admin", "probe_interval_secs"),
    ];

    /// The base configuration, with an `[admin]` section, and `section.key = value`.
    fn with_seconds(section: &str, key: &str, value: u64) -> String {
        let line = |s: &str| {
            if s == section {
                format!("{key} = {value}\n")
            } else {
                String::new()
            }
        };
        format!(
            "[server]\nhostname = \"gate.contoso.com\"\n{}[upstream]\nkind = \"directory\"\npath = \"out\"\n{}[admin]\nlisten = \"127.0.0.1:9025\"\n{}",
            line("server"),
            line("upstream"),
            line("admin"),
        )
    }

    #[test]
    fn every_seconds_setting_is_at_most_one_day() {
        for (section, key) in SECONDS_KEYS {
            for value in [86_401, i64::MAX as u64] {
                let text = with_seconds(section, key, value);
                let e = match Config::parse(&text).unwrap().validate() {
                    Ok(_) => panic!("{section}.{key} = {value} accepted"),
                    Err(e) => e.to_string(),
                };
                assert_eq!(
                    e,
                    format!("configuration key {section}.{key} = {value}: must be at most 86400 seconds (one day)")
                );
            }
            let text = with_seconds(section, key, 86_400);
            let settings = Config::parse(&text).unwrap().validate();
            assert!(settings.is_ok(), "{section}.{key} = 86400 refused");
        }
    }

    #[test]
    fn smtp_upstream_seconds_are_bounded_too() {
        let text = "[server]\n[upstream]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\ntls = \"none\"\nreply_timeout_secs = 9223372036854775807\n";
        let e = Config::parse(text).unwrap().validate().err().unwrap();
        assert!(
            e.to_string()
                .contains("upstream.reply_timeout_secs = 9223372036854775807: must be at most"),
            "{e}"
        );
    }

    #[test]
    fn a_misspelt_log_level_is_refused_with_the_levels() {
        for (value, culprit) in [
            ("inf", "inf"),
            ("relaygate=debug,inf", "inf"),
            ("relaygate=verbose", "verbose"),
            // A bare target enables everything for it and silences the rest.
            ("relaygate", "relaygate"),
            ("relaygate=", ""),
        ] {
            let e = refused(&format!("[log]\nlevel = {value:?}\n"));
            assert_eq!(
                e,
                format!(
                    "configuration key log.level = {value:?}: names {culprit:?}, which is not a level: each comma-separated directive must be a level or target=level, and the levels are trace, debug, info, warn, error and off"
                )
            );
        }
        let e = refused("[log]\nlevel = \" , \"\n");
        assert!(
            e.starts_with("configuration key log.level = \" , \": is empty"),
            "{e}"
        );
        // What the levels allow but EnvFilter does not parse.
        let e = refused("[log]\nlevel = \"relaygate[=info\"\n");
        assert!(
            e.starts_with("configuration key log.level = \"relaygate[=info\": "),
            "{e}"
        );
        for ok in [
            "info",
            "WARN",
            "Off",
            "relaygate=debug,info",
            "relaygate::transaction=info,warn",
            "relaygate[session]=trace,error",
            "relaygate=debug,",
        ] {
            let s = check(&format!("[log]\nlevel = {ok:?}\n"));
            assert!(s.is_ok(), "{ok}: {:?}", s.err());
        }
    }

    /// The error for `[section]` with `lines`, on top of a valid configuration.
    fn tls_refusal(section: &str, lines: &str) -> String {
        let text = if section == "tls" {
            format!("{BASE}\n[tls]\n{lines}")
        } else {
            format!("[server]\n[upstream]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\n{lines}")
        };
        match Config::parse(&text).unwrap().validate() {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn tls_errors_name_the_exact_key() {
        let server = |cert: &str, key: &str, ca: &str| {
            tls_refusal(
                "tls",
                &format!("certificate = \"certs/{cert}\"\nprivate_key = \"certs/{key}\"\nclient_ca = \"certs/{ca}\"\n"),
            )
        };
        let upstream = |ca: &str, cert: &str, key: &str| {
            tls_refusal(
                "upstream",
                &format!("ca = \"certs/{ca}\"\nclient_certificate = \"certs/{cert}\"\nclient_private_key = \"certs/{key}\"\n"),
            )
        };
        for (e, key, why) in [
            (
                server("missing.pem", "gate.key", "ca.pem"),
                "tls.certificate",
                "certs/missing.pem: no such file",
            ),
            (
                server("gate.key", "gate.key", "ca.pem"),
                "tls.certificate",
                "contains no certificate",
            ),
            (
                server("gate.pem", "missing.key", "ca.pem"),
                "tls.private_key",
                "certs/missing.key: no such file",
            ),
            (
                server("gate.pem", "ca.key", "ca.pem"),
                "tls.private_key",
                "is not the private key of certs/gate.pem",
            ),
            (
                server("gate.pem", "gate.key", "missing.pem"),
                "tls.client_ca",
                "certs/missing.pem: no such file",
            ),
            (
                server("gate.pem", "gate.key", "ca.key"),
                "tls.client_ca",
                "contains no certificate",
            ),
            (
                upstream("missing.pem", "gate.pem", "gate.key"),
                "upstream.ca",
                "certs/missing.pem: no such file",
            ),
            (
                upstream("ca.pem", "missing.pem", "gate.key"),
                "upstream.client_certificate",
                "certs/missing.pem: no such file",
            ),
            (
                upstream("ca.pem", "gate.pem", "missing.key"),
                "upstream.client_private_key",
                "certs/missing.key: no such file",
            ),
            (
                upstream("ca.pem", "gate.pem", "ca.key"),
                "upstream.client_private_key",
                "is not the private key of certs/gate.pem",
            ),
        ] {
            assert!(
                e.starts_with(&format!("configuration key {key}: ")),
                "{key}: {e}"
            );
            assert!(e.contains(why), "{key}: {e}");
        }
    }

    #[test]
    fn listeners_conflict_on_the_same_port_and_an_overlapping_address() {
        let conflict =
            |a: &str, b: &str| listeners_conflict(a.parse().unwrap(), b.parse().unwrap());
        for (a, b) in [
            ("127.0.0.1:25", "127.0.0.1:25"),
            ("0.0.0.0:25", "127.0.0.1:25"),
            ("[::]:25", "0.0.0.0:25"),
            ("[::]:25", "127.0.0.1:25"),
            ("[::]:25", "[::1]:25"),
            ("[::ffff:127.0.0.1]:25", "127.0.0.1:25"),
        ] {
            assert!(conflict(a, b) && conflict(b, a), "{a} {b}");
        }
        for (a, b) in [
            ("127.0.0.1:25", "127.0.0.1:26"),
            ("127.0.0.1:25", "127.0.0.2:25"),
            // 0.0.0.0 is IPv4 only.
            ("0.0.0.0:25", "[::1]:25"),
            // Port 0 asks the system for a free port each time.
            ("127.0.0.1:0", "127.0.0.1:0"),
        ] {
            assert!(!conflict(a, b) && !conflict(b, a), "{a} {b}");
        }
    }

    #[test]
    fn a_listener_that_conflicts_with_another_is_refused() {
        let text = "[server]\nlisten = [\"127.0.0.1:2525\", \"[::1]:2525\", \"127.0.0.1:2525\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n";
        let e = Config::parse(text).unwrap().validate().err().unwrap();
        assert_eq!(
            e.to_string(),
            "configuration key server.listen[2] = 127.0.0.1:2525: conflicts with server.listen[0] = 127.0.0.1:2525: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
        );
        let text = "[server]\nlisten = [\"0.0.0.0:2525\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n[admin]\nlisten = \"127.0.0.1:2525\"\n";
        let e = Config::parse(text).unwrap().validate().err().unwrap();
        assert_eq!(
            e.to_string(),
            "configuration key admin.listen = 127.0.0.1:2525: conflicts with server.listen[0] = 0.0.0.0:2525: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
        );
        let ok = text.replace("127.0.0.1:2525", "127.0.0.1:9025");
        assert!(Config::parse(&ok).unwrap().validate().is_ok());
    }

    #[test]
    fn on_premises_connector_needs_an_ip_or_a_certificate_name() {
        let e =
            refused("[[inbound_connectors]]\nname = \"empty\"\nconnector_type = \"OnPremises\"\n");
        assert!(
            e.contains("needs sender_ip_addresses or tls_sender_certificate_name"),
            "{e}"
        );
    }
}
