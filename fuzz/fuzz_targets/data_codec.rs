//! DATA decoding in arbitrary chunks: never reads past the end marker, never ends on anything
//! but CRLF.CRLF, and what it decodes survives re-stuffing and decoding again unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relaygate::wire::data::{DataDecoder, DotStuffer};

fuzz_target!(|input: (u8, &[u8])| {
    let (chunk, wire) = input;
    let chunk = usize::from(chunk).max(1);
    let mut d = DataDecoder::new(1000);
    let mut text = Vec::new();
    let mut used = 0;
    let mut done = false;
    for piece in wire.chunks(chunk) {
        let (n, fin) = d.decode(piece, &mut text);
        assert!(n <= piece.len());
        used += n;
        if fin {
            done = true;
            break;
        }
        assert_eq!(n, piece.len(), "bytes left over without an end marker");
    }
    if done {
        let consumed = &wire[..used];
        assert!(consumed == b".\r\n" || consumed.ends_with(b"\r\n.\r\n"));
    }
    if done && d.error().is_none() {
        let mut stuffed = Vec::new();
        let mut s = DotStuffer::default();
        s.stuff(&text, &mut stuffed);
        s.finish(text.is_empty() || text.ends_with(b"\r\n"), &mut stuffed);
        let mut again = Vec::new();
        let mut d2 = DataDecoder::new(usize::MAX);
        let (n, fin) = d2.decode(&stuffed, &mut again);
        assert!(fin && n == stuffed.len());
        assert_eq!(again, text);
    }
});
