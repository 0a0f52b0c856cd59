//! Verified client identities, remembered per certificate chain.
//!
//! A resumed TLS session carries the client's certificate chain from the session it resumes,
//! and the gate would check that chain against `client_ca` again: one ECDSA or RSA signature
//! verification per chain link, on every session. Under load that was the largest single cost
//! of a resumed STARTTLS session (18% of the gate's CPU, more than the key exchange), where
//! the answer cannot have changed: same chain, same anchors, still within its validity period.
//!
//! So a chain found trusted is remembered with the window in which that verdict holds (the
//! latest `notBefore` to the earliest `notAfter` of the certificates the client sent), and
//! reused only inside it. The cache belongs to one [`super::ServerTls`], so a reload (a new
//! `client_ca`, a renewed gate certificate) starts with an empty one. Untrusted chains are not
//! remembered: that path is rare, its reason is logged, and a certificate "not valid yet" may
//! become valid. Keys are the chains' bytes themselves, compared exactly: no hash collision
//! can make one chain stand for another.

use super::ClientIdentity;
use rustls::pki_types::{CertificateDer, UnixTime};
use std::collections::HashMap;
use std::sync::Mutex;

/// How many chains are remembered; a full cache is emptied and refilled (a client fleet is
/// small next to this, and a flood of distinct certificates each needed a full handshake).
const CAPACITY: usize = 1024;

/// The trusted verdicts, one lock taken once per handshake (never per byte).
#[derive(Default)]
pub(super) struct Identities {
    known: Mutex<HashMap<Vec<CertificateDer<'static>>, Remembered>>,
}

struct Remembered {
    identity: ClientIdentity,
    /// The verdict holds from `from` (inclusive) to `until` (exclusive), in seconds since
    /// the Unix epoch.
    from: u64,
    until: u64,
}

impl Identities {
    /// The identity remembered for `chain` if its verdict still holds at `now`.
    pub(super) fn get(
        &self,
        chain: &[CertificateDer<'static>],
        now: UnixTime,
    ) -> Option<ClientIdentity> {
        let now = now.as_secs();
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let r = known.get(chain)?;
        (r.from <= now && now < r.until).then(|| r.identity.clone())
    }

    /// Remember a trusted identity for `chain` (anything else is ignored).
    pub(super) fn remember(&self, chain: &[CertificateDer<'static>], identity: &ClientIdentity) {
        if !identity.trusted {
            return;
        }
        let Some((from, until)) = validity(chain) else {
            return;
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() >= CAPACITY && !known.contains_key(chain) {
            known.clear();
        }
        known.insert(
            chain.to_vec(),
            Remembered {
                identity: identity.clone(),
                from,
                until,
            },
        );
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.known.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The window in which every certificate of `chain` is valid: (latest notBefore, earliest
/// notAfter + 1 s, as notAfter itself is still valid), in Unix seconds. None when any of
/// them cannot be read, or the window is empty.
fn validity(chain: &[CertificateDer<'_>]) -> Option<(u64, u64)> {
    let mut from = 0u64;
    let mut until = u64::MAX;
    for der in chain {
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
        let v = cert.validity();
        from = from.max(u64::try_from(v.not_before.timestamp()).unwrap_or(0));
        until = until.min(
            u64::try_from(v.not_after.timestamp())
                .ok()?
                .saturating_add(1),
        );
    }
    (from < until).then_some((from, until))
}

/// `UnixTime` at `secs`, for tests.
#[cfg(test)]
pub(super) fn at(secs: u64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
}
