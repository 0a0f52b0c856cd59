//! Wrong passwords slow down, then lock out, the address they come from.
//!
//! A gate that answers `535 5.7.3 Authentication unsuccessful` at once lets one client try
//! thousands of passwords a minute. Each failure from an address doubles the wait before the
//! next 535 (1, 2, 4, 8 s by default), and the fifth within ten minutes closes the session with
//! `421 4.7.0` and refuses the address for fifteen minutes. The state is per client address
//! (per /64 for IPv6), in a table of bounded size: an attacker with many addresses can push
//! old entries out, never grow the gate's memory.
//!
//! The server holds one `AuthThrottle` in an `Arc<Mutex<..>>` and touches it once per AUTH
//! attempt: [`AuthThrottle::check`] before verifying, then [`AuthThrottle::failure`] or
//! [`AuthThrottle::success`]. Time is passed in as `tokio::time::Instant`, so the session tests
//! run it on tokio's paused clock, and these tests without a clock at all.

use crate::policy::unmap_ipv4;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use tokio::time::Instant;

/// How failures are answered. The defaults follow common practice for password endpoints
/// (OWASP's authentication guidance: exponential delay, temporary lockout, never permanent):
/// an application with a stale password fails a few times a minute at most, an attacker
/// guessing needs thousands of tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// The wait before the first 535 from an address; each further failure within `window`
    /// doubles it. Default 1 s.
    pub base_delay: Duration,
    /// The longest wait. Default 16 s (the fifth failure's, with the other defaults).
    pub max_delay: Duration,
    /// This many failures within `window` lock the address out (0 is taken as 1). Default 5.
    pub max_failures: u32,
    /// How far back failures count. Default 10 minutes.
    pub window: Duration,
    /// How long a locked-out address is refused. Default 15 minutes. Windows and lockouts are
    /// capped at a year.
    pub lockout: Duration,
    /// How many addresses are remembered at most (0 is taken as 1); past it, the one whose
    /// last failure is oldest is forgotten. Default 10 000: well under a few megabytes.
    pub max_tracked: usize,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(16),
            max_failures: 5,
            window: Duration::from_secs(10 * 60),
            lockout: Duration::from_secs(15 * 60),
            max_tracked: 10_000,
        }
    }
}

/// Whether an address may try to authenticate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Refused until then: the session answers `421 4.7.0` and closes.
    LockedOut {
        until: Instant,
    },
}

/// How to answer one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Wait this long before answering.
    pub delay: Duration,
    /// Then answer `421 4.7.0` and close, instead of `535 5.7.3`: the address is locked out.
    pub locked_out: bool,
}

/// What failures are counted against: an IPv4 address, or the /64 of an IPv6 one. An IPv6 host
/// normally has a whole /64 to itself (SLAAC, privacy addresses rotate within it at will):
/// counting single addresses would give one client endless fresh starts. An IPv4 address is
/// counted alone: its neighbours in a /24 are often unrelated customers, and clients behind
/// one NAT share a single address already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match unmap_ipv4(ip) {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => Source::V6Prefix((v6.to_bits() >> 64) as u64),
        }
    }
}

/// One address's recent failures.
struct Entry {
    /// The failures within the window, oldest first; at most `max_failures`.
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    /// This entry's key in [`AuthThrottle::by_age`], once it has one.
    stamp: Option<(Instant, u64)>,
}

/// Per-address failure state, bounded to [`ThrottleLimits::max_tracked`] addresses.
pub struct AuthThrottle {
    limits: ThrottleLimits,
    entries: HashMap<Source, Entry>,
    /// The entries by last failure (then insertion order, for equal instants on a paused
    /// clock): the front is what is forgotten first, in O(log n).
    by_age: BTreeMap<(Instant, u64), Source>,
    next_seq: u64,
}

/// The longest window or lockout: far from any `Instant` overflow.
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 60 * 60);

impl AuthThrottle {
    pub fn new(limits: ThrottleLimits) -> AuthThrottle {
        let limits = ThrottleLimits {
            max_failures: limits.max_failures.max(1),
            max_tracked: limits.max_tracked.max(1),
            window: limits.window.min(MAX_PERIOD),
            lockout: limits.lockout.min(MAX_PERIOD),
            ..limits
        };
        AuthThrottle {
            limits,
            entries: HashMap::new(),
            by_age: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Whether `ip` may try now. Changes nothing but forgetting a lockout that has ended.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Admission {
        let source = Source::of(ip);
        match self.entries.get(&source).and_then(|e| e.locked_until) {
            Some(until) if now < until => Admission::LockedOut { until },
            Some(_) => {
                self.forget(source);
                Admission::Allowed
            }
            None => Admission::Allowed,
        }
    }

    /// Count a failed attempt from `ip`: how long to wait, and whether it locked the address
    /// out. A failure while already locked out (a session that passed `check` before the
    /// lockout) waits the longest and closes too, without extending the lockout.
    pub fn failure(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        self.forget_stale(now);
        let source = Source::of(ip);
        if let Admission::LockedOut { .. } = self.check(ip, now) {
            self.touch(source, now);
            return Verdict {
                delay: self.limits.max_delay,
                locked_out: true,
            };
        }
        if !self.entries.contains_key(&source) {
            while self.entries.len() >= self.limits.max_tracked {
                self.forget_oldest();
            }
        }
        let limits = self.limits;
        let entry = self.entries.entry(source).or_insert_with(|| Entry {
            failures: VecDeque::new(),
            locked_until: None,
            stamp: None,
        });
        while entry
            .failures
            .front()
            .is_some_and(|&at| now.saturating_duration_since(at) >= limits.window)
        {
            entry.failures.pop_front();
        }
        entry.failures.push_back(now);
        let count = entry.failures.len() as u32;
        let locked_out = count >= limits.max_failures;
        if locked_out {
            entry.failures.clear();
            entry.locked_until = Some(now + limits.lockout);
        }
        self.touch(source, now);
        Verdict {
            delay: delay(&limits, count),
            locked_out,
        }
    }

    /// `ip` logged in: forget its failures.
    pub fn success(&mut self, ip: IpAddr) {
        self.forget(Source::of(ip));
    }

    /// How many addresses (IPv6 /64s) are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Move `source` to the back of the age index, as failing at `now`.
    fn touch(&mut self, source: Source, now: Instant) {
        let stamp = (now, self.next_seq);
        self.next_seq += 1;
        if let Some(entry) = self.entries.get_mut(&source) {
            if let Some(old) = entry.stamp.replace(stamp) {
                self.by_age.remove(&old);
            }
            self.by_age.insert(stamp, source);
        }
    }

    fn forget(&mut self, source: Source) {
        if let Some(stamp) = self.entries.remove(&source).and_then(|e| e.stamp) {
            self.by_age.remove(&stamp);
        }
    }

    fn forget_oldest(&mut self) {
        if let Some((_, source)) = self.by_age.pop_first() {
            self.entries.remove(&source);
        }
    }

    /// Forget, oldest first, the entries that no longer count (no failure within the window,
    /// no lockout running): amortised, each entry is forgotten once.
    fn forget_stale(&mut self, now: Instant) {
        let keep_for = self.limits.window.max(self.limits.lockout);
        while let Some((&(last, _), _)) = self.by_age.first_key_value() {
            if now.saturating_duration_since(last) < keep_for {
                break;
            }
            self.forget_oldest();
        }
    }
}

/// `base_delay` doubled for each failure after the first, at most `max_delay`.
fn delay(limits: &ThrottleLimits, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    limits
        .base_delay
        .saturating_mul(1 << doublings)
        .min(limits.max_delay)
}

#[cfg(test)]
mod tests;
