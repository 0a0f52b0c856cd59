//! The real `relaygate` binary in front of a real Postfix (a private instance: its own
//! configuration and queue, see `support/postfix.rs`), as on premises: the message arrives byte
//! for byte, as BDAT chunks because Postfix offers CHUNKING and as DATA when it does not, over
//! STARTTLS when Postfix offers it, and Postfix's own refusal of a recipient reaches the client
//! word for word. The front door against the same Postfix: a client sending BDAT (to BDAT and to
//! DATA), swaks pipelining, DSN parameters that make Postfix send the report asked for, and
//! `BODY=BINARYMIME` refused because Postfix does not offer it.

mod support;
use support::*;

/// 8-bit text, lines that start with one and two dots, a line that is a lone dot, and a line
/// starting with "From " (which an mbox would quote and a maildir must not).
const MESSAGE: &str = "From: App <app@contoso.com>\r
To: bob@example.org, carol@example.org\r
Subject: byte for byte\r
Date: Mon, 30 Nov 2026 12:00:00 +0000\r
Message-ID: <postfix-upstream@app.contoso.com>\r
MIME-Version: 1.0\r
Content-Type: text/plain; charset=utf-8\r
Content-Transfer-Encoding: 8bit\r
\r
first line\r
.a line starting with a dot\r
..two dots\r
.\r
été . déjà\r
From the start of a line\r
last\r
";

/// The gate on the standard test configuration, its `[upstream]` replaced by `upstream`.
fn gate_in_front_of(upstream: String) -> Binary {
    start_edited("127.0.0.0/24", "", |c| {
        let start = c.find("[upstream]").expect("an [upstream] section");
        let end = c.find("[log]").expect("a [log] section");
        format!("{}{upstream}\n{}", &c[..start], &c[end..])
    })
}

/// Relay [`MESSAGE`] from app@contoso.com to bob and carol through the gate; returns the
/// gate's final reply.
async fn relay_message(gate: &Binary) -> String {
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com> BODY=8BITMIME", "250")
        .await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("RCPT TO:<carol@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(&stuff(MESSAGE.as_bytes())).await;
    c.send(b".\r\n").await;
    let reply = c.reply().await;
    c.quit().await;
    reply
}

/// Each recipient's copy is [`MESSAGE`] after the gate's `Received:`, with the envelope the
/// client gave; returns the copies.
fn assert_delivered_intact(postfix: &Postfix) -> Vec<Delivery> {
    let lf = MESSAGE.replace("\r\n", "\n");
    MAILBOXES
        .iter()
        .map(|mailbox| {
            let d = postfix.wait_for_delivery(mailbox);
            assert_eq!(d.return_path, "<app@contoso.com>");
            assert_eq!(d.recipient, format!("{mailbox}@example.org"));
            assert!(
                d.message.starts_with(b"Received: from app.contoso.com "),
                "the gate's trace field first:\n{}",
                String::from_utf8_lossy(&d.message)
            );
            assert_eq!(
                String::from_utf8_lossy(strip_received(&d.message)),
                lf,
                "{mailbox}'s copy"
            );
            assert_eq!(postfix.delivered(mailbox).len(), 1, "{mailbox}: one copy");
            d
        })
        .collect()
}

/// Stop the gate (its upstream connection ends with it), then check from Postfix's count of
/// the session's commands that the two recipients' text went as `command` (`bdat` or `data`)
/// and not as the other.
fn assert_sent_with(gate: Binary, postfix: &Postfix, command: &str) {
    drop(gate);
    let session = postfix.wait_for_disconnect();
    let other = if command == "bdat" { "data" } else { "bdat" };
    assert!(
        session.contains(&format!(" rcpt=2 {command}=")),
        "{session}"
    );
    assert!(!session.contains(&format!(" {other}=")), "{session}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn postfix_gets_the_message_byte_for_byte_in_bdat_chunks() {
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let reply = relay_message(&gate).await;
    let copies = assert_delivered_intact(&postfix);
    assert!(copies[0].received.contains(" with ESMTP id "), "{copies:?}");
    // Postfix's own final reply, passed through. To `BDAT ... LAST` it says how many bytes
    // the chunks held: every byte the gate sent, its `Received:` field and the message.
    let sent = copies[0].message.len() + copies[0].message.iter().filter(|b| **b == b'\n').count();
    let expected = format!("250 2.0.0 Ok: {sent} bytes queued as ");
    assert!(
        reply.starts_with(&expected),
        "{reply:?}, expected {expected:?}"
    );
    assert_sent_with(gate, &postfix, "bdat");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn postfix_without_chunking_gets_the_message_byte_for_byte_after_data() {
    let postfix = Postfix::start(NO_CHUNKING);
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let reply = relay_message(&gate).await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply:?}");
    assert_delivered_intact(&postfix);
    assert_sent_with(gate, &postfix, "data");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn postfix_offering_starttls_gets_the_message_over_tls() {
    let postfix = Postfix::start(&starttls());
    let ca = std::path::PathBuf::from(cert("ca.pem"));
    let gate = gate_in_front_of(tls_upstream(postfix.addr, "required", &ca));
    let reply = relay_message(&gate).await;
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply:?}");
    let copies = assert_delivered_intact(&postfix);
    // ESMTPS: Postfix received it over TLS (RFC 3848).
    assert!(
        copies[0].received.contains(" with ESMTPS id "),
        "{copies:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn postfix_refusing_a_recipient_reaches_the_client_verbatim() {
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    let refused = c.cmd("RCPT TO:<nobody@example.org>", "550").await;
    assert_eq!(
        refused,
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table\r\n"
    );
    // The rest of the transaction goes on, to the recipient Postfix accepted.
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: one of two\r\n\r\nhi\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply:?}");
    c.quit().await;
    let d = postfix.wait_for_delivery("bob");
    assert_eq!(strip_received(&d.message), b"Subject: one of two\n\nhi\n");
    assert!(postfix.delivered("carol").is_empty());
    assert!(
        postfix.log().contains(
            "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <nobody@example.org>"
        ),
        "{}",
        postfix.log()
    );
}

/// [`MESSAGE`] from a client that sends BDAT (as Exchange servers do whenever it is offered):
/// MAIL, both RCPTs and every chunk pipelined in one write; returns the reply to `LAST`.
async fn relay_message_in_chunks(gate: &Binary) -> String {
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    let reply = c
        .send_bdat(
            "MAIL FROM:<app@contoso.com> BODY=8BITMIME",
            &["bob@example.org", "carol@example.org"],
            MESSAGE.as_bytes(),
            50,
        )
        .await;
    c.quit().await;
    reply
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn a_bdat_client_reaches_postfix_byte_for_byte_in_chunks() {
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let reply = relay_message_in_chunks(&gate).await;
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply:?}");
    assert!(reply.contains(" bytes queued as "), "{reply:?}");
    assert_delivered_intact(&postfix);
    assert_sent_with(gate, &postfix, "bdat");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn a_bdat_client_reaches_postfix_without_chunking_byte_for_byte_after_data() {
    // The chunks carry the dot lines unstuffed; DATA to Postfix must stuff them, or the lone
    // dot would end the message there.
    let postfix = Postfix::start(NO_CHUNKING);
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let reply = relay_message_in_chunks(&gate).await;
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply:?}");
    assert_delivered_intact(&postfix);
    assert_sent_with(gate, &postfix, "data");
}

/// swaks pipelining MAIL, one RCPT and DATA through the gate to Postfix, which offers
/// CHUNKING and PIPELINING: (it succeeded, its transcript, Postfix's disconnect line once the
/// gate is gone).
fn swaks_one_pipelined_recipient(postfix: &Postfix, to: &str) -> (bool, String, String) {
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let (ok, transcript) = swaks(
        &gate,
        &["--pipeline", "--from", "app@contoso.com", "--to", to],
    );
    drop(gate);
    (ok, transcript, postfix.wait_for_disconnect())
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix and swaks: cargo test --features peers (scripts/test.sh)"
)]
async fn swaks_pipelining_one_recipient_reaches_postfix_with_the_envelope_sent_ahead() {
    let postfix = Postfix::start("");
    let (ok, transcript, session) = swaks_one_pipelined_recipient(&postfix, "bob@example.org");
    assert!(ok, "{transcript}");
    assert!(
        transcript
            .contains("<-  250 2.1.5 Recipient OK (the upstream answers it with the message)"),
        "{transcript}"
    );
    let d = postfix.wait_for_delivery("bob");
    assert!(
        String::from_utf8_lossy(&d.message)
            .contains("\n\nHello from swaks\n..a dot-stuffed line\n"),
        "{}",
        String::from_utf8_lossy(&d.message)
    );
    assert!(session.contains(" mail=1 rcpt=1 bdat=1 "), "{session}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix and swaks: cargo test --features peers (scripts/test.sh)"
)]
async fn postfix_refusing_the_sole_recipient_sent_ahead_is_the_final_reply_word_for_word() {
    let postfix = Postfix::start("");
    let (ok, transcript, session) = swaks_one_pipelined_recipient(&postfix, "nobody@example.org");
    assert!(!ok, "{transcript}");
    assert!(
        transcript.contains(
            "<** 550 5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual mailbox table"
        ),
        "{transcript}"
    );
    // Postfix took the text for the chunk it refused, never for commands.
    assert!(!session.contains("unknown="), "{session}");
    assert!(session.contains(" bdat=0/1 "), "{session}");
    assert!(postfix.delivered("bob").is_empty());
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix and swaks: cargo test --features peers (scripts/test.sh)"
)]
async fn swaks_pipelining_through_the_gate_reaches_postfix() {
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let (ok, transcript) = swaks(
        &gate,
        &[
            "--pipeline",
            "--from",
            "app@contoso.com",
            "--to",
            "bob@example.org,carol@example.org",
        ],
    );
    assert!(ok, "{transcript}");
    // swaks sent MAIL, both RCPTs and DATA in one go before reading a reply.
    assert!(
        transcript.contains(
            " -> MAIL FROM:<app@contoso.com>\n -> RCPT TO:<bob@example.org>\n \
             -> RCPT TO:<carol@example.org>\n -> DATA\n"
        ),
        "{transcript}"
    );
    for mailbox in MAILBOXES {
        let d = postfix.wait_for_delivery(mailbox);
        assert!(
            String::from_utf8_lossy(&d.message)
                .contains("\n\nHello from swaks\n..a dot-stuffed line\n"),
            "{mailbox}: {}",
            String::from_utf8_lossy(&d.message)
        );
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn dsn_parameters_reach_postfix_which_reports_delivery_as_asked() {
    // Postfix offers DSN: the application's request for a success report must reach it, with
    // its envelope id and original recipient, or the report never comes.
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c.cmd(
        "MAIL FROM:<app@contoso.com> RET=HDRS ENVID=invoice+2B42",
        "250",
    )
    .await;
    c.cmd(
        "RCPT TO:<bob@example.org> NOTIFY=SUCCESS ORCPT=rfc822;Bob@Example.org",
        "250",
    )
    .await;
    c.cmd("RCPT TO:<carol@example.org> NOTIFY=NEVER", "250")
        .await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: report wanted\r\n\r\nhi\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply:?}");
    c.quit().await;
    postfix.wait_for_delivery("bob");
    postfix.wait_for_delivery("carol");
    // Postfix's bounce service writes the success report and logs its queue id.
    let mut report = None;
    eventually("Postfix's delivery status notification", || {
        report = postfix.log().lines().find_map(|l| {
            l.split_once("sender delivery status notification: ")
                .map(|(_, id)| id.trim().to_string())
        });
        report.is_some()
    });
    let queued = postfix.queued(&report.expect("waited for it"));
    assert!(
        queued.contains("Original-Envelope-Id: invoice+42"),
        "{queued}"
    );
    assert!(
        queued.contains("Original-Recipient: rfc822;Bob@Example.org"),
        "{queued}"
    );
    assert!(queued.contains("Action: delivered"), "{queued}");
    // carol asked for nothing: the report is bob's alone.
    assert!(!queued.contains("carol@example.org"), "{queued}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs Postfix: cargo test --features peers (scripts/test.sh)"
)]
async fn binarymime_to_postfix_which_lacks_it_is_refused_and_nothing_delivered() {
    let postfix = Postfix::start("");
    let gate = gate_in_front_of(plain_smtp_upstream(postfix.addr));
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    let reply = c
        .send_bdat(
            "MAIL FROM:<app@contoso.com> BODY=BINARYMIME",
            &["bob@example.org"],
            b"Subject: binary\r\n\r\n\x00\x01 bare\n LF\r\n",
            8,
        )
        .await;
    assert!(reply.starts_with("554 5.6.1 "), "{reply:?}");
    assert!(reply.contains("BINARYMIME"), "{reply:?}");
    // The session goes on: the next message is delivered, and it is bob's only one.
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: text\r\n\r\nhi\r\n.\r\n").await;
    let reply = c.reply().await;
    assert!(reply.starts_with("250 2.0.0 Ok: "), "{reply:?}");
    c.quit().await;
    let d = postfix.wait_for_delivery("bob");
    assert_eq!(strip_received(&d.message), b"Subject: text\n\nhi\n");
    assert_eq!(postfix.delivered("bob").len(), 1);
}
