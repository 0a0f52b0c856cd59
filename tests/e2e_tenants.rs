//! One gate, many tenants (MC1226222) over real sockets: each tenant's mail reaches its own
//! upstream, another tenant's recipient gets 452 4.5.3, and a transaction no tenant is
//! attributed to gets 5.7.64 and reaches nobody.

mod support;
use support::*;

const MSG: &[u8] = b"From: app@contoso.com\r\nSubject: tenants\r\n\r\nbody\r\n";

/// Two recording upstreams and a gate with one tenant on each.
async fn two_tenant_gate(policy: &str) -> (Upstream, Upstream, Gate) {
    let contoso = Upstream::start(Script::default()).await;
    let tailspin = Upstream::start(Script::default()).await;
    let g = start_gate("", &two_tenants(contoso.addr, tailspin.addr, policy)).await;
    (contoso, tailspin, g)
}

#[tokio::test]
async fn each_tenants_mail_goes_to_that_tenants_upstream_even_within_one_session() {
    let (contoso, tailspin, g) = two_tenant_gate("").await;
    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let t = contoso.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
    assert_eq!(tailspin.transactions().len(), 0, "{}", tailspin.view());

    let r = c
        .send_message("app@tailspin.example", &["carol@example.org"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let t = tailspin.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<app@tailspin.example>");
    assert_eq!(t.rcpts, ["RCPT TO:<carol@example.org>"]);
    assert_eq!(contoso.completed(), 1, "{}", contoso.view());
    c.quit().await;
}

#[tokio::test]
async fn another_tenants_recipient_gets_452_and_the_rest_goes_to_the_attributed_tenant() {
    let (contoso, tailspin, g) = two_tenant_gate("").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<alice@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<a@tailspin.example>", "452").await;
    assert_exo_reply(&r, "452 4.5.3 Too many recipients");
    c.cmd("DATA", "354").await;
    c.send(MSG).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 "), "{r}");
    let t = contoso.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<alice@contoso.com>"]);
    assert!(tailspin.transactions().is_empty(), "{}", tailspin.view());
}

#[tokio::test]
async fn without_a_tenants_sender_the_first_recipient_of_a_tenant_attributes() {
    let (contoso, tailspin, g) = two_tenant_gate("").await;
    let mut c = session(&g).await;
    let r = c
        .send_message("x@example.net", &["a@tailspin.example"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let t = tailspin.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<a@tailspin.example>"]);
    assert!(contoso.transactions().is_empty(), "{}", contoso.view());
}

#[tokio::test]
async fn an_ndr_from_the_shared_address_belongs_to_no_tenant_and_is_refused_5_7_64() {
    let (contoso, tailspin, g) = two_tenant_gate("reject_stage = \"rcpt\"").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "550").await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    c.quit().await;
    assert!(contoso.transactions().is_empty(), "{}", contoso.view());
    assert!(tailspin.transactions().is_empty(), "{}", tailspin.view());
}

#[tokio::test]
async fn the_client_certificate_picks_the_tenant_before_the_sender_domain() {
    // MC1226222's first rule: the domain on the certificate the sender presented attributes
    // the message, whatever MAIL FROM says. Without TLS the same transaction is contoso's.
    let pki = Pki::new();
    let contoso = Upstream::start(Script::default()).await;
    let tailspin = Upstream::start(Script::default()).await;
    let config = format!(
        "{}\n{}",
        pki.tls_section(),
        two_tenants(contoso.addr, tailspin.addr, "")
    );
    let g = start_gate("", &config).await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.tailspin.example"),
        sans: &["mail.tailspin.example"],
        ..Default::default()
    });
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO mail.tailspin.example", "250").await;
    let mut c = c.starttls(&pki, Some(cert)).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], MSG)
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let t = tailspin.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<app@contoso.com>");
    assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
    // contoso's own recipient is another tenant's now: 452, for a separate transaction.
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<alice@contoso.com>", "452").await;
    assert_exo_reply(&r, "452 4.5.3 Too many recipients");
    c.quit().await;
    assert!(contoso.transactions().is_empty(), "{}", contoso.view());
}
