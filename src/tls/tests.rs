//! Client-certificate identity, with certificates made by rcgen in the test.

use super::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    dir: tempfile::TempDir,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

impl Pki {
    fn new() -> Pki {
        let root =
            CertifiedIssuer::self_signed(ca_params("Test Root"), KeyPair::generate().unwrap())
                .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("Test Intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), root.pem()).unwrap();
        Pki {
            root,
            intermediate,
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A leaf signed by the intermediate.
    fn leaf(
        &self,
        cn: Option<&str>,
        sans: &[&str],
        eku: &[ExtendedKeyUsagePurpose],
    ) -> (CertificateDer<'static>, KeyPair) {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        // rcgen puts a CN of its own in by default; a SAN-only certificate has none.
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.extended_key_usages = eku.to_vec();
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.intermediate).unwrap();
        (cert.der().clone(), key)
    }

    fn server(&self) -> ServerTls {
        let (cert, key) = {
            let p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            let key = KeyPair::generate().unwrap();
            (p.signed_by(&key, &self.root).unwrap(), key)
        };
        std::fs::write(self.path("gate.pem"), cert.pem()).unwrap();
        std::fs::write(self.path("gate.key"), key.serialize_pem()).unwrap();
        ServerTls::load(
            &self.path("gate.pem"),
            &self.path("gate.key"),
            Some(&self.path("ca.pem")),
        )
        .unwrap()
    }

    fn intermediate_der(&self) -> CertificateDer<'static> {
        self.intermediate.der().clone()
    }
}

use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

#[test]
fn trusted_chain_is_an_identity() {
    let pki = Pki::new();
    let tls = pki.server();
    let (leaf, _) = pki.leaf(
        Some("Mail.Contoso.com"),
        &["mail.contoso.com", "smtp.contoso.com."],
        &[ServerAuth, ClientAuth],
    );
    let id = tls.check_chain(&[leaf, pki.intermediate_der()], UnixTime::now());
    assert!(id.presented && id.trusted, "{id:?}");
    assert_eq!(id.names, ["mail.contoso.com", "smtp.contoso.com"]);
    assert_eq!(id.policy_names(), id.names.as_slice());
}

#[test]
fn missing_intermediate_is_no_identity() {
    let pki = Pki::new();
    let tls = pki.server();
    let (leaf, _) = pki.leaf(Some("mail.contoso.com"), &["mail.contoso.com"], &[]);
    let id = tls.check_chain(&[leaf], UnixTime::now());
    assert!(id.presented && !id.trusted);
    assert!(id.policy_names().is_empty());
    assert!(id.untrusted_reason.unwrap().contains("unknown issuer"));
    assert_eq!(id.names, ["mail.contoso.com"], "names are still logged");
}

#[test]
fn self_signed_is_no_identity() {
    let pki = Pki::new();
    let tls = pki.server();
    let mut p = CertificateParams::new(vec!["mail.contoso.com".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "mail.contoso.com");
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let id = tls.check_chain(&[cert.der().clone()], UnixTime::now());
    assert!(id.presented && !id.trusted);
}

#[test]
fn expired_and_not_yet_valid_are_no_identity() {
    let pki = Pki::new();
    let tls = pki.server();
    for (from, to, why) in [
        (
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
            "expired",
        ),
        (
            rcgen::date_time_ymd(2090, 1, 1),
            rcgen::date_time_ymd(2091, 1, 1),
            "not valid yet",
        ),
    ] {
        let mut p = CertificateParams::new(vec!["mail.contoso.com".to_string()]).unwrap();
        p.not_before = from;
        p.not_after = to;
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &pki.intermediate).unwrap();
        let id = tls.check_chain(
            &[cert.der().clone(), pki.intermediate_der()],
            UnixTime::now(),
        );
        assert!(!id.trusted);
        assert_eq!(id.untrusted_reason.as_deref(), Some(why));
    }
}

#[test]
fn any_extended_key_usage_is_accepted() {
    let pki = Pki::new();
    let tls = pki.server();
    for eku in [
        vec![],
        vec![ServerAuth],
        vec![ClientAuth],
        vec![ExtendedKeyUsagePurpose::EmailProtection],
    ] {
        let (leaf, _) = pki.leaf(None, &["mail.contoso.com"], &eku);
        let id = tls.check_chain(&[leaf, pki.intermediate_der()], UnixTime::now());
        assert!(id.trusted, "{eku:?}: {id:?}");
        assert_eq!(id.names, ["mail.contoso.com"], "SAN-only certificate");
    }
}

#[test]
fn a_chain_to_another_root_is_no_identity() {
    let pki = Pki::new();
    let other = Pki::new();
    let tls = pki.server();
    let (leaf, _) = other.leaf(Some("mail.contoso.com"), &["mail.contoso.com"], &[]);
    let id = tls.check_chain(&[leaf, other.intermediate_der()], UnixTime::now());
    assert!(!id.trusted);
}

#[test]
fn key_that_does_not_match_the_certificate_is_refused() {
    let pki = Pki::new();
    pki.server();
    std::fs::write(
        pki.path("other.key"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let e = ServerTls::load(&pki.path("gate.pem"), &pki.path("other.key"), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("is not the private key of"), "{e}");
    let e = ServerTls::load(&pki.path("missing.pem"), &pki.path("gate.key"), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("missing.pem: no such file"), "{e}");
    let e = ServerTls::load(&pki.path("gate.key"), &pki.path("gate.key"), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("contains no certificate"), "{e}");
}

async fn handshake(
    tls: &ServerTls,
    root: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, &KeyPair)>,
) -> ClientIdentity {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, PrivateKeyDer::try_from(key.serialize_der()).unwrap())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let (server, client) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
    client.expect("client side completes");
    let server = server.expect("handshake completes whatever the client presents");
    tls.client_identity(server.get_ref().1)
}

#[tokio::test]
async fn handshake_completes_with_an_untrusted_certificate_and_reports_it() {
    let pki = Pki::new();
    let tls = pki.server();
    let root = pki.root.der().clone();

    let (leaf, key) = pki.leaf(
        Some("mail.contoso.com"),
        &["mail.contoso.com"],
        &[ServerAuth],
    );
    let id = handshake(
        &tls,
        &root,
        Some((vec![leaf, pki.intermediate_der()], &key)),
    )
    .await;
    assert!(id.presented && id.trusted, "{id:?}");

    let mut p = CertificateParams::new(vec!["mail.contoso.com".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, "mail.contoso.com");
    let self_key = KeyPair::generate().unwrap();
    let self_signed = p.self_signed(&self_key).unwrap();
    let id = handshake(
        &tls,
        &root,
        Some((vec![self_signed.der().clone()], &self_key)),
    )
    .await;
    assert!(id.presented && !id.trusted, "{id:?}");

    let id = handshake(&tls, &root, None).await;
    assert!(!id.presented && !id.trusted);
}

#[test]
fn shipped_development_certificates_work() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let tls = ServerTls::load(
        &dir.join("gate.pem"),
        &dir.join("gate.key"),
        Some(&dir.join("ca.pem")),
    )
    .unwrap();
    let trusted = CertificateDer::pem_file_iter(dir.join("client-mail.contoso.com.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let id = tls.check_chain(&trusted, UnixTime::now());
    assert!(id.trusted, "{id:?}");
    assert_eq!(id.names, ["mail.contoso.com"]);
    let untrusted = CertificateDer::pem_file_iter(dir.join("client-selfsigned.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert!(!tls.check_chain(&untrusted, UnixTime::now()).trusted);
}

#[test]
fn a_trusted_chain_is_remembered_only_within_its_validity() {
    let pki = Pki::new();
    let tls = pki.server();
    let mut p = CertificateParams::new(vec!["mail.contoso.com".to_string()]).unwrap();
    p.not_before = rcgen::date_time_ymd(2026, 1, 1);
    p.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let key = KeyPair::generate().unwrap();
    let leaf = p.signed_by(&key, &pki.intermediate).unwrap().der().clone();
    let chain = [leaf, pki.intermediate_der()];
    let mid_2026 = identities::at(1_782_864_000); // 2026-07-01
    let in_2027 = identities::at(1_798_848_000); // 2027-01-02

    assert!(tls.identities.get(&chain, mid_2026).is_none());
    let first = tls.identity_of(&chain, mid_2026);
    assert!(first.trusted, "{first:?}");
    assert_eq!(
        tls.identities.get(&chain, mid_2026).as_ref(),
        Some(&first),
        "a resumed session with this chain is answered without verifying it again"
    );
    // After notAfter the remembered verdict no longer holds: verified again, and refused.
    assert!(tls.identities.get(&chain, in_2027).is_none());
    let later = tls.identity_of(&chain, in_2027);
    assert!(!later.trusted);
    assert_eq!(later.untrusted_reason.as_deref(), Some("expired"));
    // Nor before notBefore.
    assert!(tls
        .identities
        .get(&chain, identities::at(1_700_000_000))
        .is_none());
}

#[test]
fn an_untrusted_chain_is_not_remembered() {
    let pki = Pki::new();
    let other = Pki::new();
    let tls = pki.server();
    let (leaf, _) = other.leaf(Some("mail.contoso.com"), &["mail.contoso.com"], &[]);
    let chain = [leaf, other.intermediate_der()];
    assert!(!tls.identity_of(&chain, UnixTime::now()).trusted);
    assert_eq!(tls.identities.len(), 0);
    // A chain differing from a remembered one in any byte is not taken for it.
    let (leaf, _) = pki.leaf(Some("mail.contoso.com"), &["mail.contoso.com"], &[]);
    assert!(
        tls.identity_of(&[leaf.clone(), pki.intermediate_der()], UnixTime::now())
            .trusted
    );
    assert!(tls.identities.get(&[leaf], UnixTime::now()).is_none());
}

#[tokio::test]
async fn a_resumed_session_keeps_its_client_certificate_identity() {
    let pki = Pki::new();
    let tls = pki.server();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.der().clone()).unwrap();
    let (leaf, key) = pki.leaf(Some("mail.contoso.com"), &["mail.contoso.com"], &[]);
    let client = Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                vec![leaf, pki.intermediate_der()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
    );
    assert!(
        tls.config.ticketer.enabled(),
        "stateless tickets: no server-side cache to outgrow"
    );
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(acceptor.accept(a), connector.connect(name, b));
        let mut client = client.unwrap();
        let mut server = server.unwrap();
        // The tickets travel after the handshake: let the client read them.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        server.write_all(b"220 ready\r\n").await.unwrap();
        let mut buf = [0u8; 11];
        client.read_exact(&mut buf).await.unwrap();
        let conn = server.get_ref().1;
        assert_eq!(
            conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "the gate's preference, not the client's (AES-256 first)"
        );
        kinds.push(conn.handshake_kind());
        let id = tls.client_identity(conn);
        assert!(id.trusted, "{id:?}");
        assert_eq!(id.names, ["mail.contoso.com"]);
    }
    use rustls::HandshakeKind::{Full, Resumed};
    assert_eq!(kinds, [Some(Full), Some(Resumed), Some(Resumed)]);
}
