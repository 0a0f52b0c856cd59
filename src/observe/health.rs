//! Readiness: what `/health/ready` is made of. The server, the probe task, the failover's book
//! and the certificate watcher each set their part; the endpoint only reads it.
//!
//! Checks decide the status (listeners bound, configuration loaded, not draining, a recent
//! successful upstream probe); detail lines (each upstream address, each certificate's expiry)
//! inform and never make the gate unready.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

struct ProbeResult {
    at: Instant,
    result: Result<(), String>,
}

/// What readiness is made of, updated by the server and the probe task.
pub struct Health {
    listeners_bound: AtomicBool,
    config_loaded: AtomicBool,
    draining: AtomicBool,
    upstream: Mutex<Option<ProbeResult>>,
    /// Each configured upstream address: (up, `host:port`, detail), from the failover's book.
    upstream_addresses: Mutex<Vec<(bool, String, String)>>,
    probe_interval: Duration,
    /// One detail line per certificate in force (its expiry): information, never a failure.
    certificates: Mutex<Vec<String>>,
}

impl Health {
    /// How often the upstream is to be probed.
    pub fn probe_interval(&self) -> Duration {
        self.probe_interval
    }

    pub fn new(probe_interval: Duration) -> Arc<Health> {
        Arc::new(Health {
            listeners_bound: AtomicBool::new(false),
            config_loaded: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            upstream: Mutex::new(None),
            upstream_addresses: Mutex::new(Vec::new()),
            probe_interval,
            certificates: Mutex::new(Vec::new()),
        })
    }

    pub fn set_listeners_bound(&self) {
        self.listeners_bound.store(true, Ordering::Release);
    }

    pub fn set_config_loaded(&self) {
        self.config_loaded.store(true, Ordering::Release);
    }

    /// Shutdown began: stop taking new clients.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The outcome of an upstream probe (run by whoever wires the gate together).
    pub fn record_probe(&self, result: Result<(), String>) {
        let mut slot = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(ProbeResult {
            at: Instant::now(),
            result,
        });
    }

    /// Each configured upstream address's state, shown as detail lines (not checks).
    pub fn record_upstream_addresses(&self, states: Vec<(bool, String, String)>) {
        *self
            .upstream_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = states;
    }

    /// The certificates' detail lines, each `(expiring soon, text)`: shown after the checks,
    /// `WARN` or `info`, without ever making the gate unready (a certificate that still works
    /// is no reason to take the gate out of a load balancer).
    pub fn set_certificates(&self, lines: Vec<(bool, String)>) {
        let lines = lines
            .into_iter()
            .map(|(soon, text)| format!("{}{text}", if soon { "WARN " } else { "info " }))
            .collect();
        *self.certificates.lock().unwrap_or_else(|e| e.into_inner()) = lines;
    }

    /// (ready, one line per check).
    pub fn readiness(&self) -> (bool, String) {
        let mut ready = true;
        let mut body = String::new();
        let mut line = |ok: bool, what: &str| {
            ready &= ok;
            body.push_str(if ok { "ok   " } else { "FAIL " });
            body.push_str(what);
            body.push('\n');
        };
        line(
            self.listeners_bound.load(Ordering::Acquire),
            "listeners bound",
        );
        line(
            self.config_loaded.load(Ordering::Acquire),
            "configuration loaded",
        );
        line(!self.draining.load(Ordering::Acquire), "not shutting down");
        let slot = self.upstream.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            None => line(false, "upstream: not probed yet"),
            Some(p) => {
                let age = p.at.elapsed();
                match &p.result {
                    Err(e) => line(false, &format!("upstream: {e}")),
                    Ok(()) if age > self.probe_interval * 3 => line(
                        false,
                        &format!("upstream: last successful probe {}s ago", age.as_secs()),
                    ),
                    Ok(()) => line(true, &format!("upstream: probed {}s ago", age.as_secs())),
                }
            }
        }
        let addresses = self
            .upstream_addresses
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (up, address, detail) in addresses.iter() {
            let state = if *up { "up  " } else { "down" };
            body.push_str(&format!("{state} upstream address {address}: {detail}\n"));
        }
        for detail in self
            .certificates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            body.push_str(detail);
            body.push('\n');
        }
        (ready, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successful_probe_goes_stale_after_three_intervals() {
        let h = Health::new(Duration::from_millis(1));
        h.set_listeners_bound();
        h.set_config_loaded();
        *h.upstream.lock().unwrap() = Some(ProbeResult {
            at: Instant::now() - Duration::from_millis(50),
            result: Ok(()),
        });
        let (ready, body) = h.readiness();
        assert!(!ready);
        assert!(
            body.contains("FAIL upstream: last successful probe"),
            "{body}"
        );
    }
}
