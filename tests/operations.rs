//! Operations over real sockets: connection limits, graceful shutdown, reload, PROXY protocol.

mod support;

use std::path::Path;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A gate whose one connector relays for 203.0.113.0/24, storing messages in `out`. 127.0.0.1
/// is in no connector: a client relays only when a PROXY header says it is at 203.0.113.x.
async fn directory_gate(out: &Path, server_extra: &str) -> Gate {
    start_gate(
        server_extra,
        &format!(
            "{}\n{}",
            ip_tenant("203.0.113.0/24"),
            directory_upstream(out)
        ),
    )
    .await
}

#[tokio::test]
async fn connections_over_max_connections_get_421_at_once() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "max_connections = 2").await;
    let mut a = Client::open(gate.addr).await;
    assert!(a.reply().await.starts_with("220 "));
    let mut b = Client::open(gate.addr).await;
    assert!(b.reply().await.starts_with("220 "));
    let mut c = Client::open(gate.addr).await;
    let r = c.reply().await;
    assert!(
        r.starts_with("421 4.7.0 gate.contoso.com Too many connections"),
        "{r:?}"
    );
    assert_eq!(c.reply().await, "", "the refused connection is closed");
    // A place frees up when a session ends.
    a.cmd("QUIT", "221").await;
    assert_eq!(a.reply().await, "");
    let mut d = None;
    for _ in 0..50 {
        let mut client = Client::open(gate.addr).await;
        if client.reply().await.starts_with("220 ") {
            d = Some(client);
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(d.is_some(), "no place freed after QUIT");
    b.cmd("QUIT", "221").await;
}

#[tokio::test]
async fn connections_over_max_connections_per_ip_get_421() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "max_connections_per_ip = 1").await;
    let mut a = Client::open(gate.addr).await;
    assert!(a.reply().await.starts_with("220 "));
    let mut b = Client::open(gate.addr).await;
    let r = b.reply().await;
    assert!(
        r.starts_with("421 4.7.0 gate.contoso.com Too many connections from your address"),
        "{r:?}"
    );
    a.cmd("EHLO client.example", "250").await;
}

#[tokio::test]
async fn shutdown_lets_a_transaction_in_flight_finish_and_turns_idle_sessions_away() {
    let out = tempfile::tempdir().unwrap();
    let mut gate = directory_gate(
        out.path(),
        "shutdown_grace_secs = 20\nproxy_protocol = true",
    )
    .await;
    // Busy: in the middle of DATA when the shutdown starts.
    let mut busy = Client::open(gate.addr).await;
    busy.send(b"PROXY TCP4 203.0.113.10 192.0.2.1 40000 25\r\n")
        .await;
    busy.reply().await;
    busy.cmd("EHLO app.contoso.com", "250").await;
    busy.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    busy.cmd("RCPT TO:<bob@example.org>", "250").await;
    busy.cmd("DATA", "354").await;
    busy.send(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    // Idle: between transactions.
    let mut idle = Client::open(gate.addr).await;
    idle.send(b"PROXY TCP4 203.0.113.11 192.0.2.1 40001 25\r\n")
        .await;
    idle.reply().await;
    idle.cmd("EHLO idle.contoso.com", "250").await;

    gate.shut_down();
    let r = idle.reply().await;
    assert!(
        r.starts_with("421 4.3.2 gate.contoso.com Service shutting down"),
        "{r:?}"
    );

    // No new connections once shutdown has begun.
    let mut refused = false;
    for _ in 0..100 {
        match TcpStream::connect(gate.addr).await {
            Err(_) => {
                refused = true;
                break;
            }
            Ok(_) => tokio::task::yield_now().await,
        }
    }
    assert!(refused, "the listener still accepts after shutdown");

    busy.send(b"second half\r\n.\r\n").await;
    let r = busy.reply().await;
    assert!(
        r.starts_with("250 2.6.0"),
        "the transaction in flight must complete: {r:?}"
    );
    assert_eq!(stored(out.path()).len(), 1);
    busy.send(b"MAIL FROM:<app@contoso.com>\r\n").await;
    let r = busy.reply().await;
    assert!(r.starts_with("421 4.3.2"), "{r:?}");
    gate.ended("run returns once sessions are done").await;
}

#[tokio::test]
async fn after_the_grace_period_an_unfinished_message_is_dropped_not_delivered() {
    let out = tempfile::tempdir().unwrap();
    let mut gate =
        directory_gate(out.path(), "shutdown_grace_secs = 1\nproxy_protocol = true").await;
    let mut c = Client::open(gate.addr).await;
    c.send(b"PROXY TCP4 203.0.113.10 192.0.2.1 40000 25\r\n")
        .await;
    c.reply().await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: never finished\r\n\r\nhalf\r\n").await;
    gate.shut_down();
    gate.ended("run returns after the grace period").await;
    let r = c.reply().await;
    assert!(
        !r.contains("250"),
        "no 250 for an unfinished message: {r:?}"
    );
    assert_eq!(stored(out.path()).len(), 0);
    let leftovers = std::fs::read_dir(out.path().join(".tmp"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "the temporary file is removed");
}

#[tokio::test]
async fn proxy_header_address_is_the_peer_the_policy_sees() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "proxy_protocol = true").await;
    // 127.0.0.1 is in no connector; the PROXY header says 203.0.113.10, which is.
    let mut c = Client::open(gate.addr).await;
    c.send(b"PROXY TCP4 203.0.113.10 192.0.2.1 40000 25\r\n")
        .await;
    assert!(c.reply().await.starts_with("220 "));
    let r = c.cmd("EHLO app.contoso.com", "250").await;
    assert!(r.contains("Hello [203.0.113.10]"), "{r:?}");
    c.cmd("MAIL FROM:<app@contoso.com>", "250").await;
    c.cmd("RCPT TO:<bob@example.org>", "250").await;
    c.cmd("DATA", "354").await;
    c.send(b"Subject: via HAProxy\r\n\r\nhi\r\n.\r\n").await;
    let r = c.reply().await;
    assert!(r.starts_with("250 2.6.0"), "{r:?}");
    let eml = stored(out.path());
    let text = std::fs::read_to_string(&eml[0]).unwrap();
    assert!(
        text.contains("([203.0.113.10])"),
        "Received: names the real client: {text}"
    );
}

#[tokio::test]
async fn proxy_v2_header_is_understood() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "proxy_protocol = true").await;
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[
        0x21, 0x11, 0, 12, 203, 0, 113, 10, 192, 0, 2, 1, 0x9c, 0x40, 0, 25,
    ]);
    let mut c = Client::open(gate.addr).await;
    c.send(&h).await;
    assert!(c.reply().await.starts_with("220 "));
    let r = c.cmd("EHLO app.contoso.com", "250").await;
    assert!(r.contains("Hello [203.0.113.10]"), "{r:?}");
}

#[tokio::test]
async fn missing_malformed_or_untrusted_proxy_headers_close_the_connection() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(
        out.path(),
        "proxy_protocol = true\nproxy_header_timeout_secs = 1",
    )
    .await;
    // No header: the gate waits (no banner), then closes.
    let mut silent = Client::open(gate.addr).await;
    assert_eq!(silent.reply().await, "", "no banner without a PROXY header");
    // Garbage instead of a header.
    let mut garbage = Client::open(gate.addr).await;
    garbage.send(b"EHLO client.example\r\n").await;
    assert_eq!(garbage.reply().await, "");

    let untrusted = directory_gate(
        out.path(),
        "proxy_protocol = true\nproxy_trusted_networks = [\"192.0.2.0/24\"]",
    )
    .await;
    let mut c = Client::open(untrusted.addr).await;
    c.send(b"PROXY TCP4 203.0.113.10 192.0.2.1 40000 25\r\n")
        .await;
    assert_eq!(
        c.reply().await,
        "",
        "a PROXY header from an untrusted peer is not believed"
    );
}

#[tokio::test]
async fn reload_changes_new_sessions_and_keeps_running_ones() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "").await;
    let mut old = Client::open(gate.addr).await;
    assert!(old.reply().await.starts_with("220 gate.contoso.com "));

    gate.reload(settings_from(&format!(
        "[server]\nhostname = \"gate2.contoso.com\"\n{}",
        directory_upstream(out.path())
    )));

    let mut fresh = Client::open(gate.addr).await;
    assert!(fresh.reply().await.starts_with("220 gate2.contoso.com "));
    let r = old.cmd("EHLO client.example", "250").await;
    assert!(
        r.starts_with("250-gate.contoso.com "),
        "a running session keeps its configuration: {r:?}"
    );
}

#[tokio::test]
async fn a_client_dribbling_a_byte_at_a_time_is_cut_off_by_the_session_timeout() {
    let out = tempfile::tempdir().unwrap();
    let gate = directory_gate(out.path(), "session_timeout_secs = 2").await;
    let (reader, mut writer) = TcpStream::connect(gate.addr).await.unwrap().into_split();
    let mut reader = BufReader::new(reader);
    let mut banner = String::new();
    reader.read_line(&mut banner).await.unwrap();
    // Slowloris: every byte resets the per-read command timeout, never completes a line.
    let dribble = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut line = String::new();
    timeout(WAIT, reader.read_line(&mut line))
        .await
        .expect("cut off in time")
        .unwrap();
    assert!(
        line.starts_with("421 4.4.2 gate.contoso.com Timeout exceeded"),
        "{line:?}"
    );
    let mut rest = String::new();
    assert_eq!(
        timeout(WAIT, reader.read_line(&mut rest))
            .await
            .unwrap()
            .unwrap_or(0),
        0,
        "closed"
    );
    dribble.abort();
}

#[tokio::test]
async fn a_client_that_never_starts_the_tls_handshake_is_closed() {
    let out = tempfile::tempdir().unwrap();
    let gate = start_gate(
        "tls_handshake_timeout_secs = 1",
        &format!("{}{}", dev_tls(), directory_upstream(out.path())),
    )
    .await;
    let mut c = Client::open(gate.addr).await;
    assert!(c.reply().await.starts_with("220 "));
    c.cmd("EHLO x", "250").await;
    c.cmd("STARTTLS", "220").await;
    // Say nothing: the handshake timeout closes the connection.
    assert_eq!(
        c.reply().await,
        "",
        "closed after tls_handshake_timeout_secs"
    );
}
