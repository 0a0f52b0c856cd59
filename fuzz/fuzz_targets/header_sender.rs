//! Any header block: a P2 sender or none, never a panic; a P2 sender always has an '@'.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relaygate::wire::header::header_sender;

fuzz_target!(|data: &[u8]| {
    if let Some(p2) = header_sender(data) {
        assert!(p2.contains('@'));
    }
});
