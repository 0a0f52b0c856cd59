//! The second door: authenticated submission (SMTP AUTH), for applications leaving Basic
//! authentication.
//!
//! Exchange Online takes mail from on-premises senders through two doors: the MX with inbound
//! connectors, which the relay listener mirrors, and client submission
//! (`smtp.office365.com:587`, SMTP AUTH with a mailbox's username and password). Microsoft turns
//! Basic authentication for SMTP AUTH off by default for existing tenants at the end of December
//! 2026 (message center MC786329, as updated on 27 January 2026; new tenants already lack it).
//! Scanners and line-of-business applications that only know "server, port, username,
//! password", many unable to leave the username empty, then have nowhere to send. relaygate's
//! submission listeners are where they move: they keep their settings, point at the gate, and
//! the gate relays their mail through the organisation's certificate connector.
//!
//! This module holds the parts with no socket in them: who may log in and send as whom
//! ([`users`]), and how wrong passwords are slowed down and locked out per client address
//! ([`throttle`]). The session speaks AUTH and asks them.

pub mod throttle;
pub mod users;
