//! SMTP on the wire, shared by both legs: command parsing, the gate's replies, DATA un/stuffing,
//! header capture, and the DSN parameters with their xtext. Protocol only: every rule question
//! goes to [`crate::policy`], and the session that uses these lives in [`crate::session`].

pub mod command;
pub mod data;
pub mod dsn;
pub mod header;
pub mod reply;
pub mod xtext;
