//! The upstream leg: where an accepted transaction goes.
//!
//! Two kinds: an SMTP server (usually Exchange Online) driven command by command, so every
//! recipient gets the upstream's own verdict and DATA streams; or a directory, for trying the
//! gate with nothing else running. Either way the session answers 250 to the message only after
//! the upstream did (or the file is fsynced and renamed): nothing is ever lost at the gate.
//!
//! A [`Connector`] is built from the settings and owns what legs share (the connection pool);
//! each client session gets its own leg from it, so a session can be driven against any
//! upstream, including the in-memory one of the fault simulation.

mod capabilities;
mod connection;
mod connector;
mod dial;
pub mod directory;
mod error;
pub mod failover;
mod legs;
mod open;
mod pool;
mod smtp;

pub use connector::Connector;
pub use dial::{Dial, Dialing, Transport};
pub use directory::DirectoryLeg;
pub use error::{Stage, TlsFailure, UpstreamError, TEMPORARY_FAILURE};
pub use legs::Legs;
pub use pool::Pool;
pub use smtp::SmtpLeg;

use crate::config::UpstreamSettings;
use crate::observe::metrics::metrics;
use crate::wire::dsn::{MailDsn, RcptDsn};
use std::sync::Arc;

/// What the session tells the upstream about the transaction.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// Reverse path without angle brackets; empty for the null sender.
    pub mail_from: String,
    /// `SIZE=` the client declared.
    pub size: Option<u64>,
    /// `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// `SMTPUTF8`.
    pub smtputf8: bool,
    /// `RET` and `ENVID`, passed on when the upstream offers DSN.
    pub dsn: MailDsn,
    /// `BODY=BINARYMIME` (RFC 3030): the message comes in BDAT chunks, and any octet in it is
    /// content. It can go on only as BDAT, to an upstream that offers BINARYMIME.
    pub binary_mime: bool,
}

/// What the client already sent right behind the RCPT being forwarded, when it pipelined and
/// nothing but the upstream can still refuse the message before its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follows {
    /// Nothing yet, or anything else.
    Nothing,
    /// DATA, the last command of its group (RFC 2920).
    Data,
    /// BDAT, pipelined behind the envelope (RFC 3030).
    Bdat,
}

/// An upstream reply, kept verbatim (every line) so the client sees exactly what the upstream said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReply {
    pub code: u16,
    /// The reply lines, each ending in CRLF.
    pub raw: Vec<u8>,
}

impl UpstreamReply {
    /// A reply the leg makes itself (directory kind, or a refusal before asking the upstream).
    pub fn local(code: u16, text: &str) -> UpstreamReply {
        UpstreamReply {
            code,
            raw: format!("{code} {text}\r\n").into_bytes(),
        }
    }

    /// The reply as one line for logs (continuation lines joined by " / ").
    pub fn summary(&self) -> String {
        String::from_utf8_lossy(&self.raw)
            .lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join(" / ")
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// The upstream leg of one client session.
pub enum Upstream {
    Smtp(SmtpLeg),
    Directory(Box<DirectoryLeg>),
}

/// Facts about the client the directory kind records in its envelope file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClientFacts {
    pub session_id: String,
    pub peer: String,
    pub helo: String,
    pub tls: bool,
    pub certificate_names: Vec<String>,
    pub certificate_trusted: bool,
}

impl Upstream {
    /// Open the upstream transaction with its first recipient (connecting first if needed):
    /// MAIL's reply, and RCPT's when MAIL was accepted. `dsn` is the recipient's DSN request.
    /// `follows`: what the client already sent right behind this RCPT. DATA joins the group
    /// for an SMTP upstream offering PIPELINING (its answer is kept for [`Upstream::data`]);
    /// the message, DATA or BDAT, may go right behind the envelope to one offering CHUNKING
    /// too (`SmtpLeg`'s envelope sent ahead).
    pub async fn mail_rcpt(
        &mut self,
        env: &Envelope,
        path: &str,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<(UpstreamReply, Option<UpstreamReply>), UpstreamError> {
        let r = match self {
            Upstream::Smtp(l) => l.mail_rcpt(env, path, dsn, follows).await,
            Upstream::Directory(l) => {
                let mail = l.mail(env);
                let rcpt = l.rcpt(path);
                Ok((mail, Some(rcpt)))
            }
        };
        match &r {
            // Sent ahead: the upstream's replies are counted when they are read.
            Ok(_) if matches!(self, Upstream::Smtp(l) if l.envelope_ahead()) => {}
            Ok((mail, rcpt)) => {
                count(&Ok(mail));
                if let Some(rcpt) = rcpt {
                    count(&Ok(rcpt));
                }
            }
            Err(e) => count(&Err(e)),
        }
        r
    }

    /// A further recipient; `follows` as for [`Upstream::mail_rcpt`].
    pub async fn rcpt(
        &mut self,
        path: &str,
        dsn: &RcptDsn,
        follows: Follows,
    ) -> Result<UpstreamReply, UpstreamError> {
        let r = match self {
            Upstream::Smtp(l) => l.rcpt(path, dsn, follows).await,
            Upstream::Directory(l) => Ok(l.rcpt(path)),
        };
        count(&r.as_ref());
        r
    }

    /// Start the message; a positive reply (354) means text may follow. `client` is used
    /// only by the directory kind, which records it. `binary_mime`: the envelope's
    /// `BODY=BINARYMIME`, which an SMTP upstream must offer to take the message.
    pub async fn data(
        &mut self,
        client: &ClientFacts,
        binary_mime: bool,
    ) -> Result<UpstreamReply, UpstreamError> {
        let r = match self {
            Upstream::Smtp(l) => l.data(binary_mime).await,
            Upstream::Directory(l) => l.data(client).await,
        };
        // With BDAT, or DATA whose answer is still on its way, the go-ahead is the gate's own:
        // not an upstream reply (the answer to DATA is counted when it is read).
        if !matches!(self, Upstream::Smtp(l) if l.go_ahead_is_local()) {
            count(&r.as_ref());
        }
        r
    }

    /// Whether the DSN parameters reach the upstream: an SMTP upstream that offered DSN on the
    /// connection in use. A directory keeps no DSN request (nothing there sends notifications).
    pub fn offers_dsn(&self) -> bool {
        matches!(self, Upstream::Smtp(l) if l.offers_dsn())
    }

    /// Whether `data` needs the client's facts (only the directory kind records them).
    pub fn records_client(&self) -> bool {
        matches!(self, Upstream::Directory(_))
    }

    /// Message text, unstuffed, lines ending in CRLF.
    pub async fn write_text(&mut self, text: &[u8]) -> Result<(), UpstreamError> {
        let r = match self {
            Upstream::Smtp(l) => l.write_text(text).await,
            Upstream::Directory(l) => l.write_text(text).await,
        };
        // Trouble while sending (with BDAT: a chunk's reply) is trouble with the upstream.
        if let Err(e) = &r {
            count(&Err(e));
        }
        r
    }

    /// End the message and get the upstream's final word on it.
    pub async fn finish_data(&mut self) -> Result<UpstreamReply, UpstreamError> {
        let r = match self {
            Upstream::Smtp(l) => l.finish_data().await,
            Upstream::Directory(l) => l.finish_data().await,
        };
        count(&r.as_ref());
        r
    }

    /// Abandon a message in progress so that nothing of it is delivered: an SMTP upstream
    /// loses the connection before the final dot; a directory loses the temporary file.
    pub async fn abort(&mut self) {
        match self {
            Upstream::Smtp(l) => l.abort(),
            Upstream::Directory(l) => l.abort().await,
        }
    }

    /// End the transaction (RSET) but keep the connection for the next one.
    pub async fn reset(&mut self) {
        match self {
            Upstream::Smtp(l) => l.reset().await,
            Upstream::Directory(l) => l.reset().await,
        }
    }

    /// Close politely.
    pub async fn quit(&mut self) {
        if let Upstream::Smtp(l) = self {
            l.quit().await
        }
    }
}

/// Can the upstream take mail now? SMTP: a fresh connection gets through greeting, EHLO and
/// STARTTLS. Directory: a file can be created in it. The error says why not.
pub async fn probe(settings: &UpstreamSettings, helo_name: &str) -> Result<(), String> {
    match settings {
        UpstreamSettings::Smtp(s) => {
            // A connector of its own, without the pool: a probe sees what a new connection
            // would meet.
            let probe = Connector::new(&UpstreamSettings::Smtp(Arc::clone(s)), helo_name);
            probe.probe().await.map_err(|e| e.to_string())
        }
        UpstreamSettings::Directory { path } => {
            // The directory leg creates the directory at the first message; so does the probe.
            tokio::fs::create_dir_all(path)
                .await
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let probe = path.join(".relaygate-probe");
            tokio::fs::write(&probe, b"")
                .await
                .map_err(|e| format!("cannot write in {}: {e}", path.display()))?;
            let _ = tokio::fs::remove_file(&probe).await;
            Ok(())
        }
    }
}

/// Count an upstream reply (or the failure to get one) for `/metrics`.
fn count(r: &Result<&UpstreamReply, &UpstreamError>) {
    metrics().upstream_reply(r.as_ref().ok().map(|r| r.code));
}

/// Rebuild a path for an upstream command from a parsed address: a local part that is not a
/// dot-atom is quoted again (the parser removed the quotes), so `"a b"@c` stays one address.
pub fn format_path(address: &str) -> String {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return format!("<{address}>");
    };
    let atext =
        |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80;
    let dot_atom = !local.is_empty()
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.bytes().all(|b| b == b'.' || atext(b));
    if dot_atom {
        format!("<{address}>")
    } else {
        let mut q = String::with_capacity(local.len() + 2);
        q.push('"');
        for c in local.chars() {
            if c == '"' || c == '\\' {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        format!("<{q}@{domain}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_requoted_when_needed() {
        assert_eq!(format_path("app@contoso.com"), "<app@contoso.com>");
        assert_eq!(format_path(""), "<>");
        assert_eq!(format_path("a b@contoso.com"), "<\"a b\"@contoso.com>");
        assert_eq!(format_path("x@y@example.org"), "<\"x@y\"@example.org>");
        assert_eq!(format_path("q\"x@example.org"), "<\"q\\\"x\"@example.org>");
    }

    #[test]
    fn upstream_trouble_is_always_4xx() {
        for e in [
            UpstreamError::Connect(std::io::ErrorKind::ConnectionRefused.into()),
            UpstreamError::Timeout(Stage::Rcpt),
            UpstreamError::Dropped(Stage::Data),
            UpstreamError::Tls(TlsFailure::NotOffered),
            UpstreamError::Refused {
                stage: Stage::Greeting,
                reply: "554 go away".into(),
            },
        ] {
            let r = e.reply();
            assert_eq!(r.code, 451, "{e}");
            assert!(r.enhanced.starts_with("4.4."));
        }
    }
}
