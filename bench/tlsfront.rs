//! A STARTTLS front for smtp-sink, for the bench scripts: the lightest TLS-speaking upstream
//! (`WAN_UPSTREAM=sink bash bench/wan.sh`). smtp-sink cannot speak TLS and HAProxy cannot
//! speak STARTTLS, so this answers the greeting and the first EHLO itself, offers STARTTLS,
//! takes the handshake, and from then on splices the TLS session to a fresh smtp-sink
//! connection (whose own greeting it swallows: the client had one already). A client that does
//! not start TLS (nginx's upstream leg) is spliced in clear text the same way, after an EHLO of
//! its own to smtp-sink. Loopback addresses only.
//!
//!   cargo run --release --example tlsfront -- --listen 127.0.0.1:26501 \
//!       --upstream 127.0.0.1:26500 --cert certs/gate.pem --key certs/gate.key
//!
//! Session tickets are issued (as Postfix and OpenSSL servers do by default), so returning
//! clients resume. Prints one `tlsfront ready ...` line when it listens.

use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Longest command line taken before TLS (RFC 5321 4.5.3.1.4: 512 octets).
const MAX_LINE: usize = 512;

#[derive(Parser, Debug)]
#[command(about = "STARTTLS front for smtp-sink (bench tool, loopback only)")]
struct Args {
    #[arg(long)]
    listen: SocketAddr,
    /// smtp-sink's address.
    #[arg(long)]
    upstream: SocketAddr,
    #[arg(long)]
    cert: String,
    #[arg(long)]
    key: String,
}

/// What a command line before TLS asks of the front.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// EHLO or HELO: answered here, STARTTLS offered.
    Hello,
    /// STARTTLS: 220, then the handshake.
    StartTls,
    /// QUIT before anything happened.
    Quit,
    /// Anything else: the client goes on in clear text; smtp-sink answers from here on.
    Clear,
}

fn step(line: &str) -> Step {
    let verb = line.split_ascii_whitespace().next().unwrap_or("");
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" | "HELO" => Step::Hello,
        "STARTTLS" => Step::StartTls,
        "QUIT" => Step::Quit,
        _ => Step::Clear,
    }
}

/// A connection to smtp-sink past its greeting and, with `hello`, past an EHLO of its own:
/// what it says there is not for the client, who has been greeted and answered already.
async fn sink(addr: SocketAddr, hello: bool) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut s = BufReader::new(stream);
    read_reply(&mut s).await?;
    if hello {
        s.get_mut().write_all(b"EHLO tlsfront.bench\r\n").await?;
        read_reply(&mut s).await?;
    }
    Ok(s)
}

/// Skip one (possibly multi-line) reply.
async fn read_reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// Copy both ways until either side closes. `sink`'s read buffer is empty here: everything
/// it said so far was a reply the front swallowed.
async fn splice<C>(mut client: C, sink: BufReader<TcpStream>) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut sink = sink.into_inner();
    tokio::io::copy_bidirectional(&mut client, &mut sink).await?;
    Ok(())
}

async fn serve(client: TcpStream, upstream: SocketAddr, tls: TlsAcceptor) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let mut client = BufReader::new(client);
    client
        .get_mut()
        .write_all(b"220 tlsfront.bench ESMTP\r\n")
        .await?;
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut client)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        match step(&line) {
            Step::Hello => {
                client
                    .get_mut()
                    .write_all(b"250-tlsfront.bench\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
                    .await?
            }
            Step::Quit => {
                client.get_mut().write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            Step::StartTls => {
                if !client.buffer().is_empty() {
                    // Bytes pipelined behind STARTTLS would cross into the TLS session.
                    client
                        .get_mut()
                        .write_all(b"554 5.5.0 Error: SMTP protocol synchronization\r\n")
                        .await?;
                    return Ok(());
                }
                client
                    .get_mut()
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                let session = tls.accept(client.into_inner()).await?;
                return splice(session, sink(upstream, false).await?).await;
            }
            Step::Clear => {
                // The line and anything pipelined behind it go to smtp-sink, which the
                // client takes for the server it has been talking to.
                let mut s = sink(upstream, true).await?;
                s.get_mut().write_all(line.as_bytes()).await?;
                s.get_mut().write_all(client.buffer()).await?;
                return splice(client.into_inner(), s).await;
            }
        }
    }
}

fn acceptor(cert: &str, key: &str) -> TlsAcceptor {
    let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificate");
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("certificate and key");
    config.ticketer = rustls::crypto::ring::Ticketer::new().expect("ticketer");
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.listen.ip().is_loopback() && args.upstream.ip().is_loopback(),
        "loopback addresses only"
    );
    let tls = acceptor(&args.cert, &args.key);
    let listener = relaygate::server::listen(args.listen, 4096).expect("listen");
    eprintln!(
        "tlsfront ready on {} for smtp-sink at {}",
        args.listen, args.upstream
    );
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(client, args.upstream, tls.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hello_starttls_and_quit_are_answered_before_tls() {
        assert_eq!(step("EHLO gate.bench\r\n"), Step::Hello);
        assert_eq!(step("helo x\r\n"), Step::Hello);
        assert_eq!(step("STARTTLS\r\n"), Step::StartTls);
        assert_eq!(step("QUIT\r\n"), Step::Quit);
        assert_eq!(step("MAIL FROM:<a@b>\r\n"), Step::Clear);
        assert_eq!(step("\r\n"), Step::Clear);
    }
}
