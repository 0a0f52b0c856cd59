//! When a refusal is answered: the one rule the session follows and `relaygate check` explains.
//!
//! The engine says what each recipient deserves; this says what the client is told and when,
//! given `[policy] mode` and `reject_stage`. Kept apart from the session so that `check` cannot
//! describe a timing the gate does not use.

use super::{RecipientVerdict, Rejection};

/// `[policy] mode`: whether refusals are answered or only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    /// Decide and log, but forward everything: the upstream's reply is the client's.
    Audit,
}

impl Mode {
    /// The configuration file's spelling, also the log's.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Audit => "audit",
        }
    }
}

/// Whether refusals reach the client: in audit mode they are only logged, with what enforce
/// mode would have answered, and every recipient and message goes to the upstream.
pub fn refusals_answered(mode: Mode) -> bool {
    mode == Mode::Enforce
}

/// `[policy] reject_stage`: where a relay refusal (5.7.64) is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStage {
    /// At the `RCPT TO` of the recipient, as Exchange Online does.
    Rcpt,
    /// 250 at RCPT, then the whole transaction refused at the end of DATA: for senders that give
    /// up on the first refused recipient.
    Data,
}

/// What the client is answered when it names a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptAnswer {
    /// Ask the upstream now: its reply is the client's. The recipient may still be refused at
    /// the end of DATA, when its verdict awaited the P2 sender (see [`refusal_at_end_of_data`]).
    Forward,
    /// 250 now, not forwarded; the transaction is refused at the end of DATA.
    Hold,
    /// Refuse now, with this reply.
    Refuse(Rejection),
}

/// The answer at `RCPT TO` for a recipient judged `verdict` (as judged then: before the header
/// block, so `AwaitingHeaderSender` under `exo-legacy`).
///
/// Only relay refusals (5.7.64) wait for `reject_stage = "data"`: the others are about the
/// recipient itself (5.4.1) or the sender's own connector (4.7.0, 5.7.51, 5.7.68), and Exchange
/// Online answers them at RCPT whatever a relay refusal does. The rules' one temporary refusal, 454
/// 4.7.0 (`RequireTls`), is answered like the others: the sender keeps the recipient and tries
/// again later, which it can do under TLS.
///
/// Another tenant's recipient (452 4.5.3) is refused in audit mode too: it is not a rule's
/// verdict but where the message can go, since a transaction leaves through one tenant's
/// upstream, with that tenant's certificate.
pub fn answer_rcpt(mode: Mode, stage: RejectStage, verdict: &RecipientVerdict) -> RcptAnswer {
    match verdict {
        RecipientVerdict::Accept(_) | RecipientVerdict::AwaitingHeaderSender => RcptAnswer::Forward,
        RecipientVerdict::Reject(r @ Rejection::OtherTenantRecipient { .. }) => {
            RcptAnswer::Refuse(r.clone())
        }
        RecipientVerdict::Reject(_) if mode == Mode::Audit => RcptAnswer::Forward,
        RecipientVerdict::Reject(Rejection::RelayAccessDenied(_)) if stage == RejectStage::Data => {
            RcptAnswer::Hold
        }
        RecipientVerdict::Reject(r) => RcptAnswer::Refuse(r.clone()),
    }
}

/// The refusal a recipient accepted at RCPT brings at the end of DATA, judged once the header
/// block is known: a relay refusal, whether held (`reject_stage = "data"`) or awaited (the P2
/// sender did not attribute the message). In enforce mode the first one is the transaction's
/// answer; in audit mode it is what enforce mode would have answered.
pub fn refusal_at_end_of_data(verdict: &RecipientVerdict) -> Option<&Rejection> {
    match verdict {
        RecipientVerdict::Reject(r @ Rejection::RelayAccessDenied(_)) => Some(r),
        _ => None,
    }
}

/// When a refusal reaches the client, for one recipient: what [`answer_rcpt`] and
/// [`refusal_at_end_of_data`] make of its verdict at RCPT and its final one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedWhen {
    AtRcpt,
    AtEndOfData,
}

/// The refusal of one recipient under enforce mode and when it is answered, from its verdict at
/// RCPT and its final verdict (the header block known); `None` when it is not refused.
pub fn refusal<'a>(
    stage: RejectStage,
    at_rcpt: &'a RecipientVerdict,
    finally: &'a RecipientVerdict,
) -> Option<(&'a Rejection, RefusedWhen)> {
    match answer_rcpt(Mode::Enforce, stage, at_rcpt) {
        RcptAnswer::Refuse(_) => match at_rcpt {
            RecipientVerdict::Reject(r) => Some((r, RefusedWhen::AtRcpt)),
            _ => None,
        },
        RcptAnswer::Hold | RcptAnswer::Forward => {
            refusal_at_end_of_data(finally).map(|r| (r, RefusedWhen::AtEndOfData))
        }
    }
}

// The configuration's own copies of the two settings. These conversions belong beside them in
// `config.rs` (the configuration depends on the policy, not the reverse); they are here only
// until the configuration takes these enums as its own.

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{AcceptReason, RelayDenial};

    fn relay_denied() -> RecipientVerdict {
        RecipientVerdict::Reject(Rejection::RelayAccessDenied(
            RelayDenial::NoOnPremisesConnector,
        ))
    }

    #[test]
    fn enforce_refuses_relay_at_rcpt_or_holds_it_for_data() {
        let v = relay_denied();
        assert!(matches!(
            answer_rcpt(Mode::Enforce, RejectStage::Rcpt, &v),
            RcptAnswer::Refuse(Rejection::RelayAccessDenied(_))
        ));
        assert_eq!(
            answer_rcpt(Mode::Enforce, RejectStage::Data, &v),
            RcptAnswer::Hold
        );
        assert_eq!(
            refusal(RejectStage::Data, &v, &v).map(|(_, w)| w),
            Some(RefusedWhen::AtEndOfData)
        );
    }

    #[test]
    fn only_relay_refusals_wait_for_data() {
        let v = RecipientVerdict::Reject(Rejection::RecipientNotFound);
        assert_eq!(
            answer_rcpt(Mode::Enforce, RejectStage::Data, &v),
            RcptAnswer::Refuse(Rejection::RecipientNotFound)
        );
        assert_eq!(refusal_at_end_of_data(&v), None);
        assert_eq!(
            refusal(RejectStage::Data, &v, &v).map(|(_, w)| w),
            Some(RefusedWhen::AtRcpt)
        );
    }

    #[test]
    fn a_missing_tls_channel_is_answered_at_rcpt_whatever_the_stage() {
        let v = RecipientVerdict::Reject(Rejection::RequireTls {
            connector: "P".into(),
        });
        for stage in [RejectStage::Rcpt, RejectStage::Data] {
            assert!(matches!(
                answer_rcpt(Mode::Enforce, stage, &v),
                RcptAnswer::Refuse(Rejection::RequireTls { .. })
            ));
            assert_eq!(
                refusal(stage, &v, &v).map(|(_, w)| w),
                Some(RefusedWhen::AtRcpt)
            );
            assert_eq!(answer_rcpt(Mode::Audit, stage, &v), RcptAnswer::Forward);
        }
        assert_eq!(refusal_at_end_of_data(&v), None);
    }

    #[test]
    fn another_tenants_recipient_is_refused_at_rcpt_even_in_audit_mode() {
        let v = RecipientVerdict::Reject(Rejection::OtherTenantRecipient {
            tenant: "tailspin".into(),
        });
        for mode in [Mode::Enforce, Mode::Audit] {
            for stage in [RejectStage::Rcpt, RejectStage::Data] {
                assert!(matches!(
                    answer_rcpt(mode, stage, &v),
                    RcptAnswer::Refuse(Rejection::OtherTenantRecipient { .. })
                ));
            }
        }
        assert_eq!(refusal_at_end_of_data(&v), None);
    }

    #[test]
    fn audit_forwards_every_recipient() {
        for v in [
            relay_denied(),
            RecipientVerdict::Reject(Rejection::DirectSendNotAllowed),
        ] {
            for stage in [RejectStage::Rcpt, RejectStage::Data] {
                assert_eq!(answer_rcpt(Mode::Audit, stage, &v), RcptAnswer::Forward);
            }
        }
    }

    #[test]
    fn a_recipient_awaiting_the_header_is_forwarded_then_refused_at_the_end_of_data() {
        let waiting = RecipientVerdict::AwaitingHeaderSender;
        assert_eq!(
            answer_rcpt(Mode::Enforce, RejectStage::Rcpt, &waiting),
            RcptAnswer::Forward
        );
        let denied = relay_denied();
        assert_eq!(
            refusal(RejectStage::Rcpt, &waiting, &denied).map(|(_, w)| w),
            Some(RefusedWhen::AtEndOfData)
        );
        let accepted = RecipientVerdict::Accept(AcceptReason::Originating);
        assert_eq!(refusal(RejectStage::Rcpt, &waiting, &accepted), None);
    }
}
