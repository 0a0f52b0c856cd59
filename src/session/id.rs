//! The session identifier: what Exchange Online shows in every reply's suffix and what an admin
//! greps the log for.

use std::time::{SystemTime, UNIX_EPOCH};

/// A session identifier: 64 bits, shown as 16 upper-case hex digits like Exchange Online's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// A fresh identifier: unique within the process (a counter) and unpredictable across
    /// processes (mixed with a randomly keyed hash), without pulling in a random-number crate.
    pub fn new() -> SessionId {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static BASE: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = *BASE.get_or_init(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            h.write_u32(std::process::id());
            h.finish()
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // An odd multiplier makes this a bijection of n: distinct sessions, distinct ids.
        SessionId(base ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl Default for SessionId {
    fn default() -> Self {
        SessionId::new()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_differ_and_print_as_16_hex_digits() {
        let a = SessionId::new();
        let b = SessionId::new();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert!(s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
    }
}
