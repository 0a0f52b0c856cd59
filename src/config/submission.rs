//! `[submission]`: the second door. Exchange Online has two: the MX with its inbound connectors
//! (what `[server] listen` mirrors) and client submission (`smtp.office365.com:587`, SMTP AUTH).
//! Applications that only know "server, port, user name, password" keep those settings and
//! point at these listeners once Basic authentication is off for SMTP AUTH (MC786329).
//!
//! The users and their password hashes live in a file of their own (`users_file`), so that
//! secrets can be mounted apart from the configuration; it is read here, with the rest, so that
//! a reload that cannot read it keeps the running generation like any other reload error.

use super::server::no_listen_conflict_among;
use super::values::invalid;
use super::ConfigError;
use crate::submission::users::Users;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// `[submission]` as written. Absent: no submission listener, AUTH is never offered.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionConfig {
    /// Port 587 style listeners: the client starts in clear text, issues STARTTLS, then AUTH.
    /// Default none.
    #[serde(default)]
    pub listen: Vec<SocketAddr>,
    /// Port 465 style listeners (RFC 8314): TLS from the first byte, then AUTH. Default none.
    #[serde(default)]
    pub implicit_tls_listen: Vec<SocketAddr>,
    /// The users file: `[[users]]` with `name`, `password_hash` (argon2id PHC string, from
    /// `relaygate passwd`) and `allowed_senders`. Required when a listener is set; refused when
    /// other users can read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users_file: Option<PathBuf>,
}

/// Validated `[submission]`, with its users loaded.
#[derive(Debug, Clone)]
pub struct SubmissionSettings {
    pub listen: Vec<SocketAddr>,
    pub implicit_tls_listen: Vec<SocketAddr>,
    pub users_file: PathBuf,
    /// The users as read at start or at the last successful reload.
    pub users: Arc<Users>,
}

impl SubmissionConfig {
    fn named_listeners(&self) -> Vec<(String, SocketAddr)> {
        named(&self.listen, &self.implicit_tls_listen)
    }

    /// `relay_listeners`: the validated `server.listen`, which no submission listener may
    /// collide with; `tls`: whether `[tls]` is present (both kinds need its certificate).
    /// `None` when no listener is configured.
    pub(super) fn validate(
        &self,
        relay_listeners: &[SocketAddr],
        tls: bool,
    ) -> Result<Option<SubmissionSettings>, ConfigError> {
        if self.listen.is_empty() && self.implicit_tls_listen.is_empty() {
            return Ok(None);
        }
        // Every SMTP listener so far: server.listen, then the submission ones in order, so
        // that two submission addresses that collide are refused too.
        let mut taken: Vec<(String, SocketAddr)> = relay_listeners
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("server.listen[{i}]"), *a))
            .collect();
        for (key, addr) in self.named_listeners() {
            no_listen_conflict_among(&key, addr, &taken)?;
            if !tls {
                return Err(ConfigError::Misplaced {
                    key,
                    reason:
                        "needs [tls]: AUTH is offered only under TLS, with the certificate of [tls]"
                            .into(),
                });
            }
            taken.push((key, addr));
        }
        let users_file = self
            .users_file
            .clone()
            .ok_or_else(|| ConfigError::Misplaced {
                key: "submission.users_file".into(),
                reason: "is missing: a submission listener needs the users who may authenticate"
                    .into(),
            })?;
        let users = Users::load(&users_file)
            .map_err(|e| invalid("submission.users_file", users_file.display(), e.to_string()))?;
        Ok(Some(SubmissionSettings {
            listen: self.listen.clone(),
            implicit_tls_listen: self.implicit_tls_listen.clone(),
            users_file,
            users: Arc::new(users),
        }))
    }
}

impl SubmissionSettings {
    /// Every submission listener under the key that names it (`submission.listen[0]`, ...).
    pub(super) fn named_listeners(&self) -> Vec<(String, SocketAddr)> {
        named(&self.listen, &self.implicit_tls_listen)
    }
}

fn named(listen: &[SocketAddr], implicit: &[SocketAddr]) -> Vec<(String, SocketAddr)> {
    let plain = listen
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("submission.listen[{i}]"), *a));
    let implicit = implicit
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("submission.implicit_tls_listen[{i}]"), *a));
    plain.chain(implicit).collect()
}
