//! The DSN parameters of a MAIL or RCPT line, held to RFC 3461 where smtp-proto lets them pass.
//!
//! smtp-proto parses them (`RET` and `NOTIFY` into flags, `ENVID` and `ORCPT` decoded from
//! xtext) and refuses unknown keywords and values, an empty or over-long `ENVID` and an `ORCPT`
//! whose type is not `rfc822` or whose address is over 256 characters. What it lets through,
//! this refuses with `501 5.5.4` naming the parameter:
//!
//! - `NOTIFY=NEVER` together with another keyword (RFC 3461 4.1 allows NEVER only alone);
//! - malformed xtext in `ENVID` or `ORCPT` (smtp-proto skips a bad `+` escape and takes octets
//!   xtext must encode), or text that decodes to anything but printable US-ASCII (4.2, 4.4);
//! - `ENVID` over 100 characters and an `ORCPT` address over 500 (4.4, 4.2), decoded;
//! - any of the four given twice in one command: smtp-proto keeps one or merges them, so
//!   which one the client meant is a guess (Postfix refuses them too).
//!
//! The xtext is read here from the line itself, after the path, and must decode to exactly
//! what smtp-proto made of it: the gate forwards only a value both readings agree on.

use crate::wire::reply::Reply;
use crate::wire::xtext;
use smtp_proto::{MailFrom, RcptTo, Request};
use std::fmt::Display;

/// RFC 3461 4.4: an `ENVID` holds at most 100 characters.
const MAX_ENVID: usize = 100;
/// RFC 3461 4.2: an `ORCPT` address holds at most 500 characters.
const MAX_ORCPT: usize = 500;

/// Refuse a MAIL or RCPT whose DSN parameters the gate could not forward exactly. Other
/// commands pass.
pub fn check(line: &[u8], request: &Request<String>) -> Result<(), Reply> {
    match request {
        Request::Mail { from } => check_mail(&parameters(line), from),
        Request::Rcpt { to } => check_rcpt(&parameters(line), to),
        _ => Ok(()),
    }
}

fn invalid(param: &str, why: impl Display) -> Reply {
    Reply::new(501, "5.5.4", format!("Invalid parameter {param}: {why}"))
}

/// The line and smtp-proto read the parameter differently.
fn ambiguous(param: &str) -> Reply {
    invalid(param, "cannot be read unambiguously")
}

fn check_mail(params: &[Param<'_>], from: &MailFrom<String>) -> Result<(), Reply> {
    let ret = single(params, "RET")?;
    let ret_flags = from.flags & (smtp_proto::MAIL_RET_FULL | smtp_proto::MAIL_RET_HDRS);
    if ret.is_some() != (ret_flags != 0) {
        return Err(ambiguous("RET"));
    }
    let envid = single(params, "ENVID")?;
    check_xtext("ENVID", envid, from.env_id.as_deref(), MAX_ENVID)
}

fn check_rcpt(params: &[Param<'_>], to: &RcptTo<String>) -> Result<(), Reply> {
    let notify = single(params, "NOTIFY")?;
    let flags = to.flags
        & (smtp_proto::RCPT_NOTIFY_NEVER
            | smtp_proto::RCPT_NOTIFY_SUCCESS
            | smtp_proto::RCPT_NOTIFY_FAILURE
            | smtp_proto::RCPT_NOTIFY_DELAY);
    if notify.is_some() != (flags != 0) {
        return Err(ambiguous("NOTIFY"));
    }
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 && flags != smtp_proto::RCPT_NOTIFY_NEVER {
        return Err(invalid(
            "NOTIFY",
            "NEVER cannot be combined with SUCCESS, FAILURE or DELAY",
        ));
    }
    let orcpt = match single(params, "ORCPT")? {
        None => None,
        Some(value) => {
            let semicolon = value.iter().position(|b| *b == b';');
            let Some((kind, address)) = semicolon.map(|i| (&value[..i], &value[i + 1..])) else {
                return Err(ambiguous("ORCPT"));
            };
            if !kind.eq_ignore_ascii_case(b"rfc822") {
                return Err(ambiguous("ORCPT"));
            }
            Some(address)
        }
    };
    check_xtext("ORCPT", orcpt, to.orcpt.as_deref(), MAX_ORCPT)
}

/// The raw xtext of `param` (if given) decodes strictly, within `max` characters, to what
/// smtp-proto decoded.
fn check_xtext(
    param: &str,
    raw: Option<&[u8]>,
    parsed: Option<&str>,
    max: usize,
) -> Result<(), Reply> {
    let (raw, parsed) = match (raw, parsed) {
        (None, None) => return Ok(()),
        (Some(raw), Some(parsed)) => (raw, parsed),
        _ => return Err(ambiguous(param)),
    };
    let text = xtext::decode(raw).map_err(|e| invalid(param, e))?;
    if text.len() > max {
        return Err(invalid(param, format!("longer than {max} characters")));
    }
    if text != parsed {
        return Err(ambiguous(param));
    }
    Ok(())
}

/// One `KEYWORD[=value]` after the path.
struct Param<'a> {
    keyword: &'a [u8],
    value: Option<&'a [u8]>,
}

/// The value of `keyword` (empty when it has none), refusing it when it is given twice.
fn single<'a>(params: &[Param<'a>], keyword: &str) -> Result<Option<&'a [u8]>, Reply> {
    let mut found = params
        .iter()
        .filter(|p| p.keyword.eq_ignore_ascii_case(keyword.as_bytes()));
    let first = found.next().map(|p| p.value.unwrap_or_default());
    if found.next().is_some() {
        return Err(invalid(keyword, "given more than once"));
    }
    Ok(first)
}

/// The parameters of a MAIL or RCPT line that smtp-proto parsed: the words after the path's
/// closing `>` (one outside a quoted local part), separated by spaces as RFC 5321 writes them.
/// A tab or CR inside a word stays in it, so its value fails to decode.
fn parameters(line: &[u8]) -> Vec<Param<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(open) = line.iter().position(|b| *b == b'<') else {
        return Vec::new();
    };
    let mut i = open + 1;
    let mut quoted = false;
    while let Some(&b) = line.get(i) {
        match b {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'>' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    line.get(i + 1..)
        .unwrap_or_default()
        .split(|b| *b == b' ')
        .filter(|word| !word.is_empty())
        .map(|word| match word.iter().position(|b| *b == b'=') {
            Some(eq) => Param {
                keyword: &word[..eq],
                value: Some(&word[eq + 1..]),
            },
            None => Param {
                keyword: word,
                value: None,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::wire::command::parse_command;

    /// The reply a line gets, or "ok".
    fn answer(line: &str) -> String {
        match parse_command(format!("{line}\r\n").as_bytes()) {
            Ok(_) => "ok".into(),
            Err(r) => r.to_line(),
        }
    }

    #[test]
    fn well_formed_dsn_parameters_pass() {
        for line in [
            "MAIL FROM:<a@contoso.com> RET=FULL ENVID=QQ314159",
            "MAIL FROM:<a@contoso.com> SIZE=100 ret=hdrs envid=a+2Bb BODY=8BITMIME",
            "MAIL FROM:<> RET=HDRS",
            "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;b@example.org",
            "RCPT TO:<b@example.org> NOTIFY=NEVER",
            "RCPT TO:<b@example.org> ORCPT=RFC822;x+20y@example.org",
            // A quoted local part that looks like parameters is part of the path.
            "MAIL FROM:<\"x> ENVID=a ENVID=b\"@contoso.com> ENVID=c",
            "RCPT TO:<\"q\\\" NOTIFY=NEVER\"@example.org> NOTIFY=SUCCESS",
        ] {
            assert_eq!(answer(line), "ok", "{line}");
        }
    }

    #[test]
    fn each_malformed_parameter_gets_501_naming_it() {
        for (line, param) in [
            ("MAIL FROM:<a@contoso.com> RET=NONE", "RET"),
            ("MAIL FROM:<a@contoso.com> RET=FULL RET=HDRS", "RET"),
            ("MAIL FROM:<a@contoso.com> RET=HDRS RET=HDRS", "RET"),
            ("MAIL FROM:<a@contoso.com> ENVID=", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=a+2", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=a+zz", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=a+2b", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=a+0D+0A", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=\u{e9}t\u{e9}", "ENVID"),
            ("MAIL FROM:<a@contoso.com> ENVID=a ENVID=b", "ENVID"),
            (
                &format!("MAIL FROM:<a@contoso.com> ENVID={}", "x".repeat(101)),
                "ENVID",
            ),
            ("RCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS", "NOTIFY"),
            ("RCPT TO:<b@example.org> NOTIFY=FAILURE,NEVER", "NOTIFY"),
            ("RCPT TO:<b@example.org> NOTIFY=SOMETIMES", "NOTIFY"),
            (
                "RCPT TO:<b@example.org> NOTIFY=SUCCESS NOTIFY=FAILURE",
                "NOTIFY",
            ),
            ("RCPT TO:<b@example.org> ORCPT=b@example.org", "ORCPT"),
            ("RCPT TO:<b@example.org> ORCPT=x400;b@example.org", "ORCPT"),
            ("RCPT TO:<b@example.org> ORCPT=rfc822;b+4", "ORCPT"),
            ("RCPT TO:<b@example.org> ORCPT=rfc822;", "ORCPT"),
            ("RCPT TO:<b@example.org> ORCPT=rfc822;a+00b", "ORCPT"),
            (
                "RCPT TO:<b@example.org> ORCPT=rfc822;a@b ORCPT=rfc822;c@d",
                "ORCPT",
            ),
        ] {
            let reply = answer(line);
            assert!(
                reply.starts_with(&format!("501 5.5.4 Invalid parameter {param}")),
                "{line}: {reply}"
            );
        }
    }

    #[test]
    fn the_rfc_bounds_are_checked_on_the_decoded_text() {
        // 100 characters, of which the space is written as three.
        let envid = format!("{}+20", "e".repeat(99));
        assert_eq!(
            answer(&format!("MAIL FROM:<a@contoso.com> ENVID={envid}")),
            "ok"
        );
        let too_long: String = "o".repeat(501);
        let to = smtp_proto::RcptTo {
            address: "b@example.org".to_string(),
            orcpt: Some(too_long.clone()),
            rrvs: 0,
            flags: 0,
        };
        let line = format!("RCPT TO:<b@example.org> ORCPT=rfc822;{too_long}\r\n");
        let reply = super::check(line.as_bytes(), &smtp_proto::Request::Rcpt { to }).unwrap_err();
        assert_eq!(
            reply.to_line(),
            "501 5.5.4 Invalid parameter ORCPT: longer than 500 characters"
        );
    }
}
