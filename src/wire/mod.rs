//! SMTP on the wire, shared by both legs: command parsing, the gate's replies, DATA un/stuffing
//! and header capture. Protocol only: every rule question goes to [`crate::policy`], and the
//! session that uses these lives in [`crate::session`].

pub mod command;
pub mod data;
pub mod header;
pub mod reply;
