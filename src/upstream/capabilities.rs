//! What an upstream offers in its EHLO reply, and so which extensions the leg may use.

use super::UpstreamReply;

/// What the upstream's EHLO reply offered.
#[derive(Debug, Default, Clone, Copy)]
pub struct Capabilities {
    pub pipelining: bool,
    pub starttls: bool,
    pub size: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub chunking: bool,
    /// RFC 3461: the DSN parameters of MAIL and RCPT are passed on only then.
    pub dsn: bool,
    /// BINARYMIME (RFC 3030): it takes `BODY=BINARYMIME` messages (with BDAT).
    pub binarymime: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034): every reply carries one, which is what lets a reply
    /// read one behind be told from a verdict ([`super::connection::Expect::Verdict`]).
    pub enhanced_status_codes: bool,
}

impl Capabilities {
    /// What an EHLO reply offers, read by smtp-proto's EHLO parser (the one Stalwart uses).
    /// A reply it cannot read offers nothing: the leg then uses no extension, which is slower
    /// but never wrong, and `tls = "required"` fails closed.
    pub(super) fn from_ehlo(reply: &UpstreamReply) -> Capabilities {
        let Ok(ehlo) = smtp_proto::EhloResponse::<String>::parse(&mut reply.raw.iter()) else {
            return Capabilities::default();
        };
        let has = |ext: u32| ehlo.capabilities & ext != 0;
        Capabilities {
            pipelining: has(smtp_proto::EXT_PIPELINING),
            starttls: has(smtp_proto::EXT_START_TLS),
            size: has(smtp_proto::EXT_SIZE),
            eight_bit_mime: has(smtp_proto::EXT_8BIT_MIME),
            smtputf8: has(smtp_proto::EXT_SMTP_UTF8),
            chunking: has(smtp_proto::EXT_CHUNKING),
            dsn: has(smtp_proto::EXT_DSN),
            binarymime: has(smtp_proto::EXT_BINARY_MIME),
            enhanced_status_codes: has(smtp_proto::EXT_ENHANCED_STATUS_CODES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_onlines_ehlo_offers_what_the_leg_uses() {
        // Exchange Online's MX, as it answers EHLO before STARTTLS.
        let raw = b"250-DM6PR01CA0001.outlook.office365.com Hello [203.0.113.25]\r\n\
250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n\
250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
        let caps = Capabilities::from_ehlo(&UpstreamReply {
            code: 250,
            raw: raw.to_vec(),
        });
        assert!(caps.pipelining && caps.starttls && caps.size && caps.eight_bit_mime);
        assert!(caps.smtputf8 && caps.chunking && caps.dsn && caps.binarymime);
        assert!(caps.enhanced_status_codes);
        let bare = Capabilities::from_ehlo(&UpstreamReply {
            code: 250,
            raw: b"250 upstream.test\r\n".to_vec(),
        });
        assert!(!bare.pipelining && !bare.starttls && !bare.chunking && !bare.dsn);
        assert!(!bare.binarymime && !bare.enhanced_status_codes);
    }

    #[test]
    fn an_ehlo_reply_ending_in_an_empty_line_still_offers_what_it_lists() {
        // Postfix's smtp-sink ends its EHLO reply with "250 " and nothing after the code.
        let raw = b"250-smtp-sink\r\n250-CHUNKING\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
        let caps = Capabilities::from_ehlo(&UpstreamReply {
            code: 250,
            raw: raw.to_vec(),
        });
        assert!(caps.pipelining && caps.chunking && caps.dsn && caps.eight_bit_mime);
    }
}
