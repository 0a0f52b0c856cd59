//! Forwarding without loss: bytes arrive exactly, the upstream's replies come back as they
//! were, upstream trouble is a 4xx (never a 250, never a 5xx), and hostile input gets a clear
//! reply and reaches nothing.

mod support;
use support::*;

async fn relay_gate(up: &Upstream, server_extra: &str) -> Gate {
    start_gate(
        server_extra,
        &format!("{BASELINE_TENANT}\n{}", smtp_upstream(up.addr)),
    )
    .await
}

async fn session(g: &Gate) -> Client {
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c
}

/// Send `text` (unstuffed) the way a client must: dot-stuffed, then the end marker.
fn stuffed(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut at_start = true;
    for &b in text {
        if at_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_start = b == b'\n';
    }
    out
}

async fn round_trip(text: &[u8]) {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &stuffed(text))
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    // The upstream receives it stuffed again, exactly as the client sent it.
    assert_eq!(strip_received(&t.data), stuffed(text).as_slice());
}

#[tokio::test]
async fn dot_stuffing_is_undone_and_redone() {
    round_trip(b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\n..\r\nmid.dle\r\n").await;
}

#[tokio::test]
async fn eight_bit_bytes_pass_unchanged() {
    let mut text =
        b"Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Transfer-Encoding: 8bit\r\n\r\n".to_vec();
    text.extend((0x80u8..=0xff).collect::<Vec<u8>>());
    text.extend_from_slice("\r\nGrüße, 日本語\r\n".as_bytes());
    round_trip(&text).await;
}

#[tokio::test]
async fn long_lines_pass_unchanged() {
    let mut text = b"Subject: long\r\n\r\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 10_000));
    text.extend_from_slice(b"\r\n");
    round_trip(&text).await;
}

#[tokio::test]
async fn a_five_megabyte_message_streams_through() {
    let mut text = b"Subject: big\r\n\r\n".to_vec();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz.0123456789abcdefghijklmnopqrstuvwxyz\r\n";
    while text.len() < 5 * 1024 * 1024 {
        text.extend_from_slice(line);
        text.extend_from_slice(b".dot at the start\r\n");
    }
    round_trip(&text).await;
}

#[tokio::test]
async fn a_message_without_body_or_final_crlf_is_completed() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    // Headers only, no blank line.
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: only\r\n",
        )
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    assert_eq!(strip_received(&t.data), b"Subject: only\r\n");
}

#[tokio::test]
async fn upstream_refusing_one_recipient_is_passed_through_and_the_rest_delivered() {
    let up = Upstream::start(Script {
        refuse_rcpt: vec![(
            "gone@example.org",
            "550 5.1.1 <gone@example.org>: user unknown",
        )],
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<gone@example.org>", "550").await;
    assert_eq!(r, "550 5.1.1 <gone@example.org>: user unknown\r\n");
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let t = up.next_completed().await;
    assert_eq!(
        t.rcpts,
        ["RCPT TO:<gone@example.org>", "RCPT TO:<bob@example.org>"]
    );
}

#[tokio::test]
async fn upstream_5xx_at_data_is_passed_through() {
    let up = Upstream::start(Script {
        data_reply: Some("554 5.6.0 no thanks"),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r, "554 5.6.0 no thanks\r\n");
    // The session goes on.
    c.cmd("NOOP", "250").await;
}

#[tokio::test]
async fn upstream_final_reply_4xx_and_5xx_are_passed_through() {
    for reply in [
        "451 4.7.500 Server busy",
        "550 5.7.1 Message rejected as spam",
    ] {
        let up = Upstream::start(Script {
            end_reply: Some(reply),
            ..Default::default()
        })
        .await;
        let g = relay_gate(&up, "").await;
        let mut c = session(&g).await;
        let r = c
            .send_message(
                "app@contoso.com",
                &["bob@example.org"],
                b"Subject: x\r\n\r\nhi\r\n",
            )
            .await;
        assert_eq!(r, format!("{reply}\r\n"));
    }
}

#[tokio::test]
async fn unreachable_upstream_is_451_at_rcpt() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let g = start_gate("", &format!("{BASELINE_TENANT}\n{}", smtp_upstream(closed))).await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "451").await;
    assert_exo_reply(
        &r,
        "451 4.4.1 Temporary server error. Please try again later [",
    );
}

#[tokio::test]
async fn upstream_refusing_the_session_is_451() {
    let up = Upstream::start(Script {
        greeting: Some("554 5.7.1 go away"),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let r = c.cmd("RCPT TO:<bob@example.org>", "451 4.4.3").await;
    // The upstream's words go to the log, not to the client.
    assert_exo_reply(
        &r,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
}

#[tokio::test]
async fn upstream_dropping_after_mail_is_451() {
    let up = Upstream::start(Script {
        drop_after_mail: true,
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "451 4.4.2").await;
}

#[tokio::test]
async fn upstream_dropping_before_the_final_dot_is_never_a_250() {
    let up = Upstream::start(Script {
        drop_during_data_after: Some(100_000),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let mut text = b"Subject: x\r\n\r\n".to_vec();
    while text.len() < 1_000_000 {
        text.extend_from_slice(b"a line of text to fill the message up\r\n");
    }
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &text)
        .await;
    assert!(r.starts_with("451 4.4."), "{r:?}");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn upstream_dropping_after_the_final_dot_without_a_reply_is_451() {
    let up = Upstream::start(Script {
        drop_after_dot: true,
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
    assert_exo_reply(
        &r,
        "451 4.4.2 Temporary server error. Please try again later [",
    );
}

#[tokio::test]
async fn silent_upstream_times_out_into_451() {
    let up = Upstream::start(Script {
        silent_after_dot: true,
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    // data_end_timeout_secs = 3 in smtp_upstream().
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
    assert_exo_reply(
        &r,
        "451 4.4.2 Temporary server error. Please try again later [",
    );
}

#[tokio::test]
async fn bare_line_feeds_are_refused_and_nothing_is_delivered() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    for smuggle in [
        &b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@contoso.com>\r\n"[..],
        b"Subject: x\r\n\r\nhi\r\n.\nRCPT TO:<x@example.org>\r\n",
        b"Subject: x\r\n\r\nhi\n.\r\nDATA\r\n",
        b"Subject: x\r\n\r\nhi\r.\rmore\r\n",
        b"Subject: x\r\n\r\nmid\rline\r\n",
    ] {
        let mut c = session(&g).await;
        let r = c
            .send_message("app@contoso.com", &["bob@example.org"], smuggle)
            .await;
        assert_exo_reply(
            &r,
            "550 5.5.2 Message contains a bare CR or LF; lines must end with CRLF (SMTP smuggling protection)",
        );
        // Exactly one transaction's answer: nothing smuggled produced a second one.
        c.cmd("NOOP", "250 2.0.0 OK").await;
    }
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn oversized_message_without_size_is_drained_then_refused() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "max_message_size = 10000").await;
    let mut c = session(&g).await;
    let mut text = b"Subject: big\r\n\r\n".to_vec();
    while text.len() < 50_000 {
        text.extend_from_slice(b"0123456789012345678901234567890123456789\r\n");
    }
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &text)
        .await;
    assert_exo_reply(
        &r,
        "552 5.3.4 Message size exceeds fixed maximum message size of 10000 bytes",
    );
    c.cmd("NOOP", "250").await;
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn declared_size_over_the_limit_is_refused_at_mail() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .cmd("MAIL FROM:<app@contoso.com> SIZE=999999999", "552")
        .await;
    assert_exo_reply(
        &r,
        "552 5.3.4 Message size exceeds fixed maximum message size of 36700160 bytes",
    );
}

#[tokio::test]
async fn too_many_recipients_get_452() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "max_recipients = 2").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<a@example.org>", "250").await;
    c.cmd("RCPT TO:<b@example.org>", "250").await;
    let r = c.cmd("RCPT TO:<c@example.org>", "452").await;
    assert_exo_reply(&r, "452 4.5.3 Too many recipients");
}

#[tokio::test]
async fn pipelined_commands_get_their_replies_in_order() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.send(b"MAIL FROM:<app@contoso.com>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
        .await;
    assert!(c.reply().await.starts_with("250 2.1.0"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("250 2.1.5"));
    assert!(c.reply().await.starts_with("354 "));
    c.send(b"Subject: p\r\n\r\nhi\r\n.\r\nQUIT\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    assert!(c.reply().await.starts_with("221 "));
    assert_eq!(up.next_completed().await.rcpts.len(), 2);
}

#[tokio::test]
async fn commands_out_of_sequence_get_503() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = Client::connect(g.addr).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "503 5.5.1").await;
    c.cmd("EHLO x", "250").await;
    c.cmd("RCPT TO:<a@example.org>", "503 5.5.1").await;
    c.cmd("DATA", "503 5.5.1").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "503 5.5.1").await;
    c.cmd("DATA", "554 5.5.1").await;
}

#[tokio::test]
async fn the_small_commands_answer() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("VRFY bob", "252 2.5.2").await;
    c.cmd("NOOP", "250 2.0.0").await;
    c.cmd("RSET", "250 2.0.0").await;
    c.cmd("HELP", "214 2.0.0").await;
    c.cmd("HELO x", "250 gate.contoso.com").await;
    c.cmd("AUTH PLAIN AGZvbwBiYXI=", "502 5.5.1").await;
    // BDAT is not offered: its payload is skipped, never read as commands.
    c.send(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    assert!(c.reply().await.starts_with("502 5.5.1"));
    c.cmd("FOO bar", "500 5.5.1").await;
    c.cmd("QUIT", "221 2.0.0").await;
}

#[tokio::test]
async fn an_over_long_command_line_is_refused_and_the_session_continues() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let mut long = b"NOOP ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 5000));
    long.extend_from_slice(b"\r\n");
    c.send(&long).await;
    assert!(c.reply().await.starts_with("500 5.5.2 Line too long"));
    c.cmd("NOOP", "250").await;
}

#[tokio::test]
async fn garbage_gets_5xx_and_too_many_errors_end_the_session_with_421() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.send(b"MAIL FROM:<a\0b@contoso.com>\r\n").await;
    assert!(c.reply().await.starts_with("500 5.5.2"));
    c.send(b"\xff\xfe\xfd\r\n").await;
    assert!(c.reply().await.starts_with("500"));
    c.send(b"MAIL FROM:<not an address>\r\n").await;
    assert!(c.reply().await.starts_with("501"));
    for _ in 0..6 {
        c.send(b"WHAT\r\n").await;
        assert!(c.reply().await.starts_with("500"));
    }
    c.send(b"WHAT\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("500"), "{r:?}");
    let r = c.reply().await;
    assert!(
        r.starts_with("421 4.7.0 gate.contoso.com Too many errors"),
        "{r:?}"
    );
    assert_eq!(c.reply().await, "", "closed");
}

#[tokio::test]
async fn a_silent_client_gets_421_after_the_command_timeout() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "command_timeout_secs = 1").await;
    let mut c = session(&g).await;
    let r = c.reply().await;
    assert!(
        r.starts_with("421 4.4.2 gate.contoso.com Timeout exceeded"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_client_stalling_in_data_gets_421_and_nothing_is_delivered() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "data_timeout_secs = 1").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: stalled\r\n\r\nhalf").await;
    let r = c.reply().await;
    assert!(r.starts_with("421 4.4.2"), "{r:?}");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn directory_upstream_stores_message_and_envelope_and_nothing_for_refusals() {
    let out = tempfile::tempdir().unwrap();
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n[upstream]\nkind = \"directory\"\npath = \"{}\"\n",
            out.path().display()
        ),
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org", "carol@example.org"],
            b"Subject: stored\r\n\r\n..dot\r\n",
        )
        .await;
    assert!(
        r.starts_with("250 2.6.0 Message accepted, stored as "),
        "{r:?}"
    );
    let r = c
        .send_message(
            "app@example.net",
            &["bob@example.org"],
            b"Subject: refused\r\n\r\nx\r\n",
        )
        .await;
    assert!(r.starts_with("550 5.7.64"), "{r:?}");
    let files = stored(out.path());
    assert_eq!(files.len(), 1);
    let eml = std::fs::read(&files[0]).unwrap();
    assert_eq!(strip_received(&eml), b"Subject: stored\r\n\r\n.dot\r\n");
    let env: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files[0].with_extension("envelope.json")).unwrap())
            .unwrap();
    assert_eq!(env["mail_from"], "app@contoso.com");
    assert_eq!(
        env["rcpt_to"],
        serde_json::json!(["bob@example.org", "carol@example.org"])
    );
    assert_eq!(
        env["client"]["peer"].as_str().unwrap().split(':').next(),
        Some("127.0.0.1")
    );
    let tmp = std::fs::read_dir(out.path().join(".tmp")).unwrap().count();
    assert_eq!(tmp, 0, "no temporary files left");
}

fn tls_upstream(addr: std::net::SocketAddr, mode: &str, ca: &std::path::Path) -> String {
    format!(
        "[upstream]\nkind = \"smtp\"\naddress = \"{addr}\"\ntls = \"{mode}\"\ntls_server_name = \"localhost\"\nca = \"{}\"\nreply_timeout_secs = 3\ndata_end_timeout_secs = 3\nconnect_timeout_secs = 3\n",
        ca.display()
    )
}

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

#[tokio::test]
async fn upstream_refusing_mail_is_passed_through_at_rcpt() {
    for reply in ["550 5.7.1 sender blocked", "451 4.3.0 try later"] {
        let up = Upstream::start(Script {
            mail_reply: Some(reply),
            ..Default::default()
        })
        .await;
        let g = relay_gate(&up, "").await;
        let mut c = session(&g).await;
        c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
        // The gate answered MAIL itself; the upstream's verdict on it arrives with the RCPT.
        let r = c.cmd("RCPT TO:<bob@example.org>", &reply[..3]).await;
        assert_eq!(r, format!("{reply}\r\n"));
        c.cmd("DATA", "554 5.5.1").await;
    }
}

#[tokio::test]
async fn a_text_line_over_max_line_length_is_refused_after_the_data() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "max_line_length = 1000").await;
    let mut c = session(&g).await;
    let mut text = b"Subject: long\r\n\r\n".to_vec();
    text.extend(std::iter::repeat_n(b'y', 2000));
    text.extend_from_slice(b"\r\n");
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &text)
        .await;
    assert_exo_reply(
        &r,
        "500 5.5.2 Message contains a line longer than 1000 octets",
    );
    c.cmd("NOOP", "250").await;
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn an_upstream_that_never_accepts_the_connection_times_out_into_451() {
    // A listener with a backlog of one, filled: further connection attempts get no answer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Ok(Ok(c)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), s.connect(addr)).await
        {
            fillers.push(c);
        }
    }
    let g = start_gate("", &format!("{BASELINE_TENANT}\n{}", smtp_upstream(addr))).await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    // connect_timeout_secs = 3; the greeting never comes either way.
    let r = c.cmd("RCPT TO:<bob@example.org>", "451 4.4.1").await;
    assert_exo_reply(
        &r,
        "451 4.4.1 Temporary server error. Please try again later [",
    );
    drop(listener);
}

async fn two_sessions(g: &Gate) {
    for _ in 0..2 {
        let mut c = session(g).await;
        let r = c
            .send_message(
                "app@contoso.com",
                &["bob@example.org"],
                b"Subject: pooled\r\n\r\nhi\r\n",
            )
            .await;
        assert!(r.starts_with("250 "), "{r:?}");
        c.cmd("QUIT", "221").await;
        // The session's end returns its upstream connection: wait until it has closed.
        assert_eq!(c.reply().await, "");
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_across_sessions() {
    use std::sync::atomic::Ordering;
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    two_sessions(&g).await;
    assert_eq!(up.completed(), 2);
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        1,
        "one connection for both sessions"
    );

    let up = Upstream::start(Script::default()).await;
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}pool_max_idle = 0\n",
            smtp_upstream(up.addr)
        ),
    )
    .await;
    two_sessions(&g).await;
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        2,
        "no pool: a connection per session"
    );
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_replaced_transparently() {
    use std::sync::atomic::Ordering;
    let up = Upstream::start(Script {
        hang_up_after_message: true,
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    two_sessions(&g).await;
    assert_eq!(up.completed(), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------
// CHUNKING (RFC 3030): an upstream that offers it, as Exchange Online does, gets BDAT chunks:
// raw bytes (no dot-stuffing), no DATA/354 round trip, the verdict with the LAST chunk.
// ---------------------------------------------------------------------------------------------

fn chunking() -> Script {
    Script {
        chunking: true,
        ..Default::default()
    }
}

/// Send `text` through a gate to an upstream with `script`: (client's final reply, upstream's
/// view of the transaction).
async fn through(script: Script, gate_extra: &str, text: &[u8]) -> (String, Vec<Received>) {
    let up = Upstream::start(script).await;
    let g = start_gate(
        "",
        &format!("{BASELINE_TENANT}\n{}{gate_extra}", smtp_upstream(up.addr)),
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &stuffed(text))
        .await;
    // The session goes on either way.
    c.cmd("NOOP", "250").await;
    (r, up.transactions())
}

#[tokio::test]
async fn bdat_upstream_gets_the_raw_message_in_one_last_chunk() {
    let text = b"Subject: dots\r\n\r\n.leading\r\n..two\r\n.\r\n\xc3\xa9t\xc3\xa9\r\n";
    let (r, t) = through(chunking(), "", text).await;
    assert_eq!(r, "250 2.0.0 queued as UPSTREAM1\r\n");
    assert_eq!(t.len(), 1);
    assert!(t[0].completed);
    assert_eq!(t[0].bdat_chunks, 1, "a small message is one BDAT ... LAST");
    // Unstuffed: BDAT carries the message itself.
    assert_eq!(strip_received(&t[0].data), text.as_slice());
}

#[tokio::test]
async fn a_large_message_goes_in_several_bdat_chunks_unchanged() {
    let mut text = b"Subject: big\r\n\r\n".to_vec();
    while text.len() < 1_000_000 {
        text.extend_from_slice(b".a dot at the start, then text to fill the line\r\n");
    }
    let (r, t) = through(chunking(), "", &text).await;
    assert!(r.starts_with("250 "), "{r:?}");
    // Chunks go out once 64 KiB are gathered, each under 128 KiB (64 KiB plus one read).
    assert!(
        (8..=16).contains(&t[0].bdat_chunks),
        "{} chunks",
        t[0].bdat_chunks
    );
    assert_eq!(strip_received(&t[0].data), text.as_slice());
}

#[tokio::test]
async fn bdat_refusals_reach_the_client_and_nothing_is_delivered() {
    // The verdict on the LAST chunk passes through verbatim.
    let (r, t) = through(
        Script {
            end_reply: Some("550 5.7.1 Message rejected as spam"),
            ..chunking()
        },
        "",
        b"Subject: x\r\n\r\nhi\r\n",
    )
    .await;
    assert_eq!(r, "550 5.7.1 Message rejected as spam\r\n");
    assert!(t[0].completed);
    // A refused middle chunk is the verdict; LAST is never sent, so the upstream keeps nothing.
    let mut text = b"Subject: x\r\n\r\n".to_vec();
    while text.len() < 600_000 {
        text.extend_from_slice(b"text text text text text text text text text\r\n");
    }
    let (r, t) = through(
        Script {
            refuse_chunk: Some((2, "552 5.3.4 Message too big for this recipient")),
            ..chunking()
        },
        "",
        &text,
    )
    .await;
    assert_eq!(r, "552 5.3.4 Message too big for this recipient\r\n");
    assert!(!t[0].completed);
}

#[tokio::test]
async fn upstream_dropping_during_bdat_is_451_never_a_250() {
    let mut text = b"Subject: x\r\n\r\n".to_vec();
    while text.len() < 1_000_000 {
        text.extend_from_slice(b"a line of text to fill the message up\r\n");
    }
    let (r, t) = through(
        Script {
            drop_during_data_after: Some(200_000),
            ..chunking()
        },
        "",
        &text,
    )
    .await;
    assert!(r.starts_with("451 4.4."), "{r:?}");
    assert!(!t[0].completed);
}

#[tokio::test]
async fn chunking_false_keeps_data_even_when_offered() {
    let text = b"Subject: x\r\n\r\n.dot\r\n";
    let (r, t) = through(chunking(), "chunking = false\n", text).await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(t[0].bdat_chunks, 0);
    assert_eq!(strip_received(&t[0].data), stuffed(text).as_slice());
}

#[tokio::test]
async fn pooled_connections_carry_bdat_transactions_one_after_another() {
    let up = Upstream::start(chunking()).await;
    let g = relay_gate(&up, "").await;
    for i in 0..3 {
        let mut c = session(&g).await;
        let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
        let r = c
            .send_message("app@contoso.com", &["bob@example.org"], body.as_bytes())
            .await;
        assert!(r.starts_with("250 "), "{r:?}");
        c.cmd("QUIT", "221").await;
    }
    let t = up.transactions();
    assert_eq!(t.len(), 3);
    for (i, t) in t.iter().enumerate() {
        assert!(t.completed && t.bdat_chunks == 1);
        assert!(strip_received(&t.data).ends_with(format!("message {i}\r\n").as_bytes()));
    }
}

/// A message of about `size` bytes of text lines.
fn message_of(size: usize) -> Vec<u8> {
    let mut text = b"Subject: x\r\n\r\n".to_vec();
    while text.len() < size {
        text.extend_from_slice(b"text text text text text text text text text text\r\n");
    }
    text
}

#[tokio::test]
async fn a_refused_chunk_is_never_followed_by_last_and_its_connection_is_not_reused() {
    // Two full chunks and a rest: the refusal of the first is still unread when the client's
    // text ends, so the gate must collect it before deciding to send LAST.
    let up = Upstream::start(Script {
        refuse_chunk: Some((1, "452 4.3.1 Insufficient system storage")),
        ..chunking()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            &message_of(150_000),
        )
        .await;
    assert_eq!(r, "452 4.3.1 Insufficient system storage\r\n");
    c.cmd("QUIT", "221").await;
    let t = up.transactions();
    assert!(!t[0].completed, "LAST was sent after a refused chunk");
    assert_eq!(t[0].bdat_chunks, 2, "only the two full chunks went out");
    // The next session does not get the failed transaction's connection from the pool.
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: y\r\n\r\nhi\r\n",
        )
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(up.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn without_pipelining_each_chunk_waits_for_its_reply() {
    let text = message_of(600_000);
    let (r, t) = through(
        Script {
            no_pipelining: true,
            ..chunking()
        },
        "",
        &text,
    )
    .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert!(t[0].bdat_chunks > 4);
    assert!(
        !t[0].pipelined && !t[0].bdat_pipelined,
        "pipelined without PIPELINING"
    );
    assert_eq!(strip_received(&t[0].data), text.as_slice());
}

#[tokio::test]
async fn odd_replies_to_last_are_451_never_passed_as_a_verdict() {
    for end in ["421 4.3.2 Service shutting down", "354 go on"] {
        let (r, _) = through(
            Script {
                end_reply: Some(end),
                ..chunking()
            },
            "",
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
        assert!(r.starts_with("451 4.4."), "{end}: {r:?}");
    }
}

#[tokio::test]
async fn a_failing_directory_upstream_answers_451_without_its_paths() {
    // The directory is a file: creating the message fails with an error naming the path.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let g = start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n[upstream]\nkind = \"directory\"\npath = \"{}\"\n",
            blocker.display()
        ),
    )
    .await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: x\r\n\r\nhi\r\n",
        )
        .await;
    // The client learns that it should retry, and the session id to quote; the path and the
    // OS error are for the log.
    assert_exo_reply(
        &r,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    assert!(
        !r.contains("not-a-directory") && !r.contains("/tmp"),
        "{r:?}"
    );
    assert!(stored(&blocker).is_empty());
}
