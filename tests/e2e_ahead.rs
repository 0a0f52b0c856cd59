//! The envelope sent ahead (README, "What 250 means"): a client that pipelines DATA behind the
//! only RCPT of its transaction, to an upstream offering CHUNKING and PIPELINING, has that RCPT
//! answered at once, and MAIL, RCPT and the message go upstream without a wait in between: one
//! upstream round trip per message.
//!
//! What must not change: the client's final reply is still the upstream's, read after its
//! replies to MAIL and RCPT; a refusal of either is that final reply, word for word; and no
//! message is taken for a recipient the upstream refused.

mod support;
use std::sync::atomic::Ordering;
use support::*;

const TEXT: &[u8] = b"From: app@contoso.com\r\nSubject: ahead\r\n\r\n.a dot line\r\nbody\r\n";

/// What the gate answers a recipient it sent ahead.
const AHEAD: &str = "250 2.1.5 Recipient OK (the upstream answers it with the message)\r\n";

fn chunking(script: Script) -> Script {
    Script {
        chunking: true,
        ..script
    }
}

/// A gate for the baseline tenant relaying to `up`, with `upstream_extra` in `[upstream]`.
async fn gate(up: &Upstream, upstream_extra: &str) -> Gate {
    start_gate(
        "",
        &format!(
            "{BASELINE_TENANT}\n{}{upstream_extra}",
            smtp_upstream(up.addr)
        ),
    )
    .await
}

/// A gate relaying to an upstream answering as `script` with CHUNKING offered, and a session
/// on it that pipelined MAIL, one RCPT to `rcpt` and DATA: its RCPT answered ahead, its DATA
/// 354.
async fn sent_ahead(script: Script, rcpt: &str) -> (Upstream, Gate, Client) {
    let up = Upstream::start(chunking(script)).await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&[rcpt]).await;
    assert_eq!(replies[1], AHEAD, "{replies:?}");
    assert!(replies[2].starts_with("354 "), "{replies:?}");
    (up, g, c)
}

/// The message after a pipelined envelope whose DATA got 354: the final reply.
async fn text(c: &mut Client, text: &[u8]) -> String {
    c.send(&stuff(text)).await;
    c.send(b".\r\n").await;
    c.reply().await
}

#[tokio::test]
async fn a_pipelining_clients_message_goes_behind_its_unanswered_envelope() {
    // The upstream answers MAIL and RCPT only when the next command comes: a gate that waited
    // for the RCPT's reply before sending the message would wait out its reply timeout.
    let (up, _g, mut c) = sent_ahead(
        Script {
            envelope_replies_wait: true,
            ..Script::default()
        },
        "bob@example.org",
    )
    .await;
    assert_eq!(
        text(&mut c, TEXT).await,
        "250 2.0.0 queued as UPSTREAM1\r\n",
        "{}",
        up.view()
    );
    let t = up.next_completed().await;
    assert!(t.bdat_before_envelope_replies, "{t:?}");
    assert_eq!(t.bdat_chunks, 1);
    assert_eq!(strip_received(&t.data), TEXT);
    // The connection stayed in step: the next message goes ahead on it too.
    let replies = c.pipelined_envelope(&["carol@example.org"]).await;
    assert_eq!(replies[1], AHEAD, "{replies:?}");
    assert!(text(&mut c, TEXT).await.starts_with("250 "));
    assert_eq!(up.completed(), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_upstreams_refusal_of_the_recipient_is_the_final_reply_word_for_word() {
    let (up, _g, mut c) = sent_ahead(
        Script {
            refuse_rcpt: vec![("bob@", "550 5.7.64 TenantAttribution; Relay Access Denied")],
            ..Script::default()
        },
        "bob@example.org",
    )
    .await;
    assert_eq!(
        text(&mut c, TEXT).await,
        "550 5.7.64 TenantAttribution; Relay Access Denied\r\n"
    );
    assert_eq!(up.completed(), 0, "{}", up.view());
    // The upstream may hold the failed transaction: its connection is not reused.
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<carol@example.org>", "250").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_upstreams_refusal_of_the_sender_is_the_final_reply_word_for_word() {
    let (up, _g, mut c) = sent_ahead(
        Script {
            mail_reply: Some("550 5.7.1 Sender refused"),
            ..Script::default()
        },
        "bob@example.org",
    )
    .await;
    assert_eq!(text(&mut c, TEXT).await, "550 5.7.1 Sender refused\r\n");
    assert_eq!(up.completed(), 0, "{}", up.view());
}

#[tokio::test]
async fn a_message_taken_after_its_recipient_was_refused_is_out_of_step() {
    // An upstream breaking RFC 3030: it takes the message for nobody. The client must not be
    // told 250 for a recipient the upstream refused, nor 5xx for a message it may have.
    let (_up, _g, mut c) = sent_ahead(
        Script {
            refuse_rcpt: vec![("bob@", "550 5.1.1 no such user")],
            text_for_nobody: true,
            ..Script::default()
        },
        "bob@example.org",
    )
    .await;
    assert_exo_reply(
        &text(&mut c, TEXT).await,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
}

#[tokio::test]
async fn a_large_message_reads_the_envelopes_replies_before_its_last_chunk() {
    // Several write chunks of text: the envelope's replies come with the first chunk's, and
    // a refused recipient stops the message before LAST.
    let large: Vec<u8> = TEXT
        .iter()
        .copied()
        .chain(b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n".repeat(4096))
        .collect();
    let (up, g, mut c) = sent_ahead(
        Script {
            refuse_rcpt: vec![("nobody@", "550 5.1.1 no such user")],
            ..Script::default()
        },
        "nobody@example.org",
    )
    .await;
    assert_eq!(text(&mut c, &large).await, "550 5.1.1 no such user\r\n");
    assert_eq!(up.completed(), 0, "{}", up.view());
    // And one the upstream accepts arrives whole, in several chunks.
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_eq!(replies[1], AHEAD, "{replies:?}");
    assert!(text(&mut c, &large).await.starts_with("250 "));
    let t = up.next_completed().await;
    assert!(t.bdat_chunks > 1, "{t:?}");
    assert_eq!(strip_received(&t.data), large.as_slice());
}

#[tokio::test]
async fn several_recipients_each_get_the_upstreams_own_reply() {
    let up = Upstream::start(chunking(Script {
        refuse_rcpt: vec![("nobody@", "550 5.1.1 no such user")],
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c
        .pipelined_envelope(&["bob@example.org", "nobody@example.org"])
        .await;
    assert_eq!(replies[1], "250 2.1.5 ok\r\n", "{replies:?}");
    assert_eq!(replies[2], "550 5.1.1 no such user\r\n", "{replies:?}");
    assert!(text(&mut c, TEXT).await.starts_with("250 "));
    let t = up.next_completed().await;
    assert!(!t.bdat_before_envelope_replies, "{t:?}");
}

#[tokio::test]
async fn a_client_that_waits_for_each_reply_gets_the_upstreams_own_reply() {
    let up = Upstream::start(chunking(Script {
        refuse_rcpt: vec![("nobody@", "550 5.1.1 no such user")],
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    assert_eq!(
        c.cmd("RCPT TO:<nobody@example.org>", "550").await,
        "550 5.1.1 no such user\r\n"
    );
}

#[tokio::test]
async fn switched_off_the_recipient_gets_the_upstreams_own_reply() {
    let up = Upstream::start(chunking(Script {
        refuse_rcpt: vec![("bob@", "550 5.1.1 no such user")],
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "answer_sole_recipient_early = false\n").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_eq!(replies[1], "550 5.1.1 no such user\r\n", "{replies:?}");
    assert!(
        replies[2].starts_with("554 5.5.1 No valid recipients"),
        "{replies:?}"
    );
}

#[tokio::test]
async fn without_pipelining_upstream_the_recipient_gets_the_upstreams_own_reply() {
    let up = Upstream::start(chunking(Script {
        no_pipelining: true,
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    let replies = c.pipelined_envelope(&["bob@example.org"]).await;
    assert_eq!(replies[1], "250 2.1.5 ok\r\n", "{replies:?}");
    assert!(text(&mut c, TEXT).await.starts_with("250 "));
}

/// MAIL, one RCPT and `text` as BDAT chunks of `chunk` octets in one write, as Exchange
/// sends them: the RCPT's reply, then the reply to LAST.
async fn bdat_client(c: &mut Client, rcpt: &str, text: &[u8], chunk: usize) -> (String, String) {
    let mut wire = format!("MAIL FROM:<app@contoso.com>\r\nRCPT TO:<{rcpt}>\r\n").into_bytes();
    let (chunks, n) = bdat_wire(text, chunk);
    wire.extend_from_slice(&chunks);
    c.send(&wire).await;
    assert!(c.reply().await.starts_with("250 "));
    let rcpt_reply = c.reply().await;
    for i in 1..n {
        let r = c.reply().await;
        assert!(r.starts_with("250 "), "chunk {i}: {r:?}");
    }
    (rcpt_reply, c.reply().await)
}

#[tokio::test]
async fn a_bdat_clients_chunks_go_behind_its_unanswered_envelope() {
    // Exchange servers send MAIL, RCPT and their chunks in one go; with one recipient the
    // gate passes them on the same way.
    let up = Upstream::start(chunking(Script {
        envelope_replies_wait: true,
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    let (rcpt, last) = bdat_client(&mut c, "bob@example.org", TEXT, 20).await;
    assert_eq!(rcpt, AHEAD);
    assert_eq!(last, "250 2.0.0 queued as UPSTREAM1\r\n", "{}", up.view());
    let t = up.next_completed().await;
    assert!(t.bdat_before_envelope_replies, "{t:?}");
    assert_eq!(strip_received(&t.data), TEXT);
}

#[tokio::test]
async fn a_bdat_clients_refused_recipient_is_the_reply_to_its_last_chunk() {
    let up = Upstream::start(chunking(Script {
        refuse_rcpt: vec![("bob@", "550 5.1.1 no such user")],
        ..Script::default()
    }))
    .await;
    let g = gate(&up, "").await;
    let mut c = session(&g).await;
    let (rcpt, last) = bdat_client(&mut c, "bob@example.org", TEXT, 20).await;
    assert_eq!(rcpt, AHEAD);
    assert_eq!(last, "550 5.1.1 no such user\r\n");
    assert_eq!(up.completed(), 0, "{}", up.view());
}

#[tokio::test]
async fn a_stray_acceptance_behind_the_recipients_reply_is_never_the_verdict() {
    // An upstream out of step: a line of its own right behind the RCPT's reply, then it
    // refuses the message. LAST went out before those replies were read, so on the wire the
    // stray line is LAST's reply; the NOOP behind LAST shows it was not. The client must hear
    // a 4xx, never 250 for a message the upstream refused; and the gate stops sending
    // envelopes ahead to that upstream.
    let (_up, _g, mut c) = sent_ahead(
        Script {
            rcpt_trailer: Some("250 2.0.0 stray"),
            end_reply: Some("554 5.6.0 message refused"),
            ..Script::default()
        },
        "bob@example.org",
    )
    .await;
    assert_exo_reply(
        &text(&mut c, TEXT).await,
        "451 4.4.3 Temporary server error. Please try again later [",
    );
    // No longer ahead: the RCPT is asked on its own, and the stray line behind its reply is
    // then caught where it stands.
    let replies = c.pipelined_envelope(&["carol@example.org"]).await;
    assert_exo_reply(
        &replies[1],
        "451 4.4.3 Temporary server error. Please try again later [",
    );
}
