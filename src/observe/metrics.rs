//! Counters for `/metrics`, in Prometheus/OpenMetrics text, with the `prometheus-client` crate
//! (the Prometheus project's own Rust client: atomic counters, no exporter thread, no HTTP stack
//! of its own; the admin endpoint serves its text).
//!
//! One process-wide set: counts must survive configuration reloads, and every session reaches
//! them without threading a handle through. Updates are atomic increments, after a read-locked
//! label lookup (one small label vector) for the labelled ones, once per transaction or
//! handshake; nothing is counted per byte.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

type Labels = Vec<(&'static str, &'static str)>;

pub struct Metrics {
    registry: Registry,
    /// Connections accepted (before admission limits).
    pub connections: Counter,
    /// Connections refused at once with 421 (max_connections, max_connections_per_ip).
    pub connections_refused: Counter,
    /// Sessions in progress.
    pub sessions_active: Gauge,
    tls_handshakes: Family<Labels, Counter>,
    /// Labels with owned values: the tenant's name is the configuration's, not a constant.
    decisions: Family<Vec<(&'static str, String)>, Counter>,
    upstream_replies: Family<Labels, Counter>,
    /// 1 while a configured upstream address has an address not being skipped; labelled by
    /// the configured `host:port` (bounded by the configuration, not by what DNS returns).
    upstream_address_up: Family<Vec<(&'static str, String)>, Gauge>,
    auth_attempts: Family<Labels, Counter>,
    /// MAIL FROM refused with 5.7.60: an authenticated user not allowed to send as it.
    pub send_as_refusals: Counter,
    /// Message bytes received from clients (DATA, as received).
    pub message_bytes: Counter,
    /// From MAIL FROM to the final reply of the transaction.
    pub transaction_seconds: Histogram,
    /// `notAfter` of each configured certificate, replaced as a whole on every (re)load.
    certificates_not_after: Family<Vec<(&'static str, String)>, Gauge>,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("relaygate");
        let m = Metrics {
            connections: Counter::default(),
            connections_refused: Counter::default(),
            sessions_active: Gauge::default(),
            tls_handshakes: Family::default(),
            decisions: Family::default(),
            upstream_replies: Family::default(),
            upstream_address_up: Family::default(),
            auth_attempts: Family::default(),
            send_as_refusals: Counter::default(),
            message_bytes: Counter::default(),
            // 1 ms .. ~65 s: a local upstream answers in milliseconds, Exchange Online with a
            // large message in seconds.
            transaction_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            certificates_not_after: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "connections",
            "Client connections accepted",
            m.connections.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections refused with 421 by max_connections or max_connections_per_ip",
            m.connections_refused.clone(),
        );
        registry.register(
            "sessions_active",
            "SMTP sessions in progress",
            m.sessions_active.clone(),
        );
        registry.register(
            "tls_handshakes",
            "STARTTLS handshakes by outcome (ok, failed, timeout) and client certificate (trusted, untrusted, none)",
            m.tls_handshakes.clone(),
        );
        registry.register(
            "decisions",
            "Transactions by relay verdict, condition 1 branch, condition 2 match and tenant",
            m.decisions.clone(),
        );
        registry.register(
            "upstream_replies",
            "Replies from the upstream by class (2xx, 3xx, 4xx, 5xx) or error (no reply)",
            m.upstream_replies.clone(),
        );
        registry.register(
            "upstream_address_up",
            "1 while a configured upstream address can be tried, 0 while all it resolves to failed and are skipped (failover)",
            m.upstream_address_up.clone(),
        );
        registry.register(
            "auth_attempts",
            "AUTH exchanges on the submission listeners that reached a password check, by outcome (ok, failed, locked out); no user label: the log and the report name the user",
            m.auth_attempts.clone(),
        );
        registry.register(
            "send_as_refusals",
            "MAIL FROM refused with 550 5.7.60: the authenticated user's allowed_senders do not cover it",
            m.send_as_refusals.clone(),
        );
        registry.register(
            "message_bytes",
            "Message bytes received in DATA",
            m.message_bytes.clone(),
        );
        registry.register(
            "transaction_seconds",
            "Time from MAIL FROM to the transaction's final reply",
            m.transaction_seconds.clone(),
        );
        registry.register(
            "certificate_not_after_seconds",
            "notAfter of each configured certificate (Unix time), by role (server, client_ca, upstream_client, upstream_ca), file, subject and tenant",
            m.certificates_not_after.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn tls_handshake(&self, outcome: &'static str, client_certificate: &'static str) {
        self.tls_handshakes
            .get_or_create(&vec![
                ("outcome", outcome),
                ("client_certificate", client_certificate),
            ])
            .inc();
    }

    /// `tenant`: the transaction's tenant (`[[tenants]] name`); `verdict`: `relay authorized`,
    /// `relay not authorized` or `awaiting P2`; `branch`: `1a`, `1b`, `1c`, `auth` (an
    /// authenticated user on a submission listener) or `none`; `by`:
    /// `ip`, `certificate` or `none`. An empty tenant (the one unnamed tenant, or none
    /// attributed) leaves the label out, which Prometheus reads as the same thing as empty.
    pub fn decision(
        &self,
        tenant: &str,
        verdict: &'static str,
        branch: &'static str,
        by: &'static str,
    ) {
        let mut labels = vec![
            ("verdict", verdict.to_string()),
            ("branch", branch.to_string()),
            ("condition2", by.to_string()),
        ];
        if !tenant.is_empty() {
            labels.push(("tenant", tenant.to_string()));
        }
        self.decisions.get_or_create(&labels).inc();
    }

    /// One AUTH exchange that reached the password check: `ok`, `failed` or `locked out`.
    pub fn auth(&self, outcome: &'static str) {
        self.auth_attempts
            .get_or_create(&vec![("outcome", outcome)])
            .inc();
    }

    pub fn send_as_refused(&self) {
        self.send_as_refusals.inc();
    }

    /// One upstream reply (`Some(code)`) or a failure to get one (`None`).
    pub fn upstream_reply(&self, code: Option<u16>) {
        let class = match code {
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(500..=599) => "5xx",
            Some(_) => "other",
            None => "error",
        };
        self.upstream_replies
            .get_or_create(&vec![("class", class)])
            .inc();
    }

    /// A configured upstream address's state (failover).
    pub fn upstream_address_up(&self, address: &str, up: bool) {
        self.upstream_address_up
            .get_or_create(&vec![("address", address.to_string())])
            .set(i64::from(up));
    }

    /// The certificates in force, each as its labels and `notAfter`: those of the files no
    /// longer configured (or renewed) are dropped, so the gauge shows what is loaded now.
    pub fn certificates_not_after(
        &self,
        certificates: impl IntoIterator<Item = (Vec<(&'static str, String)>, i64)>,
    ) {
        self.certificates_not_after.clear();
        for (labels, not_after) in certificates {
            self.certificates_not_after
                .get_or_create(&labels)
                .set(not_after);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_tenant_labels_its_decisions_and_the_unnamed_one_adds_no_label() {
        let m = Metrics::new();
        m.decision("tailspin", "relay authorized", "1a", "certificate");
        m.decision("", "relay not authorized", "none", "ip");
        let text = m.render();
        assert!(
            text.contains("relaygate_decisions_total{verdict=\"relay authorized\",branch=\"1a\",condition2=\"certificate\",tenant=\"tailspin\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("relaygate_decisions_total{verdict=\"relay not authorized\",branch=\"none\",condition2=\"ip\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn auth_outcomes_and_send_as_refusals_are_counted_without_a_user_label() {
        let m = Metrics::new();
        m.auth("ok");
        m.auth("failed");
        m.auth("failed");
        m.send_as_refused();
        let text = m.render();
        assert!(
            text.contains("relaygate_auth_attempts_total{outcome=\"failed\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("relaygate_auth_attempts_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("relaygate_send_as_refusals_total 1"),
            "{text}"
        );
    }
}
