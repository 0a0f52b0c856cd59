//! What a client sends that it should not: bare line feeds (SMTP smuggling), oversized
//! messages and lines, too many recipients, commands out of sequence, garbage, silence, a
//! client that never reads, NUL bytes, BDAT out of place or of a size it cannot have, text
//! pipelined past DATA. (BDAT itself: `e2e_client_bdat.rs`.) Each gets a clear reply (or the connection closes), and none of it reaches the
//! upstream.

mod support;
use support::*;
use tokio::io::AsyncWriteExt;

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
async fn a_nul_byte_in_a_message_without_binarymime_is_refused_with_550_5_6_0() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            b"Subject: nul\r\n\r\nbefore\0after\r\n",
        )
        .await;
    assert_exo_reply(&r, "550 5.6.0");
    // The session goes on.
    c.cmd("NOOP", "250").await;
    c.quit().await;
    assert_eq!(up.completed(), 0);
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
async fn message_text_sent_before_the_354_is_a_protocol_synchronization_error() {
    // RFC 2920 3.1: DATA ends a pipelined batch; the text may only follow the 354. A client
    // that sends it anyway does not wait for replies, so cannot be trusted with the rest.
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.send(b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        .await;
    let r = c.reply().await;
    assert!(
        r.starts_with("554 5.5.0 Error: SMTP protocol synchronization"),
        "{r:?}"
    );
    let next = c.reply().await;
    assert_eq!(next, "", "the session went on after {r:?}");
    assert_eq!(up.completed(), 0);
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
    // BDAT outside a transaction: its payload is skipped, never read as commands.
    c.send(b"BDAT 6 LAST\r\nQUIT\r\n").await;
    assert!(c.reply().await.starts_with("503 5.5.1"));
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

// ---------------------------------------------------------------------------------------------
// Clients that stall or never read.
// ---------------------------------------------------------------------------------------------

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
async fn a_client_that_never_reads_its_replies_is_disconnected() {
    // A client that pipelines commands and never reads: the gate's replies fill its tiny
    // receive buffer and the gate's send buffer, and a gate that waits on that write without a
    // deadline is held forever (and so is its slot under max_connections).
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "session_timeout_secs = 2\ncommand_timeout_secs = 1").await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1024).unwrap();
    let mut s = socket.connect(g.addr).await.unwrap();
    let noops = b"NOOP\r\n".repeat(64 * 1024 / 6);
    // Well past the session's 2 s: the bound on waiting, not an expected duration.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut written = 0usize;
    let closed = loop {
        match tokio::time::timeout_at(deadline, s.write(&noops)).await {
            Err(_) => break false,
            Ok(Err(_)) | Ok(Ok(0)) => break true,
            Ok(Ok(n)) => written += n,
        }
        assert!(
            written < 64 << 20,
            "64 MiB written and the gate still reads: its replies go nowhere"
        );
    };
    assert!(
        closed,
        "after 30 s the session is still open ({written} bytes written, the last write blocked)"
    );
}

// ---------------------------------------------------------------------------------------------
// BDAT out of place: the payload is skipped, never run as commands; one that cannot be skipped
// ends the session.
// ---------------------------------------------------------------------------------------------

/// A BDAT payload of exactly `BDAT_SIZE` bytes made of command lines: run as commands, it
/// would start a transaction of its own.
const BDAT_SIZE: usize = 60;

fn bdat_payload() -> Vec<u8> {
    let p = b"RSET\r\nMAIL FROM:<e@contoso.com>\r\nRCPT TO:<xy@fabrikam.com>\r\n".to_vec();
    assert_eq!(p.len(), BDAT_SIZE);
    p
}

#[tokio::test]
async fn a_bdat_outside_a_transaction_is_refused_and_its_payload_never_run_as_commands() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let mut wire = format!("BDAT {BDAT_SIZE} LAST\r\n").into_bytes();
    wire.extend_from_slice(&bdat_payload());
    wire.extend_from_slice(b"NOOP\r\n");
    c.send(&wire).await;
    let bdat = c.reply().await;
    assert!(bdat.starts_with("503 5.5.1 Need MAIL"), "{bdat:?}");
    let noop = c.reply().await;
    assert!(noop.starts_with("250"), "{noop:?}");
    // Nothing else is pending: QUIT's is the very next reply.
    let q = c.ask("QUIT").await;
    assert!(
        q.starts_with("221"),
        "a reply to a command inside the payload: {q:?}"
    );
    assert!(up.transactions().is_empty(), "{}", up.view());
}

/// A BDAT whose payload the gate cannot skip: one refusal (`expected`), then the connection
/// closes.
async fn an_unskippable_bdat_ends_the_session(command: &str, expected: &str) {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    let mut wire = format!("{command}\r\n").into_bytes();
    wire.extend_from_slice(&bdat_payload());
    c.send(&wire).await;
    let r = c.reply().await;
    assert!(r.starts_with(expected), "{r:?}");
    let next = c.reply().await;
    assert_eq!(
        next, "",
        "the session went on after {r:?} (the payload read as commands)"
    );
    assert!(up.transactions().is_empty(), "{}", up.view());
}

#[tokio::test]
async fn a_bdat_larger_than_the_message_size_limit_ends_the_session() {
    an_unskippable_bdat_ends_the_session("BDAT 999999999999 LAST", "552 5.3.4").await;
}

#[tokio::test]
async fn a_bdat_with_an_unparseable_size_ends_the_session() {
    an_unskippable_bdat_ends_the_session("BDAT abc", "501 5.5.4").await;
}
