//! relaygate: an SMTP gate that applies Exchange Online's relay-attribution rules (the
//! November 2023 "Updated requirements for SMTP relay") before the cloud does, and forwards
//! every accepted transaction upstream without ever losing one.
//!
//! Data flows one way: bytes → [`session`] → facts → [`policy`] → verdict → session →
//! [`upstream`]. The policy never sees a socket; the session never decides a rule.

pub mod certs;
pub mod cli;
pub mod config;
pub mod deadline;
pub mod files;
pub mod observe;
pub mod policy;
pub mod proxy;
pub mod record;
pub mod server;
pub mod session;
pub mod stream;
pub mod submission;
pub mod tls;
pub mod upstream;
pub mod wire;
