//! Message text on the wire: undoing the client's dot-stuffing and redoing it for the upstream,
//! and holding BDAT chunks (RFC 3030) to the same line rules.
//!
//! The decoder is a byte-level state machine, so it streams: it holds no line, only a state, and
//! memory stays bounded whatever the line or message length. It is strict where SMTP smuggling
//! lives (SEC Consult, Dec 2023): only `CRLF . CRLF` ends the data, and a bare CR or a bare LF
//! anywhere is flagged so the session refuses the message (Postfix's
//! `smtpd_forbid_bare_newline` answer) instead of letting it become a line break, here or at a
//! more lenient upstream.
//!
//! BDAT chunks carry the text as it is, framed by their sizes: the same decoder checks them in
//! a mode without dot-stuffing and end marker ([`DataDecoder::for_bdat`]), so a message cannot
//! smuggle a bare line break or a NUL by changing transport (it may still go upstream with DATA).
//! Only `BODY=BINARYMIME` makes every octet content.
//!
//! The encoder dot-stuffs after ANY line break (CR or LF), so even if a bare line break ever
//! slipped through, a lenient upstream could not read a `.` line as the end of the data.

use memchr::{memchr2, memchr3};

/// Why a message's text is unacceptable. The data is still read to its end, so the session can
/// answer and go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareLineBreak,
    /// A line longer than the configured maximum.
    LineTooLong,
    /// A NUL octet: only BODY=BINARYMIME may carry one, and an upstream that drops NULs would
    /// read `CRLF NUL . CRLF` as the end of the data.
    Nul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// Inside a line.
    Text,
    /// Inside a line, just after a CR.
    TextCr,
    /// A line that started with `.`: either stuffing or the end marker.
    Dot,
    /// `.` CR at the start of a line: LF now ends the data.
    DotCr,
    /// The end marker was read.
    Done,
}

/// How the text is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// DATA: dot-stuffed, ended by `CRLF . CRLF`.
    DotStuffed,
    /// BDAT: the octets are the text, and the chunk sizes say where it ends; lines as in DATA.
    Counted,
    /// BDAT with `BODY=BINARYMIME`: any octet is content, there are no lines to check.
    Binary,
}

/// Streaming decoder for the client's message text (DATA, or BDAT chunks).
#[derive(Debug)]
pub struct DataDecoder {
    state: State,
    framing: Framing,
    line_len: usize,
    max_line_length: usize,
    error: Option<DataError>,
}

impl DataDecoder {
    /// For DATA. `max_line_length` counts the octets of a line including its CRLF.
    pub fn new(max_line_length: usize) -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            framing: Framing::DotStuffed,
            line_len: 0,
            max_line_length,
            error: None,
        }
    }

    /// For the chunks of one BDAT message: nothing is unstuffed and nothing ends the data (the
    /// caller feeds exactly the chunks' octets). Without `binary_mime` the octets are held to
    /// DATA's rules (CRLF line breaks only, no NUL, `max_line_length`); with it, nothing is.
    pub fn for_bdat(max_line_length: usize, binary_mime: bool) -> DataDecoder {
        DataDecoder {
            framing: if binary_mime {
                Framing::Binary
            } else {
                Framing::Counted
            },
            ..DataDecoder::new(max_line_length)
        }
    }

    /// The BDAT chunks ended (`LAST`): a CR as their very last octet was a bare CR.
    pub fn end_of_chunks(&mut self) {
        if self.framing == Framing::Counted && self.state == State::TextCr {
            self.fail(DataError::BareLineBreak);
        }
    }

    /// The first problem found, if any.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    fn fail(&mut self, e: DataError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Decode as much of `input` as belongs to the data, appending the message text (without
    /// stuffing, lines ending in CRLF) to `out`. Returns how many bytes of `input` were consumed
    /// and whether the end marker was reached; bytes after the marker (pipelined commands) are
    /// not consumed. After an error nothing more is appended: the message will be refused, and
    /// the rest is only scanned for its end.
    ///
    /// For BDAT, all of `input` is consumed and the end is never reached.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        if self.framing == Framing::Binary {
            out.extend_from_slice(input);
            return (input.len(), false);
        }
        // Only DATA gives a leading dot a meaning.
        let dots = self.framing == Framing::DotStuffed;
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return (i, true),
                State::Text | State::LineStart
                    if self.state == State::Text || input[i] != b'.' || !dots =>
                {
                    // Fast path: copy everything up to the next CR, LF or NUL in one go.
                    let rest = &input[i..];
                    let n = memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                    if n > 0 {
                        self.line_len += n;
                        if self.line_len > self.max_line_length {
                            self.fail(DataError::LineTooLong);
                        }
                        if self.error.is_none() {
                            out.extend_from_slice(&rest[..n]);
                        }
                        i += n;
                        self.state = State::Text;
                        continue;
                    }
                    // At a CR, LF or NUL.
                    if input[i] == b'\r' {
                        self.state = State::TextCr;
                    } else if input[i] == 0 {
                        self.fail(DataError::Nul);
                        self.state = State::Text;
                    } else {
                        // LF without CR: a bare LF. It ends nothing.
                        self.fail(DataError::BareLineBreak);
                        self.state = State::Text;
                    }
                    self.line_len += 1;
                    i += 1;
                }
                State::LineStart => {
                    // A line starting with '.'.
                    self.state = State::Dot;
                    self.line_len = 1;
                    i += 1;
                }
                State::Text => unreachable!("handled by the fast path"),
                State::TextCr => {
                    if input[i] == b'\n' {
                        self.line_len += 1;
                        if self.line_len > self.max_line_length {
                            self.fail(DataError::LineTooLong);
                        }
                        if self.error.is_none() {
                            out.extend_from_slice(b"\r\n");
                        }
                        self.line_len = 0;
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        // CR without LF: a bare CR. Re-read this byte as text.
                        self.fail(DataError::BareLineBreak);
                        self.state = State::Text;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // The dot was stuffing: drop it; the byte is ordinary line content.
                        self.state = State::Text;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.state = State::Done;
                        return (i + 1, true);
                    }
                    // `.` CR then something else: a bare CR.
                    self.fail(DataError::BareLineBreak);
                    self.state = State::Text;
                }
            }
        }
        (i, self.state == State::Done)
    }
}

/// Streaming dot-stuffer for the upstream.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
        }
    }
}

impl DotStuffer {
    /// Append `text` to `out`, doubling a `.` that starts a line; any CR or LF starts a line.
    pub fn stuff(&mut self, text: &[u8], out: &mut Vec<u8>) {
        out.reserve(text.len() + 8);
        let mut rest = text;
        while !rest.is_empty() {
            if self.at_line_start && rest[0] == b'.' {
                out.push(b'.');
            }
            match memchr2(b'\r', b'\n', rest) {
                Some(n) => {
                    out.extend_from_slice(&rest[..=n]);
                    self.at_line_start = true;
                    rest = &rest[n + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    rest = &[];
                }
            }
        }
    }

    /// The end marker, preceded by a CRLF if the text did not end with one.
    pub fn finish(&mut self, ends_with_crlf: bool, out: &mut Vec<u8>) {
        if !ends_with_crlf {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.at_line_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(wire: &[u8], chunk: usize) -> (Vec<u8>, usize, bool, Option<DataError>) {
        let mut d = DataDecoder::new(1000);
        let mut out = Vec::new();
        let mut used = 0;
        let mut done = false;
        for piece in wire.chunks(chunk.max(1)) {
            let (n, fin) = d.decode(piece, &mut out);
            used += n;
            if fin {
                done = true;
                break;
            }
        }
        (out, used, done, d.error())
    }

    #[test]
    fn unstuffs_and_stops_at_the_marker_in_any_chunking() {
        let wire = b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
        for chunk in [1, 2, 3, 5, 7, 64] {
            let (out, used, done, err) = decode_all(wire, chunk);
            assert!(done, "chunk {chunk}");
            assert_eq!(err, None);
            assert_eq!(out, b"Subject: x\r\n\r\n.leading dot\r\n");
            assert_eq!(&wire[used..], b"QUIT\r\n", "chunk {chunk}");
        }
    }

    #[test]
    fn empty_message_is_just_the_marker() {
        let (out, used, done, err) = decode_all(b".\r\n", 1);
        assert!(done);
        assert_eq!((out.len(), used, err), (0, 3, None));
    }

    #[test]
    fn smuggling_sequences_never_end_the_data() {
        // Each would end DATA in some lenient implementation (SEC Consult 2023).
        for bad in [
            &b"a\n.\nMAIL FROM:<x@y>\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x@y>\r\n",
            b"a\n.\r\nMAIL FROM:<x@y>\r\n",
            b"a\r.\rMAIL FROM:<x@y>\r\n",
            b"a\r\n.\r\r\nMAIL FROM:<x@y>\r\n",
        ] {
            for chunk in [1, 3, 100] {
                let (_, used, done, err) = decode_all(bad, chunk);
                assert!(!done, "{bad:?} ended the data");
                assert_eq!(used, bad.len());
                assert_eq!(err, Some(DataError::BareLineBreak), "{bad:?}");
            }
        }
    }

    #[test]
    fn bare_line_breaks_mid_line_are_flagged() {
        let (_, _, done, err) = decode_all(b"a\rb\r\n.\r\n", 4);
        assert!(done);
        assert_eq!(err, Some(DataError::BareLineBreak));
        let (_, _, done, err) = decode_all(b"a\nb\r\n.\r\n", 4);
        assert!(done);
        assert_eq!(err, Some(DataError::BareLineBreak));
    }

    #[test]
    fn long_lines_are_flagged_but_data_still_ends() {
        let mut wire = vec![b'x'; 1500];
        wire.extend_from_slice(b"\r\n.\r\n");
        let (_, _, done, err) = decode_all(&wire, 100);
        assert!(done);
        assert_eq!(err, Some(DataError::LineTooLong));
        let mut ok = vec![b'x'; 998];
        ok.extend_from_slice(b"\r\n.\r\n");
        let (out, _, done, err) = decode_all(&ok, 100);
        assert!(done);
        assert_eq!(err, None);
        assert_eq!(out.len(), 1000);
    }

    #[test]
    fn eight_bit_bytes_pass_unchanged() {
        let wire = b"caf\xc3\xa9 \xff\x01\x80\r\n.\r\n";
        let (out, _, done, err) = decode_all(wire, 2);
        assert!(done && err.is_none());
        assert_eq!(out, b"caf\xc3\xa9 \xff\x01\x80\r\n");
    }

    #[test]
    fn nul_is_flagged_wherever_it_stands_and_the_data_still_ends() {
        for wire in [
            &b"a\x00b\r\n.\r\n"[..],
            b"\x00\r\n.\r\n",
            b"a\r\n.\x00\r\n.\r\n",
            b"a\r\x00\n\r\n.\r\n",
            b"a\r\n\x00.\r\n.\r\n",
        ] {
            for chunk in [1, 2, 64] {
                let (_, used, done, err) = decode_all(wire, chunk);
                assert!(done, "{wire:?} did not end");
                assert_eq!(used, wire.len(), "{wire:?}");
                assert!(err.is_some(), "{wire:?} passed");
            }
        }
        let (_, _, _, err) = decode_all(b"a\x00b\r\n.\r\n", 1);
        assert_eq!(err, Some(DataError::Nul));
    }

    /// Feed `wire` as BDAT chunks of `chunk` octets; the text, and the first error.
    fn bdat_all(wire: &[u8], chunk: usize, binary: bool) -> (Vec<u8>, Option<DataError>) {
        let mut d = DataDecoder::for_bdat(1000, binary);
        let mut out = Vec::new();
        for piece in wire.chunks(chunk.max(1)) {
            let (used, done) = d.decode(piece, &mut out);
            assert_eq!(
                (used, done),
                (piece.len(), false),
                "BDAT text has no end marker"
            );
        }
        d.end_of_chunks();
        (out, d.error())
    }

    #[test]
    fn bdat_text_passes_unchanged_dot_lines_included() {
        let wire = b"Subject: x\r\n\r\n.\r\n..two\r\n.\r\nQUIT\r\ncaf\xc3\xa9\r\n";
        for chunk in [1, 2, 5, 64] {
            assert_eq!(
                bdat_all(wire, chunk, false),
                (wire.to_vec(), None),
                "{chunk}"
            );
        }
        // A last line without CRLF is text too.
        assert_eq!(bdat_all(b"a\r\nb", 1, false), (b"a\r\nb".to_vec(), None));
    }

    #[test]
    fn bdat_text_is_held_to_the_line_rules_of_data() {
        for (wire, error) in [
            (&b"a\nb\r\n"[..], DataError::BareLineBreak),
            (b"a\rb\r\n", DataError::BareLineBreak),
            (b"a\r\n.\n", DataError::BareLineBreak),
            (b"a\r\nb\r", DataError::BareLineBreak),
            (b"a\x00b\r\n", DataError::Nul),
        ] {
            for chunk in [1, 2, 64] {
                assert_eq!(bdat_all(wire, chunk, false).1, Some(error), "{wire:?}");
            }
        }
        let mut long = vec![b'x'; 1500];
        long.extend_from_slice(b"\r\n");
        assert_eq!(bdat_all(&long, 100, false).1, Some(DataError::LineTooLong));
    }

    #[test]
    fn binarymime_text_is_content_whatever_its_octets() {
        let mut wire = b"a\nb\rc\x00\r".to_vec();
        wire.extend(std::iter::repeat_n(b'x', 5000));
        for chunk in [1, 3, 4096] {
            assert_eq!(bdat_all(&wire, chunk, true), (wire.clone(), None));
        }
    }

    #[test]
    fn stuffing_round_trips() {
        let text = b".a\r\n..b\r\nc.\r\n.\r\n";
        let mut s = DotStuffer::default();
        let mut wire = Vec::new();
        for piece in text.chunks(3) {
            s.stuff(piece, &mut wire);
        }
        s.finish(true, &mut wire);
        assert_eq!(wire, b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n");
        let (out, used, done, err) = decode_all(&wire, 1);
        assert!(done && err.is_none());
        assert_eq!(used, wire.len());
        assert_eq!(out, text);
    }

    #[test]
    fn stuffer_treats_bare_breaks_as_line_starts() {
        let mut s = DotStuffer::default();
        let mut wire = Vec::new();
        s.stuff(b"a\n.\rb\r.", &mut wire);
        assert_eq!(wire, b"a\n..\rb\r..");
    }
}
