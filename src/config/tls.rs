//! `[tls]`: STARTTLS towards the clients, and the TLS errors of every section.

use super::ConfigError;
use crate::tls::{ServerTls, TlsError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[tls]` as written. Absent: STARTTLS is not offered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first. Required.
    pub certificate: PathBuf,
    /// PEM private key of the leaf (PKCS#8, PKCS#1 or SEC1). Required.
    pub private_key: PathBuf,
    /// PEM trust anchors for client certificates. Default absent: no client certificate is
    /// requested.
    pub client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// Read the certificate, key and trust anchors now, so that a missing or mismatched file is
    /// refused before anything listens.
    pub(super) fn load(&self) -> Result<ServerTls, ConfigError> {
        ServerTls::load(
            &self.certificate,
            &self.private_key,
            self.client_ca.as_deref(),
        )
        .map_err(tls_error)
    }
}

/// A TLS error under the exact key that names the file at fault (`tls.private_key`, not `tls`).
pub(super) fn tls_error(source: TlsError) -> ConfigError {
    ConfigError::Tls {
        key: source.key().to_string(),
        source,
    }
}
