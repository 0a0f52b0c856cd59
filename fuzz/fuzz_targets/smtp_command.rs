//! Every command line a client can send: parsed or refused with a 5xx, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use relaygate::wire::command::parse_command;

fuzz_target!(|data: &[u8]| {
    for line in data.split_inclusive(|b| *b == b'\n') {
        if let Err(reply) = parse_command(line) {
            assert!((500..600).contains(&reply.code));
        }
    }
});
