//! EHLO, HELO and STARTTLS: what the client learns about the gate, and the TLS upgrade that
//! may give the session a client-certificate identity.

use super::{End, Session};
use crate::observe::metrics::metrics;
use crate::stream::MaybeTls;
use crate::wire::reply::Reply;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn hello(&mut self, host: String, esmtp: bool) {
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
                "CHUNKING".into(),
                "BINARYMIME".into(),
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
        self.helo = Some(super::record::sanitize(&host));
        self.esmtp = esmtp;
    }

    pub(super) async fn starttls(&mut self) -> Result<(), End> {
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
        self.discard_input();
        let MaybeTls::Plain(plain) = self.io.take().expect("stream present") else {
            return Err(End::TlsFailed);
        };
        let wait = self.settings.server.tls_handshake_timeout;
        let deadline = (tokio::time::Instant::now() + wait).min(self.session_deadline);
        let tls_stream = match tokio::time::timeout_at(deadline, acceptor.accept(plain)).await {
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
}
