//! `[[rewrite]]` over real sockets: the rule sets the envelope sender before the policy
//! decides, so a flow Exchange Online would refuse (5.7.64) is accepted and the upstream gets
//! the new `MAIL FROM`; the `From:` header is left as the client wrote it; the null sender is
//! rewritten only by a rule that says `null_sender = true`. Each client match kind is here too:
//! `client_ips`, `client_certificate_names` (a real client certificate over STARTTLS) and
//! `client_users` (a user authenticated on a submission listener), each with a client it does
//! not match. (The combinations are policy unit tests in `src/policy/rewrite/tests.rs`; the
//! logged event is in `binary_trace.rs`.)

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

/// A message whose `From:` is in an accepted domain, for the clients the rules below do not
/// match: their own sender is accepted, so what the upstream gets shows nothing was rewritten.
const OWN_MESSAGE: &[u8] = b"From: crm@contoso.com\r\nSubject: not rewritten\r\n\r\nbody\r\n";

#[tokio::test]
async fn a_client_certificate_names_rule_rewrites_only_for_a_trusted_certificate_it_names() {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = gate_with(
        &up,
        &format!(
            "{}\n[[rewrite]]\nclient_certificate_names = [\"*.fabrikam.net\"]\nnew_sender = \"scanner@contoso.com\"\n",
            pki.tls_section()
        ),
    )
    .await;
    let leaf = |name: &str, self_signed: bool| {
        pki.leaf(Leaf {
            cn: Some(name),
            sans: &[name],
            self_signed,
            ..Default::default()
        })
    };
    // The scanner's certificate is trusted and named by the rule: the upstream gets the new
    // sender, and the flow that Exchange Online refuses (5.7.64) is accepted.
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO scanner.fabrikam.net", "250").await;
    let mut c = c
        .starttls(&pki, Some(leaf("scanner.fabrikam.net", false)))
        .await;
    let r = c
        .send_message("scanner@example.net", &["bob@example.org"], MESSAGE)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(
        up.next_completed().await.mail,
        "MAIL FROM:<scanner@contoso.com>",
        "{}",
        up.view()
    );
    c.quit().await;

    // Not rewritten: a trusted certificate the rule does not name, the same name on a
    // certificate nobody vouches for (self-signed), and no certificate at all.
    for cert in [
        Some(leaf("mail.tailspin.example", false)),
        Some(leaf("scanner.fabrikam.net", true)),
        None,
    ] {
        let mut c = Client::connect(g.addr).await;
        c.cmd("EHLO client.example", "250").await;
        let mut c = c.starttls(&pki, cert).await;
        let r = c
            .send_message("crm@contoso.com", &["bob@example.org"], OWN_MESSAGE)
            .await;
        assert!(r.starts_with("250 "), "{r:?}");
        assert_eq!(
            up.next_completed().await.mail,
            "MAIL FROM:<crm@contoso.com>",
            "{}",
            up.view()
        );
        c.quit().await;
    }
    assert_eq!(up.completed(), 4);
}

/// A submission listener (STARTTLS, then AUTH) in front of the recording upstream, with the
/// users `scanner` and `erp` (both may send as `*@contoso.com`); it serves until dropped.
struct SubmissionGate {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    /// Holds the users file.
    _users: tempfile::TempDir,
}

impl SubmissionGate {
    async fn start(up: &Upstream, pki: &Pki, rules: &str) -> SubmissionGate {
        use std::os::unix::fs::PermissionsExt;
        let users = tempfile::tempdir().unwrap();
        let path = users.path().join("users.toml");
        let mut text = String::new();
        for name in ["scanner", "erp"] {
            text.push_str(&format!(
                "[[users]]\nname = \"{name}\"\npassword_hash = \"{}\"\nallowed_senders = [\"*@contoso.com\"]\n",
                relaygate::submission::users::hash_password(password(name).as_bytes())
            ));
        }
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let settings = settings_from(&format!(
            "[server]\nhostname = \"{HOSTNAME}\"\n{}\n{BASELINE_TENANT}\n{}\n[submission]\nlisten = [\"{addr}\"]\nusers_file = \"{}\"\n{rules}",
            pki.tls_section(),
            smtp_upstream(up.addr),
            path.display()
        ));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (keep_settings, settings) = tokio::sync::watch::channel(std::sync::Arc::new(settings));
        tokio::spawn(async move {
            let _keep_settings = keep_settings;
            relaygate::server::run_kinds(
                vec![(listener, relaygate::server::ListenerKind::Submission)],
                settings,
                async {
                    let _ = stopped.await;
                },
            )
            .await
        });
        SubmissionGate {
            addr,
            _stop: stop,
            _users: users,
        }
    }

    /// A session authenticated as `user` (AUTH PLAIN under STARTTLS).
    async fn authenticated(&self, pki: &Pki, user: &str) -> Client {
        use base64::Engine;
        let mut c = Client::connect(self.addr).await;
        c.cmd("EHLO app.contoso.com", "250").await;
        let mut c = c.starttls(pki, None).await;
        let plain = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{user}\0{}", password(user)));
        c.cmd(&format!("AUTH PLAIN {plain}"), "235").await;
        c
    }
}

fn password(user: &str) -> String {
    format!("{user}'s password")
}

#[tokio::test]
async fn a_client_users_rule_rewrites_only_the_users_it_names() {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = SubmissionGate::start(
        &up,
        &pki,
        "[[rewrite]]\nclient_users = [\"scanner\"]\nnew_sender = \"scanner@contoso.com\"\n",
    )
    .await;
    // The scanner's application sends as an address in no accepted domain: rewritten before
    // Send As is checked, so the user may send as the new sender and the upstream gets it.
    let mut c = g.authenticated(&pki, "scanner").await;
    let r = c
        .send_message("noreply@example.net", &["bob@example.org"], MESSAGE)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(
        up.next_completed().await.mail,
        "MAIL FROM:<scanner@contoso.com>",
        "{}",
        up.view()
    );
    c.quit().await;

    // Another user is not named: its sender reaches the upstream as it gave it.
    let mut c = g.authenticated(&pki, "erp").await;
    let r = c
        .send_message("crm@contoso.com", &["bob@example.org"], OWN_MESSAGE)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(
        up.next_completed().await.mail,
        "MAIL FROM:<crm@contoso.com>",
        "{}",
        up.view()
    );
    // And it is held to its own Send As: the rule did not make example.net its sender.
    c.cmd("MAIL FROM:<noreply@example.net>", "550 5.7.60").await;
    c.quit().await;
    assert_eq!(up.completed(), 2);
}
