use super::*;

fn server_files(dir: &Path) -> Vec<CertificateFile> {
    vec![CertificateFile {
        role: Role::Server,
        tenant: String::new(),
        path: dir.join("gate.pem"),
        key: Some(dir.join("gate.key")),
    }]
}

#[test]
fn a_change_is_loaded_once_it_has_settled_and_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path());
    std::fs::write(&files[0].path, "old certificate").unwrap();
    std::fs::write(files[0].key.as_ref().unwrap(), "old key").unwrap();
    let mut watch = Watch::new(&files);
    assert!(!watch.poll(&files), "nothing changed");
    std::fs::write(&files[0].path, "the renewed certificate").unwrap();
    assert!(!watch.poll(&files), "the key may not be written yet");
    std::fs::write(files[0].key.as_ref().unwrap(), "the renewed key").unwrap();
    assert!(!watch.poll(&files), "still changing");
    assert!(watch.poll(&files), "settled: load now");
    assert!(!watch.poll(&files), "loaded (or tried) already");
}

#[test]
fn a_file_replaced_by_rename_is_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let files = server_files(dir.path());
    std::fs::write(&files[0].path, "same").unwrap();
    let mut watch = Watch::new(&files);
    let next = dir.path().join("gate.pem.new");
    std::fs::write(&next, "same").unwrap();
    std::fs::rename(&next, &files[0].path).unwrap();
    watch.poll(&files);
    assert!(
        watch.poll(&files),
        "a new inode with the same size is a renewal"
    );
}

#[test]
fn every_certificate_file_of_the_configuration_is_watched_with_its_role() {
    let text = r#"
[server]
hostname = "gate.contoso.com"
[tls]
certificate = "/etc/gate.pem"
private_key = "/etc/gate.key"
client_ca = "/etc/ca.pem"
[[tenants]]
name = "tailspin"
[tenants.upstream]
kind = "smtp"
address = "tailspin.mail.protection.outlook.com:25"
client_certificate = "/etc/tailspin.pem"
client_private_key = "/etc/tailspin.key"
ca = "/etc/upstream-ca.pem"
"#;
    let config = crate::config::Config::parse(text).unwrap();
    let found: Vec<_> = files(&config)
        .into_iter()
        .map(|f| (f.role, f.tenant, f.path.display().to_string()))
        .collect();
    assert_eq!(
        found,
        vec![
            (Role::Server, String::new(), "/etc/gate.pem".to_string()),
            (Role::ClientCa, String::new(), "/etc/ca.pem".to_string()),
            (
                Role::UpstreamClient,
                "tailspin".to_string(),
                "/etc/tailspin.pem".to_string()
            ),
            (
                Role::UpstreamCa,
                "tailspin".to_string(),
                "/etc/upstream-ca.pem".to_string()
            ),
        ]
    );
}
