//! One client connection, from banner to QUIT.
//!
//! "Parse what is buffered, else read more" (mini-redis): commands are taken from the input
//! buffer one line at a time, so pipelined commands need no special code, and replies are
//! flushed whenever the buffer holds no further complete command (RFC 2920). The session
//! gathers facts and asks the policy; it never decides a rule itself.

use super::command::parse_command;
use super::data::{DataDecoder, DataError};
use super::header::{domain_of, header_sender, HeaderCollector};
use super::reply::{exo_suffix, rfc5322_date, Reply, SessionId};
use crate::config::{Mode, RejectStage, Settings};
use crate::metrics::metrics;
use crate::policy::{
    self, suggest_fix, AcceptReason, Comparison, Condition1, Condition2, HeaderSender,
    RecipientVerdict, Rejection, RelayDecision, RelayDenial, ReversePath, SessionFacts,
};
use crate::stream::MaybeTls;
use crate::tls::ClientIdentity;
use crate::upstream::{ClientFacts, Envelope, Upstream, UpstreamReply};
use memchr::memchr;
use smtp_proto::Request;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

/// Longest command line accepted (RFC 5321 says 512; extensions add parameters). Longer lines
/// are answered 500 and discarded without being buffered.
const MAX_COMMAND_LINE: usize = 2048;
/// Errors in one session before it is ended with 421.
const MAX_ERRORS: u32 = 10;
/// How much is read from the client at a time while it sends commands: small, because an idle
/// session holds this buffer, and thousands of idle sessions are normal for a gate.
const COMMAND_CHUNK: usize = 1024;
/// How much is read at a time during DATA, for throughput.
const READ_CHUNK: usize = 64 * 1024;

/// Who is on the other end, as the policy should see it.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The client's address (from the PROXY header when one is used).
    pub addr: SocketAddr,
    /// Bytes already read from the client (after a PROXY header).
    pub early: Vec<u8>,
}

/// Where the server is in its life; sessions watch it to end politely on shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// No new transactions: idle sessions get `421 4.3.2`, busy ones finish their transaction.
    Draining,
    /// The grace period is over.
    Stopped,
}

/// Serve one client connection until it quits, times out or breaks.
pub async fn run_session<S>(
    stream: S,
    peer: Peer,
    settings: Arc<Settings>,
    phase: tokio::sync::watch::Receiver<Phase>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let id = SessionId::new();
    let upstream = Upstream::new(&settings.upstream, &settings.server.hostname);
    let session_deadline = Instant::now() + settings.server.session_timeout;
    let mut rbuf = Vec::new();
    rbuf.extend_from_slice(&peer.early);
    let peer = Peer {
        addr: peer.addr,
        early: Vec::new(),
    };
    let mut s = Session {
        io: Some(MaybeTls::Plain(stream)),
        rbuf,
        phase,
        rstart: 0,
        wbuf: Vec::with_capacity(1024),
        settings,
        id,
        peer,
        helo: None,
        esmtp: false,
        identity: ClientIdentity::default(),
        tls_description: None,
        txn: None,
        upstream,
        errors: 0,
        session_deadline,
        transactions: 0,
    };
    tracing::debug!(session = %s.id, peer = %s.peer.addr, "connection opened");
    let end = s.serve().await;
    s.end_transaction(&format!("session ended ({end:?})")).await;
    s.upstream.quit().await;
    if let Some(io) = s.io.as_mut() {
        let _ = io.flush().await;
        let _ = io.shutdown().await;
    }
    tracing::debug!(session = %s.id, peer = %s.peer.addr, end = ?end, "connection closed");
}

/// Why a session ended.
#[derive(Debug)]
enum End {
    Quit,
    Shutdown,
    ClientClosed,
    Timeout,
    TooManyErrors,
    TlsFailed,
    Io,
}

/// The result of waiting for input.
enum Input {
    Line(usize),
    /// The server is shutting down and the session has no transaction.
    ShuttingDown,
    Closed,
    TimedOut,
    Failed,
}

/// A recipient the gate answered 250 for.
struct Recipient {
    address: String,
    /// What enforce mode decides for it (at RCPT; re-judged after the header when pending).
    verdict: RecipientVerdict,
    /// Whether the upstream has it (it accepted our RCPT).
    forwarded: bool,
}

struct Transaction {
    envelope: Envelope,
    relay: RelayDecision,
    recipients: Vec<Recipient>,
    /// Recipients answered with a refusal at RCPT (for the log; at most `max_recipients`).
    refused: Vec<(String, String)>,
    /// Refusals beyond that, only counted, so a client cannot grow the session's memory.
    refused_unlisted: usize,
    upstream_open: bool,
    /// When MAIL FROM was accepted, for the transaction latency histogram.
    started: Instant,
}

struct Session<S> {
    io: Option<MaybeTls<S>>,
    phase: tokio::sync::watch::Receiver<Phase>,
    rbuf: Vec<u8>,
    rstart: usize,
    wbuf: Vec<u8>,
    settings: Arc<Settings>,
    id: SessionId,
    peer: Peer,
    helo: Option<String>,
    esmtp: bool,
    identity: ClientIdentity,
    tls_description: Option<String>,
    txn: Option<Transaction>,
    upstream: Upstream,
    errors: u32,
    session_deadline: Instant,
    transactions: u32,
}

/// How a transaction's final answer came about, for the log.
struct Outcome {
    reply: String,
    /// What enforce mode would have answered, when audit mode answered differently.
    enforce_reply: Option<String>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn io(&mut self) -> &mut MaybeTls<S> {
        self.io.as_mut().expect("stream present outside STARTTLS")
    }

    fn reply(&mut self, r: &Reply) {
        r.write_to(&mut self.wbuf);
    }

    /// A refusal or temporary failure, with Exchange Online's suffix.
    fn reply_with_suffix(&mut self, r: &Reply) -> String {
        let mut r = r.clone();
        r.text.push_str(&exo_suffix(
            &self.settings.server.hostname,
            SystemTime::now(),
            self.id,
        ));
        r.write_to(&mut self.wbuf);
        r.to_line()
    }

    fn reply_upstream(&mut self, r: &UpstreamReply) -> String {
        self.wbuf.extend_from_slice(&r.raw);
        r.summary()
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.wbuf);
        let r = self.io().write_all(&buf).await;
        self.wbuf = buf;
        self.wbuf.clear();
        r?;
        self.io().flush().await
    }

    fn buffered(&self) -> &[u8] {
        &self.rbuf[self.rstart..]
    }

    fn consume(&mut self, n: usize) {
        self.rstart += n;
        if self.rstart == self.rbuf.len() {
            self.rbuf.clear();
            self.rstart = 0;
        }
    }

    /// Read more from the client, within `wait` and the session deadline.
    async fn fill(&mut self, wait: Duration, chunk: usize) -> Input {
        if self.rstart > 0 {
            self.rbuf.drain(..self.rstart);
            self.rstart = 0;
        }
        let deadline = (Instant::now() + wait).min(self.session_deadline);
        self.rbuf.reserve(chunk);
        let idle = self.txn.is_none();
        let io = self.io.as_mut().expect("stream present");
        let phase = &mut self.phase;
        let draining = async {
            if !idle || phase.wait_for(|p| *p != Phase::Running).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = tokio::time::timeout_at(deadline, io.read_buf(&mut self.rbuf)) => match r {
                Err(_) => Input::TimedOut,
                Ok(Err(_)) => Input::Failed,
                Ok(Ok(0)) => Input::Closed,
                Ok(Ok(_)) => Input::Line(0),
            },
            _ = draining => Input::ShuttingDown,
        }
    }

    /// The next command line (its length including LF, at the start of `buffered()`). An
    /// over-long line is answered and skipped here, without being held in memory.
    async fn next_line(&mut self) -> Input {
        let mut discarding = false;
        loop {
            if let Some(nl) = memchr(b'\n', self.buffered()) {
                if discarding {
                    self.consume(nl + 1);
                    discarding = false;
                    self.errors += 1;
                    self.reply(&Reply::new(500, "5.5.2", "Line too long"));
                    continue;
                }
                if nl + 1 > MAX_COMMAND_LINE {
                    self.consume(nl + 1);
                    self.errors += 1;
                    self.reply(&Reply::new(500, "5.5.2", "Line too long"));
                    continue;
                }
                return Input::Line(nl + 1);
            }
            if discarding || self.buffered().len() > MAX_COMMAND_LINE {
                let n = self.buffered().len();
                self.consume(n);
                discarding = true;
            }
            // Nothing more to answer from this batch: let the client see the replies.
            if self.flush().await.is_err() {
                return Input::Failed;
            }
            match self
                .fill(self.settings.server.command_timeout, COMMAND_CHUNK)
                .await
            {
                Input::Line(_) => {}
                other => return other,
            }
        }
    }

    async fn serve(&mut self) -> End {
        let banner = Reply::new(
            220,
            "",
            format!(
                "{} Microsoft ESMTP MAIL Service ready (relaygate)",
                self.settings.server.hostname
            ),
        );
        self.reply(&banner);
        loop {
            let len = match self.next_line().await {
                Input::Line(_) if self.txn.is_none() && *self.phase.borrow() != Phase::Running => {
                    return self.shutting_down().await;
                }
                Input::ShuttingDown => return self.shutting_down().await,
                Input::Line(n) => n,
                Input::Closed => return End::ClientClosed,
                Input::Failed => return End::Io,
                Input::TimedOut => {
                    self.timed_out();
                    let _ = self.flush().await;
                    return End::Timeout;
                }
            };
            let line = self.buffered()[..len].to_vec();
            self.consume(len);
            match self.command(&line).await {
                Ok(()) => {}
                Err(end) => {
                    let _ = self.flush().await;
                    return end;
                }
            }
            if self.errors >= MAX_ERRORS {
                self.reply(&Reply::new(
                    421,
                    "4.7.0",
                    format!(
                        "{} Too many errors, closing connection",
                        self.settings.server.hostname
                    ),
                ));
                let _ = self.flush().await;
                return End::TooManyErrors;
            }
        }
    }

    async fn shutting_down(&mut self) -> End {
        let host = self.settings.server.hostname.clone();
        self.reply(&Reply::new(
            421,
            "4.3.2",
            format!("{host} Service shutting down, closing connection"),
        ));
        let _ = self.flush().await;
        End::Shutdown
    }

    /// A timeout (command, DATA or session): `421 4.4.2`, then the session ends.
    fn timed_out(&mut self) {
        let host = &self.settings.server.hostname;
        let r = Reply::new(
            421,
            "4.4.2",
            format!("{host} Timeout exceeded, closing connection"),
        );
        self.reply(&r);
    }

    fn error_reply(&mut self, r: Reply) {
        self.errors += 1;
        self.reply(&r);
    }

    async fn command(&mut self, line: &[u8]) -> Result<(), End> {
        let req = match parse_command(line) {
            Ok(r) => r,
            Err(r) => {
                self.error_reply(r);
                return Ok(());
            }
        };
        match req {
            Request::Ehlo { host } => self.hello(host, true).await,
            Request::Helo { host } => self.hello(host, false).await,
            Request::Lhlo { .. } => self.error_reply(Reply::new(500, "5.5.1", "LHLO is for LMTP")),
            Request::StartTls => return self.starttls().await,
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => return self.data().await,
            Request::Rset => {
                self.end_transaction("RSET").await;
                self.reply(&Reply::new(250, "2.0.0", "Resetting"));
            }
            Request::Noop { .. } => self.reply(&Reply::new(250, "2.0.0", "OK")),
            Request::Quit => {
                self.reply(&Reply::new(
                    221,
                    "2.0.0",
                    "Service closing transmission channel",
                ));
                return Err(End::Quit);
            }
            Request::Vrfy { .. } => self.reply(&Reply::new(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(&Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
            )),
            Request::Auth { .. } => {
                self.error_reply(Reply::new(502, "5.5.1", "AUTH is not offered"))
            }
            Request::Bdat { .. } => {
                self.error_reply(Reply::new(502, "5.5.1", "BDAT (CHUNKING) is not offered"))
            }
            other => self.error_reply(Reply::new(
                502,
                "5.5.1",
                format!("{} is not implemented", other.name()),
            )),
        }
        Ok(())
    }

    async fn hello(&mut self, host: String, esmtp: bool) {
        if host.trim().is_empty() {
            self.error_reply(Reply::new(501, "5.5.4", "Syntax: EHLO hostname"));
            return;
        }
        self.end_transaction("EHLO/HELO").await;
        let name = &self.settings.server.hostname;
        let greeting = format!("{name} Hello [{}]", self.peer.addr.ip());
        if !esmtp {
            self.reply(&Reply::new(250, "", greeting));
        } else {
            let mut lines = vec![
                greeting,
                "PIPELINING".to_string(),
                format!("SIZE {}", self.settings.server.max_message_size),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "ENHANCEDSTATUSCODES".into(),
            ];
            if self.settings.tls.is_some() && self.tls_description.is_none() {
                lines.push("STARTTLS".into());
            }
            lines.push("HELP".into());
            let last = lines.len() - 1;
            for (i, l) in lines.iter().enumerate() {
                let sep = if i == last { ' ' } else { '-' };
                self.wbuf
                    .extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
            }
        }
        self.helo = Some(sanitize(&host));
        self.esmtp = esmtp;
    }

    async fn starttls(&mut self) -> Result<(), End> {
        let settings = Arc::clone(&self.settings);
        let Some(tls) = settings.tls.as_ref() else {
            self.error_reply(Reply::new(502, "5.5.1", "STARTTLS is not offered"));
            return Ok(());
        };
        if self.tls_description.is_some() {
            self.error_reply(Reply::new(503, "5.5.1", "TLS is already active"));
            return Ok(());
        }
        if self.txn.is_some() {
            self.error_reply(Reply::new(
                503,
                "5.5.1",
                "STARTTLS is not allowed inside a mail transaction",
            ));
            return Ok(());
        }
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        self.reply(&Reply::new(220, "2.0.0", "SMTP server ready"));
        self.flush().await.map_err(|_| End::Io)?;
        // CVE-2011-0411: whatever the client pipelined behind STARTTLS was sent in clear text
        // and must not be executed inside the TLS session.
        self.rbuf.clear();
        self.rstart = 0;
        let MaybeTls::Plain(plain) = self.io.take().expect("stream present") else {
            return Err(End::TlsFailed);
        };
        let wait = self.settings.server.tls_handshake_timeout;
        let tls_stream = match tokio::time::timeout(wait, acceptor.accept(plain)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics().tls_handshake("failed", "none");
                tracing::info!(session = %self.id, peer = %self.peer.addr, error = %e, "TLS handshake failed");
                return Err(End::TlsFailed);
            }
            Err(_) => {
                metrics().tls_handshake("timeout", "none");
                tracing::info!(session = %self.id, peer = %self.peer.addr, "TLS handshake timed out");
                return Err(End::Timeout);
            }
        };
        {
            let (_, conn) = tls_stream.get_ref();
            self.identity = tls.client_identity(conn);
            metrics().tls_handshake(
                "ok",
                match (self.identity.presented, self.identity.trusted) {
                    (_, true) => "trusted",
                    (true, false) => "untrusted",
                    (false, _) => "none",
                },
            );
            self.tls_description = Some(
                format!(
                    "{:?} {:?}",
                    conn.protocol_version()
                        .map(|v| v.as_str().unwrap_or("?"))
                        .unwrap_or("?"),
                    conn.negotiated_cipher_suite()
                        .map(|c| c.suite().as_str().unwrap_or("?"))
                        .unwrap_or("?"),
                )
                .replace('"', ""),
            );
        }
        self.io = Some(MaybeTls::Server(Box::new(tls_stream)));
        tracing::debug!(
            session = %self.id,
            peer = %self.peer.addr,
            tls = self.tls_description.as_deref().unwrap_or(""),
            certificate_presented = self.identity.presented,
            certificate_trusted = self.identity.trusted,
            certificate_names = ?self.identity.names,
            untrusted_reason = self.identity.untrusted_reason.as_deref().unwrap_or(""),
            "TLS established"
        );
        // RFC 3207: the client must start over with EHLO.
        self.helo = None;
        self.esmtp = false;
        Ok(())
    }

    fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
        }
    }

    async fn mail(&mut self, from: smtp_proto::MailFrom<String>) {
        if self.helo.is_none() {
            self.error_reply(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
            return;
        }
        if self.txn.is_some() {
            self.error_reply(Reply::new(503, "5.5.1", "Sender already specified"));
            return;
        }
        let max = self.settings.server.max_message_size;
        if from.size as u64 > max {
            self.reply_with_suffix(&Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum message size of {max} bytes"),
            ));
            return;
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if smtputf8 && !self.esmtp {
            self.error_reply(Reply::new(555, "5.5.4", "SMTPUTF8 needs EHLO"));
            return;
        }
        let envelope = Envelope {
            mail_from: from.address,
            size: (from.size > 0).then_some(from.size as u64),
            eight_bit: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
        };
        let p = &self.settings.policy;
        let relay = policy::authorize_relay(
            &p.tenant,
            p.profile,
            &self.facts(),
            ReversePath::of_address(&envelope.mail_from),
            HeaderSender::NotYetKnown,
        );
        self.txn = Some(Transaction {
            envelope,
            relay,
            recipients: Vec::new(),
            refused: Vec::new(),
            refused_unlisted: 0,
            upstream_open: false,
            started: Instant::now(),
        });
        self.reply(&Reply::new(250, "2.1.0", "Sender OK"));
    }

    async fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) {
        let Some(txn) = self.txn.as_ref() else {
            self.error_reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return;
        };
        if txn.recipients.len() >= self.settings.server.max_recipients {
            self.reply_with_suffix(&Reply::new(452, "4.5.3", "Too many recipients"));
            return;
        }
        let address = to.address;
        if address.is_empty() {
            self.error_reply(Reply::new(501, "5.1.3", "Bad recipient address syntax"));
            return;
        }
        let settings = Arc::clone(&self.settings);
        let p = &settings.policy;
        let verdict = policy::judge_recipient(
            &p.tenant,
            &self.facts(),
            ReversePath::of_address(&txn.envelope.mail_from),
            &txn.relay,
            &address,
        );
        let enforce = p.mode == Mode::Enforce;
        enum Action {
            Forward,
            /// 250 now, the transaction is refused at the end of DATA (reject_stage = "data").
            Hold,
            Refuse(Rejection),
        }
        let action = match &verdict {
            RecipientVerdict::Accept(_) | RecipientVerdict::AwaitingHeaderSender => Action::Forward,
            RecipientVerdict::Reject(_) if !enforce => Action::Forward,
            RecipientVerdict::Reject(Rejection::RelayAccessDenied(_))
                if p.reject_stage == RejectStage::Data =>
            {
                Action::Hold
            }
            RecipientVerdict::Reject(r) => Action::Refuse(r.clone()),
        };
        match action {
            Action::Refuse(r) => {
                let (code, enhanced, text) = r.reply();
                let line = self.reply_with_suffix(&Reply::new(code, enhanced, text));
                self.note_refused(address, line);
            }
            Action::Hold => {
                self.reply(&Reply::new(250, "2.1.5", "Recipient OK"));
                self.txn.as_mut().expect("txn").recipients.push(Recipient {
                    address,
                    verdict,
                    forwarded: false,
                });
            }
            Action::Forward => match self.forward_rcpt(&address).await {
                Ok(reply) => {
                    let positive = reply.is_positive();
                    let line = self.reply_upstream(&reply);
                    if positive {
                        self.txn.as_mut().expect("txn").recipients.push(Recipient {
                            address,
                            verdict,
                            forwarded: true,
                        });
                    } else {
                        self.note_refused(address, line);
                    }
                }
                Err(r) => {
                    let line = self.reply_with_suffix(&r);
                    self.note_refused(address, line);
                }
            },
        }
    }

    fn note_refused(&mut self, address: String, line: String) {
        let max = self.settings.server.max_recipients;
        let txn = self.txn.as_mut().expect("txn");
        if txn.refused.len() < max {
            txn.refused.push((address, line));
        } else {
            txn.refused_unlisted += 1;
        }
    }

    /// Open the upstream transaction if needed, then ask the upstream about this recipient.
    async fn forward_rcpt(&mut self, address: &str) -> Result<UpstreamReply, Reply> {
        let txn = self.txn.as_mut().expect("txn");
        let result = if txn.upstream_open {
            self.upstream.rcpt(address).await
        } else {
            let env = txn.envelope.clone();
            match self.upstream.mail_rcpt(&env, address).await {
                // MAIL refused: its reply is the answer to this RCPT.
                Ok((mail, None)) => return Ok(mail),
                Ok((_, Some(rcpt))) => {
                    self.txn.as_mut().expect("txn").upstream_open = true;
                    Ok(rcpt)
                }
                Err(e) => Err(e),
            }
        };
        result.map_err(|e| {
            tracing::warn!(session = %self.id, error = %e, "upstream MAIL/RCPT failed");
            // Any upstream error drops its connection, and the upstream transaction with it.
            self.txn.as_mut().expect("txn").upstream_open = false;
            e.reply()
        })
    }

    /// End a transaction that never reached the end of DATA (RSET, EHLO, QUIT, a lost client):
    /// it is logged all the same, since its refusals at RCPT are what an admin looks for.
    async fn end_transaction(&mut self, why: &str) {
        if let Some(txn) = self.txn.take() {
            let outcome = Outcome {
                reply: format!("no message: {why}"),
                enforce_reply: None,
            };
            self.log_transaction(
                &txn,
                HeaderSender::NotYetKnown,
                None,
                &txn.relay,
                &outcome,
                0,
            );
            if txn.upstream_open {
                self.upstream.reset().await;
            }
        }
    }

    fn client_facts(&self) -> ClientFacts {
        ClientFacts {
            session_id: self.id.to_string(),
            peer: self.peer.addr.to_string(),
            helo: self.helo.clone().unwrap_or_default(),
            tls: self.tls_description.is_some(),
            certificate_names: self.identity.names.clone(),
            certificate_trusted: self.identity.trusted,
        }
    }

    fn received_header(&self) -> Vec<u8> {
        let proto = match (self.esmtp, self.tls_description.is_some()) {
            (true, true) => "ESMTPS",
            (true, false) => "ESMTP",
            (false, true) => "SMTPS",
            (false, false) => "SMTP",
        };
        let tls = self
            .tls_description
            .as_ref()
            .map(|d| format!(" (using {d})"))
            .unwrap_or_default();
        format!(
            "Received: from {} ([{}])\r\n\tby {} (relaygate) with {proto}{tls} id {}-{};\r\n\t{}\r\n",
            self.helo.as_deref().unwrap_or("unknown"),
            self.peer.addr.ip(),
            self.settings.server.hostname,
            self.id,
            self.transactions,
            rfc5322_date(SystemTime::now())
        )
        .into_bytes()
    }

    /// Read DATA into the decoder: `Ok(true)` at the end marker. `text` gets the decoded text of
    /// what was buffered.
    async fn read_data(
        &mut self,
        decoder: &mut DataDecoder,
        text: &mut Vec<u8>,
    ) -> Result<bool, End> {
        if self.buffered().is_empty() {
            match self
                .fill(self.settings.server.data_timeout, READ_CHUNK)
                .await
            {
                Input::Line(_) => {}
                Input::Closed => return Err(End::ClientClosed),
                Input::Failed | Input::ShuttingDown => return Err(End::Io),
                Input::TimedOut => {
                    self.timed_out();
                    return Err(End::Timeout);
                }
            }
        }
        let (used, done) = decoder.decode(&self.rbuf[self.rstart..], text);
        self.consume(used);
        Ok(done)
    }

    async fn data(&mut self) -> Result<(), End> {
        let Some(txn) = self.txn.as_ref() else {
            self.error_reply(Reply::new(503, "5.5.1", "Need MAIL command first"));
            return Ok(());
        };
        if txn.recipients.is_empty() {
            self.error_reply(Reply::new(554, "5.5.1", "No valid recipients"));
            return Ok(());
        }
        self.transactions += 1;
        self.reply(&Reply::new(
            354,
            "",
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        self.flush().await.map_err(|_| End::Io)?;

        let server = &self.settings.server;
        let max_size = server.max_message_size;
        let mut decoder = DataDecoder::new(server.max_line_length);
        let mut headers = HeaderCollector::new(server.max_header_size);
        let mut text = Vec::with_capacity(READ_CHUNK);
        let mut size: u64 = 0;

        // Phase 1: the header block, buffered (bounded) to find the P2 sender.
        let mut done = false;
        while !headers.is_complete() {
            text.clear();
            done = self.read_data(&mut decoder, &mut text).await?;
            size += text.len() as u64;
            headers.push(&text);
            if done {
                headers.finish();
                break;
            }
        }
        let p2 = header_sender(headers.header());
        let decision = self.final_decision(p2.as_deref());

        // Anything that refuses the message before a byte goes upstream.
        let enforce = self.settings.policy.mode == Mode::Enforce;
        let header_refusal = headers
            .too_large()
            .then(|| Reply::new(552, "5.3.4", "Message header size exceeds limit"));
        let policy_refusal = decision.refusal.clone();
        let early_refusal = header_refusal.or(if enforce {
            policy_refusal.clone()
        } else {
            None
        });

        let mut upstream_failure: Option<Reply> = None;
        let mut upstream_reply: Option<UpstreamReply> = None;
        let mut sending = false;
        let upstream_open = self.txn.as_ref().is_some_and(|t| t.upstream_open);
        // Already known to be refused for its text (bare line break, long line, size): the
        // upstream is not asked to start a message that will be abandoned.
        let ready = early_refusal.is_none() && decoder.error().is_none() && size <= max_size;
        if ready && !upstream_open {
            // A recipient was accepted, then the upstream connection was lost.
            upstream_failure = Some(crate::upstream::UpstreamError::Dropped("RCPT").reply());
        } else if ready {
            // Built only for the directory kind: no per-message copies for an SMTP upstream.
            let facts = if self.upstream.records_client() {
                self.client_facts()
            } else {
                ClientFacts::default()
            };
            match self.upstream.data(&facts).await {
                Ok(r) if r.code == 354 => sending = true,
                Ok(r) => upstream_reply = Some(r),
                Err(e) => {
                    tracing::warn!(session = %self.id, error = %e, "upstream DATA failed");
                    upstream_failure = Some(e.reply());
                }
            }
        }
        if sending {
            let received = self.received_header();
            let r = async {
                self.upstream.write_text(&received).await?;
                self.upstream.write_text(headers.collected()).await
            }
            .await;
            if let Err(e) = r {
                upstream_failure = Some(e.reply());
                sending = false;
            }
        }
        drop(headers);

        // Phase 2: stream the rest.
        while !done {
            text.clear();
            done = match self.read_data(&mut decoder, &mut text).await {
                Ok(d) => d,
                Err(end) => {
                    // The client is gone or too slow: nothing of this message may be delivered.
                    // The transaction is logged when the session ends.
                    self.upstream.abort().await;
                    return Err(end);
                }
            };
            size += text.len() as u64;
            if sending && decoder.error().is_none() && size <= max_size {
                if let Err(e) = self.upstream.write_text(&text).await {
                    tracing::warn!(session = %self.id, error = %e, "upstream write failed");
                    upstream_failure = Some(e.reply());
                    sending = false;
                }
            }
        }

        // The final answer.
        let refusal = early_refusal.or_else(|| match decoder.error() {
            Some(DataError::BareLineBreak) => Some(Reply::new(
                550,
                "5.5.2",
                "Message contains a bare CR or LF; lines must end with CRLF (SMTP smuggling protection)",
            )),
            Some(DataError::LineTooLong) => Some(Reply::new(
                500,
                "5.5.2",
                format!("Message contains a line longer than {} octets", self.settings.server.max_line_length),
            )),
            None if size > max_size => Some(Reply::new(
                552,
                "5.3.4",
                format!("Message size exceeds fixed maximum message size of {max_size} bytes"),
            )),
            None => None,
        });
        let outcome = if let Some(r) = refusal {
            if sending {
                self.upstream.abort().await;
            }
            let line = self.reply_with_suffix(&r);
            Outcome {
                reply: line,
                enforce_reply: None,
            }
        } else if let Some(r) = upstream_failure {
            if sending {
                self.upstream.abort().await;
            }
            Outcome {
                reply: self.reply_with_suffix(&r),
                enforce_reply: None,
            }
        } else if let Some(r) = upstream_reply {
            Outcome {
                reply: self.reply_upstream(&r),
                enforce_reply: None,
            }
        } else {
            match self.upstream.finish_data().await {
                Ok(r) => Outcome {
                    reply: self.reply_upstream(&r),
                    enforce_reply: None,
                },
                Err(e) => {
                    tracing::warn!(session = %self.id, error = %e, "upstream end of DATA failed");
                    Outcome {
                        reply: self.reply_with_suffix(&e.reply()),
                        enforce_reply: None,
                    }
                }
            }
        };
        let outcome = Outcome {
            enforce_reply: if enforce {
                None
            } else {
                policy_refusal.map(|r| {
                    let mut r = r;
                    r.text.push_str(&exo_suffix(
                        &self.settings.server.hostname,
                        SystemTime::now(),
                        self.id,
                    ));
                    r.to_line()
                })
            },
            ..outcome
        };
        // Back to commands: give the DATA-sized buffer back, idle sessions should stay small.
        if self.rstart > 0 {
            self.rbuf.drain(..self.rstart);
            self.rstart = 0;
        }
        self.rbuf.shrink_to(COMMAND_CHUNK.max(self.rbuf.len()));
        // The upstream transaction is over (answered, aborted, or never started).
        let txn = self.txn.take().expect("txn");
        self.log_transaction(
            &txn,
            HeaderSender::of_address(p2.as_deref()),
            p2.as_deref(),
            &decision.relay,
            &outcome,
            size,
        );
        if txn.upstream_open && !sending {
            self.upstream.reset().await;
        }
        Ok(())
    }

    /// Re-judge the transaction once the P2 sender is known.
    fn final_decision(&mut self, p2: Option<&str>) -> Decision {
        let settings = Arc::clone(&self.settings);
        let p = &settings.policy;
        let facts = SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
        };
        let txn = self.txn.as_mut().expect("txn");
        let header = HeaderSender::of_address(p2);
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let relay = policy::authorize_relay(&p.tenant, p.profile, &facts, p1, header);
        let mut refusal = None;
        for r in txn.recipients.iter_mut() {
            if matches!(r.verdict, RecipientVerdict::AwaitingHeaderSender) {
                r.verdict = policy::judge_recipient(&p.tenant, &facts, p1, &relay, &r.address);
            }
            if let RecipientVerdict::Reject(rejection @ Rejection::RelayAccessDenied(_)) =
                &r.verdict
            {
                let (code, enhanced, text) = rejection.reply();
                refusal.get_or_insert_with(|| Reply::new(code, enhanced, text));
            }
        }
        Decision { relay, refusal }
    }

    /// Count the transaction for `/metrics` and write its decision event. `header` is
    /// `NotYetKnown` for a transaction that ended before its header block.
    fn log_transaction(
        &self,
        txn: &Transaction,
        header: HeaderSender<'_>,
        p2: Option<&str>,
        relay: &RelayDecision,
        outcome: &Outcome,
        size: u64,
    ) {
        let (verdict, branch, connector) = describe(relay);
        let m = metrics();
        m.decision(
            verdict,
            match relay {
                RelayDecision::Authorized { condition1, .. } => condition1.branch(),
                _ => "none",
            },
            relay.condition2().map_or("none", |c| c.branch()),
        );
        m.message_bytes.inc_by(size);
        m.transaction_seconds
            .observe(txn.started.elapsed().as_secs_f64());
        if !tracing::enabled!(target: "relaygate::transaction", tracing::Level::INFO) {
            return;
        }
        let p = &self.settings.policy;
        // Both profiles over every recipient the client named (also those refused at RCPT), so
        // an audit log shows what each rule generation would do with this flow, and the fix.
        let facts = SessionFacts {
            peer_ip: self.peer.addr.ip(),
            certificate_names: self.identity.policy_names(),
        };
        let p1 = ReversePath::of_address(&txn.envelope.mail_from);
        let named: Vec<&str> = txn
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .chain(txn.refused.iter().map(|(a, _)| a.as_str()))
            .collect();
        let comparison = Comparison::evaluate(&p.tenant, &facts, p1, header, &named);
        let (exo_2023, exo_legacy) = (
            comparison.exo_2023.verdict(),
            comparison.exo_legacy.verdict(),
        );
        let fix = suggest_fix(&p.tenant, &facts, p1, header, &comparison.exo_2023);
        let identity = match facts.certificate_names.first() {
            Some(name) => format!("certificate {}", sanitize(name)),
            None => format!("ip {}", facts.peer_ip),
        };
        let flow_domain = |address: Option<&str>| {
            address
                .and_then(domain_of)
                .map(|d| sanitize(&policy::normalise(d)))
                .unwrap_or_default()
        };
        let recipients: Vec<String> = txn
            .recipients
            .iter()
            .map(|r| {
                let held = if r.forwarded {
                    ""
                } else {
                    " (held back from the upstream)"
                };
                format!("{}={}{held}", r.address, describe_recipient(&r.verdict))
            })
            .chain(
                txn.refused
                    .iter()
                    .map(|(a, line)| format!("{a}=refused at RCPT: {line}")),
            )
            .chain(
                (txn.refused_unlisted > 0)
                    .then(|| format!("and {} more refused", txn.refused_unlisted)),
            )
            .collect();
        tracing::info!(
            target: "relaygate::transaction",
            session = %self.id,
            peer = %self.peer.addr,
            helo = self.helo.as_deref().unwrap_or(""),
            tls = self.tls_description.as_deref().unwrap_or("none"),
            certificate_names = ?self.identity.names,
            certificate_trusted = self.identity.trusted,
            p1 = %txn.envelope.mail_from,
            p2 = p2.unwrap_or(""),
            recipients = ?recipients,
            size,
            profile = p.profile.as_str(),
            mode = match p.mode { Mode::Enforce => "enforce", Mode::Audit => "audit" },
            relay = verdict,
            branch = %branch,
            connector = %connector,
            reply = %outcome.reply,
            enforce_would_reply = outcome.enforce_reply.as_deref().unwrap_or(""),
            identity = %identity,
            p1_domain = flow_domain(Some(&txn.envelope.mail_from)),
            p2_domain = flow_domain(p2),
            exo_2023 = %exo_2023,
            exo_legacy = %exo_legacy,
            broken_by_november_2023 = Comparison::breaks(&exo_2023, &exo_legacy),
            // A sentence, with the P2 domain in it: control characters out, spaces kept.
            fix = fix
                .unwrap_or_default()
                .replace(|c: char| c.is_control(), "?"),
            "transaction"
        );
    }
}

struct Decision {
    relay: RelayDecision,
    /// The refusal enforce mode answers at the end of DATA (5.7.64), if any.
    refusal: Option<Reply>,
}

fn condition2_text(c: &Condition2) -> (&'static str, &str) {
    (c.branch(), c.connector())
}

/// (verdict, branch, connector) of a relay decision, for the log.
fn describe(relay: &RelayDecision) -> (&'static str, String, String) {
    match relay {
        RelayDecision::Authorized {
            condition1,
            condition2,
        } => {
            let c1 = match condition1 {
                Condition1::CertificateDomain {
                    accepted_domain, ..
                } => format!("1a certificate domain {accepted_domain}"),
                Condition1::EnvelopeSender { domain } => format!("1b P1 domain {domain}"),
                Condition1::HeaderSender { domain } => format!("1c P2 domain {domain}"),
            };
            let (by, name) = condition2_text(condition2);
            (
                "relay authorized",
                format!("{c1}; 2 by {by}"),
                name.to_string(),
            )
        }
        RelayDecision::AwaitingHeaderSender { condition2 } => {
            let (by, name) = condition2_text(condition2);
            ("awaiting P2", format!("2 by {by}"), name.to_string())
        }
        RelayDecision::Denied(RelayDenial::NoOnPremisesConnector) => (
            "relay not authorized",
            "2 failed: no enabled OnPremises connector matched the IP or a trusted certificate"
                .into(),
            String::new(),
        ),
        RelayDecision::Denied(RelayDenial::SenderNotAttributed { condition2 }) => {
            let (by, name) = condition2_text(condition2);
            (
                "relay not authorized",
                format!(
                    "2 by {by}; 1 failed: neither certificate domain nor sender domain is accepted"
                ),
                name.to_string(),
            )
        }
    }
}

fn describe_recipient(v: &RecipientVerdict) -> String {
    match v {
        RecipientVerdict::Accept(AcceptReason::Originating) => "originating".into(),
        RecipientVerdict::Accept(AcceptReason::Inbound { accepted_domain }) => {
            format!("inbound to {accepted_domain}")
        }
        RecipientVerdict::Accept(AcceptReason::OtherTenant { domain }) => {
            format!("inbound to other tenant {domain}")
        }
        RecipientVerdict::AwaitingHeaderSender => "awaiting P2".into(),
        RecipientVerdict::Reject(r) => {
            let (code, enhanced, _) = r.reply();
            format!("{code} {enhanced}")
        }
    }
}

/// Keep a client-supplied name printable and single-line for headers and logs.
fn sanitize(s: &str) -> String {
    let cleaned: Cow<'_, str> = if s.chars().all(|c| c.is_ascii_graphic()) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_ascii_graphic() { c } else { '?' })
                .collect(),
        )
    };
    cleaned.chars().take(255).collect()
}
