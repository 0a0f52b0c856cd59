//! SMTP replies the gate writes itself, Exchange Online's reply suffix, and the two date forms
//! SMTP needs (dates by `jiff`, in UTC).
//!
//! Exchange Online ends every rejection with `[host time session-id]`; admins grep logs and NDRs
//! for that shape, so the gate produces it byte for byte (`exo-relay-rules.md`, "Reply lines").

use std::fmt::{self, Write as _};
use std::time::SystemTime;

/// A reply the gate generates: code, enhanced status code, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `x.y.z`, or empty for replies without one (banner, EHLO).
    pub enhanced: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// Append the reply as one line (`code SP [enhanced SP] text CRLF`).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(self.text.len() + 16);
        let _ = write!(line, "{}", self.code);
        line.push(' ');
        if !self.enhanced.is_empty() {
            line.push_str(self.enhanced);
            line.push(' ');
        }
        line.push_str(&self.text);
        // A reply is one line: never let a CR or LF from anywhere split it.
        line.retain(|c| c != '\r' && c != '\n');
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The reply as a string without CRLF, for logs.
    pub fn to_line(&self) -> String {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v.truncate(v.len() - 2);
        String::from_utf8_lossy(&v).into_owned()
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

/// Exchange Online's suffix: ` [host 2026-11-22T08:26:31.592Z 08DB72B25E50380B]`, `id` being
/// the session's identifier.
pub fn exo_suffix(host: &str, at: SystemTime, id: impl fmt::Display) -> String {
    format!(" [{host} {} {id}]", iso8601_millis(at))
}

/// `2026-11-22T08:26:31.592Z`
pub fn iso8601_millis(at: SystemTime) -> String {
    utc(at).strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// RFC 5322 date-time for `Received:` headers: `Tue, 24 Nov 2026 12:44:50 +0000`.
pub fn rfc5322_date(at: SystemTime) -> String {
    utc(at).strftime("%a, %-d %b %Y %H:%M:%S +0000").to_string()
}

/// A wall-clock time as a timestamp; a clock set before 1970 (or past jiff's range) reads as
/// the epoch rather than failing a reply.
fn utc(at: SystemTime) -> jiff::Timestamp {
    jiff::Timestamp::try_from(at).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn suffix_has_exchange_online_shape() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_335_991_592);
        let s = exo_suffix("gate.contoso.com", at, "08DB72B25E50380B");
        assert_eq!(
            s,
            " [gate.contoso.com 2026-11-22T08:26:31.592Z 08DB72B25E50380B]"
        );
    }

    #[test]
    fn dates_are_right_across_leap_years() {
        let at = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601_millis(at), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc5322_date(at), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(iso8601_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc5322_date(UNIX_EPOCH), "Thu, 1 Jan 1970 00:00:00 +0000");
    }

    #[test]
    fn reply_never_contains_a_line_break() {
        let r = Reply::new(550, "5.7.64", "a\r\nb");
        let mut out = Vec::new();
        r.write_to(&mut out);
        assert_eq!(out, b"550 5.7.64 ab\r\n");
    }
}
