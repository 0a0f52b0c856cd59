//! SMTP replies the gate writes itself, and Exchange Online's reply suffix.
//!
//! Exchange Online ends every rejection with `[host time session-id]`; admins grep logs and NDRs
//! for that shape, so the gate produces it byte for byte (`exo-relay-rules.md`, "Reply lines").

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// A session identifier: 64 bits, shown as 16 upper-case hex digits like Exchange Online's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub u64);

impl SessionId {
    /// A fresh identifier: unique within the process (a counter) and unpredictable across
    /// processes (mixed with a randomly keyed hash), without pulling in a random-number crate.
    pub fn new() -> SessionId {
        use std::hash::{BuildHasher, Hasher};
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::OnceLock;
        static BASE: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = *BASE.get_or_init(|| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            h.write_u32(std::process::id());
            h.finish()
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        // An odd multiplier makes this a bijection of n: distinct sessions, distinct ids.
        SessionId(base ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl Default for SessionId {
    fn default() -> Self {
        SessionId::new()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

/// Exchange Online's suffix: ` [host 2026-11-22T08:26:31.592Z 08DB72B25E50380B]`.
pub fn exo_suffix(host: &str, at: SystemTime, id: SessionId) -> String {
    format!(" [{host} {} {id}]", iso8601_millis(at))
}

/// Broken-down UTC time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millis: u32,
    weekday: u32, // 0 = Sunday
}

fn civil(at: SystemTime) -> Civil {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days: exact for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        millis: d.subsec_millis(),
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// `2026-11-22T08:26:31.592Z`
pub fn iso8601_millis(at: SystemTime) -> String {
    let c = civil(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// RFC 5322 date-time for `Received:` headers: `Tue, 24 Nov 2026 12:44:50 +0000`.
pub fn rfc5322_date(at: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = civil(at);
    format!(
        "{}, {} {} {:04} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday as usize],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn suffix_has_exchange_online_shape() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_335_991_592);
        let s = exo_suffix("gate.contoso.com", at, SessionId(0x08DB_72B2_5E50_380B));
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
    fn session_ids_differ_and_print_as_16_hex_digits() {
        let a = SessionId::new();
        let b = SessionId::new();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(s.len(), 16);
        assert!(s
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
    }

    #[test]
    fn reply_never_contains_a_line_break() {
        let r = Reply::new(550, "5.7.64", "a\r\nb");
        let mut out = Vec::new();
        r.write_to(&mut out);
        assert_eq!(out, b"550 5.7.64 ab\r\n");
    }
}
