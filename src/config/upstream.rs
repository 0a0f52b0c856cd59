//! `[upstream]`: where accepted transactions go, an SMTP server (Exchange Online) or a directory.

use super::keyword::{self, Keyword};
use super::tls::tls_error;
use super::values::{invalid, quoted, seconds};
use super::ConfigError;
use crate::tls;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[upstream] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// Forward over SMTP to `address`.
    Smtp,
    /// Write each message to files under `path`.
    Directory,
}

impl Keyword for UpstreamKind {
    const ALL: &'static [Self] = &[UpstreamKind::Smtp, UpstreamKind::Directory];
    fn word(self) -> &'static str {
        match self {
            UpstreamKind::Smtp => "smtp",
            UpstreamKind::Directory => "directory",
        }
    }
}

/// `[upstream] tls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTls {
    Required,
    Opportunistic,
    None,
}

impl Keyword for UpstreamTls {
    const ALL: &'static [Self] = &[
        UpstreamTls::Required,
        UpstreamTls::Opportunistic,
        UpstreamTls::None,
    ];
    fn word(self) -> &'static str {
        match self {
            UpstreamTls::Required => "required",
            UpstreamTls::Opportunistic => "opportunistic",
            UpstreamTls::None => "none",
        }
    }
}

/// Fail closed: no STARTTLS, or a certificate that does not verify, is a 451.
pub const fn default_upstream_tls() -> UpstreamTls {
    UpstreamTls::Required
}

pub const fn default_connect_timeout_secs() -> u64 {
    30
}

/// RFC 5321 section 4.5.3.2: a client waits at least 5 minutes for most replies.
pub const fn default_reply_timeout_secs() -> u64 {
    300
}

/// RFC 5321 section 4.5.3.2.6: 10 minutes for the reply to the final dot.
pub const fn default_data_end_timeout_secs() -> u64 {
    600
}

pub const fn default_pool_max_idle() -> usize {
    32
}

pub const fn default_pool_idle_timeout_secs() -> u64 {
    30
}

/// Exchange Online sends with BDAT when offered; so does the gate.
pub const fn default_chunking() -> bool {
    true
}

/// One upstream round trip per message for the common case; the client's outcome is the same.
pub const fn default_answer_sole_recipient_early() -> bool {
    true
}

/// `[upstream]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `"smtp"` or `"directory"`. Required.
    #[serde(with = "keyword")]
    pub kind: UpstreamKind,
    /// `host:port` of the upstream SMTP server, or a list of them tried in order (failover).
    /// Required with kind smtp.
    pub address: Option<AddressList>,
    /// `"required"`, `"opportunistic"` or `"none"`. Default `"required"`.
    #[serde(with = "keyword", default = "default_upstream_tls")]
    pub tls: UpstreamTls,
    /// Name to verify the upstream certificate against. Default absent: the host part of
    /// `address`.
    pub tls_server_name: Option<String>,
    /// PEM trust anchors for the upstream. Default absent: the public web PKI roots.
    pub ca: Option<PathBuf>,
    /// PEM certificate presented upstream (how Exchange Online recognises the gate). Default
    /// absent; needs `client_private_key`.
    pub client_certificate: Option<PathBuf>,
    /// PEM private key of `client_certificate`. Default absent; needs `client_certificate`.
    pub client_private_key: Option<PathBuf>,
    /// Directory messages are written to. Required with kind directory.
    pub path: Option<PathBuf>,
    /// TCP connect and TLS handshake timeout. Default 30.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Wait for each upstream reply. Default 300 (RFC 5321 4.5.3.2).
    #[serde(default = "default_reply_timeout_secs")]
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
    #[serde(default = "default_chunking")]
    pub chunking: bool,
    /// When a client pipelines DATA right behind the only RCPT of its transaction and the
    /// upstream offers CHUNKING and PIPELINING: answer that RCPT at once and send MAIL, RCPT
    /// and the message as BDAT without waiting in between (RFC 3030 4.2), one upstream round
    /// trip per message instead of two. An upstream refusal of MAIL or RCPT is then the
    /// message's final reply. Default true.
    #[serde(default = "default_answer_sole_recipient_early")]
    pub answer_sole_recipient_early: bool,
}

/// `[upstream] address`: one `host:port`, or a list tried in order. Kept as written, so
/// `config show` prints a single address as the string it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddressList {
    One(String),
    List(Vec<String>),
}

impl AddressList {
    pub fn entries(&self) -> Vec<String> {
        match self {
            AddressList::One(a) => vec![a.clone()],
            AddressList::List(l) => l.clone(),
        }
    }
}

/// One configured upstream address with the name its certificate is verified against.
#[derive(Debug, Clone)]
pub struct UpstreamAddress {
    /// `host:port` as configured (resolved at each connect, so DNS changes are followed).
    pub address: String,
    pub tls_server_name: rustls_pki_types::ServerName<'static>,
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
    /// The configured addresses, in order (never empty).
    pub addresses: Vec<UpstreamAddress>,
    pub tls: UpstreamTls,
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    pub reply_timeout: Duration,
    pub data_end_timeout: Duration,
    /// Use BDAT when the upstream offers CHUNKING.
    pub chunking: bool,
    /// `answer_sole_recipient_early`: see [`UpstreamConfig`].
    pub answer_sole_recipient_early: bool,
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
                .field("addresses", &s.addresses)
                .field("tls", &s.tls)
                .finish_non_exhaustive(),
            UpstreamSettings::Directory { path } => {
                f.debug_struct("Directory").field("path", path).finish()
            }
        }
    }
}

impl UpstreamConfig {
    /// Every timeout of the section with its key, for the checks on all of them.
    fn timeouts(&self) -> [(&'static str, u64); 4] {
        [
            ("upstream.connect_timeout_secs", self.connect_timeout_secs),
            ("upstream.reply_timeout_secs", self.reply_timeout_secs),
            ("upstream.data_end_timeout_secs", self.data_end_timeout_secs),
            (
                "upstream.pool_idle_timeout_secs",
                self.pool_idle_timeout_secs,
            ),
        ]
    }

    pub(super) fn validate(&self) -> Result<UpstreamSettings, ConfigError> {
        // Bounded whatever the kind, so that no value in the file is left to overflow later;
        // the lower bounds apply to kind smtp only, below.
        for (key, v) in self.timeouts() {
            seconds(key, v, 0)?;
        }
        match self.kind {
            UpstreamKind::Directory => {
                let path = self.path.clone().ok_or_else(|| {
                    invalid(
                        "upstream.path",
                        "(missing)",
                        "is required with kind = \"directory\"",
                    )
                })?;
                Ok(UpstreamSettings::Directory { path })
            }
            UpstreamKind::Smtp => self
                .validate_smtp()
                .map(Arc::new)
                .map(UpstreamSettings::Smtp),
        }
    }

    fn validate_smtp(&self) -> Result<SmtpUpstreamSettings, ConfigError> {
        let entries = self
            .address
            .as_ref()
            .map(AddressList::entries)
            .ok_or_else(|| {
                invalid(
                    "upstream.address",
                    "(missing)",
                    "is required with kind = \"smtp\" (host:port, or a list of them)",
                )
            })?;
        if entries.is_empty() {
            return Err(invalid(
                "upstream.address",
                "[]",
                "needs at least one host:port",
            ));
        }
        let addresses = entries
            .into_iter()
            .map(|a| self.validate_address(a))
            .collect::<Result<Vec<_>, _>>()?;
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
        let tls_config = if self.tls == UpstreamTls::None {
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
        for (key, v) in self.timeouts() {
            if v == 0 {
                return Err(invalid(key, v, "must be at least 1 second"));
            }
        }
        Ok(SmtpUpstreamSettings {
            addresses,
            tls: self.tls,
            tls_config,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            reply_timeout: Duration::from_secs(self.reply_timeout_secs),
            data_end_timeout: Duration::from_secs(self.data_end_timeout_secs),
            chunking: self.chunking,
            answer_sole_recipient_early: self.answer_sole_recipient_early,
            pool_max_idle: self.pool_max_idle,
            pool_idle_timeout: Duration::from_secs(self.pool_idle_timeout_secs),
        })
    }

    /// `host:port` (an IPv6 host in brackets), and the name its certificate must carry:
    /// `tls_server_name` when set, else the host itself.
    fn validate_address(&self, address: String) -> Result<UpstreamAddress, ConfigError> {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| invalid("upstream.address", quoted(&address), "must be host:port"))?;
        if port.parse::<u16>().is_err() {
            return Err(invalid(
                "upstream.address",
                quoted(&address),
                "the port is not a number from 0 to 65535",
            ));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = self.tls_server_name.as_deref().unwrap_or(host).to_string();
        let tls_server_name =
            rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
                invalid(
                    "upstream.tls_server_name",
                    quoted(&name),
                    "is not a valid DNS name or IP address",
                )
            })?;
        Ok(UpstreamAddress {
            address,
            tls_server_name,
        })
    }
}
