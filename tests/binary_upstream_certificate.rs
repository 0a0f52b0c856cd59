//! The gate's own upstream client certificate (`[upstream] client_certificate` and
//! `client_private_key`: how Exchange Online recognises the gate) renewed on disk while the real
//! binary runs: the next upstream connection presents the new certificate, never a pooled
//! connection opened with the old one; a replacement whose key does not match keeps the running
//! pair; the upstream asks for the certificate and records the one it got, as Exchange Online's
//! front door does for an OnPremises connector by certificate.

mod support;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use support::*;

/// An upstream TLS configuration for `localhost` that asks every client for a certificate and
/// accepts any the test PKI's root issued (so the recording upstream keeps the one it got).
fn requesting_client_certificates(pki: &Pki) -> Arc<rustls::ServerConfig> {
    relaygate::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.root).unwrap();
    Arc::new(
        rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
    )
}

/// A client certificate for the gate, `gate.contoso.com` from the test PKI's root with
/// `serial` as its serial number: (PEM certificate, PEM key, DER certificate).
fn gate_certificate(pki: &Pki, serial: u64) -> (String, String, CertificateDer<'static>) {
    let mut p = CertificateParams::new(vec!["gate.contoso.com".to_string()]).unwrap();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, format!("gate.contoso.com {serial}"));
    p.serial_number = Some(serial.into());
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &pki.root).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().clone())
}

/// Which of `known` (name, certificate) the upstream got in `received`'s TLS handshake, by
/// name, so that a failure reads `old` against `renewed` rather than two blobs of DER.
fn presented(
    received: &Received,
    known: &[(&'static str, &CertificateDer<'static>)],
) -> &'static str {
    match &received.client_certificate {
        None => "no certificate",
        Some(c) => known
            .iter()
            .find(|(_, k)| *k == c)
            .map_or("another certificate", |(name, _)| name),
    }
}

/// Replace `name` in the PKI's directory as an ACME client does: write beside it, rename over.
fn replace(pki: &Pki, name: &str, text: &str) {
    let next = pki.path(&format!("{name}.new"));
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, pki.path(name)).unwrap();
}

/// The binary relaying to `up` over required STARTTLS, presenting `upstream.pem` (with
/// `upstream.key`) of `pki`; `extra` goes into `[upstream]`.
fn gate_relaying_to(up: &Upstream, pki: &Pki, extra: &str) -> Binary {
    let upstream = format!(
        "{}client_certificate = \"{}\"\nclient_private_key = \"{}\"\n{extra}",
        tls_upstream(up.addr, "required", &pki.path("ca.pem")),
        pki.path("upstream.pem").display(),
        pki.path("upstream.key").display(),
    );
    start_edited("127.0.0.0/24", "", |config| {
        let start = config.find("[upstream]").expect("an [upstream] section");
        let end = start
            + config[start..]
                .find("\n[log]")
                .expect("[log] after [upstream]");
        format!("{}{upstream}{}", &config[..start], &config[end..])
    })
}

/// One client session with one message, up to the gate closing the connection after QUIT (so
/// its upstream connection is back in the pool, or closed, by then); returns what the upstream
/// got.
async fn relay_one(gate: &Binary, up: &Upstream, p1: &str) -> Received {
    let mut c = Client::connect(gate.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    let message = format!("From: {p1}\r\nSubject: renewal\r\n\r\nbody\r\n");
    let r = c
        .send_message(p1, &["bob@example.org"], message.as_bytes())
        .await;
    assert!(r.starts_with("250 "), "{r}");
    let received = up.next_completed().await;
    assert_eq!(received.mail, format!("MAIL FROM:<{p1}>"));
    c.quit().await;
    received
}

/// How many times the log says the certificate files were reloaded.
fn reloads(gate: &Binary) -> usize {
    gate.events()
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("certificate files changed: reloaded"))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_upstream_certificate_is_presented_on_a_new_connection_not_a_pooled_old_one() {
    let pki = Pki::new();
    let (cert, key, old) = gate_certificate(&pki, 1);
    replace(&pki, "upstream.pem", &cert);
    replace(&pki, "upstream.key", &key);
    let up = Upstream::start(Script {
        starttls: Some(requesting_client_certificates(&pki)),
        ..Script::default()
    })
    .await;
    let gate = gate_relaying_to(&up, &pki, "");

    let first = relay_one(&gate, &up, "first@contoso.com").await;
    assert!(first.tls);
    assert_eq!(presented(&first, &[("old", &old)]), "old");
    // The next session reuses the pooled connection: the pool is on, and holds one opened with
    // the certificate about to be renewed.
    let second = relay_one(&gate, &up, "second@contoso.com").await;
    assert_eq!(presented(&second, &[("old", &old)]), "old");
    assert_eq!(up.connections.load(Ordering::SeqCst), 1, "{}", gate.log());

    // Renewed as an ACME client does: the certificate, then its key, each renamed into place.
    let (cert, key, renewed) = gate_certificate(&pki, 2);
    replace(&pki, "upstream.pem", &cert);
    replace(&pki, "upstream.key", &key);
    eventually("the reload of the renewed files", || reloads(&gate) == 1);

    let third = relay_one(&gate, &up, "third@contoso.com").await;
    assert_eq!(
        up.connections.load(Ordering::SeqCst),
        2,
        "a new upstream connection, not the pooled one"
    );
    let known = [("old", &old), ("renewed", &renewed)];
    assert_eq!(presented(&third, &known), "renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_upstream_certificate_without_its_key_keeps_the_running_pair() {
    let pki = Pki::new();
    let (cert, key, old) = gate_certificate(&pki, 1);
    replace(&pki, "upstream.pem", &cert);
    replace(&pki, "upstream.key", &key);
    let up = Upstream::start(Script {
        starttls: Some(requesting_client_certificates(&pki)),
        ..Script::default()
    })
    .await;
    // No pool: every message opens a connection of its own, so each one shows the certificate
    // in force when it was sent.
    let gate = gate_relaying_to(&up, &pki, "pool_max_idle = 0\n");
    let before = relay_one(&gate, &up, "before@contoso.com").await;
    assert_eq!(presented(&before, &[("old", &old)]), "old");

    // The certificate arrives, its key does not (yet): the pair does not match.
    let (cert, key, renewed) = gate_certificate(&pki, 2);
    let known = [("old", &old), ("renewed", &renewed)];
    replace(&pki, "upstream.pem", &cert);
    eventually("the warning that the files do not load", || {
        gate.events().iter().any(|e| {
            e["level"] == "WARN"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("certificate files changed but do not load"))
                && e["error"].as_str().is_some_and(|m| {
                    m.contains("upstream.client_private_key")
                        && m.contains("is not the private key of")
                })
        })
    });
    let during = relay_one(&gate, &up, "during@contoso.com").await;
    assert_eq!(up.connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        presented(&during, &known),
        "old",
        "the running pair is still the one presented"
    );

    // The key follows: the pair matches, and the next connection presents it.
    replace(&pki, "upstream.key", &key);
    eventually("the reload once the key matches", || reloads(&gate) == 1);
    let after = relay_one(&gate, &up, "after@contoso.com").await;
    assert_eq!(presented(&after, &known), "renewed");
}
