//! BDAT from clients (RFC 3030 CHUNKING and BINARYMIME), as Exchange servers send it: chunks
//! pipelined behind MAIL and RCPT, forwarded byte for byte to an upstream with CHUNKING and
//! dot-stuffed to one without, held to DATA's rules (size, bare line breaks, NUL, the policy's
//! 5.7.64) with the verdict as the reply to `LAST`, and never a payload read as commands.

mod support;
use support::*;

const MAIL: &str = "MAIL FROM:<app@contoso.com>";

fn chunking() -> Script {
    Script {
        chunking: true,
        ..Default::default()
    }
}

/// A message with everything a relay must carry unchanged: dot lines (a lone dot, too), 8-bit
/// text, and lines that read as commands.
fn tricky_text(size: usize) -> Vec<u8> {
    let mut text = b"From: app@contoso.com\r\nSubject: bdat\r\n\r\n.\r\n..two dots\r\n.leading\r\n\
caf\xc3\xa9 \xe2\x82\xac \xff\r\nQUIT\r\nMAIL FROM:<evil@contoso.com>\r\nBDAT 5 LAST\r\n"
        .to_vec();
    while text.len() < size {
        text.extend_from_slice(b"a line of text.\r\n.\r\n");
    }
    text
}

/// Send `text` in chunks of `chunk` octets through a gate to an upstream with `script`: the
/// reply to LAST and what the upstream got. The session goes on either way.
async fn through(
    script: Script,
    server: &str,
    mail: &str,
    text: &[u8],
    chunk: usize,
) -> (String, Upstream) {
    let up = Upstream::start(script).await;
    let g = relay_gate(&up, server).await;
    let mut c = session(&g).await;
    let r = c.send_bdat(mail, &["bob@example.org"], text, chunk).await;
    c.cmd("NOOP", "250").await;
    c.quit().await;
    (r, up)
}

#[tokio::test]
async fn ehlo_offers_chunking_and_binarymime() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = Client::connect(g.addr).await;
    let ehlo = c.cmd("EHLO app.contoso.com", "250").await;
    assert!(ehlo.contains("250-CHUNKING\r\n"), "{ehlo:?}");
    assert!(ehlo.contains("250-BINARYMIME\r\n"), "{ehlo:?}");
}

#[tokio::test]
async fn bdat_to_a_bdat_upstream_arrives_byte_for_byte_in_any_chunking() {
    for (size, chunk) in [(300, 1), (300, 7), (2000, 4096), (300_000, 100_000)] {
        let text = tricky_text(size);
        let (r, up) = through(chunking(), "", MAIL, &text, chunk).await;
        assert_eq!(r, "250 2.0.0 queued as UPSTREAM1\r\n", "chunks of {chunk}");
        let t = up.next_completed().await;
        assert!(t.bdat_chunks >= 1);
        assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
        assert!(
            strip_received(&t.data) == text.as_slice(),
            "chunks of {chunk}: {}",
            up.view()
        );
        assert_eq!(up.completed(), 1, "one message, whatever its payload says");
    }
}

#[tokio::test]
async fn bdat_to_a_data_upstream_is_dot_stuffed_and_arrives_whole() {
    for chunk in [3, 64, 100_000] {
        let text = tricky_text(3000);
        let (r, up) = through(Script::default(), "", MAIL, &text, chunk).await;
        assert_eq!(r, "250 2.0.0 queued as UPSTREAM1\r\n", "chunks of {chunk}");
        let t = up.next_completed().await;
        assert_eq!(t.bdat_chunks, 0, "the upstream offers no CHUNKING");
        // The upstream's record is the wire: dot-stuffed, final dot removed.
        assert_eq!(strip_received(&t.data), stuff(&text).as_slice());
    }
}

#[tokio::test]
async fn a_client_that_waits_for_each_chunk_reply_is_answered_chunk_by_chunk() {
    let up = Upstream::start(chunking()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd(MAIL, "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    // The first chunk ends between the CR and the LF of a line break.
    let text = b"Subject: slow\r\n\r\nfirst\r\nsecond\r\n";
    let (first, rest) = text.split_at(23);
    c.send(format!("BDAT {}\r\n", first.len()).as_bytes()).await;
    c.send(first).await;
    assert!(c.reply().await.starts_with("250 2.0.0 23 octets received"));
    c.send(format!("BDAT {} LAST\r\n", rest.len()).as_bytes())
        .await;
    c.send(rest).await;
    assert_eq!(c.reply().await, "250 2.0.0 queued as UPSTREAM1\r\n");
    assert_eq!(strip_received(&up.next_completed().await.data), text);
}

#[tokio::test]
async fn the_size_limit_holds_over_the_sum_of_the_chunks() {
    let text = tricky_text(12_000);
    let (r, up) = through(chunking(), "max_message_size = 10000", MAIL, &text, 4000).await;
    assert_exo_reply(
        &r,
        "552 5.3.4 Message size exceeds fixed maximum message size of 10000 bytes",
    );
    assert_eq!(up.completed(), 0, "{}", up.view());
}

#[tokio::test]
async fn a_chunk_over_the_size_limit_inside_a_transaction_ends_the_session() {
    let up = Upstream::start(chunking()).await;
    let g = relay_gate(&up, "max_message_size = 10000").await;
    let mut c = session(&g).await;
    c.cmd(MAIL, "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.send(b"BDAT 10001 LAST\r\nNOOP\r\n").await;
    let r = c.reply().await;
    assert_exo_reply(&r, "552 5.3.4");
    assert_eq!(c.reply().await, "", "the session went on after {r:?}");
    assert_eq!(up.completed(), 0);
}

#[tokio::test]
async fn relay_refused_by_the_policy_is_the_reply_to_last_and_nothing_reaches_the_upstream() {
    // reject_stage = "data" (the default): 5.7.64 at the end of the message.
    let (r, up) = through(
        chunking(),
        "",
        "MAIL FROM:<app@example.net>",
        b"From: app@example.net\r\nSubject: x\r\n\r\nhi\r\n",
        10,
    )
    .await;
    assert_exo_reply(&r, "550 5.7.64 TenantAttribution; Relay Access Denied");
    assert_eq!(up.completed(), 0);
    assert!(up.transactions().iter().all(|t| t.data.is_empty()));
}

#[tokio::test]
async fn bare_line_breaks_and_nul_in_bdat_are_refused_whatever_the_upstream() {
    for (text, refusal) in [
        (
            &b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@contoso.com>\r\n"[..],
            "550 5.5.2 Message contains a bare CR or LF",
        ),
        (b"Subject: x\r\n\r\nhi\r.\rmore\r\n", "550 5.5.2"),
        (b"Subject: x\r\n\r\nends in a CR\r", "550 5.5.2"),
        (b"Subject: x\r\n\r\nbefore\0after\r\n", "550 5.6.0"),
    ] {
        for script in [Script::default(), chunking()] {
            let (r, up) = through(script, "", MAIL, text, 5).await;
            assert_exo_reply(&r, refusal);
            assert_eq!(up.completed(), 0, "{}", up.view());
        }
    }
}

#[tokio::test]
async fn a_line_over_max_line_length_in_bdat_is_refused_as_in_data() {
    let mut text = b"Subject: long\r\n\r\n".to_vec();
    text.extend(std::iter::repeat_n(b'y', 2000));
    text.extend_from_slice(b"\r\n");
    let (r, up) = through(chunking(), "max_line_length = 1000", MAIL, &text, 300).await;
    assert_exo_reply(
        &r,
        "500 5.5.2 Message contains a line longer than 1000 octets",
    );
    assert_eq!(up.completed(), 0);
}

/// Binary content: NUL, bare CR and LF, no final line break.
const BINARY: &[u8] = b"From: app@contoso.com\r\nSubject: bin\r\n\r\n\x00\x01\n.\n\r.\r\xff\x00";

#[tokio::test]
async fn binarymime_reaches_an_upstream_that_offers_it_octet_for_octet() {
    let script = Script {
        binarymime: true,
        ..chunking()
    };
    let mail = "MAIL FROM:<app@contoso.com> BODY=BINARYMIME";
    let (r, up) = through(script, "", mail, BINARY, 7).await;
    assert_eq!(r, "250 2.0.0 queued as UPSTREAM1\r\n");
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<app@contoso.com> BODY=BINARYMIME");
    assert_eq!(strip_received(&t.data), BINARY);
}

#[tokio::test]
async fn binarymime_to_an_upstream_without_it_is_refused_and_nothing_is_sent() {
    let mail = "MAIL FROM:<app@contoso.com> BODY=BINARYMIME";
    for script in [Script::default(), chunking()] {
        let (r, up) = through(script, "", mail, BINARY, 7).await;
        assert!(
            r.starts_with("554 5.6.1 The upstream does not support BINARYMIME"),
            "{r:?}"
        );
        assert_eq!(up.completed(), 0);
        assert!(up.transactions().iter().all(|t| t.data.is_empty()));
    }
}

#[tokio::test]
async fn data_after_body_binarymime_is_503_and_bdat_still_works() {
    let up = Upstream::start(Script {
        binarymime: true,
        ..chunking()
    })
    .await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd("MAIL FROM:<app@contoso.com> BODY=BINARYMIME", "250")
        .await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "503 5.5.1").await;
    c.send(format!("BDAT {} LAST\r\n", BINARY.len()).as_bytes())
        .await;
    c.send(BINARY).await;
    assert!(c.reply().await.starts_with("250 "));
    assert_eq!(strip_received(&up.next_completed().await.data), BINARY);
}

/// 60 octets that would start a transaction of their own if run as commands.
const COMMANDS: &[u8] = b"RSET\r\nMAIL FROM:<e@contoso.com>\r\nRCPT TO:<xy@fabrikam.com>\r\n";

#[tokio::test]
async fn bdat_before_rcpt_fails_the_message_until_last_and_no_payload_is_run() {
    let up = Upstream::start(chunking()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd(MAIL, "250").await;
    let mut wire = format!("BDAT {}\r\n", COMMANDS.len()).into_bytes();
    wire.extend_from_slice(COMMANDS);
    wire.extend_from_slice(b"NOOP\r\n");
    c.send(&wire).await;
    assert!(c.reply().await.starts_with("503 5.5.1 Need RCPT"));
    assert!(c.reply().await.starts_with("250 2.0.0 OK"), "NOOP");
    // No recipient can join the failed message, and its later chunks get the same answer.
    c.cmd("RCPT TO:<bob@example.org>", "503 5.5.1").await;
    c.send(b"BDAT 3\r\nabc").await;
    assert!(c.reply().await.starts_with("503 5.5.1 Need RCPT"));
    c.send(b"BDAT 3 LAST\r\ndef").await;
    assert!(c.reply().await.starts_with("503 5.5.1 Need RCPT"));
    // LAST ended the transaction: a new one starts cleanly.
    let r = c
        .send_bdat(MAIL, &["bob@example.org"], b"Subject: y\r\n\r\nok\r\n", 8)
        .await;
    assert!(r.starts_with("250 "), "{r:?}");
    let t = up.transactions();
    assert_eq!(t.len(), 1, "{}", up.view());
    assert_eq!(strip_received(&t[0].data), b"Subject: y\r\n\r\nok\r\n");
}

#[tokio::test]
async fn data_and_rcpt_between_chunks_get_503_and_the_message_goes_on() {
    let up = Upstream::start(Script::default()).await;
    let g = relay_gate(&up, "").await;
    let mut c = session(&g).await;
    c.cmd(MAIL, "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.send(b"BDAT 18\r\nSubject: mixed\r\n\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 18 octets received"));
    c.cmd("DATA", "503 5.5.1").await;
    c.cmd("RCPT TO:<carol@example.org>", "503 5.5.1").await;
    c.send(b"BDAT 6 LAST\r\nbody\r\n").await;
    assert_eq!(c.reply().await, "250 2.0.0 queued as UPSTREAM1\r\n");
    let t = up.next_completed().await;
    assert_eq!(t.rcpts, ["RCPT TO:<bob@example.org>"]);
    assert_eq!(strip_received(&t.data), b"Subject: mixed\r\n\r\nbody\r\n");
}

#[tokio::test]
async fn rset_between_chunks_abandons_the_message_and_nothing_is_delivered() {
    for script in [Script::default(), chunking()] {
        let up = Upstream::start(script).await;
        let g = relay_gate(&up, "").await;
        let mut c = session(&g).await;
        c.cmd(MAIL, "250").await;
        c.cmd("RCPT TO:<bob@example.org>", "250").await;
        c.send(b"BDAT 21\r\nSubject: gone\r\n\r\nhalf").await;
        assert!(c.reply().await.starts_with("250 2.0.0 21 octets"));
        c.cmd("RSET", "250").await;
        let r = c
            .send_bdat(
                MAIL,
                &["bob@example.org"],
                b"Subject: next\r\n\r\nok\r\n",
                9,
            )
            .await;
        assert!(r.starts_with("250 "), "{r:?}");
        c.quit().await;
        let done: Vec<Received> = up
            .transactions()
            .into_iter()
            .filter(|t| t.completed)
            .collect();
        assert_eq!(done.len(), 1, "{}", up.view());
        assert_eq!(
            strip_received(&done[0].data),
            b"Subject: next\r\n\r\nok\r\n"
        );
    }
}
