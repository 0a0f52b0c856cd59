//! The real `relaygate` binary relaying mail: swaks (the tool admins test with) against it on
//! the shipped development certificates (relayed, refused, relayed by certificate, refused with
//! an untrusted certificate), its JSON decision log, HAProxy in front of it on the shipped
//! configuration, Postfix's smtp-sink behind it (also for DSN parameters), and
//! `scripts/swaks-load.sh`.

mod support;
use std::process::Command;
use support::*;

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_from_an_accepted_domain_over_the_ip_connector_is_relayed() {
    let gate = start("127.0.0.0/24");
    let (ok, text) = swaks(
        &gate,
        &["--from", "app@contoso.com", "--to", "bob@example.org"],
    );
    assert!(ok, "swaks failed:\n{text}");
    assert!(text.contains("<-  250 2.6.0 Message accepted"), "{text}");
    let files = stored(gate.out.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert!(eml.starts_with("Received: from "), "{eml}");
    // swaks stuffs "..a" to "...a" on the wire; the stored message has it unstuffed again.
    assert!(
        eml.contains("\r\n\r\nHello from swaks\r\n..a dot-stuffed line\r\n"),
        "{eml}"
    );
    let envelope = std::fs::read_to_string(files[0].with_extension("envelope.json")).unwrap();
    assert!(
        envelope.contains("\"mail_from\": \"app@contoso.com\""),
        "{envelope}"
    );
    assert!(envelope.contains("bob@example.org"), "{envelope}");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_from_a_foreign_domain_gets_exchange_onlines_5_7_64() {
    let gate = start("127.0.0.0/24");
    let (ok, text) = swaks(
        &gate,
        &["--from", "app@example.net", "--to", "bob@example.org"],
    );
    assert!(!ok, "swaks should report the refusal:\n{text}");
    assert!(
        text.contains("<** 550 5.7.64 TenantAttribution; Relay Access Denied [gate.contoso.com "),
        "{text}"
    );
    assert!(stored(gate.out.path()).is_empty());
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_with_a_trusted_client_certificate_is_relayed_from_an_unlisted_ip() {
    // 127.0.0.1 matches no IP connector: only the certificate can authorise (1a + 2 by cert).
    let gate = start("203.0.113.0/24");
    let (ok, text) = swaks_tls(
        &gate,
        "client-mail.contoso.com",
        &["--from", "<>", "--to", "bob@example.org"],
    );
    assert!(ok, "swaks failed:\n{text}");
    assert!(text.contains("250 2.6.0 Message accepted"), "{text}");
    assert_eq!(stored(gate.out.path()).len(), 1);
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_with_a_self_signed_certificate_is_refused() {
    let gate = start("203.0.113.0/24");
    let (ok, text) = swaks_tls(
        &gate,
        "client-selfsigned",
        &["--from", "<>", "--to", "bob@example.org"],
    );
    assert!(!ok, "swaks should report the refusal:\n{text}");
    assert!(
        text.contains("550 5.7.64 TenantAttribution; Relay Access Denied ["),
        "{text}"
    );
    assert!(stored(gate.out.path()).is_empty());
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn each_transaction_is_one_json_decision_event() {
    let gate = start("127.0.0.0/24");
    let (_, text) = swaks(
        &gate,
        &["--from", "app@example.net", "--to", "bob@example.org"],
    );
    let suffix_id = text
        .lines()
        .find(|l| l.contains("5.7.64"))
        .and_then(|l| l.trim_end().strip_suffix(']'))
        .and_then(|l| l.rsplit(' ').next())
        .expect("reply with suffix")
        .to_string();
    let e = gate.transaction("app@example.net");
    let events = gate
        .log()
        .lines()
        .filter(|l| l.contains("\"message\":\"transaction\""))
        .count();
    assert_eq!(
        events,
        1,
        "one event for the one transaction:\n{}",
        gate.log()
    );
    assert_eq!(
        e["session"],
        suffix_id.as_str(),
        "the log's session id is the reply's"
    );
    assert_eq!(e["profile"], "exo-2023");
    assert_eq!(e["relay"], "relay not authorized");
    assert_eq!(e["connector"], "OnPrem by IP");
    assert!(e["branch"].as_str().unwrap().contains("1 failed"), "{e}");
    assert_eq!(e["p2"], "app@example.net", "swaks sets From: to the sender");
    assert!(e["reply"]
        .as_str()
        .unwrap()
        .starts_with("550 5.7.64 TenantAttribution; Relay Access Denied ["));
    assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        e["recipients"]
            .as_str()
            .unwrap()
            .contains("bob@example.org"),
        "{e}"
    );
    assert_eq!(e["certificate_trusted"], false);
}

#[test]
fn a_transaction_that_ends_before_its_header_has_no_legacy_verdict() {
    let gate = start_with("127.0.0.0/24", "\n[policy]\nmode = \"audit\"\n");
    let mut c = LineClient::connect(gate.addr);
    c.expect("220");
    for (cmd, code) in [
        ("EHLO app.example.net", "250"),
        ("MAIL FROM:<app@example.net>", "250"),
        ("RCPT TO:<bob@example.org>", "250"),
        ("RSET", "250"),
    ] {
        c.send(cmd);
        c.expect(code);
    }
    let mut event = None;
    eventually("the transaction event", || {
        event = gate
            .events()
            .into_iter()
            .find(|v| v["message"] == "transaction");
        event.is_some()
    });
    let e = event.unwrap();
    assert_eq!(e["exo_2023"], "refused 550 5.7.64", "{e}");
    assert_eq!(e["exo_legacy"], "undecided", "{e}");
    assert_eq!(e["broken_by_november_2023"], false, "{e}");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks and HAProxy: cargo test --features peers (scripts/test.sh)"
)]
fn haproxy_with_the_shipped_config_passes_the_client_address_by_proxy_protocol() {
    // Only 127.0.0.2 may relay: the client's own address, which only the PROXY header carries
    // (HAProxy itself connects to the gate from 127.0.0.1).
    let gate = start_with(
        "127.0.0.2/32",
        "proxy_protocol = true\nproxy_trusted_networks = [\"127.0.0.1/32\"]",
    );
    let front = free_port();
    let monitor = free_port();
    let _proxy = Haproxy::start(gate.addr, front, monitor);
    // HAProxy's own readiness: its SMTP health check (a PROXY v2 LOCAL header, banner, EHLO)
    // found the gate up.
    eventually("HAProxy sees the gate up", || {
        http_get(monitor, "/healthz").is_some_and(|(c, _)| c == 200)
    });
    let out = swaks_at(
        &front.to_string(),
        &[
            "--local-interface",
            "127.0.0.2",
            "--from",
            "app@contoso.com",
            "--to",
            "bob@example.org",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("250 2.6.0 Message accepted"), "{text}");
    let mut event = None;
    eventually("the transaction event", || {
        event = gate
            .events()
            .into_iter()
            .find(|v| v["message"] == "transaction");
        event.is_some()
    });
    let e = event.unwrap();
    assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.2:"), "{e}");
    assert_eq!(e["connector"], "OnPrem by IP");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks and Postfix's smtp-sink: cargo test --features peers (scripts/test.sh)"
)]
fn a_real_upstream_smtp_server_gets_the_message_intact() {
    let sink = smtp_sink();
    let gate = in_front_of(&sink);
    // 8-bit text, a line that starts with a dot, and a lone dot inside a line.
    let body = "first line\n.a line starting with a dot\n..two dots\nété . déjà\nlast";
    let out = swaks_at(
        &gate.addr.to_string(),
        &[
            "--from",
            "app@contoso.com",
            "--to",
            "bob@example.org",
            "--body",
            body,
        ],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // The final 250 is smtp-sink's own reply, passed through.
    assert!(text.contains("<-  250 2.0.0 Ok\n"), "{text}");
    let mut dump = String::new();
    eventually("the sink's dump file", || {
        dump = std::fs::read_dir(sink.dumps.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|d| d.contains("\nlast"))
            .unwrap_or_default();
        !dump.is_empty()
    });
    // smtp-sink stores lines with LF and the dots unstuffed, i.e. exactly what was sent.
    let sent = body;
    assert!(dump.contains(sent), "{dump}");
    assert!(
        dump.contains("Received: from "),
        "the gate adds its trace header:\n{dump}"
    );
}

/// The gate with Postfix's smtp-sink as its upstream instead of a directory.
fn in_front_of(sink: &SmtpSink) -> Binary {
    let upstream = format!("{}\n[log]", plain_smtp_upstream(sink.addr));
    start_edited("127.0.0.0/24", "", |c| {
        let start = c.find("[upstream]").unwrap();
        let end = c.find("[log]").unwrap();
        format!("{}{upstream}{}", &c[..start], &c[end + "[log]".len()..])
    })
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks and Postfix's smtp-sink: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_dsn_parameters_reach_a_dsn_upstream_rebuilt() {
    // smtp-sink offers DSN and dumps each command's parameters (X-Mail-Args, X-Rcpt-Args).
    let sink = smtp_sink();
    let gate = in_front_of(&sink);
    // swaks (20201014, and its current source) has no DSN options, but writes `--from` and
    // `--to` into MAIL and RCPT as they are: the parameters go there, and swaks's own closing
    // `>` ends up in the last one's xtext, where `>` stands for itself. `--to` splits at
    // commas, so NOTIFY gets one keyword.
    let out = swaks_at(
        &gate.addr.to_string(),
        &[
            "--from",
            "app@contoso.com> ret=hdrs ENVID=QQ+2B314159",
            "--to",
            "bob@example.org> notify=failure ORCPT=RFC822;bob@example.org",
            "--header-From",
            "<app@contoso.com>",
            "--header-To",
            "<bob@example.org>",
        ],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let mut dump = String::new();
    eventually("the sink's dump file", || {
        dump = std::fs::read_dir(sink.dumps.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .find(|d| d.contains("X-Rcpt-Args"))
            .unwrap_or_default();
        !dump.is_empty()
    });
    assert!(
        dump.contains("\nX-Mail-Args: <app@contoso.com> RET=HDRS ENVID=QQ+2B314159>\n"),
        "{dump}"
    );
    assert!(
        dump.contains(
            "\nX-Rcpt-Args: <bob@example.org> NOTIFY=FAILURE ORCPT=rfc822;bob@example.org>\n"
        ),
        "{dump}"
    );
    assert_eq!(gate.transaction("app@contoso.com")["dsn_dropped"], "");
}

#[test]
fn dsn_parameters_an_upstream_without_dsn_did_not_get_are_logged() {
    // The directory upstream sends no notifications: it keeps no DSN request.
    let gate = start("127.0.0.0/24");
    let mut c = LineClient::connect(gate.addr);
    c.expect("220");
    for (cmd, code) in [
        ("EHLO app.contoso.com", "250"),
        ("MAIL FROM:<app@contoso.com> RET=HDRS ENVID=QQ314159", "250"),
        ("RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE", "250"),
        (
            "RCPT TO:<carol@example.org> ORCPT=rfc822;carol@example.org",
            "250",
        ),
        ("DATA", "354"),
        ("Subject: dsn\r\n\r\nbody\r\n.", "250"),
        ("MAIL FROM:<plain@contoso.com>", "250"),
        ("RCPT TO:<bob@example.org>", "250"),
        ("DATA", "354"),
        ("Subject: none\r\n\r\nbody\r\n.", "250"),
    ] {
        c.send(cmd);
        c.expect(code);
    }
    let e = gate.transaction("app@contoso.com");
    assert_eq!(e["dsn_dropped"], "RET=HDRS ENVID NOTIFY ORCPT", "{e}");
    let e = gate.transaction("plain@contoso.com");
    assert_eq!(e["dsn_dropped"], "", "{e}");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_load_script_counts_final_replies_by_code_in_every_mode() {
    let gate = start("127.0.0.0/24");
    let server = gate.addr.to_string();
    let run = |extra: &[&str]| {
        let out = Command::new("bash")
            .arg(repo().join("scripts/swaks-load.sh"))
            .args(["-n", "6", "-p", "3", "-s", &server])
            .args(extra)
            .output()
            .expect("run scripts/swaks-load.sh");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let counted = |out: &str, code: &str| {
        out.lines()
            .find(|l| l.trim_start().ends_with(code))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
    };
    let plain = run(&[]);
    assert_eq!(counted(&plain, "250 2.6.0"), Some(6), "{plain}");
    assert!(plain.contains("6 sessions in "), "{plain}");
    let starttls = run(&["-m", "starttls"]);
    assert_eq!(counted(&starttls, "250 2.6.0"), Some(6), "{starttls}");
    let pipelined = run(&["-P"]);
    assert_eq!(counted(&pipelined, "250 2.6.0"), Some(6), "{pipelined}");
    let ndr = run(&["-m", "cert", "-f", "<>"]);
    assert_eq!(counted(&ndr, "250 2.6.0"), Some(6), "{ndr}");
    let refused = run(&["-f", "app@example.net"]);
    assert_eq!(counted(&refused, "550 5.7.64"), Some(6), "{refused}");
    assert_eq!(stored(gate.out.path()).len(), 24);
    // Only loopback targets.
    let out = Command::new("bash")
        .arg(repo().join("scripts/swaks-load.sh"))
        .args(["-n", "1", "-s", "192.0.2.1:25"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
