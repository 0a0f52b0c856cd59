//! The front door as Exchange Online's MX shows it (`docs/exo-relay-rules.md`, "The front
//! door"), over a real socket: the banner, the EHLO list, and the DSN parameters of MAIL and
//! RCPT (RFC 3461), checked, rebuilt for an upstream that offers DSN and dropped for one that
//! does not.

mod support;
use support::*;

const MESSAGE: &[u8] = b"From: app@contoso.com\r\nSubject: dsn\r\n\r\nbody\r\n";

/// A gate for the baseline tenant in front of a recording upstream that offers DSN or not.
async fn dsn_gate(offer_dsn: bool) -> (Upstream, Gate) {
    let up = Upstream::start(Script {
        offer_dsn,
        ..Default::default()
    })
    .await;
    let g = relay_gate(&up, "").await;
    (up, g)
}

/// The client's transaction with DSN parameters in every form RFC 3461 allows: lower-case
/// keywords, a needless escape (`+41`), an ORCPT type in upper case.
async fn send_with_dsn(g: &Gate) -> String {
    let mut c = session(g).await;
    c.cmd(
        "MAIL FROM:<app@contoso.com> ret=hdrs ENVID=+41pp+2Bid",
        "250",
    )
    .await;
    c.cmd(
        "RCPT TO:<bob@example.org> notify=failure,success ORCPT=RFC822;bob+2Bx@example.org",
        "250",
    )
    .await;
    c.cmd("RCPT TO:<carol@example.org> NOTIFY=NEVER", "250")
        .await;
    c.cmd("RCPT TO:<dave@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(MESSAGE).await;
    c.send(b".\r\n").await;
    c.reply().await
}

#[tokio::test]
async fn the_banner_is_exchange_onlines_with_the_date_and_the_suffix_session_id() {
    let (_up, g) = dsn_gate(false).await;
    let before = jiff::Timestamp::now();
    let mut c = Client::open(g.addr).await;
    let banner = c.reply().await;
    let after = jiff::Timestamp::now();
    let rest = banner
        .strip_prefix("220 gate.contoso.com Microsoft ESMTP MAIL Service ready at ")
        .and_then(|r| r.strip_suffix("]\r\n"))
        .unwrap_or_else(|| panic!("not Exchange Online's banner: {banner:?}"));
    let (date, id) = rest.rsplit_once(" [").expect("a bracketed session id");
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(date)
        .unwrap_or_else(|e| panic!("{date:?} is not an RFC 5322 date: {e}"));
    assert!(date.ends_with(" +0000"), "{date:?} is in UTC");
    // The date has whole seconds: it lies between the two readings, the first cut to seconds.
    let floor = jiff::Timestamp::from_second(before.as_second()).unwrap();
    assert!(floor <= at && at <= after, "{at} not in {before}..{after}");
    assert_eq!(id.len(), 16, "{id:?}");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    // The same id in the suffix of a refusal in this session.
    c.cmd("EHLO app.contoso.com", "250").await;
    let refusal = c
        .cmd("MAIL FROM:<app@contoso.com> SIZE=999999999999", "552")
        .await;
    assert_exo_reply(&refusal, "552 5.3.4");
    assert!(
        refusal.trim_end().ends_with(&format!(" {id}]")),
        "{refusal:?}"
    );
}

#[tokio::test]
async fn ehlo_lists_exchange_onlines_extensions_in_its_order_and_starttls_only_before_tls() {
    let pki = Pki::new();
    let up = Upstream::start(Script::default()).await;
    let g = start_gate(
        "",
        &format!(
            "{}\n{BASELINE_TENANT}\n{}",
            pki.tls_section(),
            smtp_upstream(up.addr)
        ),
    )
    .await;
    let mut c = Client::connect(g.addr).await;
    let before_tls = c.ask("EHLO app.contoso.com").await;
    assert_eq!(
        before_tls,
        "250-gate.contoso.com Hello [127.0.0.1]\r\n\
         250-SIZE 36700160\r\n\
         250-PIPELINING\r\n\
         250-DSN\r\n\
         250-ENHANCEDSTATUSCODES\r\n\
         250-STARTTLS\r\n\
         250-8BITMIME\r\n\
         250-BINARYMIME\r\n\
         250-CHUNKING\r\n\
         250 SMTPUTF8\r\n"
    );
    c.cmd("STARTTLS", "220").await;
    let mut c = c.handshake(&pki, None).await;
    let after_tls = c.ask("EHLO app.contoso.com").await;
    assert_eq!(
        after_tls,
        "250-gate.contoso.com Hello [127.0.0.1]\r\n\
         250-SIZE 36700160\r\n\
         250-PIPELINING\r\n\
         250-DSN\r\n\
         250-ENHANCEDSTATUSCODES\r\n\
         250-8BITMIME\r\n\
         250-BINARYMIME\r\n\
         250-CHUNKING\r\n\
         250 SMTPUTF8\r\n"
    );
    assert_eq!(
        c.ask("HELO app.contoso.com").await,
        "250 gate.contoso.com Hello [127.0.0.1]\r\n"
    );
    c.cmd("HELP", "214 2.0.0").await;
}

#[tokio::test]
async fn without_tls_configured_ehlo_offers_no_starttls() {
    let (_up, g) = dsn_gate(true).await;
    let mut c = Client::connect(g.addr).await;
    let ehlo = c.ask("EHLO app.contoso.com").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(
        ehlo.ends_with(
            "250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-BINARYMIME\r\n\
             250-CHUNKING\r\n250 SMTPUTF8\r\n"
        ),
        "{ehlo}"
    );
}

#[tokio::test]
async fn dsn_parameters_reach_a_dsn_upstream_rebuilt_from_their_parsed_values() {
    let (up, g) = dsn_gate(true).await;
    let reply = send_with_dsn(&g).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let t = up.next_completed().await;
    assert_eq!(
        t.mail,
        "MAIL FROM:<app@contoso.com> RET=HDRS ENVID=App+2Bid"
    );
    assert_eq!(
        t.rcpts,
        [
            "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.org",
            "RCPT TO:<carol@example.org> NOTIFY=NEVER",
            "RCPT TO:<dave@example.org>",
        ]
    );
}

#[tokio::test]
async fn dsn_parameters_are_dropped_for_an_upstream_without_dsn() {
    let (up, g) = dsn_gate(false).await;
    let reply = send_with_dsn(&g).await;
    assert!(reply.starts_with("250 "), "{reply}");
    let t = up.next_completed().await;
    assert_eq!(t.mail, "MAIL FROM:<app@contoso.com>");
    assert_eq!(
        t.rcpts,
        [
            "RCPT TO:<bob@example.org>",
            "RCPT TO:<carol@example.org>",
            "RCPT TO:<dave@example.org>",
        ]
    );
}

#[tokio::test]
async fn each_malformed_dsn_parameter_gets_501_5_5_4_naming_it() {
    let (up, g) = dsn_gate(true).await;
    let mail = [
        ("RET=NONE", "RET"),
        ("RET=FULL RET=HDRS", "RET"),
        ("ENVID=", "ENVID"),
        ("ENVID=bad+escape", "ENVID"),
        ("ENVID=a=b", "ENVID"),
        ("ENVID=a+0D+0A", "ENVID"),
        ("ENVID=one ENVID=two", "ENVID"),
    ];
    for (params, name) in mail {
        let mut c = session(&g).await;
        let reply = c
            .ask(&format!("MAIL FROM:<app@contoso.com> {params}"))
            .await;
        assert!(
            reply.starts_with(&format!("501 5.5.4 Invalid parameter {name}")),
            "{params}: {reply:?}"
        );
        // No transaction was opened: RCPT needs MAIL first.
        c.cmd("RCPT TO:<bob@example.org>", "503").await;
    }
    let envid_too_long = format!("ENVID={}", "x".repeat(101));
    let rcpt = [
        ("NOTIFY=NEVER,SUCCESS", "NOTIFY"),
        ("NOTIFY=SOMETIMES", "NOTIFY"),
        ("NOTIFY=SUCCESS NOTIFY=DELAY", "NOTIFY"),
        ("ORCPT=bob@example.org", "ORCPT"),
        ("ORCPT=rfc822;bob+4", "ORCPT"),
        ("ORCPT=rfc822;bob+00@example.org", "ORCPT"),
        (
            "ORCPT=rfc822;a@example.org ORCPT=rfc822;b@example.org",
            "ORCPT",
        ),
    ];
    for (params, name) in rcpt {
        let mut c = session(&g).await;
        c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
        let reply = c.ask(&format!("RCPT TO:<bob@example.org> {params}")).await;
        assert!(
            reply.starts_with(&format!("501 5.5.4 Invalid parameter {name}")),
            "{params}: {reply:?}"
        );
        // The transaction goes on; the refused RCPT never reached the upstream.
        c.cmd("RCPT TO:<carol@example.org>", "250").await;
        c.quit().await;
    }
    let mut c = session(&g).await;
    let reply = c
        .ask(&format!("MAIL FROM:<app@contoso.com> {envid_too_long}"))
        .await;
    assert!(
        reply.starts_with("501 5.5.4 Invalid parameter ENVID"),
        "{reply:?}"
    );
    assert!(
        up.transactions()
            .iter()
            .flat_map(|t| &t.rcpts)
            .all(|r| r == "RCPT TO:<carol@example.org>"),
        "{}",
        up.view()
    );
}
