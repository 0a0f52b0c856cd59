//! DATA at the end of the RCPT group (RFC 2920 section 3.1), when the client pipelined its
//! DATA right behind its last RCPT: the upstream's answer to DATA then comes back with the
//! RCPT replies, and a message costs two upstream round trips (envelope and DATA, then the
//! text) instead of three.
//!
//! The session asks for it only when nothing but the upstream can still refuse the message
//! before its text (every recipient decided at RCPT). What the answer means depends on what
//! the upstream made of the recipients, so it is judged here, as it is read:
//! - some recipient accepted and 354: the text goes straight out when it comes;
//! - some recipient accepted and a refusal: that refusal is the message's verdict, as when
//!   DATA goes on its own;
//! - no recipient accepted and a refusal (RFC 2920's 554/503 "no valid recipients"): dropped;
//!   the client's DATA gets the gate's own answer, and the transaction stays open upstream;
//! - no recipient accepted and 354: the upstream would take text for nobody, so it is out of
//!   step; the connection is closed.

use super::SmtpLeg;
use crate::upstream::connection::Capabilities;
use crate::upstream::{Stage, UpstreamError, UpstreamReply};

impl SmtpLeg {
    /// Whether DATA may end the group on a connection offering `caps`: only with PIPELINING,
    /// and only when the message will go as DATA (not as BDAT chunks).
    pub(super) fn data_may_join(&self, caps: Capabilities) -> bool {
        caps.pipelining && !(self.shared.settings.chunking && caps.chunking)
    }

    /// Judge DATA's answer, read with the group's replies (the module's doc says how). An
    /// error drops the connection.
    pub(super) fn note_data_answer(&mut self, reply: UpstreamReply) -> Result<(), UpstreamError> {
        let go_ahead = reply.code == 354;
        if !self.any_accepted || !self.in_transaction {
            if go_ahead {
                self.abort();
                return Err(UpstreamError::OutOfStep {
                    stage: Stage::Data,
                    seen: format!(
                        "354 to DATA with no recipient accepted: {}",
                        reply.summary()
                    ),
                });
            }
            return Ok(());
        }
        if go_ahead {
            self.data_go_ahead = true;
        } else {
            self.data_refusal = Some(Box::new(reply));
        }
        Ok(())
    }

    /// DATA's answer if DATA went with the last RCPT: a 354 means the upstream waits for the
    /// text (it stands for the upstream's, and is counted as such).
    pub(super) fn take_data_answer(&mut self) -> Option<UpstreamReply> {
        if std::mem::take(&mut self.data_go_ahead) {
            return Some(UpstreamReply::local(
                354,
                "go ahead (the upstream's 354 came with RCPT)",
            ));
        }
        self.data_refusal.take().map(|r| *r)
    }

    /// Whether the upstream has said 354 to a DATA that went with the last RCPT and the
    /// message has not started yet: the only way back is to close.
    pub(super) fn data_accepted_ahead(&self) -> bool {
        self.data_go_ahead
    }

    /// A new RCPT group or transaction: an answer to an earlier DATA no longer counts.
    pub(super) fn forget_data_answer(&mut self) {
        self.data_go_ahead = false;
        self.data_refusal = None;
    }
}
