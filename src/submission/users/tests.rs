use super::*;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Params, Version};
use std::os::unix::fs::PermissionsExt;

/// argon2id at the smallest cost argon2 takes: tests verify many times, and the cost does not
/// change what is checked.
fn cheap_hash(password: &str) -> String {
    let params = Params::new(8, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes())
        .unwrap()
        .to_string()
}

/// A users file with `text`, mode 0600, in its own directory.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (dir, path)
}

fn one_user(name: &str, hash: &str, senders: &str) -> String {
    format!(
        "[[users]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nallowed_senders = {senders}\n"
    )
}

fn load(text: &str) -> Result<Users, UsersError> {
    let (_dir, path) = file(text);
    Users::load(&path)
}

fn scanner() -> Users {
    let text = one_user(
        "Scanner@Contoso.com",
        &cheap_hash("right horse"),
        r#"["Scanner@Contoso.com", "*@Fabrikam.com."]"#,
    ) + &one_user("app", &cheap_hash("battery staple"), "[]");
    load(&text).unwrap()
}

#[test]
fn a_good_file_loads_every_user_with_senders_normalised() {
    let users = scanner();
    assert_eq!(users.len(), 2);
    let user = users.get("scanner@contoso.com").unwrap();
    assert_eq!(user.name, "Scanner@Contoso.com");
    assert_eq!(
        user.allowed_senders,
        [
            AllowedSender::Address("scanner@contoso.com".into()),
            AllowedSender::Domain("fabrikam.com".into()),
        ]
    );
    assert!(users.get("APP").is_some());
    assert!(users.get("nobody").is_none());
}

#[test]
fn a_file_without_users_is_valid_and_lets_nobody_in() {
    let users = load("").unwrap();
    assert!(users.is_empty());
    assert!(users.verify("anyone", b"anything").is_none());
}

#[test]
fn the_right_password_gives_the_user_as_written_in_the_file() {
    let users = scanner();
    let user = users.verify("SCANNER@contoso.com", b"right horse").unwrap();
    assert_eq!(user.name, "Scanner@Contoso.com");
    let owned =
        Arc::new(scanner()).verify_owned("app".into(), Zeroizing::new(b"battery staple".to_vec()));
    assert_eq!(owned.as_deref(), Some("app"));
}

#[test]
fn a_wrong_password_or_an_unknown_user_gets_nobody() {
    let users = scanner();
    assert!(users
        .verify("Scanner@Contoso.com", b"wrong horse")
        .is_none());
    assert!(users.verify("Scanner@Contoso.com", b"").is_none());
    // Another user's password is not this user's.
    assert!(users
        .verify("Scanner@Contoso.com", b"battery staple")
        .is_none());
    assert!(users.verify("nobody", b"right horse").is_none());
}

#[test]
fn unknown_names_are_checked_against_a_decoy_of_the_users_cost() {
    let users = scanner();
    let real = &users.by_name["app"].hash;
    assert_eq!(users.decoy.params, real.params);
    assert_eq!(users.decoy.algorithm.as_str(), "argon2id");
    assert_eq!(users.decoy.hash.unwrap().len(), real.hash.unwrap().len());
    // Without users, the decoy costs what `relaygate passwd` hashes cost.
    let empty = load("").unwrap();
    assert_eq!(empty.decoy.params.as_str(), "m=19456,t=2,p=1");
}

#[test]
fn may_send_as_its_addresses_and_domains_without_case() {
    let users = scanner();
    let user = users.get("Scanner@Contoso.com").unwrap();
    assert!(user.may_send_as("scanner@contoso.com"));
    assert!(user.may_send_as("SCANNER@CONTOSO.COM."));
    assert!(user.may_send_as("anyone@fabrikam.com"));
    assert!(user.may_send_as("Anyone@FABRIKAM.com"));
}

#[test]
fn may_not_send_as_other_addresses_domains_subdomains_or_the_null_sender() {
    let users = scanner();
    let user = users.get("Scanner@Contoso.com").unwrap();
    assert!(!user.may_send_as("ceo@contoso.com"));
    assert!(!user.may_send_as("scanner@contoso.com.evil.example"));
    assert!(!user.may_send_as("anyone@sub.fabrikam.com"));
    assert!(!user.may_send_as("anyone@evilfabrikam.com"));
    assert!(!user.may_send_as(""));
    assert!(!user.may_send_as("@fabrikam.com"));
    assert!(!user.may_send_as("postmaster"));
    let app = users.get("app").unwrap();
    assert!(!app.may_send_as("app@contoso.com"));
}

#[test]
fn hash_password_makes_an_argon2id_string_that_verifies() {
    let hash = hash_password(b"correct horse");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_ne!(
        hash,
        hash_password(b"correct horse"),
        "a fresh salt each time"
    );
    let users = load(&one_user("u", &hash, "[]")).unwrap();
    assert!(users.verify("u", b"correct horse").is_some());
    assert!(users.verify("u", b"correct horse ").is_none());
}

#[test]
fn debug_output_shows_names_but_no_hash() {
    let text = one_user("app", &cheap_hash("battery staple"), "[]");
    let users = load(&text).unwrap();
    let debug = format!("{users:?}");
    assert_eq!(debug, r#"Users { users: ["app"] }"#);
    assert!(!debug.contains("argon2"));
}

#[test]
fn a_world_readable_file_is_refused_with_the_fix() {
    let (_dir, path) = file(&one_user("u", &cheap_hash("p"), "[]"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = Users::load(&path).unwrap_err();
    assert!(
        matches!(e, UsersError::WorldReadable { mode: 0o644, .. }),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(message.contains("mode 0644"), "{message}");
    assert!(message.contains("chmod 600"), "{message}");
    // Group-readable is how a gate running as its own group reads a mounted secret.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(Users::load(&path).is_ok());
}

#[test]
fn a_world_writable_file_is_refused() {
    let (_dir, path) = file("");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o602)).unwrap();
    let e = Users::load(&path).unwrap_err();
    assert!(matches!(e, UsersError::WorldWritable { .. }), "{e:?}");
}

#[test]
fn a_missing_or_oversized_file_is_refused_naming_it() {
    let e = Users::load(Path::new("/nonexistent/users.toml")).unwrap_err();
    assert!(matches!(e, UsersError::Read { .. }));
    assert!(e
        .to_string()
        .starts_with("cannot read users file /nonexistent/users.toml: "));
    let (_dir, path) = file(&"#".repeat((1 << 20) + 1));
    let e = Users::load(&path).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("larger than 1 MiB, the limit for a users file"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_refused_by_path_without_the_value() {
    let text = "[[users]]\nname = \"u\"\npassword = \"hunter2\"\n";
    let e = load(text).unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, UsersError::Toml { .. }));
    assert!(
        message.contains("users[0].password: unknown field `password`"),
        "{message}"
    );
    assert!(message.contains("(line 3)"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_without_quoting_it() {
    let text = "[[users]]\nname = \"u\"\npassword_hash = \"x\"\nallowed_senders = \"hunter2\"\n";
    let message = load(text).unwrap_err().to_string();
    assert!(
        message.contains("users[0].allowed_senders: invalid type"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_hash_that_is_not_a_phc_string_names_the_user_not_the_hash() {
    let e = load(&one_user("app", "hunter2", "[]")).unwrap_err();
    assert!(
        matches!(&e, UsersError::BadHash { user, .. } if user == "app"),
        "{e:?}"
    );
    let message = e.to_string();
    assert!(message.contains("relaygate passwd"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn hashes_without_a_salt_or_output_or_with_a_huge_cost_are_refused() {
    let cheap = cheap_hash("p");
    let without_output = &cheap[..cheap.rfind('$').unwrap()];
    let e = load(&one_user("u", without_output, "[]")).unwrap_err();
    assert!(e.to_string().contains("no salt or no hash output"), "{e}");
    let huge = cheap.replace("m=8,", "m=2097152,");
    let e = load(&one_user("u", &huge, "[]")).unwrap_err();
    assert!(matches!(e, UsersError::BadHash { .. }), "{e:?}");
    assert!(e.to_string().contains("m=2097152 KiB is above"), "{e}");
    let bad_params = cheap.replace("t=1", "t=0");
    assert!(matches!(
        load(&one_user("u", &bad_params, "[]")).unwrap_err(),
        UsersError::BadHash { .. }
    ));
}

#[test]
fn other_algorithms_and_versions_are_refused_as_not_argon2id() {
    let cheap = cheap_hash("p");
    for (written, algorithm) in [
        (cheap.replace("$argon2id$", "$argon2i$"), "argon2i"),
        (cheap.replace("$v=19$", "$v=16$"), "argon2id version 16"),
        (
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW".to_string(),
            "2b",
        ),
        ("$6$salt$hash".to_string(), "6"),
    ] {
        let e = load(&one_user("u", &written, "[]")).unwrap_err();
        assert!(
            matches!(&e, UsersError::NotArgon2id { algorithm: a, .. } if a == algorithm),
            "{written}: {e:?}"
        );
    }
}

#[test]
fn a_name_twice_without_case_is_refused() {
    let hash = cheap_hash("p");
    let text = one_user("App", &hash, "[]") + &one_user("aPP", &hash, "[]");
    let e = load(&text).unwrap_err();
    assert!(
        matches!(&e, UsersError::DuplicateUser { name, .. } if name == "aPP"),
        "{e:?}"
    );
}

#[test]
fn empty_names_and_names_with_control_characters_are_refused() {
    let hash = cheap_hash("p");
    let e = load(&(one_user("a", &hash, "[]") + &one_user(" ", &hash, "[]"))).unwrap_err();
    assert!(matches!(e, UsersError::EmptyName { index: 1, .. }), "{e:?}");
    let e = load(&one_user("a\\nb", &hash, "[]")).unwrap_err();
    assert!(matches!(e, UsersError::BadName { index: 0, .. }), "{e:?}");
}

#[test]
fn allowed_senders_must_be_addresses_or_whole_domains() {
    let hash = cheap_hash("p");
    for entry in [
        "contoso.com",
        "@contoso.com",
        "*@",
        "*@*.contoso.com",
        "a b@contoso.com",
        "app@contoso..com",
    ] {
        let e = load(&one_user("u", &hash, &format!("[\"{entry}\"]"))).unwrap_err();
        assert!(
            matches!(&e, UsersError::BadSender { user, entry: written, .. }
                if user == "u" && written == entry),
            "{entry}: {e:?}"
        );
    }
}

#[test]
fn users_can_be_shared_with_blocking_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Users>();
    let users = Arc::new(scanner());
    let name = std::thread::spawn({
        let users = Arc::clone(&users);
        move || users.verify_owned("APP".into(), Zeroizing::new(b"battery staple".to_vec()))
    })
    .join()
    .unwrap();
    assert_eq!(name.as_deref(), Some("app"));
}
