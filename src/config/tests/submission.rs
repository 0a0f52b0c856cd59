//! `[submission]`: both listener kinds need `[tls]`, a users file, and addresses of their own.

use super::*;

const TLS: &str = "[tls]\ncertificate = \"certs/gate.pem\"\nprivate_key = \"certs/gate.key\"\n";

/// A users file only its owner can read, with one user (the hash is well-formed, no password
/// of any test).
fn users_file() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    std::fs::write(
        &path,
        "[[users]]\nname = \"scanner\"\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\nallowed_senders = [\"scanner@contoso.com\"]\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    dir
}

#[test]
fn a_submission_listener_needs_tls_and_the_refusal_names_it() {
    let e = refused(
        "[submission]\nimplicit_tls_listen = [\"127.0.0.1:4650\"]\nusers_file = \"users.toml\"\n",
    );
    assert!(
        e.starts_with("configuration key submission.implicit_tls_listen[0]: needs [tls]"),
        "{e}"
    );
}

#[test]
fn a_submission_listener_may_not_take_the_relay_listeners_address() {
    let e = refused(&format!(
        "{TLS}[submission]\nlisten = [\"0.0.0.0:2525\"]\nusers_file = \"users.toml\"\n"
    ));
    assert_eq!(
        e,
        "configuration key submission.listen[0] = 0.0.0.0:2525: conflicts with server.listen[0] = 127.0.0.1:2525: both cannot be bound (the same port, and the same address or an unspecified one covering the other)"
    );
    let e = refused(&format!(
        "{TLS}[submission]\nlisten = [\"127.0.0.1:5870\"]\nimplicit_tls_listen = [\"127.0.0.1:5870\"]\nusers_file = \"users.toml\"\n"
    ));
    assert!(
        e.contains("submission.implicit_tls_listen[0] = 127.0.0.1:5870: conflicts with submission.listen[0]"),
        "{e}"
    );
}

#[test]
fn the_admin_endpoint_may_not_take_a_submission_listeners_address() {
    let dir = users_file();
    let e = refused(&format!(
        "{TLS}[submission]\nlisten = [\"127.0.0.1:5870\"]\nusers_file = \"{}\"\n[admin]\nlisten = \"0.0.0.0:5870\"\n",
        dir.path().join("users.toml").display()
    ));
    assert!(
        e.starts_with("configuration key admin.listen = 0.0.0.0:5870: conflicts with submission.listen[0] = 127.0.0.1:5870"),
        "{e}"
    );
}

#[test]
fn a_submission_listener_needs_a_users_file() {
    let e = refused(&format!(
        "{TLS}[submission]\nlisten = [\"127.0.0.1:5870\"]\n"
    ));
    assert!(
        e.starts_with("configuration key submission.users_file: is missing"),
        "{e}"
    );
}

#[test]
fn submission_listeners_load_their_users() {
    let dir = users_file();
    let path = dir.path().join("users.toml");
    let s = check(&format!(
        "{TLS}[submission]\nlisten = [\"127.0.0.1:5870\"]\nimplicit_tls_listen = [\"127.0.0.1:4650\"]\nusers_file = \"{}\"\n",
        path.display()
    ))
    .expect("valid");
    let submission = s.submission.expect("[submission]");
    assert_eq!(
        submission.listen,
        vec!["127.0.0.1:5870".parse::<SocketAddr>().unwrap()]
    );
    assert!(submission.users.get("scanner").is_some());
}

#[test]
fn without_a_listener_submission_is_off() {
    let s = check("[submission]\n").expect("valid");
    assert!(s.submission.is_none());
}
