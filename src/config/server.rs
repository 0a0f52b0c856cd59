//! `[server]`: the listening side, its limits and timeouts.

use super::values::{invalid, quoted, seconds};
use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

/// Exchange Online's default maximum message size (35 MB).
pub const fn default_max_message_size_bytes() -> u64 {
    36_700_160
}

/// Exchange Online's header size limit (256 KB); the header block is the only part of a message
/// the gate buffers.
pub const fn default_max_header_size_bytes() -> usize {
    262_144
}

/// RFC 5321 allows 1000 octets; real applications send longer lines and Exchange Online accepts
/// them, so the gate is generous but bounded.
pub const fn default_max_line_length_bytes() -> usize {
    65_536
}

pub const fn default_max_recipients() -> usize {
    500
}

/// RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for a command.
pub const fn default_command_timeout_secs() -> u64 {
    300
}

/// RFC 5321 section 4.5.3.2.5: 3 minutes for each data block.
pub const fn default_data_timeout_secs() -> u64 {
    180
}

pub const fn default_tls_handshake_timeout_secs() -> u64 {
    30
}

pub const fn default_session_timeout_secs() -> u64 {
    3600
}

pub const fn default_max_connections() -> usize {
    1000
}

pub const fn default_max_connections_per_ip() -> usize {
    100
}

pub const fn default_shutdown_grace_secs() -> u64 {
    30
}

pub const fn default_proxy_header_timeout_secs() -> u64 {
    10
}

/// Only a local load balancer may speak for a client until the admin says otherwise.
pub const fn default_proxy_trusted_networks() -> [&'static str; 2] {
    ["127.0.0.0/8", "::1/128"]
}

pub const fn default_hostname() -> &'static str {
    "relaygate.localdomain"
}

/// Loopback, on a port that needs no privilege: a fresh install is reachable from nowhere else.
pub const fn default_listen() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2525))
}

/// `[server]` as written. Every key has a default; the section itself must be present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Name in the banner, the EHLO reply, `Received:` headers and the reply suffix.
    /// Default `"relaygate.localdomain"`.
    pub hostname: String,
    /// Addresses to listen on, IPv4 and IPv6. Default `["127.0.0.1:2525"]`.
    pub listen: Vec<SocketAddr>,
    /// Largest message accepted, in bytes, advertised in `SIZE`. Default 36700160 (35 MB).
    pub max_message_size: u64,
    /// Most recipients in one transaction; more get `452 4.5.3`. Default 500.
    pub max_recipients: usize,
    /// Wait for a command (also banner to first command). Default 300 (RFC 5321 4.5.3.2.7).
    pub command_timeout_secs: u64,
    /// Wait for each read while receiving DATA. Default 180 (RFC 5321 4.5.3.2.5).
    pub data_timeout_secs: u64,
    /// Whole STARTTLS handshake. Default 30.
    pub tls_handshake_timeout_secs: u64,
    /// Whole session, however active. Default 3600.
    pub session_timeout_secs: u64,
    /// Largest header block, in bytes (it is buffered to find the `From:` header). Default 262144.
    pub max_header_size: usize,
    /// Longest line of message text, in bytes including CRLF. Default 65536.
    pub max_line_length: usize,
    /// Sessions at once; more are answered `421 4.7.0` and closed. Default 1000.
    pub max_connections: usize,
    /// Sessions at once from one client address. Default 100.
    pub max_connections_per_ip: usize,
    /// On SIGTERM/SIGINT, how long transactions in flight may take to finish. Default 30.
    pub shutdown_grace_secs: u64,
    /// Expect a PROXY protocol (v1 or v2) header before the banner. Default false.
    pub proxy_protocol: bool,
    /// Peers allowed to send a PROXY header (CIDR or single addresses). Default
    /// `["127.0.0.0/8", "::1/128"]`.
    pub proxy_trusted_networks: Vec<String>,
    /// Wait for the PROXY header. Default 10.
    pub proxy_header_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            hostname: default_hostname().to_string(),
            listen: vec![default_listen()],
            max_message_size: default_max_message_size_bytes(),
            max_recipients: default_max_recipients(),
            command_timeout_secs: default_command_timeout_secs(),
            data_timeout_secs: default_data_timeout_secs(),
            tls_handshake_timeout_secs: default_tls_handshake_timeout_secs(),
            session_timeout_secs: default_session_timeout_secs(),
            max_header_size: default_max_header_size_bytes(),
            max_line_length: default_max_line_length_bytes(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            proxy_protocol: false,
            proxy_trusted_networks: default_proxy_trusted_networks().map(String::from).to_vec(),
            proxy_header_timeout_secs: default_proxy_header_timeout_secs(),
        }
    }
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

/// A value of at least `min`, or the refusal naming `server.{key}`.
fn at_least<T: PartialOrd + Copy + std::fmt::Display>(
    key: &str,
    value: T,
    min: T,
    reason: &str,
) -> Result<T, ConfigError> {
    if value < min {
        return Err(invalid(format!("server.{key}"), value, reason));
    }
    Ok(value)
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<ServerSettings, ConfigError> {
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
        let bytes = "must be at least 1024 bytes";
        at_least("max_message_size", self.max_message_size, 1024, bytes)?;
        at_least(
            "max_recipients",
            self.max_recipients,
            1,
            "must be at least 1",
        )?;
        let secs = |key: &str, value: u64, min: u64| seconds(&format!("server.{key}"), value, min);
        let command_timeout = secs("command_timeout_secs", self.command_timeout_secs, 1)?;
        let data_timeout = secs("data_timeout_secs", self.data_timeout_secs, 1)?;
        let tls_handshake_timeout = secs(
            "tls_handshake_timeout_secs",
            self.tls_handshake_timeout_secs,
            1,
        )?;
        let session_timeout = secs("session_timeout_secs", self.session_timeout_secs, 1)?;
        let proxy_header_timeout = secs(
            "proxy_header_timeout_secs",
            self.proxy_header_timeout_secs,
            1,
        )?;
        // 0: drop transactions in flight at once.
        let shutdown_grace = secs("shutdown_grace_secs", self.shutdown_grace_secs, 0)?;
        at_least("max_header_size", self.max_header_size, 1024, bytes)?;
        at_least(
            "max_line_length",
            self.max_line_length,
            1000,
            "must be at least 1000 (RFC 5321 section 4.5.3.1.6)",
        )?;
        at_least(
            "max_connections",
            self.max_connections,
            1,
            "must be at least 1",
        )?;
        at_least(
            "max_connections_per_ip",
            self.max_connections_per_ip,
            1,
            "must be at least 1",
        )?;
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
            command_timeout,
            data_timeout,
            tls_handshake_timeout,
            session_timeout,
            max_header_size: self.max_header_size,
            max_line_length: self.max_line_length,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            shutdown_grace,
            proxy_protocol: self.proxy_protocol.then_some(trusted),
            proxy_header_timeout,
        })
    }
}

/// Whether the two listening addresses cannot both be bound ("address in use"): the same port
/// (port 0 asks the system for a free one each time, so never), and the same address or an
/// unspecified one covering the other. `0.0.0.0` covers IPv4 only; `[::]` is dual-stack (the
/// Linux default), so it covers IPv4 as well. IPv4-mapped addresses count as IPv4.
pub(super) fn listeners_conflict(a: SocketAddr, b: SocketAddr) -> bool {
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
pub(super) fn no_listen_conflict(
    key: &str,
    addr: SocketAddr,
    smtp_listeners: &[SocketAddr],
) -> Result<(), ConfigError> {
    let named: Vec<(String, SocketAddr)> = smtp_listeners
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("server.listen[{i}]"), *a))
        .collect();
    no_listen_conflict_among(key, addr, &named)
}

/// [`no_listen_conflict`] among listeners of several keys (`server.listen[0]`,
/// `submission.listen[1]`, ...), each named in the refusal as it is written.
pub(super) fn no_listen_conflict_among(
    key: &str,
    addr: SocketAddr,
    listeners: &[(String, SocketAddr)],
) -> Result<(), ConfigError> {
    match listeners
        .iter()
        .find(|(_, other)| listeners_conflict(addr, *other))
    {
        None => Ok(()),
        Some((other_key, other)) => Err(invalid(
            key,
            addr,
            format!(
                "conflicts with {other_key} = {other}: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
            ),
        )),
    }
}
