//! What can go wrong with the upstream, typed: each variant knows its stage and keeps its
//! source, so the log can say exactly what happened while the client only ever gets a 4xx.

use crate::wire::reply::Reply;
use std::fmt;
use std::io;

/// Where in the upstream dialogue something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    /// Taking a pooled connection for another transaction.
    Reuse,
    Noop,
    Mail,
    Rcpt,
    Data,
    Bdat,
    BdatLast,
    /// The reply to the final dot or to `BDAT ... LAST`.
    EndOfData,
    Rset,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Reuse => "reuse of a pooled connection",
            Stage::Noop => "NOOP",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::Bdat => "BDAT",
            Stage::BdatLast => "BDAT LAST",
            Stage::EndOfData => "end of DATA",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why TLS to the upstream did not come about.
#[derive(Debug, thiserror::Error)]
pub enum TlsFailure {
    #[error("the upstream does not offer STARTTLS and upstream.tls is \"required\"")]
    NotOffered,
    #[error("STARTTLS refused: {0}")]
    Refused(String),
    #[error("no TLS configuration")]
    NoConfiguration,
    #[error("handshake: {0}")]
    Handshake(#[source] io::Error),
}

/// Trouble reaching or talking to the upstream. Always temporary for the client: the session
/// answers 451 so the sender keeps the message and retries.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unreachable: {0}")]
    Connect(#[source] io::Error),
    #[error("upstream did not answer in time ({0})")]
    Timeout(Stage),
    #[error("upstream closed the connection ({0})")]
    Dropped(Stage),
    #[error("upstream TLS failed: {0}")]
    Tls(#[source] TlsFailure),
    /// The upstream's own refusal of the session (its reply, kept as it came).
    #[error("upstream refused the session at {stage}: {reply}")]
    Refused { stage: Stage, reply: String },
    /// A reply that does not fit its command, mixed codes in one reply, or bytes when no reply
    /// was owed: the connection cannot be trusted with anything more.
    #[error("upstream out of step at {stage}: {seen}")]
    OutOfStep { stage: Stage, seen: String },
    /// No configured upstream address resolved to anything to connect to.
    #[error("no upstream address resolves")]
    Unresolved,
    #[error("upstream storage failed: {what}: {source}")]
    Storage {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl UpstreamError {
    /// The 4xx the client gets. Enhanced codes per RFC 3463: 4.4.1 no answer from host,
    /// 4.4.2 bad connection, 4.4.3 other routing/system trouble. The text is Exchange Online's
    /// generic one: the detail (addresses, paths, the upstream's words) goes to the log, under
    /// the session id the reply's suffix carries, never to the client.
    pub fn reply(&self) -> Reply {
        let enhanced = match self {
            UpstreamError::Connect(_)
            | UpstreamError::Unresolved
            | UpstreamError::Timeout(Stage::Connect) => "4.4.1",
            UpstreamError::Timeout(_) | UpstreamError::Dropped(_) => "4.4.2",
            _ => "4.4.3",
        };
        Reply::new(451, enhanced, TEMPORARY_FAILURE)
    }
}

/// The text of every 451 the gate makes for upstream trouble.
pub const TEMPORARY_FAILURE: &str = "Temporary server error. Please try again later";
