//! The report of a gate with several tenants: flows grouped per tenant.

use super::*;

fn event(ts: &str, tenant: &str, identity: &str, v2023: &str) -> String {
    serde_json::json!({
        "timestamp": ts,
        "level": "INFO",
        "message": "transaction",
        "target": "relaygate::transaction",
        "tenant": tenant,
        "identity": identity,
        "p1_domain": "example.net",
        "p2_domain": "",
        "exo_2023": v2023,
        "exo_legacy": v2023,
    })
    .to_string()
}

#[test]
fn flows_are_grouped_per_tenant_and_one_identity_of_two_tenants_is_two_flows() {
    let lines = [
        event(
            "2026-11-25T02:00:00Z",
            "tailspin",
            "ip 203.0.113.10",
            "accepted",
        ),
        event(
            "2026-11-25T02:00:01Z",
            "contoso",
            "ip 203.0.113.10",
            "accepted",
        ),
        event(
            "2026-11-25T02:00:02Z",
            "tailspin",
            "ip 203.0.113.10",
            "accepted",
        ),
        event(
            "2026-11-25T02:00:03Z",
            "",
            "ip 203.0.113.10",
            "refused 550 5.7.64",
        ),
    ];
    let r = read(lines.join("\n").as_bytes()).expect("a report");
    let tenants: Vec<(&str, u64)> = r
        .flows
        .iter()
        .map(|f| (f.tenant.as_str(), f.count))
        .collect();
    assert_eq!(tenants, [("", 1), ("contoso", 1), ("tailspin", 2)]);
    let text = r.render_text();
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("tenant ")).collect();
    assert_eq!(
        headings,
        [
            "tenant (no tenant): 1 transactions in 1 flows",
            "tenant contoso: 1 transactions in 1 flows",
            "tenant tailspin: 2 transactions in 1 flows",
        ],
        "{text}"
    );
    assert!(r
        .render_html()
        .contains("<td class=\"tenant\">tailspin</td>"));
}

#[test]
fn a_log_without_tenants_has_no_tenant_headings() {
    let r = read(event("2026-11-25T02:00:00Z", "", "ip 203.0.113.10", "accepted").as_bytes())
        .expect("a report");
    assert!(!r.has_tenants());
    assert!(!r.render_text().contains("\ntenant "));
    assert!(!r.render_html().contains("class=\"tenant\""));
}
