//! Any bytes before the banner: a PROXY header, "need more", or an error; never a panic, and
//! never a header longer than the input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((_, len))) = relaygate::proxy::parse(data) {
        assert!(len <= data.len());
    }
});
