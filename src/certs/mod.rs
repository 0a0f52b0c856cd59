//! The certificate, key and CA files the configuration names, watched while the gate runs.
//!
//! ACME clients (certbot, lego, cert-manager) renew in place or by rename, and Kubernetes swaps
//! a secret's `..data` symlink: the gate notices by polling each file's modification time, size
//! and inode every [`POLL_INTERVAL`] (through symlinks), and reloads. Polling instead of inotify
//! (`notify`): a handful of `stat` calls every few seconds costs nothing, needs no crate, and
//! sees a symlink swap that an inotify watch on the old target would miss.

pub mod expiry;

use crate::config::{Config, UpstreamConfig, UpstreamKind, UpstreamTls};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often the files are looked at. A renewal is in force within two polls (the first sees
/// the change, the second that it has settled).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What a certificate file is for; the `role` label of the expiry metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[tls] certificate`: what the gate presents to clients.
    Server,
    /// `[tls] client_ca`: the anchors client certificates are checked against.
    ClientCa,
    /// `[upstream] client_certificate`: how Exchange Online recognises the gate.
    UpstreamClient,
    /// `[upstream] ca`: the anchors the upstream's certificate is checked against.
    UpstreamCa,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::ClientCa => "client_ca",
            Role::UpstreamClient => "upstream_client",
            Role::UpstreamCa => "upstream_ca",
        }
    }
}

/// One certificate file the configuration names, with its private key when it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFile {
    pub role: Role,
    /// The tenant whose upstream names it (`[[tenants]] name`; empty for the top level).
    pub tenant: String,
    pub path: PathBuf,
    pub key: Option<PathBuf>,
}

/// Every certificate file of `config`, in configuration order.
pub fn files(config: &Config) -> Vec<CertificateFile> {
    let mut out = Vec::new();
    let mut add = |role, tenant: &str, path: &Option<PathBuf>, key: &Option<PathBuf>| {
        if let Some(path) = path {
            out.push(CertificateFile {
                role,
                tenant: tenant.to_string(),
                path: path.clone(),
                key: key.clone(),
            });
        }
    };
    if let Some(tls) = &config.tls {
        add(
            Role::Server,
            "",
            &Some(tls.certificate.clone()),
            &Some(tls.private_key.clone()),
        );
        add(Role::ClientCa, "", &tls.client_ca, &None);
    }
    let upstreams = config.upstream.iter().map(|u| ("", u));
    let tenants = config
        .tenants
        .iter()
        .map(|t| (t.name.as_str(), &t.upstream));
    // Loaded only for an SMTP upstream with TLS: elsewhere the keys are inert.
    let loaded = |u: &&UpstreamConfig| u.kind == UpstreamKind::Smtp && u.tls != UpstreamTls::None;
    for (tenant, upstream) in upstreams.chain(tenants).filter(|(_, u)| loaded(u)) {
        add(
            Role::UpstreamClient,
            tenant,
            &upstream.client_certificate,
            &upstream.client_private_key,
        );
        add(Role::UpstreamCa, tenant, &upstream.ca, &None);
    }
    out
}

/// What a file looks like from outside: a renewal changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    // `metadata` follows symlinks: a swapped `..data` link shows as a new inode.
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

/// The stamps of every certificate, key and CA file of a configuration (a missing file, e.g.
/// between the two steps of a rename, is a stamp of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(Vec<Option<Stamp>>);

impl Fingerprint {
    pub fn of(files: &[CertificateFile]) -> Fingerprint {
        Fingerprint(
            files
                .iter()
                .flat_map(|f| std::iter::once(&f.path).chain(f.key.as_ref()))
                .map(|p| stamp(p))
                .collect(),
        )
    }
}

/// Decides when to reload: a change must have settled (the same on two polls in a row) so that
/// a certificate written before its key is not loaded alone, and a change that failed to load
/// is not tried again until the files change again.
#[derive(Debug)]
pub struct Watch {
    /// The files as they were when the running configuration loaded them, or failed to.
    tried: Fingerprint,
    /// The files as the previous poll saw them.
    last: Fingerprint,
}

impl Watch {
    pub fn new(files: &[CertificateFile]) -> Watch {
        let now = Fingerprint::of(files);
        Watch {
            tried: now.clone(),
            last: now,
        }
    }

    /// One poll: `true` when the files changed and have settled, so they should be loaded now.
    pub fn poll(&mut self, files: &[CertificateFile]) -> bool {
        let now = Fingerprint::of(files);
        let settled = now == self.last;
        self.last = now;
        if settled && self.last != self.tried {
            self.tried = self.last.clone();
            return true;
        }
        false
    }

    /// Start afresh after a reload by other means (SIGHUP) with these files.
    pub fn reset(&mut self, files: &[CertificateFile]) {
        *self = Watch::new(files);
    }
}

#[cfg(test)]
mod tests;
