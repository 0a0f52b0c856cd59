//! Operating the real `relaygate` binary: SIGHUP reload, SIGTERM, kill -9 and a restart, memory
//! per idle session, the `[admin]` endpoint's metrics and health, and what is refused before
//! anything runs (bad values, conflicting listeners, files that never end). Each command must
//! exit by itself; `relaygate_bounded` fails the test instead of hanging it when one does not.

mod support;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;

#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_the_new_one_is_bad() {
    let gate = start("127.0.0.0/24");
    assert!(banner(gate.addr).starts_with("220 gate.contoso.com "));
    std::fs::write(
        gate.config_path(),
        config_text(
            gate.addr,
            "127.0.0.0/24",
            "gate2.contoso.com",
            gate.out.path(),
        ),
    )
    .unwrap();
    signal(&gate, "-HUP");
    eventually("the new hostname", || {
        banner(gate.addr).starts_with("220 gate2.contoso.com ")
    });

    std::fs::write(gate.config_path(), "[server]\nmax_recipients = 0\n").unwrap();
    signal(&gate, "-HUP");
    eventually("the reload failure in the log", || {
        gate.log().contains("reload failed")
    });
    assert!(
        banner(gate.addr).starts_with("220 gate2.contoso.com "),
        "the running configuration stays"
    );
}

#[test]
fn sigterm_stops_the_gate_with_exit_status_zero() {
    let mut gate = start("127.0.0.0/24");
    signal(&gate, "-TERM");
    let mut status = None;
    eventually("the process to exit", || {
        status = gate.child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{status:?}");
}

#[test]
fn a_message_cut_off_by_kill_9_leaves_no_temporary_file_after_a_restart() {
    use std::io::{BufRead, BufReader};
    let mut gate = start("127.0.0.0/24");
    let tmp = gate.out.path().join(".tmp");
    let s = TcpStream::connect(gate.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut expect = |code: &str| loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "{line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    };
    expect("220");
    for (cmd, code) in [
        ("EHLO app.contoso.com", "250"),
        ("MAIL FROM:<app@contoso.com>", "250"),
        ("RCPT TO:<bob@example.org>", "250"),
        ("DATA", "354"),
    ] {
        write!(w, "{cmd}\r\n").unwrap();
        expect(code);
    }
    write!(w, "Subject: cut off\r\n\r\nhalf a message\r\n").unwrap();
    let temporary = |tmp: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(tmp)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    eventually("the temporary message file", || !temporary(&tmp).is_empty());

    gate.child.kill().unwrap(); // SIGKILL: no Drop runs, the file stays
    gate.child.wait().unwrap();
    assert_eq!(temporary(&tmp).len(), 1, "{:?}", temporary(&tmp));

    // Start again on the same configuration and directory.
    gate.child = serve(&gate.config_path(), &gate.log_path());
    eventually("the restarted gate to listen", || {
        TcpStream::connect_timeout(&gate.addr, Duration::from_millis(200)).is_ok()
    });
    // Removed before listening: gone as soon as the gate accepts connections.
    assert_eq!(temporary(&tmp), Vec::<PathBuf>::new());
    let event = gate
        .events()
        .into_iter()
        .find(|v| v["removed"].is_number())
        .unwrap_or_else(|| panic!("no removal event in:\n{}", gate.log()));
    assert_eq!(event["removed"], 1, "{event}");
    assert!(stored(gate.out.path()).is_empty(), "nothing was delivered");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn a_thousand_idle_sessions_keep_memory_bounded() {
    use std::io::{BufRead, BufReader};
    const SESSIONS: usize = 1000;
    let gate = start_with(
        "127.0.0.0/24",
        "max_connections = 2000\nmax_connections_per_ip = 2000",
    );
    // Warm up: one full session, so lazily built state is not counted per session.
    let (ok, _) = swaks(
        &gate,
        &["--from", "app@contoso.com", "--to", "bob@example.org"],
    );
    assert!(ok);
    let before = rss_kib(gate.child.id());
    let mut clients = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let s = TcpStream::connect(gate.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(s);
        let mut banner = String::new();
        r.read_line(&mut banner).unwrap();
        assert!(banner.starts_with("220 "), "{banner:?}");
        clients.push(r);
    }
    let after = rss_kib(gate.child.id());
    let per_session = after.saturating_sub(before) * 1024 / SESSIONS as u64;
    eprintln!("{per_session} bytes per idle session ({before} KiB -> {after} KiB)");
    // The target in BENCHMARKS.md is far lower; this bound catches a buffer per session that
    // grew by an order of magnitude.
    assert!(
        per_session < 64 * 1024,
        "{per_session} bytes per idle session ({before} KiB -> {after} KiB)"
    );
    drop(clients);
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn admin_endpoint_serves_metrics_and_health() {
    let admin = free_port();
    let gate = start_with(
        "127.0.0.0/24",
        &format!("\n[admin]\nlisten = \"{admin}\"\nprobe_interval_secs = 1\n"),
    );
    assert_eq!(http_get(admin, "/health/live").unwrap().0, 200);
    // The directory upstream is writable: ready once the first probe ran.
    eventually("ready", || {
        http_get(admin, "/health/ready").is_some_and(|(c, _)| c == 200)
    });
    let (_, body) = http_get(admin, "/health/ready").unwrap();
    assert!(
        body.contains("ok   listeners bound") && body.contains("ok   upstream: probed"),
        "{body}"
    );

    let (ok, text) = swaks(
        &gate,
        &["--from", "app@contoso.com", "--to", "bob@example.org"],
    );
    assert!(ok, "{text}");
    let (ok, _) = swaks(
        &gate,
        &["--from", "app@example.net", "--to", "bob@example.org"],
    );
    assert!(!ok);
    let (ok, text) = swaks_tls(
        &gate,
        "client-mail.contoso.com",
        &["--from", "<>", "--to", "bob@example.org"],
    );
    assert!(ok, "{text}");
    let (code, m) = http_get(admin, "/metrics").unwrap();
    assert_eq!(code, 200);
    for line in [
        "relaygate_decisions_total{verdict=\"relay authorized\",branch=\"1b\",condition2=\"ip\"} 1",
        "relaygate_decisions_total{verdict=\"relay not authorized\",branch=\"none\",condition2=\"ip\"} 1",
        "relaygate_decisions_total{verdict=\"relay authorized\",branch=\"1a\",condition2=\"certificate\"} 1",
        "relaygate_tls_handshakes_total{outcome=\"ok\",client_certificate=\"trusted\"} 1",
        // three swaks sessions and the start-up helper's connection that waited for the port
        "relaygate_connections_total 4",
        "relaygate_transaction_seconds_count 3",
    ] {
        assert!(m.contains(line), "missing {line:?} in:\n{m}");
    }
    // Per relayed message: MAIL, RCPT and the final reply (2xx) and DATA's 354; the refused one
    // never reached the upstream (an unauthorised relay recipient is held back from it).
    assert!(
        m.contains("relaygate_upstream_replies_total{class=\"2xx\"} 6\n"),
        "{m}"
    );
    assert!(
        m.contains("relaygate_upstream_replies_total{class=\"3xx\"} 2\n"),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("relaygate_message_bytes_total ") && !l.ends_with(" 0")),
        "{m}"
    );
    assert_eq!(http_get(admin, "/nope").unwrap().0, 404);
}

#[test]
fn readiness_fails_while_the_upstream_is_unreachable_and_recovers() {
    let admin = free_port();
    let upstream = free_port(); // nothing listens there yet
    let gate = start_with(
        "127.0.0.0/24",
        &format!("\n[admin]\nlisten = \"{admin}\"\nprobe_interval_secs = 1\n"),
    );
    let config = std::fs::read_to_string(gate.config_path()).unwrap();
    let start = config.find("[upstream]").unwrap();
    let end = config.find("[log]").unwrap();
    let config = format!(
        "{}{}\n{}",
        &config[..start],
        plain_smtp_upstream(upstream),
        &config[end..]
    );
    std::fs::write(gate.config_path(), config).unwrap();
    signal(&gate, "-HUP");
    eventually("not ready", || {
        http_get(admin, "/health/ready")
            .is_some_and(|(c, b)| c == 503 && b.contains("FAIL upstream"))
    });
    // A real SMTP server appears at the upstream address: the next probe makes the gate ready.
    let listener = TcpListener::bind(upstream).unwrap();
    let server = std::thread::spawn(move || {
        use std::io::{BufRead, BufReader};
        let (s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        w.write_all(b"220 upstream ESMTP\r\n").unwrap();
        for line in BufReader::new(s).lines() {
            let line = line.unwrap_or_default();
            if line.starts_with("EHLO") {
                w.write_all(b"250-upstream\r\n250 PIPELINING\r\n").unwrap();
            } else {
                let _ = w.write_all(b"221 bye\r\n");
                break;
            }
        }
    });
    eventually("ready again", || {
        http_get(admin, "/health/ready").is_some_and(|(c, _)| c == 200)
    });
    server.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// What is refused before anything runs.
// ---------------------------------------------------------------------------------------------

#[test]
fn a_bad_configuration_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\n[[inbound_connectors]]\nname = \"c\"\nconnector_type = \"OnPremises\"\nsender_ip_addresses = [\"10.0.0.0/16\"]\n[upstream]\nkind = \"directory\"\npath = \"out\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one message: {err}");
    assert!(
        err.contains("inbound_connectors[0].sender_ip_addresses[0] = \"10.0.0.0/16\"")
            && err.contains("larger than /24"),
        "{err}"
    );
}

#[test]
fn a_timeout_beyond_one_day_is_refused_at_start_with_its_key() {
    let (status, log, err) = serve_refused(|c, _| {
        c.replace(
            "[tls]",
            "session_timeout_secs = 9223372036854775807\n\n[tls]",
        )
    });
    assert_eq!(status, 2, "{log}{err}");
    assert_eq!(
        err.trim_end(),
        "relaygate: configuration key server.session_timeout_secs = 9223372036854775807: must be at most 86400 seconds (one day)"
    );
    assert!(!log.contains("listening"), "{log}");
}

#[test]
fn conflicting_listeners_are_refused_before_any_is_bound() {
    // Each conflict used to surface only when binding: exit 1, after the SMTP port was bound
    // (and, for [admin], after "relaygate listening" was logged).
    let duplicate = serve_refused(|c, addr| {
        c.replace(
            &format!("listen = [\"{addr}\"]"),
            &format!("listen = [\"{addr}\", \"{addr}\"]"),
        )
    });
    let admin = serve_refused(|c, addr| format!("{c}\n[admin]\nlisten = \"{addr}\"\n"));
    for ((status, log, err), key) in [(duplicate, "server.listen[1]"), (admin, "admin.listen")] {
        assert_eq!(status, 2, "{log}{err}");
        assert_eq!(err.lines().count(), 1, "one message: {err}");
        assert!(
            err.starts_with(&format!("relaygate: configuration key {key} = 127.0.0.1:"))
                && err.contains(": conflicts with server.listen[0] = 127.0.0.1:"),
            "{err}"
        );
        // serve logs "relaygate listening" as soon as a listener is bound, and says "cannot
        // listen" when a bind fails: neither happened, so nothing was bound.
        assert!(!log.contains("listening"), "{log}");
        assert!(!err.contains("cannot listen"), "{err}");
    }
}

#[test]
fn files_that_never_end_are_refused_with_their_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let zero_certificate = dir.path().join("zero-certificate.toml");
    std::fs::write(
        &zero_certificate,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&cert("gate.pem"), "/dev/zero"),
    )
    .unwrap();
    let transaction = [
        "--ip",
        "203.0.113.10",
        "--mail-from",
        "a@contoso.com",
        "--rcpt",
        "b@example.org",
    ];
    let config_limit = "cannot read configuration /dev/zero: larger than 16 MiB, the limit for a configuration file";
    let cases: [(Vec<&str>, i32, &str); 7] = [
        (
            vec!["serve", "--config", "/dev/zero"],
            2,
            config_limit,
        ),
        (
            [&["check", "--config", "/dev/zero"][..], &transaction].concat(),
            2,
            config_limit,
        ),
        // config check reports it as its error, with exit status 1 like every other error.
        (
            vec!["config", "check", "--config", "/dev/zero"],
            1,
            config_limit,
        ),
        (
            [&["check", "--config", &config, "--cert", "/dev/zero"][..], &transaction].concat(),
            2,
            "relaygate: --cert /dev/zero: cannot read the certificate: larger than 1 MiB, the limit for a PEM file",
        ),
        (
            vec!["serve", "--config", zero_certificate.to_str().unwrap()],
            2,
            "relaygate: configuration key tls.certificate: /dev/zero: cannot read: larger than 1 MiB, the limit for a PEM file",
        ),
        (
            vec!["report", "/dev/zero"],
            2,
            "relaygate: cannot read /dev/zero: line 1 is longer than 64 MiB, the limit for a log line: this is not a relaygate log",
        ),
        (
            vec!["import-exo", "--inbound-connectors", "/dev/zero"],
            2,
            // Read as a stream: the first NUL byte is not JSON.
            "relaygate: /dev/zero: Get-InboundConnector output is not JSON: expected value at line 1 column 1",
        ),
    ];
    for (args, status, message) in cases {
        let (code, out, err) = relaygate_bounded(&args);
        assert_eq!(code, status, "{args:?}: {out}{err}");
        assert!(
            out.contains(message) || err.contains(message),
            "{args:?}: expected {message:?} in:\n{out}{err}"
        );
    }
}
