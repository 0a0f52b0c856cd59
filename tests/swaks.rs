//! swaks, the tool admins load-test with, against the real `relaygate` binary on the shipped
//! development certificates: relayed, refused, relayed by certificate, refused with an
//! untrusted certificate.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A running `relaygate serve`, killed on drop.
struct Binary {
    child: Child,
    addr: SocketAddr,
    out: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary with a configuration whose IP connector covers `ip_range`.
fn start(ip_range: &str) -> Binary {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    // Ask the OS for a free port, then hand it to the binary.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let certs = repo().join("certs");
    let config = format!(
        r#"
[server]
hostname = "gate.contoso.com"
listen = ["{addr}"]

[tls]
certificate = "{certs}/gate.pem"
private_key = "{certs}/gate.key"
client_ca = "{certs}/ca.pem"

[[accepted_domains]]
domain = "contoso.com"

[[inbound_connectors]]
name = "OnPrem by IP"
connector_type = "OnPremises"
sender_ip_addresses = ["{ip_range}"]

[[inbound_connectors]]
name = "OnPrem by certificate"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.contoso.com"

[upstream]
kind = "directory"
path = "{out}"

[log]
format = "json"
"#,
        certs = certs.display(),
        out = out.path().display(),
    );
    let path = dir.path().join("relaygate.toml");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start relaygate");
    let bin = Binary {
        child,
        addr,
        out,
        _dir: dir,
    };
    // Wait (bounded) until the gate accepts connections.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "relaygate did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    bin
}

fn swaks(gate: &Binary, args: &[&str]) -> (bool, String) {
    let out: Output = Command::new("swaks")
        .arg("--server")
        .arg(gate.addr.to_string())
        .args([
            "--timeout",
            "20",
            "--body",
            "Hello from swaks\n..a dot-stuffed line",
        ])
        .args(args)
        .output()
        .expect("swaks must be installed (apt-get install swaks); .ci/run installs it");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

fn stored(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    v.sort();
    v
}

fn cert(name: &str) -> String {
    repo().join("certs").join(name).display().to_string()
}

#[test]
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
fn swaks_with_a_trusted_client_certificate_is_relayed_from_an_unlisted_ip() {
    // 127.0.0.1 matches no IP connector: only the certificate can authorise (1a + 2 by cert).
    let gate = start("203.0.113.0/24");
    let (ok, text) = swaks(
        &gate,
        &[
            "--tls",
            "--tls-cert",
            &cert("client-mail.contoso.com.pem"),
            "--tls-key",
            &cert("client-mail.contoso.com.key"),
            "--from",
            "<>",
            "--to",
            "bob@example.org",
        ],
    );
    assert!(ok, "swaks failed:\n{text}");
    assert!(text.contains("250 2.6.0 Message accepted"), "{text}");
    assert_eq!(stored(gate.out.path()).len(), 1);
}

#[test]
fn swaks_with_a_self_signed_certificate_is_refused() {
    let gate = start("203.0.113.0/24");
    let (ok, text) = swaks(
        &gate,
        &[
            "--tls",
            "--tls-cert",
            &cert("client-selfsigned.pem"),
            "--tls-key",
            &cert("client-selfsigned.key"),
            "--from",
            "<>",
            "--to",
            "bob@example.org",
        ],
    );
    assert!(!ok, "swaks should report the refusal:\n{text}");
    assert!(
        text.contains("550 5.7.64 TenantAttribution; Relay Access Denied ["),
        "{text}"
    );
    assert!(stored(gate.out.path()).is_empty());
}
