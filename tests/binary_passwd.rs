//! `relaygate passwd` through the real binary: a password piped in comes out as an argon2id PHC
//! string that the users file takes and verifies, and nothing of the password is echoed.

mod support;

use relaygate::submission::users::Users;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

/// `relaygate passwd` with `input` on standard input: (exit status, stdout, stderr).
fn passwd(input: &[u8]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relaygate"))
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run relaygate passwd");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().expect("exit status"),
        String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_piped_password_becomes_a_hash_the_users_file_verifies() {
    let (status, out, err) = passwd(b"Tr0ub4dor&3\n");
    assert_eq!(status, 0, "{err}");
    let hash = out.trim_end();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{out}");
    assert_eq!(out.lines().count(), 1, "only the hash on stdout: {out}");
    assert!(
        err.contains("put it in the users file as password_hash"),
        "{err}"
    );
    assert!(!out.contains("Tr0ub4dor") && !err.contains("Tr0ub4dor"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    std::fs::write(
        &path,
        format!(
            "[[users]]\nname = \"scanner\"\npassword_hash = \"{hash}\"\n\
             allowed_senders = [\"scanner@contoso.com\"]\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let users = Users::load(&path).unwrap();
    assert!(users.verify("scanner", b"Tr0ub4dor&3").is_some());
    assert!(users.verify("scanner", b"Tr0ub4dor&3\n").is_none());
    assert!(users.verify("scanner", b"correct horse").is_none());
}

#[test]
fn a_windows_line_end_is_not_part_of_the_password() {
    let (status, out, err) = passwd(b"s3cret\r\n");
    assert_eq!(status, 0, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    let hash = out.trim_end();
    std::fs::write(
        &path,
        format!("[[users]]\nname = \"u\"\npassword_hash = \"{hash}\"\nallowed_senders = []\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Users::load(&path).unwrap().verify("u", b"s3cret").is_some());
}

#[test]
fn an_empty_password_is_refused_with_status_2_and_no_hash() {
    for input in [&b""[..], b"\n"] {
        let (status, out, err) = passwd(input);
        assert_eq!(status, 2, "{input:?}: {out}{err}");
        assert_eq!(out, "", "no hash for {input:?}");
        assert!(err.contains("relaygate passwd: no password"), "{err}");
    }
}
