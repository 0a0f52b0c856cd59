//! A host name that resolves to two addresses, `::1` and `127.0.0.1`, as Exchange Online's smart
//! host resolves to several: the real binary, resolving through the C library as it does in
//! production, must try each address in turn, so one dead address costs one connect (or one
//! greeting timeout), never the message, and the message arrives exactly once.
//!
//! This machine's own `localhost` resolves to `127.0.0.1` only, so the gate runs in a private
//! mount namespace (`unshare --mount`, as root) where `/etc/hosts` is the test's own file naming
//! `dual.relaygate.test` at both addresses. The system's `/etc/hosts` is never touched.

mod support;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

const NAME: &str = "dual.relaygate.test";

/// A minimal blocking SMTP sink on `listener`: counts every message it answers 250 to.
fn sink(listener: TcpListener) -> Arc<AtomicUsize> {
    let messages = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&messages);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let count = Arc::clone(&count);
            std::thread::spawn(move || converse(stream, &count));
        }
    });
    messages
}

fn converse(stream: TcpStream, messages: &AtomicUsize) -> Option<()> {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let mut w = stream.try_clone().ok()?;
    let mut r = BufReader::new(stream);
    w.write_all(b"220 sink ESMTP\r\n").ok()?;
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
            "DATA" => {
                w.write_all(b"354 go on\r\n").ok()?;
                loop {
                    line.clear();
                    if r.read_line(&mut line).ok()? == 0 {
                        return None;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                messages.fetch_add(1, Ordering::SeqCst);
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                let _ = w.write_all(b"221 bye\r\n");
                return Some(());
            }
            _ => b"250 ok\r\n",
        };
        w.write_all(reply).ok()?;
    }
}

/// A listener that completes TCP handshakes (the kernel's backlog) and never says a word.
fn silent(listener: TcpListener) {
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
}

/// `relaygate serve` with `[upstream] address = "dual.relaygate.test:PORT"`, inside a mount
/// namespace whose `/etc/hosts` names it at `::1` and `127.0.0.1`.
fn gate_resolving_both(port: u16) -> Binary {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(
        &hosts,
        format!("127.0.0.1 localhost\n::1 {NAME}\n127.0.0.1 {NAME}\n"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let addr = free_port();
    let upstream = format!(
        "[upstream]\nkind = \"smtp\"\naddress = \"{NAME}:{port}\"\ntls = \"none\"\nconnect_timeout_secs = 3\nreply_timeout_secs = 3\npool_max_idle = 0\n"
    );
    let config = config_text(addr, "127.0.0.0/24", HOSTNAME, out.path())
        .replace(&directory_upstream(out.path()), &upstream);
    assert!(config.contains(&upstream), "{config}");
    let path = dir.path().join("relaygate.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("relaygate.log")).unwrap();
    let child = Command::new("unshare")
        .args(["--mount", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/hosts && exec "$1" serve --config "$2""#)
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_relaygate"))
        .arg(&path)
        .stdout(log)
        .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
        .spawn()
        .expect("unshare (util-linux) runs the gate in its own mount namespace");
    let gate = Binary {
        child,
        addr,
        out,
        dir,
    };
    let mut gate = gate;
    eventually(&format!("relaygate listening on {addr}"), || {
        if let Ok(Some(status)) = gate.child.try_wait() {
            panic!(
                "the gate ended ({status}; unshare --mount needs root): {}{}",
                std::fs::read_to_string(gate.dir.path().join("stderr")).unwrap_or_default(),
                gate.log()
            );
        }
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
    gate
}

/// One message through the gate, every reply checked (the final one 250).
fn send_one(gate: &Binary) {
    let mut c = LineClient::connect(gate.addr);
    c.expect("220");
    c.send("EHLO app.contoso.com");
    c.expect("250");
    c.send("MAIL FROM:<app@contoso.com>");
    c.expect("250");
    c.send("RCPT TO:<bob@example.org>");
    c.expect("250");
    c.send("DATA");
    c.expect("354");
    c.send("Subject: dual stack\r\n\r\nhi\r\n.");
    c.expect("250");
    c.send("QUIT");
}

/// The gate logged that `[::1]:port` failed and it went on to the next address: proof that the
/// resolver's first address was the dead one and was tried.
fn assert_v6_failed_first(gate: &Binary, port: u16) {
    let log = gate.log();
    assert!(
        log.lines()
            .any(|l| l.contains("upstream address failed") && l.contains(&format!("[::1]:{port}"))),
        "the gate must have tried [::1]:{port} first and logged its failure:\n{log}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs root and unshare: cargo test --features peers (scripts/test.sh)"
)]
fn nothing_listening_at_the_first_resolved_address_costs_one_connect_not_the_message() {
    // The sink on 127.0.0.1 only; the same port on ::1 refuses.
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port)),
            Duration::from_secs(1)
        )
        .is_err(),
        "[::1]:{port} must refuse for this test"
    );
    let messages = sink(v4);
    let gate = gate_resolving_both(port);
    send_one(&gate);
    eventually("the sink has the message", || {
        messages.load(Ordering::SeqCst) == 1
    });
    assert_v6_failed_first(&gate, port);
    // A second message: the refused address is skipped now, and still exactly one copy each.
    send_one(&gate);
    eventually("the sink has both messages", || {
        messages.load(Ordering::SeqCst) == 2
    });
    let failures = gate.log().matches("upstream address failed").count();
    assert_eq!(
        failures,
        1,
        "the dead address is skipped after its failure:\n{}",
        gate.log()
    );
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs root and unshare: cargo test --features peers (scripts/test.sh)"
)]
fn a_silent_address_costs_one_greeting_timeout_and_the_other_address_takes_the_message() {
    // ::1 (the resolver's first) accepts and never greets; 127.0.0.1 holds the sink.
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind(("::1", port)).expect("the same port free on ::1");
    silent(v6);
    let messages = sink(v4);
    let gate = gate_resolving_both(port);
    send_one(&gate);
    eventually("the sink has the message", || {
        messages.load(Ordering::SeqCst) == 1
    });
    assert_v6_failed_first(&gate, port);
    assert_eq!(messages.load(Ordering::SeqCst), 1, "exactly one copy");
}
