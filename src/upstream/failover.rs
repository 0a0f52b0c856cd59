//! Every upstream address, and what the gate has learned about each.
//!
//! Exchange Online's smart host resolves to several addresses, and an admin may list more than
//! one upstream: each configured `host:port` is resolved at every connect and each of its
//! addresses (A and AAAA) is a [`Target`]. An address that failed is skipped for a while
//! ([`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`]), so a dead front door costs one connect
//! timeout, not one per message; it is tried again once its time is up and comes back with its
//! first success. When every address is being skipped they are all tried anyway, soonest first:
//! a message is never refused without trying.
//!
//! The book is process-wide: the readiness probe and the sessions learn from each other, and
//! what was learned survives a configuration reload.

use crate::observe::metrics::metrics;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
// tokio's clock, so the backoff can be tested with paused time.
use tokio::time::Instant;

/// How long an address is skipped after its first failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest an address is skipped, however often it failed: it comes back by itself.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Beyond this many remembered addresses, those whose backoff is over are forgotten (DNS may
/// hand out new addresses forever).
const MAX_REMEMBERED: usize = 1024;

/// One address to try: a resolved socket address of a configured `host:port`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The configured `host:port` it came from (the metrics' and health's label).
    pub entry: Arc<str>,
    /// Its index in the configured list (for the certificate name to verify).
    pub index: usize,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
}

/// The backoff after `failures` failures in a row.
fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// What the gate knows about upstream addresses.
#[derive(Default)]
pub struct Book {
    addrs: Mutex<HashMap<SocketAddr, Backoff>>,
    /// Each configured entry's last resolution (or why it failed).
    entries: Mutex<HashMap<String, Result<Vec<SocketAddr>, String>>>,
}

/// The process-wide book.
pub fn book() -> &'static Book {
    static BOOK: OnceLock<Book> = OnceLock::new();
    BOOK.get_or_init(Book::default)
}

impl Book {
    /// An attempt on `addr` failed: skip it for longer each time, up to [`MAX_BACKOFF`].
    pub fn failed(&self, addr: SocketAddr) {
        let now = Instant::now();
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        if addrs.len() >= MAX_REMEMBERED {
            addrs.retain(|_, b| b.until > now);
        }
        let failures = addrs.get(&addr).map_or(0, |b| b.failures) + 1;
        addrs.insert(
            addr,
            Backoff {
                failures,
                until: now + delay(failures),
            },
        );
    }

    /// An attempt on `addr` got through: it is no longer skipped.
    pub fn succeeded(&self, addr: SocketAddr) {
        let mut addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        addrs.remove(&addr);
    }

    /// How much longer `addr` is skipped (None: it is tried).
    pub fn skipped_for(&self, addr: SocketAddr) -> Option<Duration> {
        let addrs = self.addrs.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        addrs
            .get(&addr)
            .filter(|b| b.until > now)
            .map(|b| b.until - now)
    }

    /// The order to try `targets` in: those not skipped as given, then the skipped ones,
    /// soonest back first (tried anyway, after every other).
    pub fn order(&self, targets: Vec<Target>) -> Vec<Target> {
        let (mut ready, mut skipped): (Vec<_>, Vec<_>) = targets
            .into_iter()
            .map(|t| (self.skipped_for(t.addr), t))
            .partition(|(s, _)| s.is_none());
        skipped.sort_by_key(|(s, _)| *s);
        ready.append(&mut skipped);
        ready.into_iter().map(|(_, t)| t).collect()
    }

    /// Resolve every configured entry, in order, each address a target (a name that does not
    /// resolve is noted and left out).
    pub async fn resolve(&self, entries: &[String], wait: Duration) -> Vec<Target> {
        let mut targets = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let resolved = match tokio::time::timeout(wait, tokio::net::lookup_host(entry)).await {
                Err(_) => Err("name resolution timed out".to_string()),
                Ok(Err(e)) => Err(format!("name resolution failed: {e}")),
                Ok(Ok(addrs)) => Ok(addrs.collect::<Vec<_>>()),
            };
            let label: Arc<str> = Arc::from(entry.as_str());
            for addr in resolved.iter().flatten() {
                targets.push(Target {
                    entry: Arc::clone(&label),
                    index,
                    addr: *addr,
                });
            }
            let mut known = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            known.insert(entry.clone(), resolved);
        }
        targets
    }

    /// Whether `entries` (as last resolved) hold an address other than `except` that is not
    /// being skipped.
    pub fn has_alternative(&self, entries: &[String], except: SocketAddr) -> bool {
        let candidates: Vec<SocketAddr> = {
            let known = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            entries
                .iter()
                .filter_map(|e| known.get(e))
                .filter_map(|r| r.as_ref().ok())
                .flatten()
                .copied()
                .filter(|a| *a != except)
                .collect()
        };
        candidates
            .into_iter()
            .any(|a| self.skipped_for(a).is_none())
    }

    /// Is a configured entry up, and a line saying why: up while one of its addresses is not
    /// being skipped.
    pub fn state(&self, entry: &str) -> (bool, String) {
        let known = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match known.get(entry) {
            None => (true, "not tried yet".into()),
            Some(Err(e)) => (false, e.clone()),
            Some(Ok(addrs)) if addrs.is_empty() => (false, "resolves to no address".into()),
            Some(Ok(addrs)) => {
                let skipped: Vec<String> = addrs
                    .iter()
                    .filter_map(|a| {
                        self.skipped_for(*a)
                            .map(|d| format!("{a} skipped for {}s", d.as_secs()))
                    })
                    .collect();
                let up = skipped.len() < addrs.len();
                let detail = if skipped.is_empty() {
                    "up".to_string()
                } else {
                    format!(
                        "{} ({})",
                        if up { "up" } else { "down" },
                        skipped.join(", ")
                    )
                };
                (up, detail)
            }
        }
    }

    /// Publish a configured entry's state as `relaygate_upstream_address_up`.
    pub fn publish(&self, entry: &str) {
        let (up, _) = self.state(entry);
        metrics().upstream_address_up(entry, up);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(port: u16) -> Target {
        Target {
            entry: Arc::from("upstream:25"),
            index: 0,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        assert_eq!(delay(1), Duration::from_secs(30));
        assert_eq!(delay(2), Duration::from_secs(60));
        assert_eq!(delay(4), Duration::from_secs(240));
        assert_eq!(delay(5), MAX_BACKOFF);
        assert_eq!(delay(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_address_is_skipped_then_tried_again_by_itself() {
        let book = Book::default();
        let dead = target(1);
        book.failed(dead.addr);
        assert_eq!(book.skipped_for(dead.addr), Some(FIRST_BACKOFF));
        tokio::time::advance(FIRST_BACKOFF).await;
        assert_eq!(book.skipped_for(dead.addr), None, "back after its backoff");
        book.failed(dead.addr);
        assert_eq!(book.skipped_for(dead.addr), Some(FIRST_BACKOFF * 2));
        book.succeeded(dead.addr);
        assert_eq!(book.skipped_for(dead.addr), None);
        book.failed(dead.addr);
        assert_eq!(
            book.skipped_for(dead.addr),
            Some(FIRST_BACKOFF),
            "a success forgets earlier failures"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn skipped_addresses_go_last_and_are_still_tried() {
        let book = Book::default();
        book.failed(target(1).addr);
        book.failed(target(2).addr);
        book.failed(target(2).addr);
        let order: Vec<u16> = book
            .order(vec![target(1), target(2), target(3)])
            .iter()
            .map(|t| t.addr.port())
            .collect();
        assert_eq!(order, [3, 1, 2], "healthy first, then the soonest back");
    }

    #[tokio::test(start_paused = true)]
    async fn an_entry_is_down_only_when_all_its_addresses_are_skipped() {
        let book = Book::default();
        let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 25));
        let v4 = SocketAddr::from(([127, 0, 0, 1], 25));
        book.entries
            .lock()
            .unwrap()
            .insert("localhost:25".into(), Ok(vec![v6, v4]));
        book.failed(v6);
        let (up, detail) = book.state("localhost:25");
        assert!(up, "{detail}");
        assert!(detail.contains("[::1]:25 skipped for 30s"), "{detail}");
        book.failed(v4);
        assert!(!book.state("localhost:25").0);
        tokio::time::advance(MAX_BACKOFF).await;
        assert_eq!(book.state("localhost:25"), (true, "up".to_string()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_alternative_is_another_address_not_being_skipped() {
        let book = Book::default();
        let (a, b) = (target(1).addr, target(2).addr);
        let entries = ["one:25".to_string(), "two:25".to_string()];
        book.entries
            .lock()
            .unwrap()
            .insert("one:25".into(), Ok(vec![a]));
        assert!(!book.has_alternative(&entries, a), "the only address");
        book.entries
            .lock()
            .unwrap()
            .insert("two:25".into(), Ok(vec![b]));
        assert!(book.has_alternative(&entries, a));
        book.failed(b);
        assert!(!book.has_alternative(&entries, a), "the other is skipped");
    }
}
