//! A test PKI made with rcgen for each test: a root, an intermediate under it, the gate's
//! server certificate, client certificates of every shape the rules care about (expired,
//! self-signed, without the intermediate, SAN-only, by extended key usage), and a server
//! certificate for a TLS upstream.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::PathBuf;
use std::sync::Arc;

/// A root, an intermediate under it, and the gate's server certificate, as PEM files.
pub struct Pki {
    pub root: CertifiedIssuer<'static, KeyPair>,
    pub intermediate: CertifiedIssuer<'static, KeyPair>,
    pub dir: tempfile::TempDir,
}

/// A client certificate chain and its key.
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// How a test client certificate is made.
pub struct Leaf<'a> {
    pub cn: Option<&'a str>,
    pub sans: &'a [&'a str],
    pub eku: &'a [ExtendedKeyUsagePurpose],
    pub expired: bool,
    pub self_signed: bool,
    /// Send the intermediate along with the leaf.
    pub with_intermediate: bool,
}

impl Default for Leaf<'_> {
    fn default() -> Self {
        Leaf {
            cn: None,
            sans: &[],
            eku: &[],
            expired: false,
            self_signed: false,
            with_intermediate: true,
        }
    }
}

impl Pki {
    pub fn new() -> Pki {
        let root =
            CertifiedIssuer::self_signed(ca_params("E2E Root"), KeyPair::generate().unwrap())
                .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("E2E Intermediate"),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // client_ca is the root only: a client that omits the intermediate is not trusted.
        std::fs::write(dir.path().join("ca.pem"), root.pem()).unwrap();
        let p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &root).unwrap();
        std::fs::write(dir.path().join("gate.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("gate.key"), key.serialize_pem()).unwrap();
        Pki {
            root,
            intermediate,
            dir,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `[tls]` section for a gate using this PKI.
    pub fn tls_section(&self) -> String {
        format!(
            "[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\nclient_ca = \"{}\"\n",
            self.path("gate.pem").display(),
            self.path("gate.key").display(),
            self.path("ca.pem").display()
        )
    }

    pub fn leaf(&self, spec: Leaf<'_>) -> ClientCert {
        let mut p =
            CertificateParams::new(spec.sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = spec.cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.extended_key_usages = spec.eku.to_vec();
        if spec.expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = if spec.self_signed {
            p.self_signed(&key).unwrap()
        } else {
            p.signed_by(&key, &self.intermediate).unwrap()
        };
        let mut chain = vec![cert.der().clone()];
        if spec.with_intermediate && !spec.self_signed {
            chain.push(self.intermediate.der().clone());
        }
        ClientCert {
            chain,
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    /// A server configuration for the recording upstream (`localhost`, `127.0.0.1`, by the root).
    pub fn upstream_server_config(&self) -> Arc<rustls::ServerConfig> {
        relaygate::tls::install_crypto_provider();
        let p =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.root).unwrap();
        Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
                )
                .unwrap(),
        )
    }

    /// A client configuration that trusts this PKI's root, with `cert` as the client's own.
    pub fn client_config(&self, cert: Option<ClientCert>) -> Arc<rustls::ClientConfig> {
        relaygate::tls::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root.der().clone()).unwrap();
        let b = rustls::ClientConfig::builder().with_root_certificates(roots);
        Arc::new(match cert {
            Some(c) => b.with_client_auth_cert(c.chain, c.key).unwrap(),
            None => b.with_no_client_auth(),
        })
    }
}
