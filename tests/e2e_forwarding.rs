//! Forwarding without loss: the bytes arrive exactly as the client sent them (dot lines, 8-bit
//! text, long lines, megabytes streamed), the upstream's own replies come back as they were,
//! and a directory upstream stores the message and its envelope.
//!
//! The upstream connection across transactions (pool, BDAT) is in `e2e_pool_and_bdat.rs`,
//! upstream trouble in `e2e_upstream_faults.rs`, hostile client input in
//! `e2e_client_input.rs`.

mod support;
use support::*;

async fn round_trip(text: &[u8]) {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], &stuff(text))
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.next_completed().await;
    // The upstream receives it stuffed again, exactly as the client sent it.
    assert_eq!(strip_received(&t.data), stuff(text).as_slice());
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
async fn directory_upstream_stores_message_and_envelope_and_nothing_for_refusals() {
    let out = tempfile::tempdir().unwrap();
    let g = start_gate(
        "",
        &format!("{BASELINE_TENANT}\n{}", directory_upstream(out.path())),
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
