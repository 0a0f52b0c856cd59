//! xtext (RFC 3461 section 4): how the DSN parameters `ENVID` and `ORCPT` carry text that may
//! hold a space, `+` or `=` inside one SMTP parameter.
//!
//! Any character from `!` to `~` stands for itself except `+` and `=`; every other octet is `+`
//! and two upper-case hex digits. The decoder here is strict where smtp-proto's is lenient (it
//! drops a `+` without its two digits, takes lower-case digits and raw octets outside that
//! range): the gate refuses what it cannot read back exactly, since it forwards what it read.

use thiserror::Error;

/// Why a parameter value is not xtext the gate will forward.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XtextError {
    #[error("is empty")]
    Empty,
    #[error("has the octet 0x{0:02X}, which xtext must encode as +XX")]
    Unencoded(u8),
    #[error("has a + without two upper-case hex digits")]
    BadEscape,
    /// RFC 3461 4.2 and 4.4: the decoded text must be printable US-ASCII.
    #[error("decodes to 0x{0:02X}, not printable US-ASCII")]
    NotPrintable(u8),
}

/// Whether an octet stands for itself in xtext.
fn is_xchar(b: u8) -> bool {
    (b'!'..=b'~').contains(&b) && b != b'+' && b != b'='
}

/// Decode an xtext value whose decoded text must be printable US-ASCII (space included), as
/// RFC 3461 requires of ENVID and of ORCPT's address.
pub fn decode(raw: &[u8]) -> Result<String, XtextError> {
    if raw.is_empty() {
        return Err(XtextError::Empty);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = match raw[i] {
            b'+' => {
                let high = raw.get(i + 1).copied().and_then(hex);
                let low = raw.get(i + 2).copied().and_then(hex);
                let (Some(high), Some(low)) = (high, low) else {
                    return Err(XtextError::BadEscape);
                };
                i += 3;
                (high << 4) | low
            }
            b if is_xchar(b) => {
                i += 1;
                b
            }
            b => return Err(XtextError::Unencoded(b)),
        };
        if !(b' '..=b'~').contains(&b) {
            return Err(XtextError::NotPrintable(b));
        }
        out.push(char::from(b));
    }
    Ok(out)
}

/// Encode text as xtext: what the gate writes upstream, whatever form the client used.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if is_xchar(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_equals_and_space_are_encoded_and_read_back() {
        let text = "a+b=c d";
        let coded = encode(text);
        assert_eq!(coded, "a+2Bb+3Dc+20d");
        assert_eq!(decode(coded.as_bytes()).unwrap(), text);
    }

    #[test]
    fn needless_escapes_are_read_and_not_written_again() {
        // "+41" is an "A" the client chose to encode; the gate writes the plain form.
        let text = decode(b"+41BC").unwrap();
        assert_eq!(text, "ABC");
        assert_eq!(encode(&text), "ABC");
    }

    #[test]
    fn malformed_xtext_is_refused() {
        assert_eq!(decode(b""), Err(XtextError::Empty));
        assert_eq!(decode(b"a+2"), Err(XtextError::BadEscape));
        assert_eq!(decode(b"a+ZZ"), Err(XtextError::BadEscape));
        assert_eq!(
            decode(b"a+2b"),
            Err(XtextError::BadEscape),
            "lower-case hex"
        );
        assert_eq!(decode(b"a=b"), Err(XtextError::Unencoded(b'=')));
        assert_eq!(decode(b"a\xC3\xA9"), Err(XtextError::Unencoded(0xC3)));
        assert_eq!(decode(b"a\tb"), Err(XtextError::Unencoded(b'\t')));
    }

    #[test]
    fn only_printable_us_ascii_may_be_encoded() {
        assert_eq!(decode(b"a+0D+0A"), Err(XtextError::NotPrintable(0x0D)));
        assert_eq!(decode(b"+00"), Err(XtextError::NotPrintable(0)));
        assert_eq!(decode(b"+C3+A9"), Err(XtextError::NotPrintable(0xC3)));
        assert_eq!(decode(b"+7E+20").unwrap(), "~ ");
    }
}
