//! `relaygate trace` on a log the real binary wrote: the transaction event carries the
//! `Message-ID` and the upstream's reply, and `trace` finds the story by either key an admin
//! holds (a Message Trace result, an address), with its exit status.

mod support;
use support::*;

/// One message with a `Message-ID`, sent line by line (no swaks needed).
fn send(gate: &Binary, from: &str, message_id: &str) {
    let mut c = LineClient::connect(gate.addr);
    c.expect("220");
    for (cmd, code) in [
        ("EHLO app.contoso.com", "250"),
        (&*format!("MAIL FROM:<{from}>"), "250"),
        ("RCPT TO:<bob@example.org>", "250"),
        ("DATA", "354"),
    ] {
        c.send(cmd);
        c.expect(code);
    }
    c.send(&format!("From: {from}"));
    c.send(&format!("Message-ID: {message_id}"));
    c.send("Subject: trace me");
    c.send("");
    c.send("body");
    c.send(".");
    c.expect("250");
    c.send("QUIT");
    c.expect("221");
}

#[test]
fn trace_tells_the_story_of_a_message_found_by_its_message_id_or_an_address() {
    let gate = start_with("127.0.0.0/24", "\n[policy]\nmode = \"audit\"\n");
    send(&gate, "app@contoso.com", "<first.1@app.contoso.com>");
    send(&gate, "scanner@example.net", "<second.2@app.contoso.com>");
    let event = gate.transaction("scanner@example.net");
    assert_eq!(event["message_id"], "<second.2@app.contoso.com>", "{event}");
    let upstream = event["upstream_reply"].as_str().unwrap_or_default();
    assert!(upstream.starts_with("250 "), "{event}");
    let session = event["session"].as_str().unwrap().to_string();

    let log = gate.log_path();
    let log = log.to_str().unwrap();
    let (status, out, err) = relaygate(&["trace", log, "<second.2@app.contoso.com>"]);
    assert_eq!(status, 0, "{out}{err}");
    assert_eq!(out.matches("transaction ").count(), 1, "{out}");
    for expected in [
        &*format!("transaction {session} at "),
        "on the relay listener, HELO app.contoso.com",
        "identified as   ip 127.0.0.1",
        "connector       OnPrem by IP",
        "P1 MAIL FROM    <scanner@example.net>",
        "Message-ID      <second.2@app.contoso.com>",
        "exo-2023        refused 550 5.7.64",
        &*format!("upstream said   {upstream}"),
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    // The recipient is in both transactions; the session id names one.
    let (status, out, _) = relaygate(&["trace", log, "BOB@example.org"]);
    assert_eq!(
        (status, out.matches("\ntransaction ").count() + 1),
        (0, 2),
        "{out}"
    );
    let (status, out, _) = relaygate(&["trace", log, &session]);
    assert_eq!(status, 0);
    assert!(out.contains("<second.2@app.contoso.com>"), "{out}");

    let (status, _, err) = relaygate(&["trace", log, "<nowhere@example.org>"]);
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("no transaction"), "{err}");
    let (status, _, err) = relaygate(&["trace", "/nonexistent.log", "x@example.org"]);
    assert_eq!(status, 2, "{err}");
}

#[test]
fn a_rewritten_sender_is_logged_beside_the_one_the_client_gave_and_traced() {
    let gate = start_edited("127.0.0.0/24", "", |config| {
        format!(
            "{config}\n[[rewrite]]\nsenders = [\"*@example.net\"]\nnew_sender = \"app@contoso.com\"\n"
        )
    });
    send(
        &gate,
        "scanner@example.net",
        "<rewritten.3@app.contoso.com>",
    );
    let event = gate.transaction("scanner@example.net");
    assert_eq!(event["rewritten_to"], "app@contoso.com", "{event}");
    assert_eq!(event["p1_domain"], "example.net", "{event}");
    // Judged on the new sender: accepted, where the client's would be refused (5.7.64).
    assert_eq!(event["exo_2023"], "accepted", "{event}");
    assert_eq!(
        event["condition1_by"], "P1 domain",
        "by the new sender's domain"
    );
    let stored = stored(gate.out.path());
    assert_eq!(stored.len(), 1);
    let envelope = std::fs::read_to_string(stored[0].with_extension("envelope.json")).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&envelope).unwrap();
    assert_eq!(
        envelope["mail_from"], "app@contoso.com",
        "the upstream got the new sender"
    );

    let log = gate.log_path();
    let (status, out, err) = relaygate(&[
        "trace",
        log.to_str().unwrap(),
        "<rewritten.3@app.contoso.com>",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("P1 MAIL FROM    <scanner@example.net>"),
        "{out}"
    );
    assert!(out.contains("rewritten to    <app@contoso.com>"), "{out}");
}

/// The standard configuration with `[tls]` on `pki` (so a test client can present one of its
/// certificates) instead of the shipped development certificates.
fn with_pki_tls(config: String, pki: &Pki) -> String {
    assert!(config.contains(&dev_tls()), "{config}");
    config.replace(&dev_tls(), &pki.tls_section())
}

/// The standard configuration relaying to the recording upstream at `addr` instead of storing
/// messages in a directory.
fn relaying_to(config: String, addr: std::net::SocketAddr) -> String {
    let start = config.find("[upstream]").expect("an [upstream] section");
    let end = start
        + config[start..]
            .find("\n[log]")
            .expect("[log] after [upstream]");
    format!(
        "{}{}{}",
        &config[..start],
        smtp_upstream(addr),
        &config[end..]
    )
}

/// A message with `Message-ID: <id>`, as a test client sends it after DATA.
fn message(from: &str, id: &str) -> Vec<u8> {
    format!("From: {from}\r\nMessage-ID: <{id}>\r\nSubject: trace me\r\n\r\nbody\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_says_how_the_sender_was_attributed_and_trace_shows_it() {
    let pki = Pki::new();
    let gate = start_edited("127.0.0.0/24", "\n[policy]\nmode = \"audit\"\n", |c| {
        with_pki_tls(c, &pki)
    });
    // 1a: a trusted certificate under the certificate connector's accepted domain, whatever
    // the P1 says.
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO mail.contoso.com", "250").await;
    let cert = pki.leaf(Leaf {
        cn: Some("mail.contoso.com"),
        sans: &["mail.contoso.com"],
        ..Default::default()
    });
    let mut c = c.starttls(&pki, Some(cert)).await;
    let r = c
        .send_message(
            "printer@example.net",
            &["bob@example.org"],
            &message("printer@example.net", "by-certificate@contoso.com"),
        )
        .await;
    assert!(r.starts_with("250 "), "{r}");
    c.quit().await;
    // 1b: the P1 domain is accepted; none: neither is (audit mode forwards it all the same).
    send(&gate, "app@contoso.com", "<by-p1@contoso.com>");
    send(&gate, "scanner@example.net", "<by-none@contoso.com>");

    let log = gate.log_path();
    let log = log.to_str().unwrap();
    for (p1, id, condition1_by) in [
        (
            "printer@example.net",
            "<by-certificate@contoso.com>",
            "certificate domain",
        ),
        ("app@contoso.com", "<by-p1@contoso.com>", "P1 domain"),
        ("scanner@example.net", "<by-none@contoso.com>", "none"),
    ] {
        let event = gate.transaction(p1);
        assert_eq!(event["condition1_by"], condition1_by, "{event}");
        let (status, out, err) = relaygate(&["trace", log, id]);
        assert_eq!(status, 0, "{out}{err}");
        assert!(
            out.contains(&format!("\n  attributed by   {condition1_by}\n")),
            "{out}"
        );
    }
}

/// What Exchange Online's front door answers the final dot with: the key Message Trace shows.
const EXCHANGE_ONLINE_REPLY: &str = "250 2.6.0 <exo.1@app.contoso.com> [InternalId=123, Hostname=AM0PR01MB1234.eurprd01.prod.exchangelabs.com] 1234 bytes in 0.123, 12.345 KB/sec Queued mail for delivery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_onlines_reply_to_the_final_dot_is_logged_exactly_and_traced() {
    let up = Upstream::start(Script {
        end_reply: Some(EXCHANGE_ONLINE_REPLY),
        ..Script::default()
    })
    .await;
    let gate = start_edited("127.0.0.0/24", "", |c| relaying_to(c, up.addr));
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    let r = c
        .send_message(
            "app@contoso.com",
            &["bob@example.org"],
            &message("app@contoso.com", "exo.1@app.contoso.com"),
        )
        .await;
    assert!(r.starts_with("250 2.6.0 "), "{r}");
    assert_eq!(
        up.next_completed().await.mail,
        "MAIL FROM:<app@contoso.com>"
    );
    c.quit().await;

    let event = gate.transaction("app@contoso.com");
    assert_eq!(event["upstream_reply"], EXCHANGE_ONLINE_REPLY, "{event}");
    let log = gate.log_path();
    let (status, out, err) = relaygate(&["trace", log.to_str().unwrap(), "exo.1@app.contoso.com"]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains(&format!("\n  upstream said   {EXCHANGE_ONLINE_REPLY}\n")),
        "{out}"
    );
}
