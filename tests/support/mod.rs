//! Shared pieces of the end-to-end tests: a test PKI (rcgen), the gate on a loopback port, a
//! scriptable recording upstream SMTP server, and a raw SMTP client that can STARTTLS with a
//! client certificate.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use relaygate::config::Config;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

pub const WAIT: Duration = Duration::from_secs(15);

// ------------------------------------------------------------------------------------------
// PKI
// ------------------------------------------------------------------------------------------

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

    fn client_config(&self, cert: Option<ClientCert>) -> Arc<rustls::ClientConfig> {
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

// ------------------------------------------------------------------------------------------
// The gate
// ------------------------------------------------------------------------------------------

/// The tenant of the rules document's worked examples, with 127.0.0.1 standing in for the
/// on-premises IP (connector C-IP covers 127.0.0.0/24).
pub const BASELINE_TENANT: &str = r#"
[[accepted_domains]]
domain = "contoso.com"

[[accepted_domains]]
domain = "fabrikam.com"
domain_type = "InternalRelay"
match_subdomains = true

[[inbound_connectors]]
name = "C-IP"
connector_type = "OnPremises"
sender_ip_addresses = ["127.0.0.0/24"]

[[inbound_connectors]]
name = "C-CERT"
connector_type = "OnPremises"
tls_sender_certificate_name = "*.contoso.com"
"#;

/// The same tenant where 127.0.0.1 matches no IP connector: only a certificate can authorise.
pub fn foreign_ip_tenant() -> String {
    BASELINE_TENANT.replace("127.0.0.0/24", "203.0.113.0/24")
}

pub struct Gate {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// `[upstream]` for the recording server.
pub fn smtp_upstream(addr: SocketAddr) -> String {
    format!("[upstream]\nkind = \"smtp\"\naddress = \"{addr}\"\ntls = \"none\"\nreply_timeout_secs = 3\ndata_end_timeout_secs = 3\nconnect_timeout_secs = 3\n")
}

/// Start a gate: `server_extra` goes into `[server]`, `rest` is every other section.
pub async fn start_gate(server_extra: &str, rest: &str) -> Gate {
    let text = format!("[server]\nhostname = \"gate.contoso.com\"\n{server_extra}\n{rest}");
    let settings = Config::parse(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .validate()
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(relaygate::server::run(
        vec![listener],
        Arc::new(settings),
        async {
            let _ = stopped.await;
        },
    ));
    Gate {
        addr,
        stop: Some(stop),
    }
}

/// Check a refusal line: it starts with `expected` and ends with Exchange Online's suffix
/// ` [gate.contoso.com YYYY-MM-DDTHH:MM:SS.mmmZ 16HEX]`.
pub fn assert_exo_reply(reply: &str, expected: &str) {
    let line = reply.lines().last().unwrap_or("");
    assert!(
        line.starts_with(expected),
        "reply {reply:?} does not start with {expected:?}"
    );
    // The suffix is the last " [...]" of the line; any text between is the reply's own.
    let suffix = &line[line.rfind(" [").unwrap_or(expected.len())..];
    let b = suffix.as_bytes();
    let ok = suffix.len() == " [gate.contoso.com 2026-11-22T08:26:31.592Z 08DB72B25E50380B]".len()
        && suffix.starts_with(" [gate.contoso.com ")
        && suffix.ends_with(']')
        && b[23] == b'-'
        && b[26] == b'-'
        && b[29] == b'T'
        && b[38] == b'.'
        && b[42] == b'Z'
        && b[43] == b' '
        && suffix[44..60]
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c));
    assert!(ok, "suffix {suffix:?} is not Exchange Online's shape");
}

// ------------------------------------------------------------------------------------------
// Recording upstream SMTP server
// ------------------------------------------------------------------------------------------

/// What the upstream does, per test.
#[derive(Clone, Default)]
pub struct Script {
    pub greeting: Option<&'static str>,
    /// Recipients answered with this line instead of 250.
    pub refuse_rcpt: Vec<(&'static str, &'static str)>,
    /// Answer MAIL with this instead of 250.
    pub mail_reply: Option<&'static str>,
    pub data_reply: Option<&'static str>,
    pub end_reply: Option<&'static str>,
    pub drop_after_mail: bool,
    /// Close the connection after this many bytes of message text.
    pub drop_during_data_after: Option<usize>,
    /// Receive the final dot, then close without answering.
    pub drop_after_dot: bool,
    /// Receive the final dot, then say nothing.
    pub silent_after_dot: bool,
    /// Close the connection after answering each message (an upstream that does not keep
    /// idle connections).
    pub hang_up_after_message: bool,
    /// Offer STARTTLS with this server configuration.
    pub starttls: Option<Arc<rustls::ServerConfig>>,
    /// Offer CHUNKING and take BDAT (RFC 3030).
    pub chunking: bool,
    /// Answer the BDAT chunk with this number (1-based, not the LAST one) with this line.
    pub refuse_chunk: Option<(usize, &'static str)>,
    /// Do not offer PIPELINING.
    pub no_pipelining: bool,
    /// At the RCPT with this number on a connection (1-based, counted per connection), fail
    /// instead of answering: a recipient the gate must not lose track of.
    pub rcpt_fault: Option<(usize, Fault)>,
    /// A line written right after the EHLO reply, in the same write: a reply to no command,
    /// which shifts every later reply by one if the gate reads it as the next one.
    pub ehlo_trailer: Option<&'static str>,
    /// A line written right after each RCPT reply, in the same write (as `ehlo_trailer`).
    pub rcpt_trailer: Option<&'static str>,
    /// The reply to the first message's end (final dot or `BDAT ... LAST`) this upstream
    /// receives, over any connection; later messages get `end_reply`. For faults that must not
    /// follow the connection into the next session.
    pub first_end_reply: Option<&'static str>,
    /// A line written on its own after the first message's final reply, when the test says so.
    pub stray_after_first_message: Option<Stray>,
}

/// How the upstream fails at a RCPT (`Script::rcpt_fault`).
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Close the connection without a word.
    Close,
    /// Answer with this line, then close (as a server does after a 421).
    ReplyAndClose(&'static str),
    /// Never answer: keep the connection open and read (and ignore) whatever comes, until the
    /// gate gives up and closes it.
    Silent,
}

/// A reply to no command, arriving after a message's final reply in a write of its own.
///
/// The upstream waits for `go` before writing it, and the test gives `go` once the gate has
/// passed the final reply to its client: so the gate has certainly read that reply before the
/// stray line arrives, and cannot have seen both in one read. The upstream reads no further
/// command before the line is written, so the line precedes every later reply on the wire.
#[derive(Clone)]
pub struct Stray {
    pub line: &'static str,
    pub go: Arc<tokio::sync::Notify>,
    /// Notified once the line has been written.
    pub written: Arc<tokio::sync::Notify>,
}

impl Stray {
    pub fn new(line: &'static str) -> Stray {
        Stray {
            line,
            go: Arc::new(tokio::sync::Notify::new()),
            written: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// One transaction as the upstream saw it.
#[derive(Clone, Debug, Default)]
pub struct Received {
    pub mail: String,
    pub rcpts: Vec<String>,
    /// DATA as on the wire (still dot-stuffed), without the final `.\r\n`.
    pub data: Vec<u8>,
    /// The final dot arrived.
    pub completed: bool,
    /// The transaction ran over TLS.
    pub tls: bool,
    /// RCPT arrived together with MAIL (PIPELINING).
    pub pipelined: bool,
    /// BDAT commands received (0: the message came with DATA). With BDAT, `data` is the
    /// chunks' raw bytes, not dot-stuffed.
    pub bdat_chunks: usize,
    /// More input was already waiting when a non-LAST chunk was answered (the client did not
    /// wait for that reply: it pipelined).
    pub bdat_pipelined: bool,
}

pub struct Upstream {
    pub addr: SocketAddr,
    /// TCP connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    pub log: Arc<Mutex<Vec<Received>>>,
    done: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
}

impl Upstream {
    pub async fn start(script: Script) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::unbounded_channel();
        let l2 = Arc::clone(&log);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(upstream_session(
                    s,
                    script.clone(),
                    Arc::clone(&l2),
                    tx.clone(),
                ));
            }
        });
        Upstream {
            addr,
            connections,
            log,
            done: tokio::sync::Mutex::new(rx),
        }
    }

    /// Wait (bounded) until a transaction has received its final dot; return it.
    pub async fn next_completed(&self) -> Received {
        let mut rx = self.done.lock().await;
        timeout(WAIT, rx.recv())
            .await
            .expect("upstream got no complete message in time");
        drop(rx);
        self.log
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|t| t.completed)
            .cloned()
            .unwrap()
    }

    pub fn completed(&self) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.completed)
            .count()
    }

    pub fn transactions(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }
}

async fn read_line(s: &mut Box<dyn Io>, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            return Some(String::from_utf8_lossy(&line).trim_end().to_string());
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn upstream_session(
    s: TcpStream,
    script: Script,
    log: Arc<Mutex<Vec<Received>>>,
    done: mpsc::UnboundedSender<()>,
) {
    let mut s: Box<dyn Io> = Box::new(s);
    let mut tls = false;
    let greeting = script.greeting.unwrap_or("220 upstream.test ESMTP");
    if s.write_all(format!("{greeting}\r\n").as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    let mut current: Option<usize> = None;
    let mut rcpts_on_connection = 0usize;
    // The reply to a message's end, and whether it is the first message this upstream
    // completed (over any connection): that one may get `first_end_reply`, and the stray line.
    let end_reply = |log: &Arc<Mutex<Vec<Received>>>| -> (&'static str, bool) {
        let first = log.lock().unwrap().iter().filter(|t| t.completed).count() == 1;
        let default = script.end_reply.unwrap_or("250 2.0.0 queued as UPSTREAM1");
        match script.first_end_reply {
            Some(r) if first => (r, first),
            _ => (default, first),
        }
    };
    while let Some(line) = read_line(&mut s, &mut buf).await {
        let upper = line.to_ascii_uppercase();
        // Set when this command ended the upstream's first message (for the stray line).
        let mut ended_first_message = false;
        let reply: String = if upper.starts_with("EHLO") {
            let starttls = if script.starttls.is_some() && !tls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            let chunking = if script.chunking {
                "250-CHUNKING\r\n"
            } else {
                ""
            };
            let pipelining = if script.no_pipelining {
                ""
            } else {
                "250-PIPELINING\r\n"
            };
            let trailer = script
                .ehlo_trailer
                .map(|t| format!("\r\n{t}"))
                .unwrap_or_default();
            format!("250-upstream.test\r\n{pipelining}{starttls}{chunking}250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 100000000{trailer}")
        } else if upper == "STARTTLS" && script.starttls.is_some() && !tls {
            if s.write_all(b"220 2.0.0 ready\r\n").await.is_err() {
                return;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(script.starttls.clone().unwrap());
            match acceptor.accept(s).await {
                Ok(t) => s = Box::new(t),
                Err(_) => return,
            }
            tls = true;
            buf.clear();
            continue;
        } else if upper.starts_with("HELO") {
            "250 upstream.test".into()
        } else if upper.starts_with("MAIL") {
            let mut l = log.lock().unwrap();
            l.push(Received {
                mail: line.clone(),
                tls,
                pipelined: buf.starts_with(b"RCPT"),
                ..Default::default()
            });
            current = Some(l.len() - 1);
            drop(l);
            if script.drop_after_mail {
                return;
            }
            script.mail_reply.unwrap_or("250 2.1.0 ok").into()
        } else if upper.starts_with("RCPT") {
            if let Some(i) = current {
                log.lock().unwrap()[i].rcpts.push(line.clone());
            }
            rcpts_on_connection += 1;
            match script.rcpt_fault {
                Some((n, fault)) if n == rcpts_on_connection => {
                    match fault {
                        Fault::Close => {}
                        Fault::ReplyAndClose(r) => {
                            let _ = s.write_all(format!("{r}\r\n").as_bytes()).await;
                        }
                        Fault::Silent => {
                            let mut chunk = [0u8; 8192];
                            while let Ok(n) = s.read(&mut chunk).await {
                                if n == 0 {
                                    break;
                                }
                            }
                        }
                    }
                    return;
                }
                _ => {}
            }
            let reply = match script.refuse_rcpt.iter().find(|(a, _)| line.contains(a)) {
                Some((_, r)) => r.to_string(),
                None => "250 2.1.5 ok".into(),
            };
            match script.rcpt_trailer {
                Some(t) => format!("{reply}\r\n{t}"),
                None => reply,
            }
        } else if upper.starts_with("BDAT ") && script.chunking {
            // BDAT <size> [LAST]: exactly <size> raw bytes follow the command line.
            let mut words = upper.split_whitespace().skip(1);
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            while buf.len() < size {
                let mut chunk = [0u8; 65536];
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => 0,
                    Ok(n) => n,
                };
                if n == 0 {
                    if let Some(i) = current {
                        log.lock().unwrap()[i].data.extend_from_slice(&buf);
                    }
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let bytes: Vec<u8> = buf.drain(..size).collect();
            let (chunks, received) = match current {
                Some(i) => {
                    let mut l = log.lock().unwrap();
                    l[i].data.extend_from_slice(&bytes);
                    l[i].bdat_chunks += 1;
                    (l[i].bdat_chunks, l[i].data.len())
                }
                None => (0, 0),
            };
            if script
                .drop_during_data_after
                .is_some_and(|limit| received >= limit)
            {
                return;
            }
            if !last {
                if !buf.is_empty() {
                    if let Some(i) = current {
                        log.lock().unwrap()[i].bdat_pipelined = true;
                    }
                }
                match script.refuse_chunk {
                    Some((n, r)) if n == chunks => r.to_string(),
                    _ => format!("250 2.0.0 {size} octets received"),
                }
            } else {
                if let Some(i) = current {
                    log.lock().unwrap()[i].completed = true;
                }
                let _ = done.send(());
                if script.drop_after_dot {
                    return;
                }
                let (reply, first) = end_reply(&log);
                ended_first_message = first;
                reply.to_string()
            }
        } else if upper == "DATA" {
            if let Some(r) = script.data_reply {
                r.to_string()
            } else {
                if s.write_all(b"354 go ahead\r\n").await.is_err() {
                    return;
                }
                // Read to CRLF.CRLF, raw.
                let mut data = std::mem::take(&mut buf);
                let mut scanned: usize = 0;
                let end = loop {
                    if let Some(limit) = script.drop_during_data_after {
                        if data.len() >= limit {
                            if let Some(i) = current {
                                log.lock().unwrap()[i].data = data.clone();
                            }
                            return;
                        }
                    }
                    if data.starts_with(b".\r\n") {
                        break 0;
                    }
                    // Scan only what is new (plus 4 bytes of overlap): linear in the size.
                    let from = scanned.saturating_sub(4);
                    if let Some(p) = data[from..].windows(5).position(|w| w == b"\r\n.\r\n") {
                        break from + p + 2;
                    }
                    scanned = data.len();
                    let mut chunk = [0u8; 65536];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => {
                            if let Some(i) = current {
                                log.lock().unwrap()[i].data = data.clone();
                            }
                            return;
                        }
                        Ok(n) => data.extend_from_slice(&chunk[..n]),
                    }
                };
                buf = data.split_off(end + 3);
                data.truncate(end);
                if let Some(i) = current {
                    let mut l = log.lock().unwrap();
                    l[i].data = data;
                    l[i].completed = true;
                }
                let _ = done.send(());
                if script.drop_after_dot {
                    return;
                }
                if script.silent_after_dot {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let (reply, first) = end_reply(&log);
                if script.hang_up_after_message {
                    let _ = s.write_all(format!("{reply}\r\n").as_bytes()).await;
                    return;
                }
                ended_first_message = first;
                reply.to_string()
            }
        } else if upper == "RSET" {
            current = None;
            "250 2.0.0 reset".into()
        } else if upper == "QUIT" {
            let _ = s.write_all(b"221 bye\r\n").await;
            return;
        } else if upper == "NOOP" {
            "250 ok".into()
        } else {
            "502 5.5.1 unknown".into()
        };
        if s.write_all(format!("{reply}\r\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
        if let (true, Some(stray)) = (ended_first_message, &script.stray_after_first_message) {
            if timeout(WAIT, stray.go.notified()).await.is_err() {
                return;
            }
            if s.write_all(format!("{}\r\n", stray.line).as_bytes())
                .await
                .is_err()
            {
                return;
            }
            stray.written.notify_one();
        }
    }
}

// ------------------------------------------------------------------------------------------
// SMTP client
// ------------------------------------------------------------------------------------------

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    io: Box<dyn Io>,
    buf: Vec<u8>,
}

impl Client {
    /// Connect and read the banner.
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        let mut c = Client {
            io: Box::new(s),
            buf: Vec::new(),
        };
        let banner = c.reply().await;
        assert!(banner.starts_with("220 "), "{banner:?}");
        c
    }

    /// One whole reply (every line, CRLF kept); empty when the connection closed.
    pub async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let line = loop {
                if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                    let l: Vec<u8> = self.buf.drain(..=i).collect();
                    break Some(String::from_utf8_lossy(&l).into_owned());
                }
                let mut chunk = [0u8; 4096];
                match timeout(WAIT, self.io.read(&mut chunk)).await {
                    Err(_) => panic!("no reply in time; so far {all:?}"),
                    Ok(Ok(0)) | Ok(Err(_)) => break None,
                    Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(line) = line else { return all };
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Send a command line, expect a reply starting with `code`, return it.
    pub async fn cmd(&mut self, line: &str, code: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        let r = self.reply().await;
        assert!(r.starts_with(code), "{line:?} got {r:?}, expected {code}");
        r
    }

    /// STARTTLS with an optional client certificate; EHLO again afterwards.
    pub async fn starttls(self, pki: &Pki, cert: Option<ClientCert>) -> Client {
        let mut c = self;
        c.cmd("STARTTLS", "220").await;
        let mut c = c.handshake(pki, cert).await;
        c.cmd("EHLO client.contoso.com", "250").await;
        c
    }

    /// The TLS handshake itself, after the server's 220 to STARTTLS.
    pub async fn handshake(self, pki: &Pki, cert: Option<ClientCert>) -> Client {
        let c = self;
        assert!(c.buf.is_empty(), "the server sent more than its 220");
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(cert));
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), c.io)
            .await
            .expect("handshake");
        Client {
            io: Box::new(tls),
            buf: Vec::new(),
        }
    }

    /// MAIL, RCPTs (each expected 250), DATA; returns the final reply to the message.
    pub async fn send_message(&mut self, from: &str, rcpts: &[&str], message: &[u8]) -> String {
        self.cmd(&format!("MAIL FROM:<{from}>"), "250").await;
        for r in rcpts {
            self.cmd(&format!("RCPT TO:<{r}>"), "250").await;
        }
        self.cmd("DATA", "354").await;
        self.send(message).await;
        self.send(b".\r\n").await;
        self.reply().await
    }
}

/// The message as the upstream stored it, without the gate's `Received:` field (first header,
/// with its folded continuation lines).
pub fn strip_received(data: &[u8]) -> &[u8] {
    assert!(data.starts_with(b"Received: "), "no Received: first");
    let mut i = 0;
    loop {
        let nl = data[i..].iter().position(|b| *b == b'\n').unwrap() + i + 1;
        i = nl;
        if !(data.get(i) == Some(&b'\t') || data.get(i) == Some(&b' ')) {
            return &data[i..];
        }
    }
}

/// A temporary directory for a directory upstream.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
