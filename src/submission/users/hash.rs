//! The password hashes of the users file: which PHC strings are taken, how `relaygate passwd`
//! makes one, and the decoy an unknown name is checked against.

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::PasswordHasher;
use argon2::{Argon2, Params, Version, ARGON2ID_IDENT};

/// The most memory one hash may ask for: every AUTH attempt allocates it, several at once. 256
/// MiB is thirteen times OWASP's 19 MiB and above RFC 9106's second recommendation (64 MiB); a
/// file asking for more (RFC 9106's first, 2 GiB) would let a few concurrent attempts exhaust
/// the gate's memory.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// The PHC string (argon2id, v=19) of `password`, with a fresh random salt and OWASP's
/// parameters (argon2's defaults: m=19456 KiB, t=2, p=1), for `relaygate passwd`.
///
/// # Panics
/// When the operating system's random number generator fails (no salt can be made; there is
/// nothing sensible to fall back to).
pub fn hash_password(password: &[u8]) -> String {
    let salt = argon2::password_hash::generate_salt();
    Argon2::default()
        .hash_password_with_salt(password, &salt)
        // Only a salt or output of a bad length, or a password of 4 GiB, fail here; neither
        // can happen with the defaults and a 16-byte salt.
        .expect("argon2id with its default parameters hashes any password")
        .to_string()
}

pub(super) enum HashRefusal {
    /// Another algorithm or version: its name as written.
    Algorithm(String),
    /// Why the string cannot be used; never the string itself.
    Unusable(String),
}

/// Password hash schemes other than argon2id, by the identifier their strings start with:
/// argon2's others, scrypt, PBKDF2 (passlib, Django), bcrypt, and crypt(3)'s MD5, SHA-256,
/// SHA-512 and yescrypt.
const OTHER_SCHEMES: &[&str] = &[
    "argon2i",
    "argon2d",
    "scrypt",
    "pbkdf2",
    "pbkdf2-sha256",
    "pbkdf2-sha512",
    "2a",
    "2b",
    "2y",
    "1",
    "5",
    "6",
    "y",
];

/// A PHC string relaygate verifies against: argon2id, v=19, parameters argon2 accepts within
/// [`MAX_MEMORY_KIB`], a salt and an output. Checked here so that a bad hash is refused when
/// the file is loaded, not found out at the first login.
pub(super) fn parse_phc(written: &str) -> Result<PasswordHash, HashRefusal> {
    // Named when it is a scheme admins meet (bcrypt and crypt(3) strings are not PHC strings,
    // and would otherwise be refused for their salt); anything else might be a password.
    let scheme = written.split('$').nth(1).unwrap_or_default();
    if written.starts_with('$') && OTHER_SCHEMES.contains(&scheme) {
        return Err(HashRefusal::Algorithm(scheme.to_string()));
    }
    let unusable = |e: argon2::password_hash::phc::Error| HashRefusal::Unusable(e.to_string());
    let hash = PasswordHash::new(written).map_err(unusable)?;
    if hash.algorithm.as_str() != "argon2id" {
        return Err(HashRefusal::Algorithm(hash.algorithm.to_string()));
    }
    if let Some(version) = hash.version.filter(|&v| v != 19) {
        return Err(HashRefusal::Algorithm(format!(
            "argon2id version {version}"
        )));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(HashRefusal::Unusable("no salt or no hash output".into()));
    }
    let params =
        Params::try_from(&hash).map_err(|e| HashRefusal::Unusable(format!("parameters: {e}")))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(HashRefusal::Unusable(format!(
            "m={} KiB is above relaygate's limit of {MAX_MEMORY_KIB} KiB: every AUTH attempt \
             allocates it",
            params.m_cost()
        )));
    }
    Ok(hash)
}

/// A hash of the cost most users' hashes have (the first such, for a tie; argon2's defaults
/// for a file without users) whose output no password produces: what unknown names are
/// checked against.
pub(super) fn decoy<'a>(hashes: impl Iterator<Item = &'a PasswordHash>) -> PasswordHash {
    let cost = |h: &PasswordHash| (h.params.clone(), h.hash.as_ref().map(Output::len));
    let mut costs: Vec<(&PasswordHash, usize)> = Vec::new();
    for hash in hashes {
        match costs.iter_mut().find(|(h, _)| cost(h) == cost(hash)) {
            Some((_, count)) => *count += 1,
            None => costs.push((hash, 1)),
        }
    }
    // `max_by_key` keeps the last of equal counts: reversed, that is the first.
    let model = costs.iter().rev().max_by_key(|(_, count)| *count);
    let (params, len) = match model {
        Some((h, _)) => cost(h),
        None => (
            ParamsString::try_from(&Params::default()).expect("argon2's defaults are valid"),
            None,
        ),
    };
    let len = len.unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params,
        salt: Salt::new(b"relaygate decoy salt").ok(),
        hash: Output::new(&[0; Output::MAX_LENGTH][..len]).ok(),
    }
}
