//! The text of an input as UTF-8, whatever PowerShell wrote it in. Windows PowerShell 5.1's
//! `Out-File` and `>` write UTF-16 LE with a byte order mark; `-Encoding utf8` there writes
//! UTF-8 with one; PowerShell 7 writes UTF-8 without. Decoding happens as the bytes stream
//! through, so an input is never held whole.

use std::io::{self, Read};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Utf8,
    Utf16 { big_endian: bool },
}

/// The encoding of a text from its first bytes, and the length of its byte order mark. Without
/// a mark, UTF-16 still shows: JSON starts with an ASCII character, so one of its first two
/// bytes is NUL (the high one: the second in LE, the first in BE).
fn sniff(head: &[u8]) -> (Encoding, usize) {
    match head {
        [0xEF, 0xBB, 0xBF, ..] => (Encoding::Utf8, 3),
        [0xFF, 0xFE, ..] => (Encoding::Utf16 { big_endian: false }, 2),
        [0xFE, 0xFF, ..] => (Encoding::Utf16 { big_endian: true }, 2),
        [a, 0, ..] if *a != 0 => (Encoding::Utf16 { big_endian: false }, 0),
        [0, b, ..] if *b != 0 => (Encoding::Utf16 { big_endian: true }, 0),
        _ => (Encoding::Utf8, 0),
    }
}

/// `input` as UTF-8 without a byte order mark. UTF-8 passes through as it is (the JSON parser
/// checks it); UTF-16 is converted, and a malformed sequence in it is an `InvalidData` error.
pub(super) fn utf8<R: Read>(mut input: R) -> io::Result<Utf8<R>> {
    let mut head = [0u8; 3];
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (encoding, bom) = sniff(&head[..n]);
    let rest = io::Cursor::new(head[bom..n].to_vec()).chain(input);
    Ok(match encoding {
        Encoding::Utf8 => Utf8::Utf8(rest),
        Encoding::Utf16 { big_endian } => Utf8::Utf16(Utf16 {
            inner: rest,
            big_endian,
            pending: Vec::new(),
            out: Vec::new(),
            pos: 0,
        }),
    })
}

/// A text as UTF-8, from [`utf8`].
pub(super) enum Utf8<R> {
    Utf8(io::Chain<io::Cursor<Vec<u8>>, R>),
    Utf16(Utf16<io::Chain<io::Cursor<Vec<u8>>, R>>),
}

impl<R: Read> Read for Utf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Utf8::Utf8(r) => r.read(buf),
            Utf8::Utf16(r) => r.read(buf),
        }
    }
}

/// UTF-16 in, UTF-8 out, a chunk at a time.
pub(super) struct Utf16<R> {
    inner: R,
    big_endian: bool,
    /// Bytes read but not decoded yet: an odd byte, or a high surrogate waiting for its pair.
    pending: Vec<u8>,
    /// Decoded text not handed out yet, from `pos`.
    out: Vec<u8>,
    pos: usize,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid UTF-16: {what}"),
    )
}

impl<R: Read> Utf16<R> {
    /// Decode the next chunk into `out`; `false` at the end of the input.
    fn refill(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match self.inner.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            if self.pending.is_empty() {
                return Ok(false);
            }
            return Err(malformed("the text ends in the middle of a character"));
        }
        self.pending.extend_from_slice(&chunk[..n]);
        let mut units: Vec<u16> = self
            .pending
            .chunks_exact(2)
            .map(|b| {
                if self.big_endian {
                    u16::from_be_bytes([b[0], b[1]])
                } else {
                    u16::from_le_bytes([b[0], b[1]])
                }
            })
            .collect();
        // A high surrogate at the end of the chunk waits for its pair in the next one.
        if units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            units.pop();
        }
        self.out.clear();
        self.pos = 0;
        for c in char::decode_utf16(units.iter().copied()) {
            let c = c.map_err(|_| malformed("an unpaired surrogate"))?;
            let mut utf8 = [0u8; 4];
            self.out
                .extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        self.pending.drain(..units.len() * 2);
        Ok(true)
    }
}

impl<R: Read> Read for Utf16<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per read, so that every character and surrogate pair
    /// is split across chunks.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.is_empty()) {
                (Some((b, rest)), false) => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    fn decoded(bytes: &[u8]) -> io::Result<String> {
        let mut text = String::new();
        utf8(Trickle(bytes))?.read_to_string(&mut text)?;
        Ok(text)
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        text.encode_utf16()
            .flat_map(|u| match big_endian {
                true => u.to_be_bytes(),
                false => u.to_le_bytes(),
            })
            .collect()
    }

    const TEXT: &str = "[{\"Name\": \"Zürich relay 📨\"}]";

    #[test]
    fn every_powershell_encoding_decodes_to_the_same_text() {
        let bom = "\u{feff}";
        for bytes in [
            TEXT.as_bytes().to_vec(),
            format!("{bom}{TEXT}").into_bytes(),
            utf16(&format!("{bom}{TEXT}"), false),
            utf16(&format!("{bom}{TEXT}"), true),
            utf16(TEXT, false),
            utf16(TEXT, true),
        ] {
            assert_eq!(decoded(&bytes).unwrap(), TEXT, "{bytes:02x?}");
        }
    }

    #[test]
    fn short_inputs_are_utf8() {
        for text in ["", "5", "[]", " \n"] {
            assert_eq!(decoded(text.as_bytes()).unwrap(), text);
        }
        assert_eq!(decoded(b"\xef\xbb\xbf").unwrap(), "");
        assert_eq!(decoded(b"\xff\xfe").unwrap(), "");
    }

    #[test]
    fn malformed_utf16_is_an_error() {
        let mut odd = utf16("\u{feff}[]", false);
        odd.push(b'x');
        let lone_high = [0xff, 0xfe, 0x5b, 0x00, 0x3d, 0xd8, 0x5d, 0x00];
        let lone_low = [0xff, 0xfe, 0x5b, 0x00, 0x4d, 0xdc, 0x5d, 0x00];
        let cut_pair = [0xff, 0xfe, 0x5b, 0x00, 0x3d, 0xd8];
        for bytes in [&odd[..], &lone_high, &lone_low, &cut_pair] {
            let e = decoded(bytes).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bytes:02x?}");
            assert!(e.to_string().starts_with("invalid UTF-16: "), "{e}");
        }
    }
}
