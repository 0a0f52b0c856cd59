//! TLS on both legs: STARTTLS towards clients with optional client certificates, and the
//! upstream client configuration.
//!
//! Exchange Online completes the handshake whatever certificate a client presents and only
//! then decides whether it is an identity; Exchange servers present their serverAuth
//! certificate. rustls' `WebPkiClientVerifier` would instead fail the handshake for an untrusted
//! certificate and insist on clientAuth, so the gate has its own verifier: it accepts any
//! certificate during the handshake (while still verifying the handshake signature, so nobody
//! can present a certificate without its key), and `ServerTls::client_identity` checks the
//! chain afterwards against `client_ca` and the validity period.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, TrustAnchor, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors loading TLS material; each names the file and what is wrong, and [`TlsError::key`]
/// the configuration key that names the file, so that the admin knows which line to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("{reason}")]
    Config { key: &'static str, reason: String },
}

impl TlsError {
    /// The configuration key at fault, e.g. `tls.private_key`.
    pub fn key(&self) -> &'static str {
        match self {
            TlsError::File { key, .. } | TlsError::Config { key, .. } => key,
        }
    }
}

/// A file the configuration names, with the key that names it.
#[derive(Clone, Copy)]
struct Named<'a> {
    key: &'static str,
    path: &'a Path,
}

impl Named<'_> {
    fn error(&self, reason: impl Into<String>) -> TlsError {
        TlsError::File {
            key: self.key,
            path: self.path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Install the ring provider as the process default, once. rustls panics at `builder()` when
/// it cannot tell which of several providers to use; with one installed it never has to.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

/// The bytes of a PEM file, at most [`crate::files::PEM`] of them (rustls' own `pem_file_iter` and
/// `from_pem_file` would read an endless file forever).
fn read_pem(file: Named<'_>) -> Result<Vec<u8>, TlsError> {
    if !file.path.exists() {
        return Err(file.error("no such file"));
    }
    crate::files::read(file.path, crate::files::PEM)
        .map_err(|e| file.error(format!("cannot read: {e}")))
}

fn load_certs(file: Named<'_>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(file)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| file.error(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file.error("contains no certificate (expected PEM \"BEGIN CERTIFICATE\")"));
    }
    Ok(certs)
}

fn load_key(file: Named<'_>) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read_pem(file)?)
        .map_err(|e| file.error(format!("contains no usable private key: {e}")))
}

/// A certificate and its key, checked to belong together (a mismatch is the key's error).
fn certified_key(
    cert: Named<'_>,
    key: Named<'_>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| key.error(format!("unsupported private key: {e}")))?;
    let ck = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    ck.keys_match()
        .map_err(|_| key.error(format!("is not the private key of {}", cert.path.display())))?;
    Ok((chain, der))
}

/// Trust anchors for client certificates, owned.
struct ClientTrust {
    anchors: Vec<TrustAnchor<'static>>,
    subjects: Vec<DistinguishedName>,
}

impl ClientTrust {
    fn load(file: Named<'_>) -> Result<ClientTrust, TlsError> {
        let mut anchors = Vec::new();
        let mut subjects = Vec::new();
        for der in load_certs(file)? {
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| file.error(format!("not a usable trust anchor: {e}")))?
                .to_owned();
            // webpki keeps the Name without its SEQUENCE header; hints must be whole DER Names.
            subjects.push(DistinguishedName::in_sequence(anchor.subject.as_ref()));
            anchors.push(anchor);
        }
        Ok(ClientTrust { anchors, subjects })
    }
}

/// Accepts any client certificate during the handshake, but verifies the handshake signatures
/// (proof of the private key). Whether the certificate is an identity is decided afterwards.
#[derive(Debug)]
struct AnyClientCertificate {
    subjects: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Any extended key usage is acceptable: Exchange servers present serverAuth-only
/// certificates, and Exchange Online counts them.
struct AnyExtendedKeyUsage;

impl webpki::ExtendedKeyUsageValidator for AnyExtendedKeyUsage {
    fn validate(&self, iter: webpki::KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        // Still refuse a malformed extension.
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// Who the client is, as far as its certificate says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// A certificate was presented at all.
    pub presented: bool,
    /// It chained to a `client_ca` anchor (with the intermediates the client sent) and was
    /// within its validity period. Only then is it an identity.
    pub trusted: bool,
    /// Subject CN and SAN dNSNames of the leaf, lower-cased, without trailing dot,
    /// de-duplicated, CN first. Filled even when untrusted, for the log.
    pub names: Vec<String>,
    /// Why the certificate is not an identity, for the log.
    pub untrusted_reason: Option<String>,
}

impl ClientIdentity {
    /// What the policy may see: the names of a trusted certificate, else nothing.
    pub fn policy_names(&self) -> &[String] {
        if self.trusted {
            &self.names
        } else {
            &[]
        }
    }
}

/// Subject CNs and SAN dNSNames of a certificate.
pub fn certificate_names(der: &CertificateDer<'_>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        let n = crate::policy::normalise(n);
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    };
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) {
        for cn in cert.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                add(s);
            }
        }
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                    add(d);
                }
            }
        }
    }
    names
}

/// The gate's server side, built once per configuration load.
pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    trust: Option<ClientTrust>,
    algorithms: WebPkiSupportedAlgorithms,
    /// Chains already found trusted, so that resumed sessions skip the signature checks.
    identities: identities::Identities,
}

impl ServerTls {
    /// `certificate`: PEM chain, leaf first; `private_key`: PEM (PKCS#8, PKCS#1 or SEC1);
    /// `client_ca`: PEM trust anchors for client certificates (absent: none are requested).
    pub fn load(
        certificate: &Path,
        private_key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<ServerTls, TlsError> {
        install_crypto_provider();
        let certificate = Named {
            key: "tls.certificate",
            path: certificate,
        };
        let private_key = Named {
            key: "tls.private_key",
            path: private_key,
        };
        let (chain, key) = certified_key(certificate, private_key)?;
        let trust = client_ca
            .map(|path| {
                ClientTrust::load(Named {
                    key: "tls.client_ca",
                    path,
                })
            })
            .transpose()?;
        let builder =
            rustls::ServerConfig::builder_with_provider(Arc::new(suites::server_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Config {
                    key: "tls",
                    reason: format!("no usable protocol version: {e}"),
                })?;
        let builder = match &trust {
            Some(t) => builder.with_client_cert_verifier(Arc::new(AnyClientCertificate {
                subjects: t.subjects.clone(),
                algorithms: algorithms(),
            })),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| certificate.error(format!("cannot be used: {e}")))?;
        // The gate's cipher suite order, not the client's ([`suites`] says why).
        config.ignore_client_order = true;
        // Stateless session tickets (RFC 8446 section 4.6.1, RFC 5077), as OpenSSL-based
        // servers issue them by default: a returning client resumes without the gate keeping
        // anything per session. rustls' default, a 256-entry server-side cache, misses as soon
        // as more clients come back than that, and then every handshake is a full one. The
        // ticket key is random per configuration load and rotates every 6 hours; resumption
        // still runs a fresh key exchange (rustls offers psk_dhe_ke only), so tickets do not
        // weaken forward secrecy of the traffic.
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| TlsError::Config {
            key: "tls",
            reason: format!("cannot make a session ticket key: {e}"),
        })?;
        Ok(ServerTls {
            config: Arc::new(config),
            trust,
            algorithms: algorithms(),
            identities: identities::Identities::default(),
        })
    }

    /// After the handshake: who is the client? A chain this configuration already found
    /// trusted, and still within its validity period, is not verified again
    /// ([`identities`]: a resumed session brings back the same chain).
    pub fn client_identity(&self, conn: &rustls::ServerConnection) -> ClientIdentity {
        match conn.peer_certificates() {
            Some(chain) if !chain.is_empty() => self.identity_of(chain, UnixTime::now()),
            _ => ClientIdentity::default(),
        }
    }

    fn identity_of(&self, chain: &[CertificateDer<'static>], now: UnixTime) -> ClientIdentity {
        if let Some(known) = self.identities.get(chain, now) {
            return known;
        }
        let identity = self.check_chain(chain, now);
        self.identities.remember(chain, &identity);
        identity
    }

    /// Whether client certificates are requested at all (a `client_ca` is configured): without
    /// one no certificate connector can ever match.
    pub fn accepts_client_certificates(&self) -> bool {
        self.trust.is_some()
    }

    /// The chain check itself: leaf plus the intermediates the client sent, against
    /// `client_ca`, at `now`.
    pub fn check_chain(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> ClientIdentity {
        let Some(leaf) = chain.first() else {
            return ClientIdentity::default();
        };
        let names = certificate_names(leaf);
        let verdict = match &self.trust {
            None => Err("no client_ca is configured".to_string()),
            Some(trust) => webpki::EndEntityCert::try_from(leaf)
                .map_err(|e| format!("unparseable certificate: {e}"))
                .and_then(|ee| {
                    ee.verify_for_usage(
                        self.algorithms.all,
                        &trust.anchors,
                        &chain[1..],
                        now,
                        AnyExtendedKeyUsage,
                        None,
                        None,
                    )
                    .map(|_| ())
                    .map_err(|e| describe_error(&e))
                }),
        };
        ClientIdentity {
            presented: true,
            trusted: verdict.is_ok(),
            names,
            untrusted_reason: verdict.err(),
        }
    }
}

fn describe_error(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => {
            "unknown issuer (self-signed, or sent without its intermediates)".into()
        }
        webpki::Error::CertExpired { .. } => "expired".into(),
        webpki::Error::CertNotValidYet { .. } => "not valid yet".into(),
        other => format!("{other:?}"),
    }
}

/// Upstream (client leg): trust `ca` if given, else the public web PKI roots; optionally
/// present a client certificate (how Exchange Online recognises the gate).
pub fn upstream_client_config(
    ca: Option<&Path>,
    client_certificate: Option<&Path>,
    client_private_key: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let ca = Named {
                key: "upstream.ca",
                path,
            };
            for der in load_certs(ca)? {
                roots
                    .add(der)
                    .map_err(|e| ca.error(format!("not a usable trust anchor: {e}")))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let config = match (client_certificate, client_private_key) {
        (Some(cert), Some(key)) => {
            let cert = Named {
                key: "upstream.client_certificate",
                path: cert,
            };
            let key = Named {
                key: "upstream.client_private_key",
                path: key,
            };
            let (chain, key_der) = certified_key(cert, key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| cert.error(format!("cannot be used: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsError::Config {
                key: "upstream.client_private_key",
                reason: "is missing: a client certificate needs its key".into(),
            })
        }
        (None, Some(_)) => {
            return Err(TlsError::Config {
                key: "upstream.client_certificate",
                reason: "is missing: a private key needs its certificate".into(),
            })
        }
    };
    Ok(Arc::new(config))
}

mod identities;
mod suites;

#[cfg(test)]
mod tests;
