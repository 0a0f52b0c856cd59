//! relaygate's own load generator: what smtp-source cannot do (STARTTLS with a client
//! certificate), per-message latency percentiles, pacing and held sessions.
//!
//!   cargo run --release --example loadgen -- ADDR SESSIONS CONCURRENCY MODE [SIZE]
//!       [--per-session M] [--pipeline] [--no-resume] [--rate R] [--duration SECS] [--hold SECS]
//!
//! MODE is `plain`, `starttls` or `cert` (STARTTLS presenting certs/client-mail.contoso.com.pem).
//! Each session: banner, EHLO, [STARTTLS, EHLO], M times (MAIL, RCPT, DATA, message), QUIT;
//! M is 1 unless `--per-session` says otherwise (0: a session without mail, for handshake
//! rates); `--pipeline` sends MAIL, RCPT and DATA as one group (RFC 2920); `--no-resume`
//! makes every TLS handshake a full one (by default the client resumes where the server lets it). `--rate` paces the start of messages across all sessions (messages per second),
//! `--duration` stops starting messages after that many seconds (the soak). `--hold SECS`
//! instead opens SESSIONS sessions (CONCURRENCY handshakes at a time), prints `holding N
//! sessions` once all are up, keeps them for SECS, then quits them (the memory of many TLS
//! sessions). Prints sessions per second, messages per second, and p50/p99 of: the session
//! (connect to the last final reply), the transaction (MAIL FROM sent to the final reply) and
//! the text (end of the client's text, dot included, to the final reply); then a `kv` line
//! for scripts. Every wait is bounded (30 s a step); loopback targets only.

use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// `--pipeline`: the envelope and DATA as one group.
const ENVELOPE: &[u8] = b"MAIL FROM:<app@contoso.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n";

/// Longest wait for any one step (connect, handshake, a reply, a write).
const STEP: Duration = Duration::from_secs(30);

#[derive(Parser, Debug)]
#[command(about = "SMTP load generator (bench tool, loopback only)")]
struct Args {
    addr: SocketAddr,
    sessions: usize,
    concurrency: usize,
    #[arg(value_enum)]
    mode: Mode,
    /// Message size in bytes.
    #[arg(default_value_t = 2048)]
    size: usize,
    /// Messages per session (0: connect, handshake and quit).
    #[arg(long = "per-session", default_value_t = 1)]
    per_session: usize,
    /// Start at most this many messages per second, over all sessions.
    #[arg(long)]
    rate: Option<f64>,
    /// Start no message after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Open SESSIONS sessions, hold them this many seconds, then quit.
    #[arg(long)]
    hold: Option<f64>,
    /// Send MAIL, RCPT and DATA in one write (RFC 2920), as mail servers do.
    #[arg(long)]
    pipeline: bool,
    /// A full TLS handshake every session: no resumption (session IDs or tickets).
    #[arg(long = "no-resume")]
    no_resume: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Mode {
    Plain,
    Starttls,
    Cert,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = BufReader<Box<dyn Io>>;

/// One step, bounded by `STEP`.
async fn step<T>(f: impl std::future::Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

async fn reply(r: &mut Conn) -> std::io::Result<u16> {
    loop {
        let mut line = String::new();
        if step(r.read_line(&mut line)).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0));
        }
    }
}

async fn cmd(r: &mut Conn, line: &[u8], want: u16) -> std::io::Result<()> {
    step(r.get_mut().write_all(line)).await?;
    let code = reply(r).await?;
    if code != want {
        return Err(std::io::Error::other(format!(
            "{} -> {code}",
            String::from_utf8_lossy(line).trim()
        )));
    }
    Ok(())
}

/// What every session shares: where, how, what, and the pacing.
struct Plan {
    addr: SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The message with its terminating dot.
    text: Vec<u8>,
    per_session: usize,
    pipeline: bool,
    start: Instant,
    /// Time between message starts (`--rate`), and the next message's slot.
    gap: Option<Duration>,
    slot: AtomicU64,
    stop_at: Option<Instant>,
}

impl Plan {
    fn stopped(&self) -> bool {
        self.stop_at.is_some_and(|t| Instant::now() >= t)
    }
    /// Waits for this message's slot under `--rate`.
    async fn pace(&self) {
        if let Some(gap) = self.gap {
            let k = self.slot.fetch_add(1, Ordering::Relaxed);
            let at = self.start + gap.mul_f64(k as f64);
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[derive(Default)]
struct Stats {
    session: Vec<Duration>,
    txn: Vec<Duration>,
    text: Vec<Duration>,
    /// Messages the server answered 250 to (what a soak compares with the sink's count).
    accepted: usize,
    errors: usize,
}

/// Connect, banner, EHLO and, with TLS, STARTTLS and EHLO again.
async fn open(plan: &Plan) -> std::io::Result<Conn> {
    let tcp = step(TcpStream::connect(plan.addr)).await?;
    tcp.set_nodelay(true)?;
    let mut r = BufReader::new(Box::new(tcp) as Box<dyn Io>);
    reply(&mut r).await?;
    cmd(&mut r, b"EHLO loadgen.contoso.com\r\n", 250).await?;
    if let Some(config) = &plan.tls {
        cmd(&mut r, b"STARTTLS\r\n", 220).await?;
        let raw = r.into_inner();
        let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
        let stream = step(connector.connect(name, raw)).await?;
        r = BufReader::new(Box::new(stream) as Box<dyn Io>);
        cmd(&mut r, b"EHLO loadgen.contoso.com\r\n", 250).await?;
    }
    Ok(r)
}

async fn session(plan: &Plan, stats: &mut Stats) -> std::io::Result<()> {
    let start = Instant::now();
    let mut r = open(plan).await?;
    for _ in 0..plan.per_session {
        plan.pace().await;
        if plan.stopped() {
            break;
        }
        let t0 = Instant::now();
        if plan.pipeline {
            step(r.get_mut().write_all(ENVELOPE)).await?;
            for want in [250, 250, 354] {
                let code = reply(&mut r).await?;
                if code != want {
                    return Err(std::io::Error::other(format!("pipelined {code}")));
                }
            }
        } else {
            cmd(&mut r, b"MAIL FROM:<app@contoso.com>\r\n", 250).await?;
            cmd(&mut r, b"RCPT TO:<bob@example.org>\r\n", 250).await?;
            cmd(&mut r, b"DATA\r\n", 354).await?;
        }
        step(r.get_mut().write_all(&plan.text)).await?;
        let t1 = Instant::now();
        let code = reply(&mut r).await?;
        if code != 250 {
            return Err(std::io::Error::other(format!("final reply {code}")));
        }
        stats.accepted += 1;
        stats.text.push(t1.elapsed());
        stats.txn.push(t0.elapsed());
    }
    stats.session.push(start.elapsed());
    let _ = step(r.get_mut().write_all(b"QUIT\r\n")).await;
    let _ = reply(&mut r).await;
    Ok(())
}

/// `--hold`: SESSIONS sessions up at once, `concurrency` handshakes at a time.
async fn hold(plan: Arc<Plan>, sessions: usize, concurrency: usize, secs: f64) {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..sessions {
        let (plan, gate) = (Arc::clone(&plan), Arc::clone(&gate));
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open(&plan).await
        });
    }
    let mut held = Vec::new();
    let mut errors = 0;
    while let Some(opened) = opening.join_next().await {
        match opened {
            Ok(Ok(conn)) => held.push(conn),
            _ => errors += 1,
        }
    }
    println!("holding {} sessions, {errors} errors", held.len());
    tokio::time::sleep(Duration::from_secs_f64(secs.clamp(0.0, 3600.0))).await;
    for r in &mut held {
        let _ = tokio::time::timeout(
            Duration::from_millis(100),
            r.get_mut().write_all(b"QUIT\r\n"),
        )
        .await;
    }
    println!("kv held={} errors={errors}", held.len());
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

fn tls_config(with_cert: bool, resume: bool) -> Arc<rustls::ClientConfig> {
    relaygate::tls::install_crypto_provider();
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let b = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(algorithms)));
    let mut config = if with_cert {
        let chain: Vec<_> = CertificateDer::pem_file_iter("certs/client-mail.contoso.com.pem")
            .expect("run from the repository root")
            .collect::<Result<_, _>>()
            .expect("certs/client-mail.contoso.com.pem");
        let key = PrivateKeyDer::from_pem_file("certs/client-mail.contoso.com.key")
            .expect("certs/client-mail.contoso.com.key");
        b.with_client_auth_cert(chain, key)
            .expect("the client certificate and key")
    } else {
        b.with_no_client_auth()
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(config)
}

fn pct(times: &mut [Duration], p: f64) -> f64 {
    times.sort();
    times
        .get(((times.len() as f64 - 1.0) * p).round() as usize)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(args.addr.ip().is_loopback(), "loopback targets only");
    let tls = match args.mode {
        Mode::Plain => None,
        Mode::Starttls => Some(tls_config(false, !args.no_resume)),
        Mode::Cert => Some(tls_config(true, !args.no_resume)),
    };
    let mode = format!("{:?}", args.mode).to_lowercase();
    let mut text = b"From: app@contoso.com\r\nSubject: loadgen\r\n\r\n".to_vec();
    while text.len() < args.size {
        text.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
        );
    }
    text.extend_from_slice(b".\r\n");
    let start = Instant::now();
    let plan = Arc::new(Plan {
        addr: args.addr,
        tls,
        text,
        per_session: args.per_session.min(100_000),
        pipeline: args.pipeline,
        start,
        gap: args
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r)),
        slot: AtomicU64::new(0),
        stop_at: args
            .duration
            .map(|s| start + Duration::from_secs_f64(s.clamp(0.0, 86_400.0))),
    });
    let sessions = args.sessions.min(1_000_000);
    if let Some(secs) = args.hold {
        hold(plan, sessions, args.concurrency.clamp(1, 1000), secs).await;
        return;
    }

    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.clamp(1, 1000) {
        let (next, plan) = (Arc::clone(&next), Arc::clone(&plan));
        workers.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            while !plan.stopped() && next.fetch_add(1, Ordering::Relaxed) < sessions {
                if session(&plan, &mut stats).await.is_err() {
                    stats.errors += 1;
                }
            }
            stats
        }));
    }
    let mut all = Stats::default();
    for w in workers {
        let Ok(s) = w.await else {
            all.errors += 1;
            continue;
        };
        all.session.extend(s.session);
        all.txn.extend(s.txn);
        all.text.extend(s.text);
        all.accepted += s.accepted;
        all.errors += s.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    let (ok, msgs) = (all.session.len(), all.accepted);
    let (s50, s99) = (pct(&mut all.session, 0.50), pct(&mut all.session, 0.99));
    let (m50, m99) = (pct(&mut all.txn, 0.50), pct(&mut all.txn, 0.99));
    let (t50, t99) = (pct(&mut all.text, 0.50), pct(&mut all.text, 0.99));
    println!(
        "{mode} {}: {ok} ok, {} errors, {:.1} sessions/s, p50 {s50:.2} ms, p99 {s99:.2} ms",
        args.addr,
        all.errors,
        ok as f64 / secs,
    );
    println!(
        "{mode} {}: {msgs} messages answered 250, {:.1} msgs/s; MAIL to final reply p50 {m50:.2} ms, p99 {m99:.2} ms; end of text to final reply p50 {t50:.2} ms, p99 {t99:.2} ms",
        args.addr,
        msgs as f64 / secs,
    );
    println!(
        "kv sessions={ok} errors={} accepted={msgs} secs={secs:.3} sessions_per_s={:.1} msgs_per_s={:.1} session_p50={s50:.2} session_p99={s99:.2} txn_p50={m50:.2} txn_p99={m99:.2} text_p50={t50:.2} text_p99={t99:.2}",
        all.errors,
        ok as f64 / secs,
        msgs as f64 / secs,
    );
}
