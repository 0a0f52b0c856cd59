//! The users file (`[submission] users_file`): who may log in on a submission listener, with
//! which password, and as which senders. It lives outside the main configuration so that the
//! secrets can be mounted on their own (a Kubernetes secret, a file only the gate's group reads).
//!
//! ```toml
//! [[users]]
//! name = "scanner@contoso.com"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."   # relaygate passwd
//! allowed_senders = ["scanner@contoso.com", "*@fabrikam.com"]
//! ```
//!
//! Passwords are stored only as argon2id PHC strings: a copy of the file must not give away the
//! passwords the applications were configured with (often the same as their old mailbox's).
//! Neither a password nor a hash ever appears in an error or in `Debug` output.

use crate::files::{self, Limit};
use crate::policy::{normalise, normalise_address};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordVerifier;
use argon2::Argon2;
use hash::{decoy, parse_phc, HashRefusal};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

mod hash;
pub use hash::hash_password;

/// A users file is a few hundred bytes per user; this is room for thousands.
const USERS_FILE: Limit = Limit {
    bytes: 1 << 20,
    what: "a users file",
};

/// Why a users file is refused. Each names the file and, where there is one, the user; none
/// shows a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// Missing, unreadable, not UTF-8, or larger than the limit (1 MiB).
    #[error("cannot read users file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every local user could read the password hashes and attack them offline.
    #[error(
        "users file {path} is readable by every user (mode {mode:04o}): \
         chmod 600 (or 640, group of the gate's user) it"
    )]
    WorldReadable { path: PathBuf, mode: u32 },
    /// Every local user could add themselves as a user.
    #[error(
        "users file {path} is writable by every user (mode {mode:04o}): \
         chmod 600 (or 640, group of the gate's user) it"
    )]
    WorldWritable { path: PathBuf, mode: u32 },
    /// Not TOML, or not this file's shape: the key path, why, and where.
    #[error("users file {path} is not valid: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("users file {path}: users[{index}].name is empty")]
    EmptyName { path: PathBuf, index: usize },
    /// A control character would let a name forge lines in the log.
    #[error("users file {path}: users[{index}].name contains a control character")]
    BadName { path: PathBuf, index: usize },
    /// Names compare without case, as Exchange compares user principal names.
    #[error("users file {path}: user {name:?} appears twice (names compare without case)")]
    DuplicateUser { path: PathBuf, name: String },
    #[error(
        "users file {path}: user {user:?}: password_hash is not a usable PHC string ({reason}); \
         make one with `relaygate passwd`"
    )]
    BadHash {
        path: PathBuf,
        user: String,
        reason: String,
    },
    #[error(
        "users file {path}: user {user:?}: password_hash uses {algorithm}, relaygate takes \
         argon2id (version 19) only; make one with `relaygate passwd`"
    )]
    NotArgon2id {
        path: PathBuf,
        user: String,
        algorithm: String,
    },
    #[error("users file {path}: user {user:?}: allowed_senders entry {entry:?} {reason}")]
    BadSender {
        path: PathBuf,
        user: String,
        entry: String,
        reason: String,
    },
}

/// Whom one user may send as: the gate's equivalent of Exchange's Send As permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedSender {
    /// One address, normalised: local part lower-cased (any script), domain lower-cased.
    Address(String),
    /// `*@domain`: every address in the domain, normalised; not its subdomains, as Send As
    /// on one mailbox does not reach another domain's.
    Domain(String),
}

/// One user of the submission listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// As written in the file: the identity in the log, `check --user`, report and metrics.
    pub name: String,
    pub allowed_senders: Vec<AllowedSender>,
}

impl User {
    /// May this user use `address` as MAIL FROM?
    ///
    /// Addresses compare without case in both parts, as Exchange compares SMTP addresses
    /// (proxyAddresses are case-insensitive; RFC 5321 allows case-sensitive local parts, no
    /// mail system in front of Exchange has one). Domains are compared as everywhere in
    /// relaygate ([`normalise`]): IDNs in punycode; a UTF-8 domain does not match its
    /// `xn--` form, so it is refused rather than guessed at.
    ///
    /// The null sender (`MAIL FROM:<>`, `address` empty) is refused: it is for bounces and
    /// delivery reports, which a mail system generates, not an application that logs in. An
    /// authenticated mailbox on Exchange Online is held to its Send As rights, and an empty
    /// reverse path is no address it has them for; accepting it would also let a user send
    /// mail nobody can reply to or bounce back to, untraceable to the application.
    pub fn may_send_as(&self, address: &str) -> bool {
        let Some((local, domain)) = address.rsplit_once('@') else {
            return false;
        };
        if local.is_empty() || domain.is_empty() {
            return false;
        }
        let domain = normalise(domain);
        let address = normalise_address(local, &domain);
        self.allowed_senders.iter().any(|allowed| match allowed {
            AllowedSender::Address(a) => *a == address,
            AllowedSender::Domain(d) => *d == domain,
        })
    }
}

/// One user and the hash their password is checked against.
struct Entry {
    user: User,
    hash: PasswordHash,
}

/// The users of one users file, loaded and checked. Cheap to share: the server holds it in an
/// `Arc` inside the settings generation and replaces it on SIGHUP.
///
/// Hashes are checked when the file is loaded (argon2id v=19, a salt, an output, at most 256
/// MiB per attempt: `hash.rs`), so a bad one is refused then, not found at the first login.
pub struct Users {
    /// By the name lower-cased (any script): logins compare names without case.
    by_name: HashMap<String, Entry>,
    /// What an unknown name is checked against, at the cost most users' hashes have, so that
    /// the time a refusal takes does not say whether the name exists.
    decoy: PasswordHash,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self
            .by_name
            .values()
            .map(|e| e.user.name.as_str())
            .collect();
        names.sort_unstable();
        f.debug_struct("Users").field("users", &names).finish()
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_hash: String,
    allowed_senders: Vec<String>,
}

impl Users {
    /// Read and check the users file. Refused: a file every user may read or write, one that
    /// is not this shape (unknown keys included), an empty or repeated name, a hash that is
    /// not an argon2id PHC string with a salt and an output, or that asks for more than 256
    /// MiB per attempt, and an `allowed_senders` entry that is neither `local@domain` nor
    /// `*@domain`. A file without users is valid: every AUTH then fails.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = read(path)?;
        let file: UsersFile = parse(&text).map_err(|message| UsersError::Toml {
            path: path.to_path_buf(),
            message,
        })?;
        let mut by_name = HashMap::with_capacity(file.users.len());
        for (index, entry) in file.users.into_iter().enumerate() {
            let entry = check(path, index, entry)?;
            let key = entry.user.name.to_lowercase();
            if by_name.contains_key(&key) {
                return Err(UsersError::DuplicateUser {
                    path: path.to_path_buf(),
                    name: entry.user.name,
                });
            }
            by_name.insert(key, entry);
        }
        let decoy = decoy(by_name.values().map(|e| &e.hash));
        Ok(Users { by_name, decoy })
    }

    /// The user of this name (without case), if there is one.
    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(&name.to_lowercase()).map(|e| &e.user)
    }

    /// How many users the file has.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The users, in no particular order (for `config check`).
    pub fn iter(&self) -> impl Iterator<Item = &User> {
        self.by_name.values().map(|e| &e.user)
    }

    /// The user if `password` is theirs. An unknown name costs one argon2 hash too (against a
    /// decoy of the same cost), so the time a refusal takes does not tell which names exist.
    ///
    /// CPU-heavy by design (tens of milliseconds, 19 MiB at the recommended cost): call it
    /// from `tokio::task::spawn_blocking` (see [`Users::verify_owned`]), never on a runtime
    /// thread.
    pub fn verify(&self, name: &str, password: &[u8]) -> Option<&User> {
        let argon2 = Argon2::default();
        match self.by_name.get(&name.to_lowercase()) {
            Some(entry) => argon2
                .verify_password(password, &entry.hash)
                .ok()
                .map(|()| &entry.user),
            None => {
                // Only for the time it takes: the decoy's output matches no password.
                let _ = argon2.verify_password(password, &self.decoy);
                None
            }
        }
    }

    /// [`Users::verify`] for `spawn_blocking`: owns what it needs, wipes the password when
    /// done, and answers the user's name as written in the file.
    pub fn verify_owned(
        self: Arc<Self>,
        name: String,
        password: Zeroizing<Vec<u8>>,
    ) -> Option<String> {
        self.verify(&name, &password).map(|u| u.name.clone())
    }
}

/// The file's text; refused when every user may read or write it.
fn read(path: &Path) -> Result<String, UsersError> {
    let read_error = |source| UsersError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    // The mode of the file opened, not of the path looked up again: no window to swap it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
        let path = path.to_path_buf();
        if mode & 0o004 != 0 {
            return Err(UsersError::WorldReadable { path, mode });
        }
        if mode & 0o002 != 0 {
            return Err(UsersError::WorldWritable { path, mode });
        }
    }
    let mut bytes = Vec::new();
    files::Limited::new(file, USERS_FILE)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    String::from_utf8(bytes).map_err(|_| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8 text",
        ))
    })
}

/// TOML text to the file's structs; the refusal names the key path and the line, and never
/// quotes a value (it could be a hash, or a password written where a hash belongs).
fn parse(text: &str) -> Result<UsersFile, String> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().iter().next().map(|_| e.path().to_string());
        let error = e.into_inner();
        let message = error.message().trim_end().replace('\n', ": ");
        // serde's `invalid type: string "...", expected ...` quotes the value: leave it out.
        let reason = match (message.find(" \""), message.rfind('"')) {
            (Some(open), Some(close)) if close > open => {
                format!("{}{}", &message[..open], &message[close + 1..])
            }
            _ => message,
        };
        let at = error
            .span()
            .map(|span| {
                let line = text.get(..span.start).unwrap_or(text).matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        match key {
            Some(key) => format!("{key}: {reason}{at}"),
            None => format!("{reason}{at}"),
        }
    })
}

/// One `[[users]]` table checked: its name, its hash, its senders.
fn check(path: &Path, index: usize, entry: UserEntry) -> Result<Entry, UsersError> {
    let name = entry.name;
    if name.trim().is_empty() {
        return Err(UsersError::EmptyName {
            path: path.to_path_buf(),
            index,
        });
    }
    if name.chars().any(char::is_control) {
        return Err(UsersError::BadName {
            path: path.to_path_buf(),
            index,
        });
    }
    let hash = parse_phc(&entry.password_hash).map_err(|refusal| match refusal {
        HashRefusal::Algorithm(algorithm) => UsersError::NotArgon2id {
            path: path.to_path_buf(),
            user: name.clone(),
            algorithm,
        },
        HashRefusal::Unusable(reason) => UsersError::BadHash {
            path: path.to_path_buf(),
            user: name.clone(),
            reason,
        },
    })?;
    let allowed_senders = entry
        .allowed_senders
        .iter()
        .map(|written| {
            allowed_sender(written).map_err(|reason| UsersError::BadSender {
                path: path.to_path_buf(),
                user: name.clone(),
                entry: written.clone(),
                reason,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Entry {
        user: User {
            name,
            allowed_senders,
        },
        hash,
    })
}

/// `local@domain` or `*@domain`, normalised; the reason it is neither otherwise.
fn allowed_sender(written: &str) -> Result<AllowedSender, String> {
    let Some((local, domain)) = written.rsplit_once('@') else {
        return Err("is not an address (local@domain) or *@domain".into());
    };
    if local.is_empty() {
        return Err("has an empty local part (for a whole domain write *@domain)".into());
    }
    if local.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has a space or control character in its local part".into());
    }
    let domain = crate::config::domain_name("allowed_senders", domain).map_err(|e| match e {
        crate::config::ConfigError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    })?;
    Ok(if local == "*" {
        AllowedSender::Domain(domain)
    } else {
        AllowedSender::Address(normalise_address(local, &domain))
    })
}

#[cfg(test)]
mod tests;
