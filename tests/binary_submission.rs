//! The second door against the real binary: swaks authenticating on the submission listeners
//! (`--tls`, port 587 style, and `--tls-on-connect`, port 465 style) with PLAIN and LOGIN, as
//! the applications leaving Exchange Online's Basic authentication will; the refusals they can
//! meet (a wrong password, AUTH before TLS, MAIL before AUTH, a send-as violation); a user
//! removed by a reload; a users file others can read, refused at start.
//!
//! The IP connector of these gates covers 203.0.113.0/24, not the loopback address swaks comes
//! from: whatever is relayed here is relayed because the user authenticated.

mod support;
use std::net::SocketAddr;
use std::path::Path;
use support::*;

const PASSWORD: &str = "correct horse battery staple";

/// The PHC hash of `password`, as `relaygate passwd` prints it (that command's round trip is
/// tested with it).
fn hash(password: &str) -> String {
    relaygate::submission::users::hash_password(password.as_bytes())
}

/// A users file with `users` (name, allowed senders), each with [`PASSWORD`], at `mode`.
fn write_users(path: &Path, users: &[(&str, &str)], mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let phc = hash(PASSWORD);
    let text: String = users
        .iter()
        .map(|(name, senders)| {
            format!(
                "[[users]]\nname = \"{name}\"\npassword_hash = \"{phc}\"\nallowed_senders = [{senders}]\n"
            )
        })
        .collect();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The scanner: may send as itself and as anyone at fabrikam.com.
const SCANNER: (&str, &str) = ("scanner", "\"scanner@contoso.com\", \"*@fabrikam.com\"");
const ERP: (&str, &str) = ("erp", "\"erp@contoso.com\"");

/// A gate with both submission listeners and `users`.
struct Submission {
    gate: Binary,
    /// The 587-style listener (STARTTLS, then AUTH).
    starttls: SocketAddr,
    /// The 465-style listener (TLS from the first byte).
    implicit: SocketAddr,
    /// Holds the users file.
    users: tempfile::TempDir,
}

impl Submission {
    fn users_file(&self) -> std::path::PathBuf {
        self.users.path().join("users.toml")
    }
}

fn gate_with_users(users: &[(&str, &str)]) -> Submission {
    gate_with_users_and(users, "")
}

/// [`gate_with_users`] with `server_extra` in `[server]`.
fn gate_with_users_and(users: &[(&str, &str)], server_extra: &str) -> Submission {
    let dir = tempfile::tempdir().unwrap();
    let users_path = dir.path().join("users.toml");
    write_users(&users_path, users, 0o600);
    let (starttls, implicit) = (free_port(), free_port());
    let gate = start_edited("203.0.113.0/24", server_extra, |config| {
        config
            + &format!(
                "\n[submission]\nlisten = [\"{starttls}\"]\nimplicit_tls_listen = [\"{implicit}\"]\nusers_file = \"{}\"\n",
                users_path.display()
            )
    });
    wait_listening(starttls);
    wait_listening(implicit);
    Submission {
        gate,
        starttls,
        implicit,
        users: dir,
    }
}

fn wait_listening(addr: SocketAddr) {
    eventually(&format!("listening on {addr}"), || {
        std::net::TcpStream::connect(addr).is_ok()
    });
}

/// swaks against a submission listener, authenticating as `user` with `password`.
fn swaks_auth(
    addr: SocketAddr,
    tls: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    from: &str,
) -> (bool, String) {
    let out = swaks_at(
        &addr.to_string(),
        &[
            tls,
            "--auth",
            mechanism,
            "--auth-user",
            user,
            "--auth-password",
            password,
            "--from",
            from,
            "--to",
            "bob@example.org",
        ],
    );
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn swaks_authenticates_with_plain_and_login_over_starttls_and_implicit_tls_and_is_relayed() {
    let Submission {
        gate,
        starttls,
        implicit,
        ..
    } = gate_with_users(&[SCANNER]);
    let mut relayed = 0;
    for (addr, tls, listener) in [
        (starttls, "--tls", "submission"),
        (implicit, "--tls-on-connect", "submission-implicit-tls"),
    ] {
        for mechanism in ["PLAIN", "LOGIN"] {
            // One P1 per run, to find its transaction event.
            let from = format!("{listener}-{mechanism}@fabrikam.com").to_lowercase();
            let (ok, text) = swaks_auth(addr, tls, mechanism, "scanner", PASSWORD, &from);
            assert!(ok, "{tls} {mechanism}:\n{text}");
            assert!(
                text.contains("~  235 2.7.0 Authentication successful"),
                "{text}"
            );
            assert!(text.contains("250 2.6.0"), "{text}");
            relayed += 1;
            assert_eq!(stored(gate.out.path()).len(), relayed);
            let event = gate.transaction(&from);
            assert_eq!(event["user"], "scanner", "{event}");
            assert_eq!(event["listener"], listener, "{event}");
            assert_eq!(event["identity"], "user scanner", "{event}");
            assert_eq!(event["relay"], "relay authorized", "{event}");
        }
    }
    // The log never holds the password, not even base64-encoded as PLAIN sends it.
    let log = gate.log();
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn a_wrong_password_gets_535_5_7_3_and_nothing_is_logged_of_it() {
    let Submission { gate, starttls, .. } = gate_with_users(&[SCANNER]);
    let wrong = "hunter2-typed-into-the-wrong-field";
    let (ok, text) = swaks_auth(
        starttls,
        "--tls",
        "LOGIN",
        "scanner",
        wrong,
        "scanner@contoso.com",
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("~* 535 5.7.3 Authentication unsuccessful"),
        "{text}"
    );
    // A password typed into the user field: never logged, the name is not a user's.
    let (ok, _) = swaks_auth(
        starttls,
        "--tls",
        "PLAIN",
        wrong,
        wrong,
        "scanner@contoso.com",
    );
    assert!(!ok);
    eventually("two failures logged", || {
        gate.log().matches("authentication failed").count() == 2
    });
    assert!(!gate.log().contains(wrong), "a credential is in the log");
    assert!(stored(gate.out.path()).is_empty());
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn a_user_may_not_send_as_an_address_outside_its_allowed_senders() {
    let Submission { gate, starttls, .. } = gate_with_users(&[SCANNER]);
    let (ok, text) = swaks_auth(
        starttls,
        "--tls",
        "PLAIN",
        "scanner",
        PASSWORD,
        "ceo@contoso.com",
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "~* 550 5.7.60 SMTP; Client does not have permissions to send as this sender ["
        ),
        "{text}"
    );
    assert!(stored(gate.out.path()).is_empty());
}

#[test]
fn before_tls_a_submission_listener_offers_no_auth_and_mail_needs_it() {
    let s = gate_with_users(&[SCANNER]);
    let mut c = LineClient::connect(s.starttls);
    c.expect("220");
    c.send("EHLO app.contoso.com");
    c.expect("250");
    c.send("AUTH PLAIN AHNjYW5uZXIAeA==");
    c.expect("504 5.7.4 Unrecognized authentication type");
    c.send("MAIL FROM:<scanner@contoso.com>");
    c.expect("530 5.7.57 Client not authenticated to send mail.");
}

#[test]
fn the_relay_listener_never_offers_auth() {
    let s = gate_with_users(&[SCANNER]);
    let mut c = LineClient::connect(s.gate.addr);
    c.expect("220");
    c.send("EHLO app.contoso.com");
    c.expect("250");
    c.send("AUTH PLAIN AHNjYW5uZXIAeA==");
    c.expect("502 5.5.1");
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs swaks: cargo test --features peers (scripts/test.sh)"
)]
fn a_user_removed_by_a_reload_can_no_longer_authenticate() {
    let s = gate_with_users(&[SCANNER, ERP]);
    let (gate, starttls) = (&s.gate, s.starttls);
    let (ok, text) = swaks_auth(
        starttls,
        "--tls",
        "PLAIN",
        "erp",
        PASSWORD,
        "erp@contoso.com",
    );
    assert!(ok, "{text}");
    write_users(&s.users_file(), &[SCANNER], 0o600);
    signal(gate, "-HUP");
    eventually("the reload", || {
        gate.log().contains("configuration reloaded")
    });
    let (ok, text) = swaks_auth(
        starttls,
        "--tls",
        "PLAIN",
        "erp",
        PASSWORD,
        "erp@contoso.com",
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("~* 535 5.7.3 Authentication unsuccessful"),
        "{text}"
    );
    let (ok, text) = swaks_auth(
        starttls,
        "--tls",
        "PLAIN",
        "scanner",
        PASSWORD,
        "scanner@contoso.com",
    );
    assert!(ok, "the users kept still authenticate:\n{text}");
}

#[test]
fn a_users_file_others_can_read_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    write_users(&users, &[SCANNER], 0o644);
    let port = free_port();
    let (status, _, stderr) = serve_refused(|config, _| {
        config
            + &format!(
                "\n[submission]\nlisten = [\"{port}\"]\nusers_file = \"{}\"\n",
                users.display()
            )
    });
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("submission.users_file"), "{stderr}");
    assert!(stderr.contains(&users.display().to_string()), "{stderr}");
}

/// A configuration for the one-shot commands with `[submission]` and `users`; (its path, the
/// directory holding both).
fn check_config(users: &[(&str, &str)]) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let users_path = dir.path().join("users.toml");
    write_users(&users_path, users, 0o600);
    let config = write_config(
        dir.path(),
        &format!(
            "\n[submission]\nlisten = [\"127.0.0.1:5870\"]\nusers_file = \"{}\"\n",
            users_path.display()
        ),
    );
    (config, dir)
}

#[test]
fn config_check_warns_of_a_sender_domain_exchange_online_would_refuse_from_the_gate() {
    // fabrikam.com is not accepted, and the directory upstream presents no certificate.
    let (config, _dir) = check_config(&[SCANNER]);
    let (status, out, err) = relaygate(&["config", "check", "--config", &config]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("user \"scanner\" allowed_senders \"*@fabrikam.com\"")
            && out.contains("550 5.7.64"),
        "{out}"
    );
    assert!(
        !out.contains("allowed_senders \"scanner@contoso.com\""),
        "contoso.com is accepted:\n{out}"
    );
}

#[test]
fn check_judges_a_transaction_as_an_authenticated_user() {
    let (config, _dir) = check_config(&[SCANNER]);
    let check = |from: &str| {
        relaygate(&[
            "check",
            "--config",
            &config,
            "--ip",
            "198.51.100.7",
            "--tls",
            "--user",
            "scanner",
            "--mail-from",
            from,
            "--rcpt",
            "bob@example.org",
        ])
    };
    let (status, out, err) = check("scanner@contoso.com");
    assert_eq!(status, 0, "{out}{err}");
    assert!(
        out.contains("authenticated as scanner (SMTP AUTH): its allowed_senders cover"),
        "{out}"
    );
    let (status, out, err) = check("ceo@contoso.com");
    assert_eq!(status, 1, "{out}{err}");
    assert!(
        out.contains(
            "550 5.7.60 SMTP; Client does not have permissions to send as this sender at MAIL"
        ),
        "{out}"
    );
    let (status, _, err) = relaygate(&[
        "check",
        "--config",
        &config,
        "--ip",
        "198.51.100.7",
        "--user",
        "nobody",
        "--mail-from",
        "a@contoso.com",
        "--rcpt",
        "bob@example.org",
    ]);
    assert_eq!(status, 2);
    assert!(err.contains("--user nobody: no such user"), "{err}");
}

#[test]
fn behind_a_proxy_header_the_implicit_tls_handshake_starts_right_after_it() {
    use std::io::{BufRead, BufReader, Write};
    let s = gate_with_users_and(
        &[SCANNER],
        "proxy_protocol = true\nproxy_trusted_networks = [\"127.0.0.1/32\"]",
    );
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    for c in CertificateDer::pem_file_iter(cert("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(s.implicit).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // The header and the ClientHello in one write: the gate reads both at once.
    let mut first = b"PROXY TCP4 192.0.2.9 127.0.0.1 50000 465\r\n".to_vec();
    conn.write_tls(&mut first).unwrap();
    tcp.write_all(&first).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    let mut banner = String::new();
    tls.read_line(&mut banner).unwrap();
    assert!(banner.starts_with("220 gate.contoso.com"), "{banner:?}");
    tls.get_mut()
        .write_all(b"EHLO app.contoso.com\r\n")
        .unwrap();
    let mut ehlo = String::new();
    loop {
        let mut line = String::new();
        tls.read_line(&mut line).unwrap();
        ehlo.push_str(&line);
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    }
    assert!(
        ehlo.starts_with("250-gate.contoso.com Hello [192.0.2.9]"),
        "{ehlo}"
    );
    assert!(ehlo.contains("250-AUTH LOGIN PLAIN"), "{ehlo}");
}
