//! The header block: collected (bounded) while DATA streams, then read for the P2 sender.
//!
//! Only the header block is ever buffered; the body streams straight through. The P2 sender is
//! the address of the first `From:` header, parsed per RFC 5322 by `mailparse` (folding,
//! comments, quoted display names, encoded words, groups), so a display name that looks like an
//! address is never mistaken for the address.

use memchr::memmem;

/// Collects decoded message text until the blank line that ends the header block.
#[derive(Debug)]
pub struct HeaderCollector {
    buf: Vec<u8>,
    max: usize,
    /// Where the header block ends in `buf` (after its blank line), once found.
    end: Option<usize>,
    too_large: bool,
}

impl HeaderCollector {
    pub fn new(max_header_size: usize) -> HeaderCollector {
        HeaderCollector {
            buf: Vec::new(),
            max: max_header_size,
            end: None,
            too_large: false,
        }
    }

    /// Take decoded text. Returns true once the header block is complete (or too large); then
    /// `body_start()` holds what came after it.
    pub fn push(&mut self, text: &[u8]) -> bool {
        if self.is_complete() {
            return true;
        }
        let from = self.buf.len().saturating_sub(3);
        self.buf.extend_from_slice(text);
        if self.buf.starts_with(b"\r\n") {
            // No header fields at all: the text starts with the blank line.
            self.end = Some(2);
        } else if let Some(p) = memmem::find(&self.buf[from..], b"\r\n\r\n") {
            self.end = Some(from + p + 4);
        }
        match self.end {
            Some(e) if e <= self.max => {}
            Some(_) => self.too_large = true,
            None if self.buf.len() > self.max => self.too_large = true,
            None => {}
        }
        self.is_complete()
    }

    /// The data ended: whatever was collected is the header block (a message of headers only).
    pub fn finish(&mut self) {
        if self.end.is_none() && !self.too_large {
            self.end = Some(self.buf.len());
        }
    }

    pub fn is_complete(&self) -> bool {
        self.end.is_some() || self.too_large
    }

    /// The header block exceeded `max_header_size`.
    pub fn too_large(&self) -> bool {
        self.too_large
    }

    /// The header block including its terminating blank line.
    pub fn header(&self) -> &[u8] {
        &self.buf[..self.end.unwrap_or(0)]
    }

    /// Text collected after the header block (the start of the body).
    pub fn body_start(&self) -> &[u8] {
        &self.buf[self.end.unwrap_or(self.buf.len())..]
    }

    /// Everything collected (header block and body start), to forward.
    pub fn collected(&self) -> &[u8] {
        &self.buf
    }
}

/// The P2 sender: the address of the first `From:` header, if there is one that parses.
pub fn header_sender(header: &[u8]) -> Option<String> {
    sender_and_message_id(header).0
}

/// [`header_sender`] and [`message_id`] from one parse of the header block: a message needs
/// both, and parsing is most of what either costs.
pub fn sender_and_message_id(header: &[u8]) -> (Option<String>, Option<String>) {
    match mailparse::parse_headers(header) {
        Ok((headers, _)) => (sender_of(&headers), message_id_of(&headers)),
        Err(_) => (None, None),
    }
}

fn sender_of(headers: &[mailparse::MailHeader]) -> Option<String> {
    let from = headers
        .iter()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case("from"))?;
    let list = mailparse::addrparse_header(from).ok()?;
    let first = list.iter().find_map(|a| match a {
        mailparse::MailAddr::Single(s) => Some(s.addr.clone()),
        mailparse::MailAddr::Group(g) => g.addrs.first().map(|s| s.addr.clone()),
    })?;
    let first = first.trim().to_string();
    first.contains('@').then_some(first)
}

/// The longest `Message-ID` the log keeps: RFC 5322 sets no limit, but a line is 998 octets and
/// a real id is well under this; longer is cut, so a client cannot grow the log line.
pub const MAX_MESSAGE_ID: usize = 255;

/// The `Message-ID` header's value (angle brackets kept, as Message Trace shows it), unfolded,
/// trimmed, cut to [`MAX_MESSAGE_ID`] and with anything but printable ASCII replaced by `?`: it
/// is what the client wrote and goes into the log. `None` when there is none (or it is empty).
pub fn message_id(header: &[u8]) -> Option<String> {
    sender_and_message_id(header).1
}

fn message_id_of(headers: &[mailparse::MailHeader]) -> Option<String> {
    let field = headers
        .iter()
        .find(|h| h.get_key_ref().eq_ignore_ascii_case("message-id"))?;
    let value = field.get_value();
    let value = value.trim();
    (!value.is_empty()).then(|| {
        value
            .chars()
            .take(MAX_MESSAGE_ID)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p2(h: &str) -> Option<String> {
        header_sender(h.as_bytes())
    }

    #[test]
    fn plain_from() {
        assert_eq!(
            p2("From: app@contoso.com\r\n\r\n").as_deref(),
            Some("app@contoso.com")
        );
    }

    #[test]
    fn display_name_that_looks_like_an_address_is_not_the_address() {
        assert_eq!(
            p2("From: \"ceo@contoso.com\" <attacker@example.net>\r\n\r\n").as_deref(),
            Some("attacker@example.net")
        );
    }

    #[test]
    fn folded_commented_and_encoded_from() {
        assert_eq!(
            p2("Subject: hi\r\nFrom: =?utf-8?q?Printer_=C3=A9?=\r\n (scan to mail)\r\n <scan@contoso.com>\r\n\r\n")
                .as_deref(),
            Some("scan@contoso.com")
        );
    }

    #[test]
    fn group_gives_its_first_member() {
        assert_eq!(
            p2("From: Team: a@fabrikam.com, b@contoso.com;\r\n\r\n").as_deref(),
            Some("a@fabrikam.com")
        );
    }

    #[test]
    fn only_the_first_from_header_counts() {
        assert_eq!(
            p2("from: first@contoso.com\r\nFrom: second@example.net\r\n\r\n").as_deref(),
            Some("first@contoso.com")
        );
    }

    #[test]
    fn no_from_header_means_no_p2() {
        assert_eq!(p2("Subject: x\r\n\r\n"), None);
        assert_eq!(p2("From: undisclosed\r\n\r\n"), None);
    }

    #[test]
    fn collector_finds_the_blank_line_across_pushes() {
        let mut c = HeaderCollector::new(1024);
        assert!(!c.push(b"From: a@b.c\r"));
        assert!(!c.push(b"\n\r"));
        assert!(c.push(b"\nbody"));
        assert_eq!(c.header(), b"From: a@b.c\r\n\r\n");
        assert_eq!(c.body_start(), b"body");
    }

    #[test]
    fn collector_handles_empty_header_block_and_headers_only() {
        let mut c = HeaderCollector::new(1024);
        assert!(c.push(b"\r\nbody"));
        assert_eq!(c.header(), b"\r\n");
        let mut c = HeaderCollector::new(1024);
        assert!(!c.push(b"Subject: x\r\n"));
        c.finish();
        assert_eq!(c.header(), b"Subject: x\r\n");
    }

    #[test]
    fn collector_is_bounded() {
        let mut c = HeaderCollector::new(1024);
        let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
        let mut done = false;
        for _ in 0..100 {
            if c.push(line) {
                done = true;
                break;
            }
        }
        assert!(done && c.too_large());
        assert!(c.collected().len() <= 1024 + line.len());
    }

    #[test]
    fn message_id_is_kept_with_its_angle_brackets() {
        let h = b"From: a@contoso.com\r\nMessage-ID:\r\n <1234.5678@app.contoso.com>\r\n\r\n";
        assert_eq!(
            message_id(h).as_deref(),
            Some("<1234.5678@app.contoso.com>")
        );
        assert_eq!(message_id(b"Subject: x\r\n\r\n"), None);
        assert_eq!(message_id(b"Message-ID:   \r\n\r\n"), None);
    }

    #[test]
    fn message_id_is_bounded_and_printable() {
        let long = format!("Message-Id: <\x01{}@y>\r\n\r\n", "a".repeat(1000));
        let id = message_id(long.as_bytes()).unwrap();
        assert_eq!(id.len(), MAX_MESSAGE_ID);
        assert!(id.chars().all(|c| c.is_ascii_graphic()), "{id}");
        let tab = message_id(b"Message-ID: <a b@c>\r\n\r\n").unwrap();
        assert_eq!(tab, "<a?b@c>");
    }
}
