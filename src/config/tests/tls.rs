//! TLS material: refused under the exact key that names the file at fault.

use super::BASE;
use crate::config::Config;

#[test]
fn certificate_without_key_is_refused() {
    let text = r#"
[server]
[upstream]
kind = "smtp"
address = "127.0.0.1:25"
client_certificate = "certs/gate.pem"
"#;
    let e = Config::parse(text)
        .unwrap()
        .validate()
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("upstream.client_certificate") && e.contains("needs its key"),
        "{e}"
    );
}

/// The error for `[section]` with `lines`, on top of a valid configuration.
fn tls_refusal(section: &str, lines: &str) -> String {
    let text = if section == "tls" {
        format!("{BASE}\n[tls]\n{lines}")
    } else {
        format!("[server]\n[upstream]\nkind = \"smtp\"\naddress = \"127.0.0.1:25\"\n{lines}")
    };
    match Config::parse(&text).unwrap().validate() {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn tls_errors_name_the_exact_key() {
    let server = |cert: &str, key: &str, ca: &str| {
        tls_refusal(
            "tls",
            &format!("certificate = \"certs/{cert}\"\nprivate_key = \"certs/{key}\"\nclient_ca = \"certs/{ca}\"\n"),
        )
    };
    let upstream = |ca: &str, cert: &str, key: &str| {
        tls_refusal(
            "upstream",
            &format!("ca = \"certs/{ca}\"\nclient_certificate = \"certs/{cert}\"\nclient_private_key = \"certs/{key}\"\n"),
        )
    };
    for (e, key, why) in [
        (
            server("missing.pem", "gate.key", "ca.pem"),
            "tls.certificate",
            "certs/missing.pem: no such file",
        ),
        (
            server("gate.key", "gate.key", "ca.pem"),
            "tls.certificate",
            "contains no certificate",
        ),
        (
            server("gate.pem", "missing.key", "ca.pem"),
            "tls.private_key",
            "certs/missing.key: no such file",
        ),
        (
            server("gate.pem", "ca.key", "ca.pem"),
            "tls.private_key",
            "is not the private key of certs/gate.pem",
        ),
        (
            server("gate.pem", "gate.key", "missing.pem"),
            "tls.client_ca",
            "certs/missing.pem: no such file",
        ),
        (
            server("gate.pem", "gate.key", "ca.key"),
            "tls.client_ca",
            "contains no certificate",
        ),
        (
            upstream("missing.pem", "gate.pem", "gate.key"),
            "upstream.ca",
            "certs/missing.pem: no such file",
        ),
        (
            upstream("ca.pem", "missing.pem", "gate.key"),
            "upstream.client_certificate",
            "certs/missing.pem: no such file",
        ),
        (
            upstream("ca.pem", "gate.pem", "missing.key"),
            "upstream.client_private_key",
            "certs/missing.key: no such file",
        ),
        (
            upstream("ca.pem", "gate.pem", "ca.key"),
            "upstream.client_private_key",
            "is not the private key of certs/gate.pem",
        ),
    ] {
        assert!(
            e.starts_with(&format!("configuration key {key}: ")),
            "{key}: {e}"
        );
        assert!(e.contains(why), "{key}: {e}");
    }
}
