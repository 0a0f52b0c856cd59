//! A raw SMTP client for the tests: it sends exactly the bytes a test gives it (pipelined,
//! smuggled, cut off) and reads whole replies, and it can STARTTLS with a client certificate.

use super::gate::Gate;
use super::pki::{ClientCert, Pki};
use super::WAIT;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A byte stream either leg can run over: TCP, TLS over TCP, an in-memory pipe.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Client {
    io: Box<dyn Io>,
    buf: Vec<u8>,
    /// How long a reply may take before the test fails; `None` on tokio's paused clock, where
    /// the test's own deadlines (in virtual time) bound the wait.
    patience: Option<Duration>,
}

impl Client {
    /// Connect and read nothing yet: for a PROXY header before the banner, or a banner that
    /// must not come.
    pub async fn open(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        Client {
            io: Box::new(s),
            buf: Vec::new(),
            patience: Some(WAIT),
        }
    }

    /// Connect and read the banner.
    pub async fn connect(addr: SocketAddr) -> Client {
        let mut c = Client::open(addr).await;
        let banner = c.reply().await;
        assert!(banner.starts_with("220 "), "{banner:?}");
        c
    }

    /// A client on an in-memory pipe to a session on tokio's paused clock, where a reply may
    /// take minutes of virtual time. Nothing is read yet.
    pub fn over(io: impl Io + 'static) -> Client {
        Client {
            io: Box::new(io),
            buf: Vec::new(),
            patience: None,
        }
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
                let read = self.io.read(&mut chunk);
                let read = match self.patience {
                    Some(patience) => timeout(patience, read)
                        .await
                        .unwrap_or_else(|_| panic!("no reply in time; so far {all:?}")),
                    None => read.await,
                };
                match read {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            };
            let Some(line) = line else {
                // Closed: a line cut off by the close is part of what was said.
                all.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.buf)));
                return all;
            };
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// Send a command line and return its reply, whatever it is.
    pub async fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Send a command line, expect a reply starting with `code`, return it.
    pub async fn cmd(&mut self, line: &str, code: &str) -> String {
        let r = self.ask(line).await;
        assert!(r.starts_with(code), "{line:?} got {r:?}, expected {code}");
        r
    }

    /// QUIT and wait for the gate to close: the session's upstream connection has been closed
    /// or returned to the pool by then.
    pub async fn quit(mut self) {
        self.cmd("QUIT", "221").await;
        assert_eq!(self.reply().await, "", "closed after QUIT");
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
            patience: c.patience,
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

    /// MAIL from app@contoso.com, RCPT(s) and DATA as one write, as a pipelining client sends
    /// them (RFC 2920 lets DATA end a group); the replies in order.
    pub async fn pipelined_envelope(&mut self, rcpts: &[&str]) -> Vec<String> {
        let mut group = String::from("MAIL FROM:<app@contoso.com>\r\n");
        for r in rcpts {
            group.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        group.push_str("DATA\r\n");
        self.send(group.as_bytes()).await;
        let mut replies = Vec::new();
        for _ in 0..rcpts.len() + 2 {
            replies.push(self.reply().await);
        }
        replies
    }
}

/// `message` as BDAT commands and payloads (RFC 3030): chunks of `chunk` octets (at least
/// one), the last one `BDAT <n> LAST`. Returns the bytes and the number of chunks.
pub fn bdat_wire(message: &[u8], chunk: usize) -> (Vec<u8>, usize) {
    let pieces: Vec<&[u8]> = if message.is_empty() {
        vec![message]
    } else {
        message.chunks(chunk.max(1)).collect()
    };
    let mut wire = Vec::with_capacity(message.len() + 32 * pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let last = if i + 1 == pieces.len() { " LAST" } else { "" };
        wire.extend_from_slice(format!("BDAT {}{last}\r\n", piece.len()).as_bytes());
        wire.extend_from_slice(piece);
    }
    (wire, pieces.len())
}

impl Client {
    /// `mail` (a whole MAIL command), RCPTs and `message` in BDAT chunks of `chunk` octets,
    /// all in one write, as a pipelining client (Exchange) sends them. Every reply before the
    /// last must be 250; returns the reply to `BDAT ... LAST`.
    pub async fn send_bdat(
        &mut self,
        mail: &str,
        rcpts: &[&str],
        message: &[u8],
        chunk: usize,
    ) -> String {
        let mut wire = format!("{mail}\r\n").into_bytes();
        for r in rcpts {
            wire.extend_from_slice(format!("RCPT TO:<{r}>\r\n").as_bytes());
        }
        let (chunks, n) = bdat_wire(message, chunk);
        wire.extend_from_slice(&chunks);
        self.send(&wire).await;
        for what in std::iter::once("MAIL".to_string())
            .chain(rcpts.iter().map(|r| format!("RCPT {r}")))
            .chain((1..n).map(|i| format!("BDAT chunk {i}")))
        {
            let r = self.reply().await;
            assert!(r.starts_with("250 "), "{what} got {r:?}");
        }
        self.reply().await
    }
}

/// A session on `g` that has said EHLO as an application server of contoso.com.
pub async fn session(g: &Gate) -> Client {
    let mut c = Client::connect(g.addr).await;
    c.cmd("EHLO app.contoso.com", "250").await;
    c
}
