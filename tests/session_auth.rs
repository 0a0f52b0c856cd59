//! AUTH sessions without sockets, on tokio's paused clock: the throttle's growing delay before
//! `535` and its lockout, measured in virtual time (never by sleeping in real time), and the
//! exchanges RFC 4954 allows (initial response, `=`, `*`, LOGIN's two steps).

mod support;

use relaygate::config::Settings;
use relaygate::session::{run_session_at, Door, Peer, Phase, SharedThrottle};
use relaygate::submission::throttle::{AuthThrottle, ThrottleLimits};
use relaygate::upstream::Connector;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{ip_tenant, settings_from, Client, Pki};
use tokio::time::Instant;

const PASSWORD: &str = "correct horse battery staple";

/// `\0scanner\0<password>` in base64: AUTH PLAIN's initial response.
fn plain(password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0scanner\0{password}"))
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A gate whose only user is `scanner`, relaying to a directory (nothing here gets that far).
struct Fixture {
    pki: Pki,
    settings: Arc<Settings>,
    throttle: SharedThrottle,
    _users: tempfile::TempDir,
}

fn fixture() -> Fixture {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new();
    let users = tempfile::tempdir().unwrap();
    let path = users.path().join("users.toml");
    std::fs::write(
        &path,
        format!(
            "[[users]]\nname = \"scanner\"\npassword_hash = \"{}\"\nallowed_senders = [\"scanner@contoso.com\"]\n",
            relaygate::submission::users::hash_password(PASSWORD.as_bytes())
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let settings = Arc::new(settings_from(&format!(
        "[server]\nhostname = \"gate.contoso.com\"\n{}\n{}\n[upstream]\nkind = \"directory\"\npath = \"{}\"\n[submission]\nlisten = [\"127.0.0.1:0\"]\nusers_file = \"{}\"\n",
        pki.tls_section(),
        ip_tenant("203.0.113.0/24"),
        users.path().join("out").display(),
        path.display()
    )));
    Fixture {
        pki,
        settings,
        throttle: Arc::new(Mutex::new(AuthThrottle::new(ThrottleLimits::default()))),
        _users: users,
    }
}

impl Fixture {
    /// A session from 192.0.2.1 on a 587-style listener, under TLS after EHLO and STARTTLS.
    async fn session(&self) -> Client {
        let connector = Connector::new(
            &self.settings.tenants[0].upstream,
            &self.settings.server.hostname,
        );
        let (client, gate) = tokio::io::duplex(64 * 1024);
        let (phase_tx, phase) = tokio::sync::watch::channel(Phase::Running);
        let door = Door::Submission {
            implicit_tls: false,
            throttle: Arc::clone(&self.throttle),
        };
        let settings = Arc::clone(&self.settings);
        tokio::spawn(async move {
            let _keep_phase = phase_tx;
            let peer = Peer {
                addr: SocketAddr::from(([192, 0, 2, 1], 40000)),
                early: Vec::new(),
            };
            run_session_at(door, gate, peer, settings, connector.leg(), phase).await
        });
        let mut c = Client::over(client);
        assert!(c.reply().await.starts_with("220 "));
        c.cmd("EHLO app.contoso.com", "250").await;
        c.starttls(&self.pki, None).await
    }
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_wait_longer_each_time_then_the_address_is_locked_out() {
    let f = fixture();
    let mut delays = Vec::new();
    let mut locked = false;
    // Bounded: a throttle that never locks out fails here.
    for _ in 0..50 {
        let mut c = f.session().await;
        let started = Instant::now();
        let r = c.ask(&format!("AUTH PLAIN {}", plain("wrong"))).await;
        let took = started.elapsed();
        if r.starts_with("421 4.7.0") {
            assert_eq!(c.reply().await, "", "the session ends after the 421");
            locked = true;
            break;
        }
        assert!(
            r.starts_with("535 5.7.3 Authentication unsuccessful"),
            "{r:?}"
        );
        delays.push(took);
    }
    assert!(locked, "never locked out after {} failures", delays.len());
    assert!(delays.len() >= 2, "locked out at once: {delays:?}");
    assert!(
        delays.windows(2).all(|w| w[1] >= w[0]) && delays.last() > delays.first(),
        "the delay does not grow: {delays:?}"
    );
    // Locked out: even the right password is refused, at AUTH, without a check.
    let mut c = f.session().await;
    c.cmd(&format!("AUTH PLAIN {}", plain(PASSWORD)), "421 4.7.0")
        .await;
}

#[tokio::test(start_paused = true)]
async fn the_right_password_is_answered_at_once_and_resets_the_count() {
    let f = fixture();
    let mut c = f.session().await;
    let first = c.ask(&format!("AUTH PLAIN {}", plain("wrong"))).await;
    assert!(first.starts_with("535 "), "{first:?}");
    let started = Instant::now();
    c.cmd(
        &format!("AUTH PLAIN {}", plain(PASSWORD)),
        "235 2.7.0 Authentication successful",
    )
    .await;
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a success is not delayed"
    );
    c.cmd("AUTH PLAIN =", "503 5.5.1").await;
    c.cmd("MAIL FROM:<scanner@contoso.com>", "250").await;
    c.cmd("AUTH LOGIN", "503 5.5.1").await;
}

#[tokio::test(start_paused = true)]
async fn login_takes_two_steps_or_an_initial_response() {
    let f = fixture();
    let mut c = f.session().await;
    c.cmd("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.cmd(&b64("scanner"), "334 UGFzc3dvcmQ6").await;
    c.cmd(&b64(PASSWORD), "235 2.7.0").await;
    let mut c = f.session().await;
    c.cmd(
        &format!("AUTH LOGIN {}", b64("scanner")),
        "334 UGFzc3dvcmQ6",
    )
    .await;
    c.cmd(&b64(PASSWORD), "235 2.7.0").await;
}

#[tokio::test(start_paused = true)]
async fn plain_without_an_initial_response_gets_an_empty_challenge() {
    let f = fixture();
    let mut c = f.session().await;
    let r = c.cmd("AUTH PLAIN", "334").await;
    assert_eq!(r, "334 \r\n");
    c.cmd(&plain(PASSWORD), "235 2.7.0").await;
}

#[tokio::test(start_paused = true)]
async fn cancelled_malformed_and_unknown_exchanges_get_their_own_replies() {
    let f = fixture();
    let mut c = f.session().await;
    c.cmd("AUTH LOGIN", "334").await;
    c.cmd("*", "501 5.7.0").await;
    c.cmd("AUTH PLAIN not-base64!", "501 5.5.2").await;
    c.cmd("AUTH PLAIN =", "501 5.5.2").await;
    c.cmd(
        "AUTH CRAM-MD5",
        "504 5.7.4 Unrecognized authentication type",
    )
    .await;
    c.cmd("AUTH", "501 5.5.4").await;
    // None of these reached a password check: the right one still passes at once.
    c.cmd(&format!("AUTH PLAIN {}", plain(PASSWORD)), "235 2.7.0")
        .await;
}

#[tokio::test(start_paused = true)]
async fn an_over_long_auth_line_is_refused_like_any_command_line() {
    let f = fixture();
    let mut c = f.session().await;
    c.cmd("AUTH LOGIN", "334").await;
    let long = "A".repeat(4096);
    c.cmd(&long, "500 5.5.2 Line too long").await;
    c.cmd(&format!("AUTH PLAIN {long}"), "500 5.5.2 Line too long")
        .await;
    c.cmd("NOOP", "250").await;
}

#[tokio::test(start_paused = true)]
async fn mail_before_auth_gets_exchange_onlines_530_5_7_57() {
    let f = fixture();
    let mut c = f.session().await;
    let r = c.cmd("MAIL FROM:<scanner@contoso.com>", "530 5.7.57").await;
    assert!(
        r.contains("Client not authenticated to send mail."),
        "{r:?}"
    );
}
