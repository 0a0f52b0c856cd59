//! The banner, EHLO, HELO and STARTTLS: what the client learns about the gate, in Exchange
//! Online's words (`docs/exo-relay-rules.md`, "The front door"), and the TLS upgrade that may
//! give the session a client-certificate identity.

use super::{End, Session};
use crate::observe::metrics::metrics;
use crate::stream::MaybeTls;
use crate::wire::reply::{rfc5322_date, Reply};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::io::{AsyncRead, AsyncWrite};

/// The lines of the EHLO reply, in the order Exchange Online's MX gives them. `STARTTLS` only
/// when TLS is configured and not yet active; no `HELP` (the command still answers 214).
/// On a submission listener under TLS, `AUTH` takes STARTTLS's place, as in Exchange Online's
/// client submission EHLO.
fn ehlo_lines(
    host: &str,
    client: IpAddr,
    max_message_size: u64,
    starttls: bool,
    auth: bool,
) -> Vec<String> {
    let mut lines = vec![
        format!("{host} Hello [{client}]"),
        format!("SIZE {max_message_size}"),
        "PIPELINING".into(),
        "DSN".into(),
        "ENHANCEDSTATUSCODES".into(),
    ];
    if starttls {
        lines.push("STARTTLS".into());
    }
    if auth {
        lines.push(super::auth::MECHANISMS.into());
    }
    lines.push("8BITMIME".into());
    lines.push("BINARYMIME".into());
    lines.push("CHUNKING".into());
    lines.push("SMTPUTF8".into());
    lines
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// `220 <host> Microsoft ESMTP MAIL Service ready at <date> [<session id>]`: Exchange
    /// Online's greeting, the id being the one every refusal's suffix carries.
    pub(super) fn banner(&self) -> Reply {
        Reply::new(
            220,
            "",
            format!(
                "{} Microsoft ESMTP MAIL Service ready at {} [{}]",
                self.settings.server.hostname,
                rfc5322_date(SystemTime::now()),
                self.id
            ),
        )
    }

    pub(super) async fn hello(&mut self, host: String, esmtp: bool) {
        if host.trim().is_empty() {
            self.error_reply(Reply::new(501, "5.5.4", "Syntax: EHLO hostname"));
            return;
        }
        self.end_transaction("EHLO/HELO").await;
        let name = &self.settings.server.hostname;
        if !esmtp {
            let greeting = format!("{name} Hello [{}]", self.peer.addr.ip());
            self.reply(&Reply::new(250, "", greeting));
        } else {
            let lines = ehlo_lines(
                name,
                self.peer.addr.ip(),
                self.settings.server.max_message_size,
                self.settings.tls.is_some() && self.tls_description.is_none(),
                self.offers_auth(),
            );
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
        if self.settings.tls.is_none() {
            self.error_reply(Reply::new(502, "5.5.1", "STARTTLS is not offered"));
            return Ok(());
        }
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
        self.reply(&Reply::new(220, "2.0.0", "SMTP server ready"));
        self.flush().await.map_err(|_| End::Io)?;
        // CVE-2011-0411: whatever the client pipelined behind STARTTLS was sent in clear text
        // and must not be executed inside the TLS session.
        self.discard_input();
        self.handshake().await?;
        // RFC 3207: the client must start over with EHLO.
        self.helo = None;
        self.esmtp = false;
        Ok(())
    }

    /// The TLS handshake, as the server: after STARTTLS, or first thing on an implicit TLS
    /// listener (RFC 8314), bounded by `tls_handshake_timeout_secs` and the session deadline.
    pub(super) async fn handshake(&mut self) -> Result<(), End> {
        let settings = Arc::clone(&self.settings);
        let Some(tls) = settings.tls.as_ref() else {
            // The configuration refuses a submission listener without [tls].
            return Err(End::TlsFailed);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_offers_exchange_onlines_list_in_its_order() {
        let ip: IpAddr = "203.0.113.25".parse().unwrap();
        let all = ehlo_lines("gate.contoso.com", ip, 36_700_160, true, false);
        assert_eq!(
            all,
            [
                "gate.contoso.com Hello [203.0.113.25]",
                "SIZE 36700160",
                "PIPELINING",
                "DSN",
                "ENHANCEDSTATUSCODES",
                "STARTTLS",
                "8BITMIME",
                "BINARYMIME",
                "CHUNKING",
                "SMTPUTF8",
            ]
        );
        let after_tls = ehlo_lines("gate.contoso.com", ip, 1000, false, false);
        assert_eq!(
            after_tls,
            [
                "gate.contoso.com Hello [203.0.113.25]",
                "SIZE 1000",
                "PIPELINING",
                "DSN",
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "BINARYMIME",
                "CHUNKING",
                "SMTPUTF8",
            ]
        );
    }

    #[test]
    fn a_submission_ehlo_under_tls_offers_auth_where_starttls_was() {
        let ip: IpAddr = "203.0.113.25".parse().unwrap();
        let lines = ehlo_lines("gate.contoso.com", ip, 1000, false, true);
        assert_eq!(lines[4], "ENHANCEDSTATUSCODES");
        assert_eq!(lines[5], "AUTH LOGIN PLAIN");
        assert_eq!(lines[6], "8BITMIME");
    }
}
