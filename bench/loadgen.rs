//! relaygate's own load generator: what smtp-source cannot do (STARTTLS with a client
//! certificate) and per-transaction latency percentiles.
//!
//!   cargo run --release --example loadgen -- ADDR SESSIONS CONCURRENCY MODE [SIZE]
//!
//! MODE is `plain`, `starttls` or `cert` (STARTTLS presenting certs/client-mail.contoso.com.pem).
//! Each session: banner, EHLO, [STARTTLS, EHLO], MAIL, RCPT, DATA, message, QUIT. Prints
//! sessions per second and p50/p99 of the whole transaction (connect to the final reply).
//! Loopback targets only; the counts are bounded by the arguments.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn reply(r: &mut BufReader<Box<dyn Io>>) -> std::io::Result<u16> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
        }
    }
}

async fn cmd(r: &mut BufReader<Box<dyn Io>>, line: &[u8], want: u16) -> std::io::Result<()> {
    r.get_mut().write_all(line).await?;
    let code = reply(r).await?;
    if code != want {
        return Err(std::io::Error::other(format!(
            "{} -> {code}",
            String::from_utf8_lossy(line).trim()
        )));
    }
    Ok(())
}

async fn session(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    message: Arc<Vec<u8>>,
) -> std::io::Result<Duration> {
    let start = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut r = BufReader::new(Box::new(tcp) as Box<dyn Io>);
    reply(&mut r).await?;
    cmd(&mut r, b"EHLO loadgen.contoso.com\r\n", 250).await?;
    if let Some(config) = tls {
        cmd(&mut r, b"STARTTLS\r\n", 220).await?;
        let raw = r.into_inner();
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(ServerName::try_from("localhost").unwrap(), raw)
            .await?;
        r = BufReader::new(Box::new(stream) as Box<dyn Io>);
        cmd(&mut r, b"EHLO loadgen.contoso.com\r\n", 250).await?;
    }
    cmd(&mut r, b"MAIL FROM:<app@contoso.com>\r\n", 250).await?;
    cmd(&mut r, b"RCPT TO:<bob@example.org>\r\n", 250).await?;
    cmd(&mut r, b"DATA\r\n", 354).await?;
    r.get_mut().write_all(&message).await?;
    cmd(&mut r, b".\r\n", 250).await?;
    let elapsed = start.elapsed();
    let _ = r.get_mut().write_all(b"QUIT\r\n").await;
    Ok(elapsed)
}

/// Accepts the gate's development certificate (this is a load generator, not a client to trust).
#[derive(Debug)]
struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

fn tls_config(with_cert: bool) -> Arc<rustls::ClientConfig> {
    relaygate::tls::install_crypto_provider();
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let b = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(algorithms)));
    let config = if with_cert {
        let chain: Vec<_> = CertificateDer::pem_file_iter("certs/client-mail.contoso.com.pem")
            .expect("run from the repository root")
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file("certs/client-mail.contoso.com.key").unwrap();
        b.with_client_auth_cert(chain, key).unwrap()
    } else {
        b.with_no_client_auth()
    };
    Arc::new(config)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: loadgen ADDR SESSIONS CONCURRENCY plain|starttls|cert [SIZE]");
        std::process::exit(2);
    }
    let addr: SocketAddr = args[1].parse().expect("ADDR is ip:port");
    assert!(addr.ip().is_loopback(), "loopback targets only");
    let sessions: usize = args[2].parse::<usize>().expect("SESSIONS").min(1_000_000);
    let concurrency: usize = args[3]
        .parse::<usize>()
        .expect("CONCURRENCY")
        .clamp(1, 1000);
    let tls = match args[4].as_str() {
        "plain" => None,
        "starttls" => Some(tls_config(false)),
        "cert" => Some(tls_config(true)),
        other => panic!("unknown mode {other}"),
    };
    let size: usize = args
        .get(5)
        .map(|s| s.parse().expect("SIZE"))
        .unwrap_or(2048);
    let mut message = b"From: app@contoso.com\r\nSubject: loadgen\r\n\r\n".to_vec();
    while message.len() < size {
        message.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
        );
    }
    let message = Arc::new(message);

    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (next, tls, message) = (Arc::clone(&next), tls.clone(), Arc::clone(&message));
        workers.push(tokio::spawn(async move {
            let mut times = Vec::new();
            let mut errors = 0usize;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < sessions {
                match tokio::time::timeout(
                    Duration::from_secs(30),
                    session(addr, tls.clone(), Arc::clone(&message)),
                )
                .await
                {
                    Ok(Ok(t)) => times.push(t),
                    _ => errors += 1,
                }
            }
            (times, errors)
        }));
    }
    let mut times = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (t, e) = w.await.unwrap();
        times.extend(t);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    times.sort();
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 - 1.0) * p).round() as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    println!(
        "{} {}: {} ok, {} errors, {:.1} sessions/s, p50 {:.2} ms, p99 {:.2} ms",
        args[4],
        addr,
        times.len(),
        errors,
        times.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}
