//! Real STARTTLS with certificates made in the test, on both legs.
//!
//! From the client: 127.0.0.1 matches no IP connector and the sender is null (an NDR), so only
//! a trusted certificate whose name matches an OnPremises connector, with that name's domain
//! accepted, can authorise relay (1a + 2 by certificate).
//!
//! A Partner connector with `RequireTls`: mail from its sender domains without STARTTLS gets
//! 454 4.7.0 at RCPT; under STARTTLS it goes on.
//!
//! To the upstream: STARTTLS used and verified when required, failing closed (451, nothing
//! sent in clear text) when it is missing or unverifiable, and skipped when opportunistic.

mod support;
use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
use support::*;

const NDR: &[u8] = b"From: postmaster@contoso.com\r\nSubject: Undeliverable\r\n\r\nbounce\r\n";

async fn setup(tenant: &str) -> (Pki, Upstream, Gate) {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = start_gate(
        "",
        &format!(
            "{}\n[policy]\nreject_stage = \"rcpt\"\n{tenant}\n{}",
            pki.tls_section(),
            smtp_upstream(up.addr)
        ),
    )
    .await;
    (pki, up, g)
}

/// STARTTLS with `cert`, then an NDR to bob@example.org; the reply to RCPT.
async fn ndr_rcpt(pki: &Pki, g: &Gate, cert: Option<ClientCert>) -> (Client, String) {
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO mail.contoso.com", "250").await;
    let mut c = c.starttls(pki, cert).await;
    c.cmd("MAIL FROM:<>", "250").await;
    c.send(b"RCPT TO:<bob@example.org>\r\n").await;
    let r = c.reply().await;
    (c, r)
}

async fn relayed(pki: &Pki, g: &Gate, up: &Upstream, cert: ClientCert) {
    let (mut c, r) = ndr_rcpt(pki, g, Some(cert)).await;
    assert!(r.starts_with("250 "), "{r:?}");
    c.cmd("DATA", "354").await;
    c.send(NDR).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(strip_received(&t.data), NDR);
    let received = String::from_utf8_lossy(&t.data[..t.data.len() - NDR.len()]).into_owned();
    assert!(received.contains("with ESMTPS (using TLS"), "{received}");
}

async fn refused(pki: &Pki, g: &Gate, up: &Upstream, cert: Option<ClientCert>) {
    let (_, r) = ndr_rcpt(pki, g, cert).await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn trusted_chain_relays_by_certificate() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        eku: &[ServerAuth, ClientAuth],
        ..Default::default()
    });
    relayed(&pki, &g, &up, cert).await;
}

#[tokio::test]
async fn missing_intermediate_is_no_identity() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        with_intermediate: false,
        ..Default::default()
    });
    refused(&pki, &g, &up, Some(cert)).await;
}

#[tokio::test]
async fn self_signed_is_no_identity() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        self_signed: true,
        ..Default::default()
    });
    refused(&pki, &g, &up, Some(cert)).await;
}

#[tokio::test]
async fn expired_is_no_identity() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        expired: true,
        ..Default::default()
    });
    refused(&pki, &g, &up, Some(cert)).await;
}

#[tokio::test]
async fn no_certificate_is_no_identity() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    refused(&pki, &g, &up, None).await;
}

#[tokio::test]
async fn san_only_certificate_relays() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        sans: &["mail.contoso.com"],
        ..Default::default()
    });
    relayed(&pki, &g, &up, cert).await;
}

#[tokio::test]
async fn server_auth_only_certificate_relays_like_an_exchange_server() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        eku: &[ServerAuth],
        ..Default::default()
    });
    relayed(&pki, &g, &up, cert).await;
}

#[tokio::test]
async fn wildcard_connector_matches_deep_names() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        sans: &["a.b.contoso.com"],
        ..Default::default()
    });
    relayed(&pki, &g, &up, cert).await;
}

#[tokio::test]
async fn wildcard_connector_matches_the_bare_domain() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("contoso.com"),
        ..Default::default()
    });
    relayed(&pki, &g, &up, cert).await;
}

#[tokio::test]
async fn certificate_of_another_domain_does_not_relay() {
    let (pki, up, g) = setup(&foreign_ip_tenant()).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.example.net"),
        sans: &["mail.example.net"],
        ..Default::default()
    });
    refused(&pki, &g, &up, Some(cert)).await;
}

#[tokio::test]
async fn exact_connector_name_must_itself_be_an_accepted_domain() {
    let tenant = foreign_ip_tenant().replace("\"*.contoso.com\"", "\"mail.contoso.com\"");
    let (pki, up, g) = setup(&tenant).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        ..Default::default()
    });
    refused(&pki, &g, &up, Some(cert)).await;
}

#[tokio::test]
async fn starttls_is_offered_once_and_refused_after_tls() {
    let (pki, _up, g) = setup(&foreign_ip_tenant()).await;
    let mut c = Client::connect(g.addr).await;
    let ehlo = c.cmd("EHLO x", "250").await;
    assert!(ehlo.contains("250-STARTTLS\r\n"), "{ehlo}");
    let mut c = c.starttls(&pki, None).await;
    let ehlo = c.cmd("EHLO x", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.cmd("STARTTLS", "503 5.5.1").await;
}

#[tokio::test]
async fn starttls_inside_a_transaction_is_refused() {
    let (_pki, _up, g) = setup(BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("STARTTLS", "503 5.5.1").await;
}

#[tokio::test]
async fn commands_pipelined_behind_starttls_are_discarded() {
    let (pki, _up, g) = setup(BASELINE_TENANT).await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO x", "250").await;
    // The injected MAIL arrives in the same packet as STARTTLS (CVE-2011-0411 class).
    c.send(b"STARTTLS\r\nMAIL FROM:<app@contoso.com>\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("220 "), "{r:?}");
    let mut c = c.handshake(&pki, None).await;
    // Had the injected MAIL been executed, its reply would come before NOOP's.
    let r = c.cmd("NOOP", "250").await;
    assert_eq!(r, "250 2.0.0 OK\r\n");
    c.cmd("EHLO x", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "503 5.5.1").await;
}

// ---------------------------------------------------------------------------------------------
// RequireTls on a Partner connector: mail from its sender domains must come under TLS.
// ---------------------------------------------------------------------------------------------

const PARTNER_MAIL: &[u8] = b"From: x@partner.example\r\nSubject: invoice\r\n\r\nhi\r\n";

/// The baseline tenant and a Partner connector requiring TLS from partner.example; `policy` is
/// the `[policy]` section's body.
async fn require_tls_gate(policy: &str) -> (Pki, Upstream, Gate) {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let partner = "[[inbound_connectors]]\nname = \"P-TLS\"\nconnector_type = \"Partner\"\nsender_domains = [\"partner.example\"]\nrequire_tls = true\n";
    let g = start_gate(
        "",
        &format!(
            "{}\n[policy]\n{policy}\n{BASELINE_TENANT}\n{partner}\n{}",
            pki.tls_section(),
            smtp_upstream(up.addr)
        ),
    )
    .await;
    (pki, up, g)
}

#[tokio::test]
async fn partner_mail_without_starttls_gets_454_at_rcpt_even_with_reject_stage_data() {
    let (_pki, up, g) = require_tls_gate("reject_stage = \"data\"").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<x@partner.example>", "250").await;
    let r = c.ask("RCPT TO:<alice@contoso.com>").await;
    assert_exo_reply(
        &r,
        "454 4.7.0 Failed to establish appropriate TLS channel: Access Denied",
    );
    c.cmd("DATA", "554 5.5.1").await;
    // A sender domain the connector does not cover is not asked for TLS.
    c.cmd("RSET", "250").await;
    let r = c
        .send_message("x@other.example", &["alice@contoso.com"], PARTNER_MAIL)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<x@other.example>", "{}", up.view());
    assert_eq!(up.transactions().len(), 1, "{}", up.view());
}

#[tokio::test]
async fn partner_mail_under_starttls_goes_on() {
    let (pki, up, g) = require_tls_gate("").await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO mx.partner.example", "250").await;
    let mut c = c.starttls(&pki, None).await;
    let r = c
        .send_message("x@partner.example", &["alice@contoso.com"], PARTNER_MAIL)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<x@partner.example>");
    assert_eq!(t.rcpts, ["RCPT TO:<alice@contoso.com>"]);
    assert_eq!(strip_received(&t.data), PARTNER_MAIL);
}

#[tokio::test]
async fn audit_mode_forwards_partner_mail_without_starttls() {
    let (_pki, up, g) = require_tls_gate("mode = \"audit\"").await;
    let mut c = session(&g).await;
    let r = c
        .send_message("x@partner.example", &["alice@contoso.com"], PARTNER_MAIL)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<x@partner.example>");
}

// ---------------------------------------------------------------------------------------------
// TLS to the upstream.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn upstream_starttls_is_used_and_verified() {
    let pki = Pki::new();
    let up = Upstream::start(Script {
        starttls: Some(pki.upstream_server_config()),
        ..Default::default()
    })
    .await;
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}",
            tls_upstream(up.addr, "required", &pki.path("ca.pem"))
        ),
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: tls\r\n\r\nhi\r\n",
        )
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert!(
        up.next_completed().await.tls,
        "the upstream transaction ran over TLS"
    );
}

#[tokio::test]
async fn required_upstream_tls_fails_closed_without_starttls() {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}",
            tls_upstream(up.addr, "required", &pki.path("ca.pem"))
        ),
    )
    .await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "451 4.4.3").await;
    assert_exo_reply(
        &r,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    assert!(
        up.transactions().is_empty(),
        "nothing was sent in clear text"
    );
}

#[tokio::test]
async fn required_upstream_tls_fails_closed_on_an_unverifiable_certificate() {
    let pki = Pki::new();
    let other = Pki::new();
    let up = Upstream::start(Script {
        starttls: Some(other.upstream_server_config()),
        ..Default::default()
    })
    .await;
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}",
            tls_upstream(up.addr, "required", &pki.path("ca.pem"))
        ),
    )
    .await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "451 4.4.3").await;
    assert_exo_reply(
        &r,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    assert!(up.transactions().is_empty());
}

#[tokio::test]
async fn opportunistic_upstream_tls_goes_on_in_clear_text_without_starttls() {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}",
            tls_upstream(up.addr, "opportunistic", &pki.path("ca.pem"))
        ),
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: plain\r\n\r\nhi\r\n",
        )
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert!(!up.next_completed().await.tls);
}
