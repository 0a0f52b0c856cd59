//! One command line in, one parsed request (or the reply refusing it) out.
//!
//! Parsing is smtp-proto's; this is the seam the session and the fuzzer share.

use super::dsn;
use super::reply::Reply;
use smtp_proto::Request;

/// Parse a complete command line (ending in LF). Lines the gate will not act on get the 5xx
/// that says why, also DSN parameters it could not forward exactly ([`dsn::check`]).
pub fn parse_command(line: &[u8]) -> Result<Request<String>, Reply> {
    if line.contains(&0) {
        return Err(Reply::new(500, "5.5.2", "NUL character in command"));
    }
    let request = Request::parse(&mut line.iter())
        .map(Request::into_owned)
        .map_err(|e| match e {
            smtp_proto::Error::UnknownCommand => Reply::new(500, "5.5.1", "Command unrecognized"),
            smtp_proto::Error::InvalidSenderAddress => {
                Reply::new(501, "5.1.7", "Bad sender address syntax")
            }
            smtp_proto::Error::InvalidRecipientAddress => {
                Reply::new(501, "5.1.3", "Bad recipient address syntax")
            }
            smtp_proto::Error::SyntaxError { syntax } => {
                Reply::new(501, "5.5.4", format!("Syntax: {syntax}"))
            }
            smtp_proto::Error::InvalidParameter { param } => {
                Reply::new(501, "5.5.4", format!("Invalid parameter {param}"))
            }
            smtp_proto::Error::UnsupportedParameter { param } => {
                Reply::new(555, "5.5.4", format!("Unsupported parameter {param}"))
            }
            _ => Reply::new(500, "5.5.2", "Syntax error"),
        })?;
    dsn::check(line, &request)?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_with_parameters() {
        match parse_command(b"MAIL FROM:<app@contoso.com> SIZE=1000 BODY=8BITMIME\r\n") {
            Ok(Request::Mail { from }) => {
                assert_eq!(from.address, "app@contoso.com");
                assert_eq!(from.size, 1000);
                assert!(from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_sender_and_quoted_local_part() {
        assert!(
            matches!(parse_command(b"MAIL FROM:<>\r\n"), Ok(Request::Mail { from }) if from.address.is_empty())
        );
        match parse_command(b"RCPT TO:<\"a@b\"@example.org>\r\n") {
            Ok(Request::Rcpt { to }) => {
                assert_eq!(to.address.rsplit_once('@').unwrap().1, "example.org")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_gets_a_5xx() {
        for line in [
            &b"HELLO\r\n"[..],
            b"MAIL FROM:<a@b\r\n",
            b"RCPT TO:<@>\r\n",
            b"MAIL\0 FROM:<a@b.c>\r\n",
            b"\xff\xfe\r\n",
            b"MAIL FROM:<a@b.c> SIZE=abc\r\n",
        ] {
            let r = parse_command(line).expect_err(&format!("{line:?}"));
            assert!((500..600).contains(&r.code), "{line:?}: {r:?}");
        }
    }
}
