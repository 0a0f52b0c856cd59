//! The upstream connection across transactions: pooled and reused between sessions, replaced
//! when the upstream closed it, never reused after a fault; and CHUNKING (RFC 3030), which an
//! upstream that offers it (as Exchange Online does) gets: BDAT chunks of raw bytes (no
//! dot-stuffing), no DATA/354 round trip, the verdict with the LAST chunk.

mod support;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;

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
        // The session's end returns its upstream connection: wait until it has closed.
        c.quit().await;
    }
}

#[tokio::test]
async fn upstream_connections_are_reused_across_sessions() {
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

#[tokio::test]
async fn a_session_whose_upstream_connection_closed_while_it_idled_sends_its_next_message_on_a_new_one(
) {
    // A client that keeps its session open (an application server, smtp-source -d) between
    // messages; meanwhile the upstream closes the connection the session holds, as Exchange
    // Online does with an idle one. Nothing of the next transaction has gone out when the gate
    // finds the connection closed, so it opens another: the client sees nothing of it.
    let close = Stray::close();
    let up = Upstream::start(Script {
        stray_after_first_message: Some(close.clone()),
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let first = b"Subject: first\r\n\r\nthe first message\r\n";
    let r = c
        .send_message("app@contoso.com", &["bob@example.org"], first)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    close.go.notify_one();
    tokio::time::timeout(WAIT, close.written.notified())
        .await
        .expect("the upstream closed its connection");
    let second = b"Subject: second\r\n\r\nthe second message\r\n";
    let r = c
        .send_message("app@contoso.com", &["carol@example.org"], second)
        .await;
    assert!(
        r.starts_with("250 "),
        "the second message: {r:?}; {}",
        up.view()
    );
    c.quit().await;
    assert_eq!(up.completed(), 2);
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
}

// ---------------------------------------------------------------------------------------------
// CHUNKING (RFC 3030)
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
        .send_message("app@contoso.com", &["bob@example.org"], &stuff(text))
        .await;
    // The session goes on either way.
    c.cmd("NOOP", "250").await;
    (r, up.transactions())
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
    assert_eq!(strip_received(&t[0].data), stuff(text).as_slice());
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
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
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

/// An upstream that answers MAIL with its reply and a stray `250` in one write, holds RCPT's
/// own reply until the message's `BDAT LAST` has come, and then refuses the message, but only
/// once `refuse` is notified (so the refusal cannot arrive with RCPT's late reply).
async fn upstream_one_reply_behind(refuse: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (r, mut w) = socket.into_split();
        let mut r = BufReader::new(r);
        let mut line = String::new();
        w.write_all(b"220 up.example ESMTP\r\n").await.unwrap();
        r.read_line(&mut line).await.unwrap();
        w.write_all(b"250-up.example\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 8BITMIME\r\n")
            .await
            .unwrap();
        for expected in ["MAIL FROM:", "RCPT TO:"] {
            line.clear();
            r.read_line(&mut line).await.unwrap();
            assert!(line.starts_with(expected), "{line:?}");
        }
        w.write_all(b"250 2.1.0 Sender OK\r\n250 2.0.0 stray\r\n")
            .await
            .unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let size: usize = line
            .strip_prefix("BDAT ")
            .and_then(|l| l.strip_suffix(" LAST\r\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("BDAT LAST expected: {line:?}"));
        let mut text = vec![0; size];
        r.read_exact(&mut text).await.unwrap();
        w.write_all(b"250 2.1.5 Recipient OK\r\n").await.unwrap();
        refuse.notified().await;
        w.write_all(b"554 5.6.0 the message is refused\r\n")
            .await
            .unwrap();
        // Whatever the gate says now (RSET, QUIT) until it closes.
        while r.read_line(&mut line).await.is_ok_and(|n| n > 0) {}
    });
    addr
}

#[tokio::test]
async fn a_recipient_reply_read_one_behind_is_never_the_verdict_on_the_message() {
    // A stray line took the place of RCPT's reply in a pipelined group, and RCPT's own reply
    // came late, so it is the next reply the gate reads: the one it reads for BDAT LAST. Its
    // "2.1.5" (a recipient's address status, RFC 3463) says it is no verdict on a message; the
    // upstream's real verdict, a refusal, comes after. Told 250, the client would drop a
    // message the upstream refused.
    let refuse = Arc::new(Notify::new());
    let addr = upstream_one_reply_behind(refuse.clone()).await;
    let g = start_gate("", &format!("{BASELINE_TENANT}\n{}", smtp_upstream(addr))).await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: behind\r\n\r\nhi\r\n.\r\n").await;
    let end = c.reply().await;
    refuse.notify_one();
    assert!(end.starts_with("451 4.4.3 "), "{end:?}");
    assert_exo_reply(&end, "451 4.4.3");
    c.quit().await;
}
