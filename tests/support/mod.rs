//! The helpers every integration test shares; each file in `tests/` says `mod support;`.
//!
//! - [`config`]: the tenants and `[upstream]` sections, as configuration text.
//! - [`gate`]: the gate in the test's own process, and Exchange Online's reply suffix.
//! - [`client`]: a raw SMTP client (STARTTLS with a client certificate too).
//! - [`upstream`]: the scripted upstream SMTP server that records what it received.
//! - [`pki`]: certificates made for the test (rcgen).
//! - [`message`]: dot-stuffing, the gate's `Received:` field, stored `.eml` files.
//! - [`binary`]: the real `relaygate` binary as a child process, and its one-shot commands.
//! - [`peers`]: the outside programs: swaks, HAProxy, Postfix's smtp-sink, Chromium.
//! - [`postfix`]: a private Postfix instance (its own configuration and queue) as the upstream.
//!
//! `sim/` holds the deterministic fault simulation (a seeded client, upstream and RNG, in
//! memory). It is not a module of `support`: `tests/simulation.rs`, the one test that runs it,
//! takes it with `#[path]`, so the other test crates do not compile a thousand lines they never
//! call (each file in `tests/` is a crate of its own, and each compiles all of `support`).
//!
//! Not every test uses every helper.
#![allow(dead_code, unused_imports)]

pub mod binary;
pub mod client;
pub mod config;
pub mod gate;
pub mod message;
pub mod peers;
pub mod pki;
pub mod postfix;
pub mod upstream;

pub use binary::*;
pub use client::*;
pub use config::*;
pub use gate::*;
pub use message::*;
pub use peers::*;
pub use pki::*;
pub use postfix::*;
pub use upstream::*;

use std::path::PathBuf;
use std::time::Duration;

/// How long a test waits for something that takes milliseconds, before it fails: generous, for
/// a machine busy with other builds. Tests wait for a condition, never for a fixed time.
pub const WAIT: Duration = Duration::from_secs(15);

/// The repository: the binary's tests run in it, and the shipped files are read from it.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}
