//! Upstream trouble, reproduced over real sockets: an upstream that cannot be reached, refuses
//! the session, drops or falls silent at any point, loses a recipient mid-transaction, says more
//! (or other) than it was asked, or answers with codes no SMTP server sends; and a directory
//! upstream that cannot write. In every case the client is either told the truth about its
//! message or told to retry (never a 250 for what the upstream does not hold), and nothing the
//! client was not told about is delivered.
//!
//! A temporary failure the gate makes itself is `451 4.4.x Temporary server error. Please try
//! again later` with Exchange Online's suffix, and nothing else: internal error text (which
//! command failed, what a socket said, a path) stays in the log.

mod support;
use std::sync::atomic::Ordering;
use support::*;
use tokio::time::timeout;

/// What the gate's own temporary failures say, and all they say.
const TEMPORARY: &str = "Temporary server error. Please try again later";

/// A temporary failure of the gate's own: one line, `code` (`"451 4.4.3"`, or `"451 4.4."`
/// for any 4.4.x), the fixed text, and Exchange Online's suffix. `seen` (what else happened)
/// goes into the failure message.
fn assert_temporary(reply: &str, code: &str, seen: &str) {
    assert!(reply.starts_with(code), "{reply:?} is not {code:?}; {seen}");
    assert_eq!(
        reply.lines().count(),
        1,
        "one line expected: {reply:?}; {seen}"
    );
    let line = reply.trim_end();
    let mut parts = line.splitn(3, ' ');
    let (basic, enhanced, rest) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    assert_eq!(basic, "451", "{reply:?}; {seen}");
    assert!(
        enhanced.starts_with("4.4.") && enhanced.len() == 5,
        "enhanced code of {reply:?}; {seen}"
    );
    // Between the enhanced code and the suffix: the fixed sentence, no internal detail.
    let text = &rest[..rest.rfind(" [").unwrap_or(rest.len())];
    assert_eq!(text, TEMPORARY, "internal detail in {reply:?}; {seen}");
    assert_exo_reply(reply, code);
}

/// DATA, and when it is answered 354 the message and the final dot: every reply the client
/// got, in order (one, or two after a 354).
async fn data(c: &mut Client, message: &[u8]) -> Vec<String> {
    let go = c.ask("DATA").await;
    if !go.starts_with("354") {
        return vec![go];
    }
    c.send(message).await;
    c.send(b".\r\n").await;
    let end = c.reply().await;
    vec![go, end]
}

// ---------------------------------------------------------------------------------------------
// 1. No upstream to talk to, or one that goes away: 451, never a 250 for a message the upstream
// does not hold.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unreachable_upstream_is_451_at_rcpt() {
    // A port nothing listens on.
    let closed = free_port();
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
async fn a_failing_directory_upstream_answers_451_without_its_paths() {
    // The directory is a file: creating the message fails with an error naming the path.
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let g = start_gate(
        "",
        &format!("{BASELINE_TENANT}\n{}", directory_upstream(&blocker)),
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

// ---------------------------------------------------------------------------------------------
// 2. A recipient lost upstream in the middle of a transaction. The upstream transaction holds
// alice; when bob's RCPT fails, that transaction is gone with its connection. carol must not
// start a new one (the message would go to carol alone, and alice, told 250, would never get
// it), and DATA must not be answered 354 for a transaction that no longer exists upstream.
// ---------------------------------------------------------------------------------------------

async fn a_recipient_lost_at_the_second_rcpt(fault: Fault, bob_code: &str) {
    let up = Upstream::start(Script {
        rcpt_fault: Some((2, fault)),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let alice = c.ask("RCPT TO:<alice@example.org>").await;
    let bob = c.ask("RCPT TO:<bob@example.org>").await;
    let carol = c.ask("RCPT TO:<carol@example.org>").await;
    let replies = data(&mut c, b"Subject: lost\r\n\r\nfor alice, bob and carol\r\n").await;
    // Everything the client saw and the upstream got, for every assertion below.
    let seen = format!(
        "alice {alice:?}, bob {bob:?}, carol {carol:?}, DATA {replies:?}; {}",
        up.view()
    );
    assert!(alice.starts_with("250 "), "{seen}");
    assert_temporary(&bob, bob_code, &seen);
    // carol cannot join a transaction that is gone, and must not open another.
    assert_temporary(&carol, "451 4.4.", &seen);
    assert_eq!(replies.len(), 1, "DATA was answered 354: {seen}");
    assert_temporary(&replies[0], "451 4.4.", &seen);
    // The session goes on.
    c.cmd("NOOP", "250").await;
    c.quit().await;
    assert_eq!(up.completed(), 0, "a message was delivered: {seen}");
    assert_eq!(
        up.transactions().len(),
        1,
        "a second upstream transaction: {seen}"
    );
}

#[tokio::test]
async fn upstream_dropping_at_the_second_rcpt_never_leaves_a_recipient_behind() {
    a_recipient_lost_at_the_second_rcpt(Fault::Close, "451 4.4.2").await;
}

#[tokio::test]
async fn upstream_saying_421_at_the_second_rcpt_never_leaves_a_recipient_behind() {
    a_recipient_lost_at_the_second_rcpt(Fault::ReplyAndClose("421 4.3.2 closing"), "451 4.4.3")
        .await;
}

#[tokio::test]
async fn upstream_silent_at_the_second_rcpt_never_leaves_a_recipient_behind() {
    // Silence past reply_timeout_secs = 3 (smtp_upstream()).
    a_recipient_lost_at_the_second_rcpt(Fault::Silent, "451 4.4.2").await;
}

// ---------------------------------------------------------------------------------------------
// 3. Reply desync: a reply to no command shifts every later reply by one, so each command
// would be answered with its predecessor's reply, and a message could be "accepted" with the
// reply to RCPT. Once the gate cannot tell which reply answers what, the only safe answer is a
// temporary failure, and the connection must go.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_stray_line_after_the_ehlo_reply_is_451_at_the_first_rcpt_and_nothing_is_delivered() {
    let up = Upstream::start(Script {
        ehlo_trailer: Some("250 stray"),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let rcpt = c.ask("RCPT TO:<bob@example.org>").await;
    let replies = data(&mut c, b"Subject: x\r\n\r\nhi\r\n").await;
    let seen = format!("RCPT {rcpt:?}, DATA {replies:?}");
    assert_temporary(&rcpt, "451 4.4.3", &seen);
    assert!(
        !replies.iter().any(|r| r.starts_with("250")),
        "the message was acknowledged: {replies:?}"
    );
    c.quit().await;
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn upstream_answering_250_to_data_is_451_never_an_acceptance() {
    // No CHUNKING (the default): the message goes with DATA, which must be answered 354.
    let up = Upstream::start(Script {
        data_reply: Some("250 ok"),
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
    assert_temporary(&r, "451 4.4.3", "");
    c.quit().await;
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn a_stray_line_after_a_bdat_rcpt_reply_never_turns_a_refusal_into_250() {
    // The stray 250 arrives with RCPT's reply; the upstream refuses the message itself. Read one
    // reply behind, the gate would take "250 stray" for the verdict on BDAT LAST.
    let up = Upstream::start(Script {
        chunking: true,
        rcpt_trailer: Some("250 stray"),
        end_reply: Some("554 5.6.0 no"),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let rcpt = c.ask("RCPT TO:<bob@example.org>").await;
    let replies = data(&mut c, b"Subject: x\r\n\r\nhi\r\n").await;
    let seen = format!("RCPT {rcpt:?}, DATA {replies:?}");
    if rcpt.starts_with("451") {
        // Noticed at RCPT: the transaction has no recipient, there is no message to send.
        assert_temporary(&rcpt, "451 4.4.3", &seen);
        assert!(!replies[0].starts_with("354"), "{seen}");
    } else {
        // Noticed at the end: the final reply.
        assert!(rcpt.starts_with("250 "), "{seen}");
        assert_eq!(replies.len(), 2, "{seen}");
        assert_temporary(&replies[1], "451 4.4.3", &seen);
    }
    c.quit().await;
    // The upstream answers every LAST with 554: a completed message there is a refused one.
    // Either way, the client was never told 250 for it (above).
    assert!(
        !replies.iter().any(|r| r.starts_with("250")),
        "the message was acknowledged: {seen}"
    );
}

#[tokio::test]
async fn a_stray_line_after_a_delivered_message_does_not_make_the_next_message_accepted_unsent() {
    // The stray line arrives after the gate has read the real final reply, while the connection
    // is still idle: a pooled connection then answers the next session's commands one behind.
    let stray = Stray::new("250 stray");
    let up = Upstream::start(Script {
        stray_after_first_message: Some(stray.clone()),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let first = b"Subject: first\r\n\r\nthe first message\r\n";
    let second = b"Subject: second\r\n\r\nthe second message\r\n";

    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], first)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    stray.go.notify_one();
    timeout(WAIT, stray.written.notified())
        .await
        .expect("the upstream wrote its stray line");
    // QUIT: the connection goes back to the pool (with the stray line behind it).
    c.quit().await;

    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let rcpt = c.ask("RCPT TO:<carol@example.org>").await;
    let replies = data(&mut c, second).await;
    let seen = format!("RCPT {rcpt:?}, DATA {replies:?}; {}", up.view());
    assert!(rcpt.starts_with("250 "), "{seen}");
    assert_eq!(replies.len(), 2, "{seen}");
    assert!(replies[1].starts_with("250 "), "{seen}");
    // Told 250: the upstream has both messages, each as its client sent it.
    let done: Vec<Received> = up
        .transactions()
        .into_iter()
        .filter(|t| t.completed)
        .collect();
    assert_eq!(done.len(), 2, "{seen}");
    assert_eq!(strip_received(&done[0].data), first.as_slice());
    assert_eq!(strip_received(&done[1].data), second.as_slice());
    assert_eq!(done[1].rcpts, ["RCPT TO:<carol@example.org>"]);
    c.quit().await;
}

// ---------------------------------------------------------------------------------------------
// 4. Codes no SMTP server sends at that point: 3xx or 1xx to the final dot, codes outside
// 2xx-5xx, a multi-line reply whose lines disagree. None of them is a verdict; each is 451, and
// a connection that said such a thing is never used again.
// ---------------------------------------------------------------------------------------------

/// Where the odd reply comes.
#[derive(Clone, Copy, PartialEq)]
enum OddAt {
    /// At the RCPT for odd@example.org.
    Rcpt,
    /// At the end of the first message.
    FinalDot,
}

/// Session one meets the odd reply (`script`) and gets `451 4.4.3` for it; session two's
/// message must be delivered, over a new connection.
async fn odd_reply_then_a_fresh_connection(script: Script, at: OddAt) {
    let up = Upstream::start(script).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    if at == OddAt::Rcpt {
        let r = c.ask("RCPT TO:<odd@example.org>").await;
        assert_temporary(&r, "451 4.4.3", "");
        c.cmd("RSET", "250").await;
    } else {
        c.cmd("RCPT TO:<bob@example.org>", "250").await;
        let replies = data(&mut c, b"Subject: odd\r\n\r\nhi\r\n").await;
        let seen = format!("DATA {replies:?}");
        assert_eq!(replies.len(), 2, "{seen}");
        assert_temporary(&replies[1], "451 4.4.3", &seen);
    }
    c.quit().await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);

    let next = b"Subject: next\r\n\r\nthe next message\r\n";
    let mut c = session(&g).await;
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], next)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        2,
        "the connection that gave the odd reply was reused"
    );
    let delivered = up.transactions().into_iter().rfind(|t| t.completed);
    assert_eq!(
        strip_received(&delivered.expect("delivered").data),
        next.as_slice()
    );
    c.quit().await;
}

fn odd_end(reply: &'static str) -> Script {
    Script {
        first_end_reply: Some(reply),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_354_to_the_final_dot_is_451_and_its_connection_is_not_reused() {
    odd_reply_then_a_fresh_connection(odd_end("354 more"), OddAt::FinalDot).await;
}

#[tokio::test]
async fn a_1xx_to_the_final_dot_is_451_and_its_connection_is_not_reused() {
    odd_reply_then_a_fresh_connection(odd_end("199 what"), OddAt::FinalDot).await;
}

#[tokio::test]
async fn a_999_to_the_final_dot_is_451_and_its_connection_is_not_reused() {
    odd_reply_then_a_fresh_connection(odd_end("999 what"), OddAt::FinalDot).await;
}

#[tokio::test]
async fn a_final_reply_whose_lines_disagree_is_451_and_its_connection_is_not_reused() {
    // Which line is the verdict? Neither can be trusted.
    odd_reply_then_a_fresh_connection(
        odd_end("554-5.6.0 first line\r\n250 2.0.0 ok"),
        OddAt::FinalDot,
    )
    .await;
}

#[tokio::test]
async fn a_999_to_rcpt_is_451_and_its_connection_is_not_reused() {
    odd_reply_then_a_fresh_connection(
        Script {
            refuse_rcpt: vec![("odd@example.org", "999 what")],
            ..Default::default()
        },
        OddAt::Rcpt,
    )
    .await;
}
