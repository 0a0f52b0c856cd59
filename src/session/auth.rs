//! AUTH on the submission listeners (the second door): PLAIN (RFC 4616) and LOGIN, the two
//! mechanisms applications that only know "user name and password" speak (RFC 4954).
//!
//! Offered only under TLS, as Exchange Online's client submission offers it: before STARTTLS
//! its EHLO has no AUTH, and an AUTH anyway gets `504 5.7.4 Unrecognized authentication type`.
//! Wrong credentials get `535 5.7.3 Authentication unsuccessful` after a delay that grows per
//! client address, and an address with too many failures is locked out (`421 4.7.0`, session
//! closed): the throttle is shared by every session of the gate and outlives reloads.
//!
//! Credentials are never logged, not even on failure. The user name attempted is logged only
//! when it names a user of the users file: an application that pasted its password into the
//! user name field would otherwise leave the password in the log.

use super::io::Input;
use super::{Door, End, Session};
use crate::observe::metrics::metrics;
use crate::submission::throttle::Admission;
use crate::wire::reply::Reply;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// `Username:` and `Password:` in base64: the LOGIN mechanism's challenges, as every server
/// (Exchange Online's included) sends them.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// The mechanisms offered (EHLO's `AUTH` line).
pub(super) const MECHANISMS: &str = "AUTH LOGIN PLAIN";

/// What the client sent for the mechanism: the credentials, or why there are none.
enum Credentials {
    Given {
        user: String,
        password: Vec<u8>,
    },
    /// `*`: the client gave up (RFC 4954 section 4).
    Cancelled,
    /// Not base64, or not the mechanism's shape.
    Malformed,
    /// Already answered (an over-long response line got `500 5.5.2`): the exchange is over.
    Answered,
    /// The session ended while waiting for a response.
    Ended(End),
}

/// An `AUTH` line split: the mechanism (upper-cased) and the initial response, if any.
fn split(line: &[u8]) -> Option<(String, Option<String>)> {
    let text = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\r', '\n']);
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    let _auth = words.next()?;
    let mechanism = words.next()?.to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return None;
    }
    Some((mechanism, initial))
}

/// One base64 response; `=` is the empty one (RFC 4954).
fn decode(response: &str) -> Option<Vec<u8>> {
    match response {
        "=" => Some(Vec::new()),
        r => STANDARD.decode(r).ok(),
    }
}

/// `[authzid] NUL authcid NUL passwd` (RFC 4616). An authorisation identity other than the
/// user itself is refused: the gate has no "act as another user".
fn plain(message: &[u8]) -> Option<(String, Vec<u8>)> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let authzid = parts.next()?;
    let authcid = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    if authcid.is_empty() || (!authzid.is_empty() && authzid != authcid.as_bytes()) {
        return None;
    }
    Some((authcid.to_string(), password.to_vec()))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Whether EHLO offers AUTH now: on a submission listener, under TLS.
    pub(super) fn offers_auth(&self) -> bool {
        matches!(self.door, Door::Submission { .. })
            && self.tls_description.is_some()
            && self.settings.submission.is_some()
    }

    /// `AUTH mechanism [initial-response]`.
    pub(super) async fn auth(&mut self, line: &[u8]) -> Result<(), End> {
        let Door::Submission { throttle, .. } = &self.door else {
            self.error_reply(Reply::new(502, "5.5.1", "AUTH is not offered"));
            return Ok(());
        };
        let throttle = std::sync::Arc::clone(throttle);
        let Some((mechanism, initial)) = split(line) else {
            self.error_reply(Reply::new(
                501,
                "5.5.4",
                "Syntax: AUTH mechanism [initial-response]",
            ));
            return Ok(());
        };
        if !self.offers_auth() || !matches!(mechanism.as_str(), "PLAIN" | "LOGIN") {
            self.error_reply(Reply::new(504, "5.7.4", "Unrecognized authentication type"));
            return Ok(());
        }
        if self.user.is_some() {
            self.error_reply(Reply::new(503, "5.5.1", "Already authenticated"));
            return Ok(());
        }
        if self.txn.is_some() {
            self.error_reply(Reply::new(
                503,
                "5.5.1",
                "AUTH is not allowed inside a mail transaction",
            ));
            return Ok(());
        }
        let ip = self.peer.addr.ip();
        let admission = lock(&throttle).check(ip, Instant::now());
        if let Admission::LockedOut { .. } = admission {
            return Err(self.locked_out());
        }
        let credentials = match mechanism.as_str() {
            "PLAIN" => self.plain_exchange(initial).await,
            _ => self.login_exchange(initial).await,
        };
        let (user, password) = match credentials {
            Credentials::Given { user, password } => (user, password),
            Credentials::Cancelled => {
                self.error_reply(Reply::new(501, "5.7.0", "Authentication cancelled"));
                return Ok(());
            }
            Credentials::Malformed => {
                self.error_reply(Reply::new(501, "5.5.2", "Cannot decode response"));
                return Ok(());
            }
            Credentials::Answered => return Ok(()),
            Credentials::Ended(end) => return Err(end),
        };
        let users = match &self.settings.submission {
            Some(s) => std::sync::Arc::clone(&s.users),
            None => return Err(End::Io),
        };
        // argon2id takes tens of milliseconds of CPU on purpose: off the async workers.
        let attempt = user.clone();
        let password = zeroize::Zeroizing::new(password);
        let verify = tokio::task::spawn_blocking(move || users.verify_owned(attempt, password));
        let verified = within_deadline!(self, verify).ok().flatten();
        match verified {
            Some(name) => {
                lock(&throttle).success(ip);
                metrics().auth("ok");
                tracing::info!(session = %self.id, peer = %self.peer.addr, user = %name, mechanism = %mechanism, "authenticated");
                self.user = Some(name);
                self.reply(&Reply::new(235, "2.7.0", "Authentication successful"));
                Ok(())
            }
            None => self.auth_failed(&throttle, &user, &mechanism).await,
        }
    }

    /// Wrong credentials: wait the throttle's delay, then 535, or 421 when the address is now
    /// locked out.
    async fn auth_failed(
        &mut self,
        throttle: &super::SharedThrottle,
        attempted: &str,
        mechanism: &str,
    ) -> Result<(), End> {
        let ip = self.peer.addr.ip();
        let verdict = lock(throttle).failure(ip, Instant::now());
        let known = self
            .settings
            .submission
            .as_ref()
            .is_some_and(|s| s.users.get(attempted).is_some());
        // Only a name the users file has: an unknown one may be a password typed in the wrong field.
        let logged_user = if known { attempted } else { "(not a user)" };
        tracing::info!(session = %self.id, peer = %self.peer.addr, user = %logged_user, mechanism = %mechanism, delay_ms = verdict.delay.as_millis() as u64, locked_out = verdict.locked_out, "authentication failed");
        metrics().auth(if verdict.locked_out {
            "locked out"
        } else {
            "failed"
        });
        let delay = tokio::time::sleep(verdict.delay);
        if tokio::time::timeout_at(self.session_deadline, delay)
            .await
            .is_err()
        {
            self.timed_out();
            return Err(End::Timeout);
        }
        if verdict.locked_out {
            return Err(self.locked_out());
        }
        self.error_reply(Reply::new(535, "5.7.3", "Authentication unsuccessful"));
        Ok(())
    }

    /// `421 4.7.0`: too many failures from this address; the session ends.
    fn locked_out(&mut self) -> End {
        let host = self.settings.server.hostname.clone();
        self.reply(&Reply::new(
            421,
            "4.7.0",
            format!("{host} Too many authentication failures, closing connection"),
        ));
        End::TooManyErrors
    }

    async fn plain_exchange(&mut self, initial: Option<String>) -> Credentials {
        let response = match initial {
            Some(r) => r,
            None => match self.challenge("").await {
                Ok(r) => r,
                Err(c) => return c,
            },
        };
        if response == "*" {
            return Credentials::Cancelled;
        }
        match decode(&response).as_deref().and_then(plain) {
            Some((user, password)) => Credentials::Given { user, password },
            None => Credentials::Malformed,
        }
    }

    async fn login_exchange(&mut self, initial: Option<String>) -> Credentials {
        let user = match initial {
            Some(r) => r,
            None => match self.challenge(LOGIN_USERNAME).await {
                Ok(r) => r,
                Err(c) => return c,
            },
        };
        if user == "*" {
            return Credentials::Cancelled;
        }
        let Some(user) = decode(&user).and_then(|u| String::from_utf8(u).ok()) else {
            return Credentials::Malformed;
        };
        let password = match self.challenge(LOGIN_PASSWORD).await {
            Ok(r) => r,
            Err(c) => return c,
        };
        if password == "*" {
            return Credentials::Cancelled;
        }
        match decode(&password) {
            Some(password) => Credentials::Given { user, password },
            None => Credentials::Malformed,
        }
    }

    /// `334 challenge`, then the client's response line (bounded like every command line: an
    /// over-long one is answered `500 5.5.2` and ends the exchange). The line is not kept
    /// beyond this exchange, and never logged.
    async fn challenge(&mut self, challenge: &str) -> Result<String, Credentials> {
        self.reply(&Reply::new(334, "", challenge));
        let len = match self.read_line().await {
            Err(_) => return Err(Credentials::Answered),
            Ok(Input::Line(n)) => n,
            Ok(Input::TimedOut) => {
                self.timed_out();
                return Err(Credentials::Ended(End::Timeout));
            }
            Ok(Input::ShuttingDown) => return Err(Credentials::Ended(self.shutting_down().await)),
            Ok(Input::Closed) => return Err(Credentials::Ended(End::ClientClosed)),
            Ok(Input::Failed) => return Err(Credentials::Ended(End::Io)),
        };
        let line = self.buffered()[..len].to_vec();
        self.consume(len);
        let text = String::from_utf8_lossy(&line);
        Ok(text.trim_end_matches(['\r', '\n']).trim().to_string())
    }

    /// `530 5.7.57` for MAIL before AUTH on a submission listener: Exchange Online's client
    /// submission answer (with its suffix).
    pub(super) fn not_authenticated(&mut self) {
        self.reply_with_suffix(&Reply::new(
            530,
            "5.7.57",
            "Client not authenticated to send mail.",
        ));
        self.errors += 1;
    }
}

fn lock(
    throttle: &super::SharedThrottle,
) -> std::sync::MutexGuard<'_, crate::submission::throttle::AuthThrottle> {
    throttle.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_takes_an_empty_or_equal_authorization_identity() {
        assert_eq!(
            plain(b"\0app\0secret"),
            Some(("app".into(), b"secret".to_vec()))
        );
        assert_eq!(
            plain(b"app\0app\0secret"),
            Some(("app".into(), b"secret".to_vec()))
        );
        assert_eq!(plain(b"other\0app\0secret"), None);
        assert_eq!(plain(b"app secret"), None);
        assert_eq!(plain(b""), None);
    }

    #[test]
    fn an_equals_sign_is_the_empty_response() {
        assert_eq!(decode("="), Some(Vec::new()));
        assert_eq!(decode("YXBw"), Some(b"app".to_vec()));
        assert_eq!(decode("not base64!"), None);
    }

    #[test]
    fn the_auth_line_splits_into_mechanism_and_initial_response() {
        assert_eq!(
            split(b"auth plain AGFwcABz\r\n"),
            Some(("PLAIN".into(), Some("AGFwcABz".into())))
        );
        assert_eq!(split(b"AUTH LOGIN\r\n"), Some(("LOGIN".into(), None)));
        assert_eq!(split(b"AUTH\r\n"), None);
        assert_eq!(split(b"AUTH PLAIN a b\r\n"), None);
    }
}
