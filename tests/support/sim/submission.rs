//! Sessions that authenticate (the second door): now and then a session comes to a submission
//! listener with implicit TLS and logs in with AUTH PLAIN, mostly with the right password.
//! What the gate promises about the messages does not depend on the door; these sessions add
//! the TLS handshake before the banner, the exchange, the throttle's delay after a wrong
//! password (on the paused clock) and `530 5.7.57` for MAIL without AUTH.
//!
//! The user's password is hashed with argon2id at its lowest cost: the simulation runs
//! thousands of scenarios, and what is simulated is the session, not the hash.

use relaygate::session::SharedThrottle;
use relaygate::submission::throttle::{AuthThrottle, ThrottleLimits};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::io::DuplexStream;

const PASSWORD: &str = "sim password";

/// The `[tls]` and `[submission]` sections every simulated gate has (the relay sessions do not
/// notice them: their EHLO offers STARTTLS, which the simulated client never uses).
pub fn sections() -> String {
    format!(
        "[tls]\ncertificate = \"certs/gate.pem\"\nprivate_key = \"certs/gate.key\"\n[submission]\nimplicit_tls_listen = [\"127.0.0.1:4650\"]\nusers_file = \"{}\"\n",
        users_file()
    )
}

/// One users file per test process: the user `app`, allowed to send as app@contoso.com and as
/// anyone at fabrikam.com (so the null sender gets 550 5.7.60 at MAIL).
fn users_file() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        use argon2::password_hash::PasswordHasher;
        use argon2::{Algorithm, Argon2, Params, Version};
        use std::os::unix::fs::PermissionsExt;
        let params = Params::new(8, 1, 1, None).expect("argon2 parameters");
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(PASSWORD.as_bytes(), b"relaygate-sim-16")
            .expect("hash")
            .to_string();
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("sim-users.toml");
        std::fs::write(
            &path,
            format!("[[users]]\nname = \"app\"\npassword_hash = \"{phc}\"\nallowed_senders = [\"app@contoso.com\", \"*@fabrikam.com\"]\n"),
        )
        .expect("write the users file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the users file");
        path.display().to_string()
    })
}

/// The throttle of one scenario's gate.
pub fn throttle() -> SharedThrottle {
    Arc::new(Mutex::new(AuthThrottle::new(ThrottleLimits::default())))
}

/// AUTH PLAIN's initial response for `app`, with the right password or a wrong one.
pub fn plain(right: bool) -> String {
    use base64::Engine;
    let password = if right { PASSWORD } else { "wrong" };
    base64::engine::general_purpose::STANDARD.encode(format!("\0app\0{password}"))
}

/// The client's side of implicit TLS, trusting the development CA.
pub async fn handshake(io: DuplexStream) -> Option<tokio_rustls::client::TlsStream<DuplexStream>> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter("certs/ca.pem").expect("certs/ca.pem") {
            roots
                .add(cert.expect("a certificate"))
                .expect("a trust anchor");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, io)
        .await
        .ok()
}
