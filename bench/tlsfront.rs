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
//! With `--chunking` the front offers CHUNKING, as Exchange Online does, although smtp-sink
//! cannot take BDAT: after the handshake it speaks SMTP itself, command by command, passing
//! each command to smtp-sink and its reply back, with CHUNKING added to EHLO's reply, and
//! a message that came as BDAT chunks goes to smtp-sink as DATA at `LAST`, dot-stuffed.
//! smtp-sink is on loopback, so the upstream's CHUNKING costs its client no round trip.
//!
//! Session tickets are issued (as Postfix and OpenSSL servers do by default), so returning
//! clients resume. Prints one `tlsfront ready ...` line when it listens.

use clap::Parser;
use relaygate::wire::data::DotStuffer;
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
    /// Offer CHUNKING after STARTTLS (BDAT goes to smtp-sink as DATA).
    #[arg(long)]
    chunking: bool,
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

/// One (possibly multi-line) reply, whole.
async fn reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    loop {
        let start = reply.len();
        if r.read_until(b'\n', &mut reply).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if reply.get(start + 3) != Some(&b'-') {
            return Ok(reply);
        }
    }
}

/// `text` (lines ending in CRLF, or not) dot-stuffed by the gate's own stuffer and ended with
/// `CRLF.CRLF`.
fn stuffed(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 64 + 5);
    let mut stuffer = DotStuffer::default();
    stuffer.stuff(text, &mut out);
    stuffer.finish(text.ends_with(b"\r\n"), &mut out);
    out
}

/// `--chunking`: the session after STARTTLS, command by command (the module's doc says why).
async fn translate<C>(client: C, mut sink: BufReader<TcpStream>) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = BufReader::new(client);
    let mut line = Vec::new();
    let mut message = Vec::new();
    loop {
        line.clear();
        if (&mut client)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if let Some(args) = upper.strip_prefix(b"BDAT ") {
            let args = String::from_utf8_lossy(args);
            let mut words = args.split_ascii_whitespace();
            let size: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            let start = message.len();
            message.resize(start + size, 0);
            client.read_exact(&mut message[start..]).await?;
            if !last {
                let ok = format!("250 2.0.0 {size} octets received\r\n");
                client.get_mut().write_all(ok.as_bytes()).await?;
                continue;
            }
            sink.get_mut().write_all(b"DATA\r\n").await?;
            let go = reply(&mut sink).await?;
            let answer = if go.starts_with(b"354") {
                sink.get_mut().write_all(&stuffed(&message)).await?;
                reply(&mut sink).await?
            } else {
                go
            };
            message.clear();
            client.get_mut().write_all(&answer).await?;
            continue;
        }
        sink.get_mut().write_all(&line).await?;
        let mut answer = reply(&mut sink).await?;
        if upper.starts_with(b"EHLO") && answer.starts_with(b"250-") {
            // After the first line, which names the server.
            let at = answer.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            answer.splice(at..at, b"250-CHUNKING\r\n".iter().copied());
        }
        if upper.starts_with(b"DATA") && answer.starts_with(b"354") {
            client.get_mut().write_all(&answer).await?;
            // The text, as it came, up to its final dot.
            let mut text = Vec::new();
            loop {
                let start = text.len();
                if client.read_until(b'\n', &mut text).await? == 0 {
                    return Ok(());
                }
                if &text[start..] == b".\r\n" {
                    break;
                }
            }
            sink.get_mut().write_all(&text).await?;
            answer = reply(&mut sink).await?;
        }
        client.get_mut().write_all(&answer).await?;
        if upper.starts_with(b"QUIT") {
            return Ok(());
        }
    }
}

async fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    tls: TlsAcceptor,
    chunking: bool,
) -> std::io::Result<()> {
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
                let sink = sink(upstream, false).await?;
                if chunking {
                    return translate(session, sink).await;
                }
                return splice(session, sink).await;
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
        tokio::spawn(serve(client, args.upstream, tls.clone(), args.chunking));
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

    #[test]
    fn a_bdat_message_goes_to_smtp_sink_dot_stuffed_with_its_end() {
        assert_eq!(stuffed(b".a\r\nb\r\n..c\r\n"), b"..a\r\nb\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(b"no line end"), b"no line end\r\n.\r\n");
    }
}
