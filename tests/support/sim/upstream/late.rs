//! Late answers to DATA ([`super::Spec::late_data_percent`]), added with the overlapped 354
//! round trip: the gate sends DATA as its client does and holds the client's text until the
//! answer comes, so the answer comes late here, and none of the text may arrive before it.

use super::{finish, violation, Sent, Server, Store, Txn};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How a late answer to DATA goes ([`super::Spec::late_data_percent`]), drawn from a
/// generator of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LateAnswer {
    /// 354, then the text as usual.
    GoAhead,
    /// A temporary refusal: the verdict, with no text after it.
    Temporary,
    /// A permanent refusal.
    Permanent,
    /// A 2xx, which does not fit DATA (out of step).
    Completion,
    /// Close instead of answering.
    DropBefore,
    /// 354, then close before the text.
    DropAfter,
}

pub(super) const LATE_ANSWERS: [LateAnswer; 6] = [
    LateAnswer::GoAhead,
    LateAnswer::Temporary,
    LateAnswer::Permanent,
    LateAnswer::Completion,
    LateAnswer::DropBefore,
    LateAnswer::DropAfter,
];

/// DATA answered late: a delay short of the gate's reply timeout, while the gate holds the
/// client's text (none of which may have arrived by then), then the drawn answer.
pub(super) async fn answer(
    s: &mut Server,
    txn: &mut Txn,
    store: &Store,
    answer: LateAnswer,
) -> Sent {
    let ms = s
        .late_rng
        .below(s.spec.reply_timeout.as_millis() as u64 * 9 / 10);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    let mut chunk = [0u8; 4096];
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::ZERO, s.io.read(&mut chunk)).await {
        if n > 0 {
            violation(s, store, "text before the answer to DATA");
        }
    }
    s.trace.note(format!(
        "up#{}: answers DATA after {ms} ms: {answer:?}",
        s.n
    ));
    let reply = match answer {
        LateAnswer::DropBefore => return Sent::Over,
        LateAnswer::GoAhead | LateAnswer::DropAfter => "354 go ahead",
        LateAnswer::Temporary => "451 4.3.0 not now",
        LateAnswer::Permanent => "554 5.6.0 no",
        LateAnswer::Completion => *s.late_rng.pick(&["250 2.0.0 ok", "221 2.0.0 bye"]),
    };
    s.refused_data = matches!(answer, LateAnswer::Temporary | LateAnswer::Permanent);
    if let Sent::Over = s.send(reply, None, "250").await {
        return Sent::Over;
    }
    match answer {
        LateAnswer::DropAfter => Sent::Over,
        LateAnswer::GoAhead => match s.read_dot_text().await {
            None => Sent::Over,
            Some(text) => {
                txn.text = text;
                finish(s, txn, store).await
            }
        },
        // Refused or out of step: no text follows (the gate sends RSET, or drops the
        // connection).
        _ => Sent::Answered,
    }
}
