//! Certificates that renew themselves, through the real `relaygate` binary: files replaced on
//! disk while a session runs (no SIGHUP), a broken replacement that keeps the running
//! certificate, and the expiry of a short-lived certificate in the metrics, the log and
//! `/health/ready`.

mod support;
use rcgen::{CertificateParams, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::*;

/// A server certificate for `localhost` from the test PKI's root, valid until midnight UTC of
/// `not_after` (year, month, day; default: rcgen's, years ahead): (PEM certificate, PEM key,
/// DER certificate).
fn server_certificate(
    pki: &Pki,
    not_after: Option<(i32, u8, u8)>,
) -> (String, String, CertificateDer<'static>) {
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    if let Some((y, m, d)) = not_after {
        p.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.root).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Replace `name` in the PKI's directory as an ACME client does: write beside it, rename over.
fn replace(pki: &Pki, name: &str, text: &str) {
    let next = pki.path(&format!("{name}.new"));
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, pki.path(name)).unwrap();
}

/// A gate whose `[tls]` files are the PKI's (so the test may replace them).
fn gate_on(pki: &Pki, extra: &str) -> Binary {
    let tls = pki.tls_section();
    start_edited("127.0.0.0/24", "", |c| c.replace(&dev_tls(), &tls) + extra)
}

/// An SMTP session after STARTTLS, blocking.
struct TlsSession {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

fn read_reply(stream: &mut impl Read) -> String {
    let mut reply = String::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"\r\n") {
            stream.read_exact(&mut byte).unwrap();
            line.push(byte[0]);
        }
        let line = String::from_utf8(line).unwrap();
        let last = line.as_bytes().get(3) != Some(&b'-');
        reply.push_str(&line);
        if last {
            return reply;
        }
    }
}

impl TlsSession {
    fn start(pki: &Pki, addr: SocketAddr) -> TlsSession {
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        assert!(read_reply(&mut tcp).starts_with("220"));
        tcp.write_all(b"EHLO app.contoso.com\r\n").unwrap();
        assert!(read_reply(&mut tcp).contains("STARTTLS"));
        tcp.write_all(b"STARTTLS\r\n").unwrap();
        assert!(read_reply(&mut tcp).starts_with("220"));
        let conn = rustls::ClientConnection::new(
            pki.client_config(None),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        TlsSession { stream }
    }

    /// The certificate the gate presented.
    fn served(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().unwrap()[0].clone()
    }

    fn command(&mut self, line: &str, code: &str) {
        write!(self.stream, "{line}\r\n").unwrap();
        let reply = read_reply(&mut self.stream);
        assert!(
            reply.starts_with(code),
            "{line}: expected {code}, got {reply}"
        );
    }

    /// One whole transaction from `p1`, accepted.
    fn relay(&mut self, p1: &str) {
        self.command("EHLO app.contoso.com", "250");
        self.command(&format!("MAIL FROM:<{p1}>"), "250");
        self.command("RCPT TO:<bob@example.org>", "250");
        self.command("DATA", "354");
        self.command("Subject: renewal\r\n\r\nhello\r\n.", "250");
        self.command("QUIT", "221");
    }
}

fn served_now(pki: &Pki, addr: SocketAddr) -> CertificateDer<'static> {
    TlsSession::start(pki, addr).served()
}

#[test]
fn renewed_files_are_served_to_new_sessions_while_a_running_session_finishes_on_the_old() {
    let pki = Pki::new();
    let gate = gate_on(&pki, "");
    let old = served_now(&pki, gate.addr);
    let mut running = TlsSession::start(&pki, gate.addr);
    assert_eq!(running.served(), old);

    let (cert, key, renewed) = server_certificate(&pki, None);
    // The certificate first, then its key: in between the pair does not match, and the gate
    // must wait for the key rather than refuse the certificate.
    replace(&pki, "gate.pem", &cert);
    replace(&pki, "gate.key", &key);
    eventually("a new session served the renewed certificate", || {
        served_now(&pki, gate.addr) == renewed
    });

    running.relay("running@contoso.com");
    assert_eq!(
        gate.transaction("running@contoso.com")["relay"],
        "relay authorized"
    );
    assert!(
        gate.events().iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("certificate files changed: reloaded"))),
        "{}",
        gate.log()
    );
}

#[test]
fn a_certificate_that_does_not_match_its_key_keeps_the_running_pair_and_is_logged() {
    let pki = Pki::new();
    let gate = gate_on(&pki, "");
    let old = served_now(&pki, gate.addr);
    let (cert, _, _) = server_certificate(&pki, None);
    replace(&pki, "gate.pem", &cert);
    eventually("the warning about files that do not load", || {
        gate.events().iter().any(|e| {
            e["level"] == "WARN"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("certificate files changed but do not load"))
                && e["error"]
                    .as_str()
                    .is_some_and(|m| m.contains("is not the private key of"))
        })
    });
    assert_eq!(served_now(&pki, gate.addr), old);
    TlsSession::start(&pki, gate.addr).relay("still@contoso.com");
}

#[test]
fn a_short_lived_certificate_shows_its_expiry_in_metrics_log_and_readiness() {
    let pki = Pki::new();
    let in_ten_days = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 10))
        .unwrap();
    let date = in_ten_days.to_zoned(jiff::tz::TimeZone::UTC).date();
    let ymd = (date.year().into(), date.month() as u8, date.day() as u8);
    let (cert, key, _) = server_certificate(&pki, Some(ymd));
    let not_after = jiff::civil::date(date.year(), date.month(), date.day())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    replace(&pki, "gate.pem", &cert);
    replace(&pki, "gate.key", &key);
    let admin = free_port();
    let gate = gate_on(
        &pki,
        &format!("\n[admin]\nlisten = \"{admin}\"\nprobe_interval_secs = 1\n"),
    );

    let gauge = format!(
        "relaygate_certificate_not_after_seconds{{role=\"server\",file=\"{}\",subject=\"localhost\"}} {}",
        pki.path("gate.pem").display(),
        not_after
    );
    let mut metrics = String::new();
    eventually(&format!("{gauge} in the metrics"), || {
        metrics = http_get(admin, "/metrics")
            .map(|(_, m)| m)
            .unwrap_or_default();
        metrics.contains(&gauge)
    });
    assert!(
        metrics.contains("relaygate_certificate_not_after_seconds{role=\"client_ca\""),
        "{metrics}"
    );

    let warnings = |gate: &Binary| {
        gate.events()
            .into_iter()
            .filter(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("certificate expires soon"))
            })
            .collect::<Vec<_>>()
    };
    eventually("the expiry warning", || !warnings(&gate).is_empty());
    let warned = &warnings(&gate)[0];
    assert_eq!(warned["role"], "server");
    assert!(
        (8..=10).contains(&warned["days_left"].as_i64().unwrap()),
        "{warned}"
    );

    eventually("ready", || {
        http_get(admin, "/health/ready").is_some_and(|(c, _)| c == 200)
    });
    let (_, body) = http_get(admin, "/health/ready").unwrap();
    assert!(
        body.lines()
            .any(|l| l.starts_with("WARN certificate server ")
                && l.contains("[localhost]")
                && l.contains("days)")),
        "{body}"
    );

    // Once a day, not once per session or per load: sessions and two reloads later (the
    // second logged after the first's expiry check ran) there is still the one warning.
    TlsSession::start(&pki, gate.addr).relay("app@contoso.com");
    for reloads in 1..=2 {
        signal(&gate, "-HUP");
        eventually("the reload", || {
            gate.events()
                .iter()
                .filter(|e| e["message"] == "configuration reloaded")
                .count()
                == reloads
        });
    }
    assert_eq!(warnings(&gate).len(), 1, "{}", gate.log());
}

/// `config check` on the standard configuration with an SMTP upstream presenting the client
/// certificate `gate.pem` of `pki`: (status, output).
fn config_check_with_upstream_certificate(pki: &Pki) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let upstream = format!(
        "[upstream]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\nca = \"{}\"\nclient_certificate = \"{}\"\nclient_private_key = \"{}\"\n",
        pki.path("ca.pem").display(),
        pki.path("upstream.pem").display(),
        pki.path("upstream.key").display(),
    );
    let text = config_text(free_port(), "127.0.0.0/24", HOSTNAME, &out)
        .replace(&directory_upstream(&out), &upstream);
    let path = dir.path().join("check.toml");
    std::fs::write(&path, text).unwrap();
    let (status, out, err) = relaygate(&["config", "check", "--config", path.to_str().unwrap()]);
    (status, out + &err)
}

fn upstream_certificate(pki: &Pki, names: &[&str]) {
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.root).unwrap();
    std::fs::write(pki.path("upstream.pem"), cert.pem()).unwrap();
    std::fs::write(pki.path("upstream.key"), key.serialize_pem()).unwrap();
}

#[test]
fn config_check_lists_every_certificate_and_warns_about_an_upstream_certificate_without_an_accepted_domain(
) {
    let pki = Pki::new();
    upstream_certificate(&pki, &["gate.fabrikam.net"]);
    let (status, out) = config_check_with_upstream_certificate(&pki);
    assert_eq!(status, 0, "warnings only:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("certificate upstream_client ")
                && l.contains("[gate.fabrikam.net]")
                && l.contains(": expires ")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("certificate client_ca ")),
        "{out}"
    );
    assert!(
        out.contains("warning: upstream.client_certificate")
            && out.contains("(gate.fabrikam.net) is an accepted domain")
            && out.contains("5.7.64"),
        "{out}"
    );

    upstream_certificate(&pki, &["gate.fabrikam.net", "contoso.com"]);
    let (status, out) = config_check_with_upstream_certificate(&pki);
    assert_eq!(status, 0, "{out}");
    assert!(
        !out.contains("warning: upstream.client_certificate"),
        "{out}"
    );
}
