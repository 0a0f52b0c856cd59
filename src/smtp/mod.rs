//! The SMTP server side: the session state machine, its replies, DATA un/stuffing and header
//! capture. Protocol only: every rule question goes to [`crate::policy`].

pub mod command;
pub mod data;
pub mod header;
pub mod reply;
mod session;

pub use session::{run_session, Peer, Phase};
