//! Idle upstream connections, kept for the next client session.
//!
//! Paying a TCP connect, a greeting, EHLO and (towards Exchange Online) a TLS handshake per
//! message is the largest cost of a relay; a pool pays it once per connection. A connection is
//! only ever in one place: owned by one session's leg while a transaction runs, or idle here
//! (after a successful RSET), so no connection carries two transactions at once.

use std::sync::Mutex;
use std::time::Duration;
// tokio's clock, so the fault simulation's paused time ages idle connections too.
use tokio::time::Instant;

/// A bounded stack of idle connections (most recently used first, so the rest age out).
pub struct Pool<C> {
    idle: Mutex<Vec<(C, Instant)>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl<C> Pool<C> {
    pub fn new(max_idle: usize, idle_timeout: Duration) -> Pool<C> {
        Pool {
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The most recently returned connection that has not been idle too long, and how long it
    /// was idle (the caller checks it when that was long enough for the upstream to give up).
    pub fn take(&self) -> Option<(C, Duration)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Expired connections are dropped (closed) here, outside any session.
        idle.retain(|(_, since)| now.duration_since(*since) < self.idle_timeout);
        idle.pop().map(|(c, since)| (c, now.duration_since(since)))
    }

    /// Keep a connection that is between transactions and has been idle since `since` (its
    /// last reply: a connection its session held while the client took its time comes here
    /// already idle, and the upstream, or a firewall between, counts from then). It is handed
    /// back when the pool is full (or disabled) or it has been idle too long already, for the
    /// caller to close politely.
    pub fn put(&self, c: C, since: Instant) -> Option<C> {
        if since.elapsed() >= self.idle_timeout {
            return Some(c);
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push((c, since));
            None
        } else {
            Some(c)
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().map(|v| v.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_first_and_bounded() {
        let p: Pool<u32> = Pool::new(2, Duration::from_secs(60));
        assert!(p.put(1, Instant::now()).is_none());
        assert!(p.put(2, Instant::now()).is_none());
        assert_eq!(
            p.put(3, Instant::now()),
            Some(3),
            "the third is handed back to be closed"
        );
        assert_eq!(p.idle_count(), 2);
        assert_eq!(p.take().map(|(c, _)| c), Some(2));
        assert_eq!(p.take().map(|(c, _)| c), Some(1));
        assert!(p.take().is_none());
    }

    #[test]
    fn expired_connections_are_not_reused() {
        let p: Pool<u32> = Pool::new(4, Duration::from_millis(0));
        assert_eq!(
            p.put(1, Instant::now()),
            Some(1),
            "expired already: handed back"
        );
        assert!(p.take().is_none());
        assert_eq!(p.idle_count(), 0);
    }

    #[test]
    fn zero_disables_the_pool() {
        let p: Pool<u32> = Pool::new(0, Duration::from_secs(60));
        assert_eq!(p.put(1, Instant::now()), Some(1));
        assert!(p.take().is_none());
    }
}
