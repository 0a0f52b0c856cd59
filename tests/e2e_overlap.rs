//! The 354 round trip overlapped, as a real client sees it, against an upstream without
//! CHUNKING: the gate sends DATA upstream as the client sends DATA and tells the client 354 at
//! once; the text is held (bounded) until the upstream's 354 and goes out only then. The
//! upstream's answer to DATA is held back by the test ([`Hold`]), so each test knows the
//! client was answered while that answer was still owed.
//!
//! What must not change: the client's final reply is the upstream's verdict on the text (a
//! refusal of DATA, read late, is that verdict), and no text reaches the upstream before its
//! 354.
//!
//! A client that pipelines DATA behind its last RCPT gets DATA sent upstream in that RCPT's
//! group, so the upstream's answer comes with the RCPT replies: what the upstream then says to
//! DATA must never tell a client with no recipient accepted to send its text.

mod support;
use std::sync::atomic::Ordering;
use support::*;
use tokio::time::timeout;

const TEXT: &[u8] = b"From: app@contoso.com\r\nSubject: overlap\r\n\r\n.a dot line\r\nbody\r\n";

/// An upstream without CHUNKING whose answer to DATA (354, or `data_reply`) waits for the
/// test's go.
async fn holding_upstream(data_reply: Option<&'static str>) -> (Upstream, Hold) {
    let hold = Hold::default();
    let up = Upstream::start(Script {
        data_reply,
        hold_data_answer: Some(hold.clone()),
        ..Script::default()
    })
    .await;
    (up, hold)
}

/// MAIL and RCPT, then DATA: the client's 354 comes while the upstream's answer is held, and
/// the upstream has DATA before the client sends a byte of text.
async fn data_answered_before_the_upstream(c: &mut Client, hold: &Hold) {
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    timeout(WAIT, hold.seen.notified())
        .await
        .expect("DATA reached the upstream as the client sent DATA");
}

#[tokio::test]
async fn the_client_is_told_354_while_the_upstreams_354_is_still_owed() {
    let (up, hold) = holding_upstream(None).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    data_answered_before_the_upstream(&mut c, &hold).await;
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    hold.go.notify_one();
    let end = c.reply().await;
    // The upstream's own 250, passed through: the only kind of 250 a message gets.
    assert_eq!(end, "250 2.0.0 queued as UPSTREAM1\r\n");
    let t = up.next_completed().await;
    assert_eq!(strip_received(&t.data), stuff(TEXT).as_slice());
    assert!(!t.text_before_data_answer, "text went out before the 354");
}

#[tokio::test]
async fn an_upstream_refusal_of_data_is_the_clients_final_reply_after_the_text() {
    for refusal in ["554 5.6.0 not from you", "451 4.3.0 try again later"] {
        let (up, hold) = holding_upstream(Some(refusal)).await;
        let g = relay_gate(&up, "").await;
        let mut c = session(&g).await;
        data_answered_before_the_upstream(&mut c, &hold).await;
        // The whole text, read and discarded once the refusal is known.
        c.send(&stuff(TEXT)).await;
        c.send(b".\r\n").await;
        hold.go.notify_one();
        let end = c.reply().await;
        assert_eq!(end, format!("{refusal}\r\n"), "passed through verbatim");
        let t = &up.transactions()[0];
        assert!(t.data.is_empty() && !t.completed, "{}", up.view());
        assert!(!t.text_before_data_answer);
        // The upstream connection was left in step (RSET), and carries the next transaction.
        c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
        c.cmd("RCPT TO:<bob@example.org>", "250").await;
        assert_eq!(up.connections.load(Ordering::SeqCst), 1);
        assert_eq!(up.transactions().len(), 2, "{}", up.view());
    }
}

#[tokio::test]
async fn a_250_to_data_is_out_of_step_and_the_connection_is_never_reused() {
    let (up, hold) = holding_upstream(Some("250 2.0.0 ok")).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    data_answered_before_the_upstream(&mut c, &hold).await;
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    hold.go.notify_one();
    let end = c.reply().await;
    assert_exo_reply(
        &end,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    assert_eq!(up.completed(), 0, "{}", up.view());
    // The next transaction needs a new connection.
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn text_larger_than_the_held_buffer_arrives_whole_after_a_late_354() {
    let (up, hold) = holding_upstream(None).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    data_answered_before_the_upstream(&mut c, &hold).await;
    let mut text = b"Subject: large\r\n\r\n".to_vec();
    while text.len() < 1024 * 1024 {
        text.extend_from_slice(b".a dot line, then text to fill a megabyte with\r\n");
    }
    let wire = stuff(&text);
    // The 354 comes while the client is still sending (the gate stops reading once it holds
    // its buffer's worth, so the client's writes wait for it).
    let (end, ()) = tokio::join!(
        async {
            c.send(&wire).await;
            c.send(b".\r\n").await;
            c.reply().await
        },
        async { hold.go.notify_one() }
    );
    assert!(end.starts_with("250 "), "{end:?}");
    let t = up.next_completed().await;
    assert_eq!(strip_received(&t.data), wire.as_slice());
    assert!(!t.text_before_data_answer);
}

#[tokio::test]
async fn a_pipelining_clients_data_goes_upstream_in_the_group_with_its_rcpt() {
    // The upstream's answer to DATA is held: the gate waits for it with the RCPT's reply, so
    // the client hears nothing of its RCPT until the upstream has answered DATA.
    let (up, hold) = holding_upstream(None).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let (replies, ()) = tokio::join!(c.pipelined_envelope(&["bob@example.org"]), async {
        timeout(WAIT, hold.seen.notified())
            .await
            .expect("DATA reached the upstream before the client's RCPT was answered");
        hold.go.notify_one();
    });
    assert!(
        replies[0].starts_with("250 ") && replies[1].starts_with("250 "),
        "{replies:?}"
    );
    assert!(replies[2].starts_with("354 "), "{replies:?}");
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 queued as UPSTREAM1\r\n");
    let t = up.next_completed().await;
    assert!(
        t.pipelined && t.data_with_rcpt,
        "MAIL, RCPT and DATA as one group: {t:?}"
    );
    assert!(!t.text_before_data_answer);
    assert_eq!(strip_received(&t.data), stuff(TEXT).as_slice());
}

#[tokio::test]
async fn with_one_recipient_refused_upstream_the_others_message_goes_on() {
    let up = Upstream::start(Script {
        refuse_rcpt: vec![("nobody@", "550 5.1.1 no such user")],
        ..Script::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c
        .pipelined_envelope(&["bob@example.org", "nobody@example.org"])
        .await;
    assert!(replies[1].starts_with("250 "), "{replies:?}");
    assert!(
        replies[2].starts_with("550 5.1.1 no such user"),
        "{replies:?}"
    );
    assert!(replies[3].starts_with("354 "), "{replies:?}");
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let t = up.next_completed().await;
    assert!(t.data_with_rcpt, "{t:?}");
    assert_eq!(t.rcpts.len(), 2);
}

#[tokio::test]
async fn every_recipient_refused_upstream_the_client_never_sees_354() {
    let up = Upstream::start(Script {
        refuse_rcpt: vec![("bob@", "550 5.1.1 no such user")],
        data_reply: Some("554 5.5.1 no valid recipients"),
        ..Script::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert!(
        replies[1].starts_with("550 5.1.1 no such user"),
        "{replies:?}"
    );
    // The gate's own answer, as when DATA never went upstream.
    assert!(
        replies[2].starts_with("554 5.5.1 No valid recipients"),
        "{replies:?}"
    );
    assert!(up.transactions()[0].data_with_rcpt, "{}", up.view());
    // The upstream connection stayed in step and carries the next transaction.
    c.cmd("RSET", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<carol@example.org>", "250").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn a_354_when_every_recipient_was_refused_is_out_of_step() {
    // An upstream breaking RFC 2920: it would take text for nobody.
    let up = Upstream::start(Script {
        refuse_rcpt: vec![("bob@", "550 5.1.1 no such user")],
        ..Script::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_exo_reply(
        &replies[1],
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    assert!(
        replies[2].starts_with("554 5.5.1 No valid recipients"),
        "{replies:?}"
    );
    c.cmd("RSET", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<carol@example.org>", "250").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 2, "never reused");
    assert!(up.transactions()[0].data.is_empty());
}

#[tokio::test]
async fn a_client_that_waits_for_each_reply_gets_data_upstream_on_its_own() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let t = up.next_completed().await;
    assert!(!t.data_with_rcpt, "{t:?}");
}

#[tokio::test]
async fn without_pipelining_upstream_data_goes_on_its_own() {
    let up = Upstream::start(Script {
        no_pipelining: true,
        ..Script::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert!(replies[2].starts_with("354 "), "{replies:?}");
    c.send(&stuff(TEXT)).await;
    c.send(b".\r\n").await;
    assert!(c.reply().await.starts_with("250 "));
    let t = up.next_completed().await;
    assert!(!t.data_with_rcpt, "{t:?}");
}
