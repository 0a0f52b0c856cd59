//! `[[rewrite]]` over real sockets: the rule sets the envelope sender before the policy
//! decides, so a flow Exchange Online would refuse (5.7.64) is accepted and the upstream gets
//! the new `MAIL FROM`; the `From:` header is left as the client wrote it; the null sender is
//! rewritten only by a rule that says `null_sender = true`. (Each match kind is a policy unit
//! test in `src/policy/rewrite/tests.rs`; the logged event is in `binary_trace.rs`.)

mod support;
use support::*;

const MESSAGE: &[u8] = b"From: app@example.net\r\nSubject: rewrite\r\n\r\nbody\r\n";

async fn gate_with(up: &Upstream, rules: &str) -> Gate {
    start_gate(
        "",
        &format!("{BASELINE_TENANT}\n{}\n{rules}", smtp_upstream(up.addr)),
    )
    .await
}

#[tokio::test]
async fn a_matching_rule_sends_the_new_sender_upstream_and_the_flow_is_accepted() {
    let up = Upstream::start(Script::default()).await;
    let g = gate_with(
        &up,
        r#"
[[rewrite]]
client_ips = ["192.0.2.0/24"]
new_sender = "wrong-client@contoso.com"

[[rewrite]]
client_ips = ["127.0.0.0/8"]
senders = ["*@example.net"]
new_sender = "app@contoso.com"
"#,
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message("crm@Example.NET", &["bob@example.org"], MESSAGE)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    // The second rule (the first one's client range does not hold): its sender, nothing else.
    assert_eq!(t.mail, "MAIL FROM:<app@contoso.com>", "{}", up.view());
    assert!(
        strip_received(&t.data).starts_with(b"From: app@example.net\r\n"),
        "the From: header is not touched"
    );
}

#[tokio::test]
async fn without_a_matching_rule_the_sender_is_kept_and_refused() {
    let up = Upstream::start(Script::default()).await;
    let g = gate_with(
        &up,
        r#"
[[rewrite]]
senders = ["crm@example.net"]
new_sender = "app@contoso.com"
"#,
    )
    .await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<other@example.net>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(MESSAGE).await;
    c.send(b".\r\n").await;
    let r = c.reply().await;
    assert_exo_reply(&r, "550 5.7.64");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn the_null_sender_is_rewritten_only_with_null_sender_true() {
    let up = Upstream::start(Script::default()).await;
    // A catch-all rule never touches an NDR.
    let g = gate_with(&up, "[[rewrite]]\nnew_sender = \"app@contoso.com\"\n").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(MESSAGE).await;
    c.send(b".\r\n").await;
    assert_exo_reply(&c.reply().await, "550 5.7.64");
    assert_eq!(up.completed(), 0);

    let up = Upstream::start(Script::default()).await;
    let g = gate_with(
        &up,
        "[[rewrite]]\nnull_sender = true\nnew_sender = \"postmaster@contoso.com\"\n",
    )
    .await;
    let mut c = session(&g).await;
    let r = c.send_message("", &["bob@example.org"], MESSAGE).await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(
        up.next_completed().await.mail,
        "MAIL FROM:<postmaster@contoso.com>"
    );
}
