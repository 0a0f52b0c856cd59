//! The rules document's decisions over a real socket, with a recording upstream: what is
//! relayed reaches it, what is refused gets Exchange Online's line and reaches nothing.

mod support;
use support::*;

const MSG: &[u8] = b"From: app@contoso.com\r\nSubject: relay test\r\n\r\nbody\r\n";

async fn gate(up: &Upstream, policy: &str, tenant: &str) -> Gate {
    start_gate(
        "",
        &format!("{policy}\n{tenant}\n{}", smtp_upstream(up.addr)),
    )
    .await
}

#[tokio::test]
async fn accepted_p1_over_the_ip_connector_is_relayed_upstream() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "", BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], MSG)
        .await;
    assert_eq!(
        r, "250 2.0.0 queued as UPSTREAM1\r\n",
        "the upstream's own final reply"
    );
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<app@contoso.com>");
    assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
    assert_eq!(strip_received(&t.data), MSG);
}

#[tokio::test]
async fn foreign_p1_is_refused_at_end_of_data_and_nothing_reaches_the_upstream() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "", BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    // 5.7.64 is answered after DATA by default (reject_stage = "data").
    let r = c
        .send_message("app@example.net", &["bob@example.org"], MSG)
        .await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    c.cmd("QUIT", "221").await;
    assert_eq!(up.completed(), 0);
    assert!(up.transactions().iter().all(|t| t.data.is_empty()));
}

#[tokio::test]
async fn reject_stage_rcpt_refuses_at_rcpt() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "[policy]\nreject_stage = \"rcpt\"", BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c.cmd("MAIL FROM:<app@example.net>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "550").await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    // Inbound mail to the tenant is still accepted in the same transaction.
    c.cmd("RCPT TO:<alice@contoso.com>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(MSG).await;
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let t = up.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<alice@contoso.com>"]);
}

#[tokio::test]
async fn null_sender_ndr_over_ip_connector_is_refused_under_exo_2023_but_relayed_under_legacy() {
    let ndr = b"From: postmaster@contoso.com\r\nSubject: Undeliverable\r\n\r\nbounce\r\n";
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "", BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO mail.contoso.com", "250").await;
    let r = c.send_message("", &["bob@example.org"], ndr).await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    assert_eq!(up.completed(), 0);

    let legacy = gate(&up, "[policy]\nprofile = \"exo-legacy\"", BASELINE_TENANT).await;
    let mut c = Client::connect(legacy.addr).await;
    c.cmd("EHLO mail.contoso.com", "250").await;
    let r = c.send_message("", &["bob@example.org"], ndr).await;
    assert!(
        r.starts_with("250 "),
        "1c: the header From: is accepted: {r:?}"
    );
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<>");
    assert_eq!(strip_received(&t.data), ndr);
}

#[tokio::test]
async fn legacy_profile_refuses_when_the_header_from_is_foreign_too() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(
        &up,
        "[policy]\nprofile = \"exo-legacy\"\nreject_stage = \"rcpt\"",
        BASELINE_TENANT,
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app", "250").await;
    // Awaiting the header: RCPT is accepted even with reject_stage = "rcpt".
    let r = c
        .send_message(
            "app@example.net",
            &["bob@example.org"],
            b"From: x@example.net\r\n\r\nhi\r\n",
        )
        .await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn no_connector_for_the_ip_means_5_7_64_even_for_an_accepted_p1() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "", &foreign_ip_tenant()).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app", "250").await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], MSG)
        .await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    // Inbound to the tenant needs no connector.
    let r = c
        .send_message("app@example.net", &["alice@contoso.com"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
}

#[tokio::test]
async fn internal_relay_subdomains_are_accepted_senders() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(&up, "", BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app", "250").await;
    let r = c
        .send_message("user@sales.fabrikam.com", &["bob@example.org"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let r = c
        .send_message("user@sales.contoso.com", &["bob@example.org"], MSG)
        .await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
}

#[tokio::test]
async fn unknown_recipient_gets_5_4_1_at_rcpt() {
    let up = Upstream::start(Script::default()).await;
    let tenant = r#"
[[accepted_domains]]
domain = "contoso.com"
recipients = ["alice@contoso.com"]
"#;
    let g = gate(&up, "", tenant).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    c.cmd("MAIL FROM:<x@example.net>", "250").await;
    let r = c.cmd("RCPT TO:<nobody@contoso.com>", "550").await;
    assert_exo_reply(
        &r,
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
    );
    c.cmd("RCPT TO:<Alice@Contoso.com>", "250").await;
}

#[tokio::test]
async fn reject_direct_send_gives_5_7_68() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(
        &up,
        "[policy]\nreject_direct_send = true",
        &foreign_ip_tenant(),
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    c.cmd("MAIL FROM:<ceo@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<alice@contoso.com>", "550").await;
    assert_exo_reply(
        &r,
        "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this organization from unauthorized sources",
    );
}

#[tokio::test]
async fn partner_connector_restricted_to_its_ips_gives_5_7_51() {
    let up = Upstream::start(Script::default()).await;
    let tenant = r#"
[[accepted_domains]]
domain = "contoso.com"

[[inbound_connectors]]
name = "Partner fabrikam"
connector_type = "Partner"
sender_domains = ["partner.example"]
sender_ip_addresses = ["192.0.2.0/24"]
restrict_domains_to_ip_addresses = true
"#;
    let g = gate(&up, "", tenant).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    c.cmd("MAIL FROM:<x@partner.example>", "250").await;
    let r = c.cmd("RCPT TO:<alice@contoso.com>", "550").await;
    assert_exo_reply(&r, "550 5.7.51 TenantInboundAttribution; There is a partner connector configured that matched the message's recipient domain. The connector had either the RestrictDomainsToIPAddresses or RestrictDomainsToCertificate set");
}

#[tokio::test]
async fn other_tenant_domains_are_accepted_as_inbound() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(
        &up,
        "[policy]\nother_tenant_domains = [\"northwind.example\"]",
        &foreign_ip_tenant(),
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    let r = c
        .send_message("x@example.net", &["z@northwind.example"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
}

#[tokio::test]
async fn audit_mode_forwards_what_enforce_would_refuse() {
    let up = Upstream::start(Script::default()).await;
    let g = gate(
        &up,
        "[policy]\nmode = \"audit\"\nreject_stage = \"rcpt\"",
        BASELINE_TENANT,
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    let r = c
        .send_message("app@example.net", &["bob@example.org"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
}

#[tokio::test]
async fn open_relay_tricks_do_not_relay() {
    // Unattributed client (no IP connector, no certificate) trying to reach a foreign domain.
    let up = Upstream::start(Script::default()).await;
    let g = gate(
        &up,
        "[policy]\nreject_stage = \"rcpt\"",
        &foreign_ip_tenant(),
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    for rcpt in [
        "<@contoso.com:bob@example.org>", // source route through an accepted domain
        "<bob%example.org@contoso.com.evil.example>",
        "<\"bob@contoso.com\"@example.org>", // quoted local part with @
        "<bob@example.org.>",                // trailing dot
        "<bob@[192.0.2.1]>",                 // IP literal
        "<BOB@EXAMPLE.ORG>",                 // upper case
        "<bob@xn--mnchen-3ya.example>",      // IDN in punycode
        "<bob@contoso.com.example.org>",
        "<bob@sub.contoso.com>", // subdomain of an Authoritative domain
    ] {
        c.send(format!("RCPT TO:{rcpt}\r\n").as_bytes()).await;
        let r = c.reply().await;
        assert!(
            r.starts_with("550 5.7.64") || r.starts_with("501"),
            "{rcpt}: {r:?}"
        );
    }
    // A percent hack *inside* an accepted domain is just a local part there: inbound, not relay.
    c.cmd("RCPT TO:<bob%example.org@contoso.com>", "250").await;
    c.cmd("QUIT", "221").await;
    for t in up.transactions() {
        for r in &t.rcpts {
            assert!(r.ends_with("@contoso.com>"), "forwarded upstream: {r}");
        }
    }
}
