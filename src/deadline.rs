//! One timer for all the waits of a connection, armed only when a wait really waits.
//!
//! `tokio::time::timeout` makes a timer entry per call: registered in the runtime's wheel
//! under its lock when first polled, removed under the lock again when dropped. A gate bounds
//! every read and write of both legs, about fifteen waits per message, and most of them (a
//! write the socket takes at once, a read whose bytes are already there) complete on their
//! first poll: the entries cost more than the I/O they guard (7.5% of the gate's CPU with
//! persistent connections). [`Timer`] polls the step first and touches the timer only when
//! the step is pending, and keeps one sleep per connection that it moves instead of replacing:
//! moving it later is a single atomic store in tokio (the wheel notices when the old time
//! comes), so steady traffic takes no lock at all.
//!
//! The sleep may ring before the deadline of the wait in progress (an earlier wait set it
//! and nothing later needed it moved): the deadline is then checked and the sleep set again.
//! It never rings after a deadline: one that comes earlier than the sleep moves it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{sleep_until, Instant, Sleep};

/// The deadline of a wait passed before its step completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// The timer of one connection's waits (see the module's doc).
#[derive(Default)]
pub struct Timer {
    /// Made at the first wait that waits: a connection whose steps never wait needs none.
    sleep: Option<Pin<Box<Sleep>>>,
}

pin_project_lite::pin_project! {
    /// The future of [`Timer::limit`]. Written by hand, not as an `async fn`: an `async fn`
    /// keeps its argument `step` and the pinned copy it polls side by side (rust-lang/rust
    /// #62958), so every wrapped step counted twice in its caller's future, nested waits
    /// more, and every session's task (sized for its largest wait) grew: 18,761 bytes per
    /// held TLS session against 16,865 with this (`bench/tls-sessions.sh`, 10,000 held).
    pub struct Limit<'t, D, F> {
        timer: &'t mut Timer,
        deadline: Option<D>,
        until: Option<Instant>,
        #[pin]
        step: F,
    }
}

impl Timer {
    /// Run `step` until it completes or `deadline` (computed only if the step has to wait)
    /// passes. Like `tokio::time::timeout_at`, the step is polled first, so a step that is
    /// ready completes even past its deadline.
    pub fn limit<D, F>(&mut self, deadline: D, step: F) -> Limit<'_, D, F>
    where
        D: FnOnce() -> Instant,
        F: Future,
    {
        Limit {
            timer: self,
            deadline: Some(deadline),
            until: None,
            step,
        }
    }

    /// Drop the sleep, for a connection that goes idle: an armed sleep holds the waker of the
    /// last task that waited on it, and with it that task's memory, until it rings.
    pub fn disarm(&mut self) {
        self.sleep = None;
    }

    /// Make sure the sleep rings no later than `at`.
    fn arm(&mut self, at: Instant) {
        match &mut self.sleep {
            Some(sleep) if !sleep.is_elapsed() && sleep.deadline() <= at => {}
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.sleep = Some(Box::pin(sleep_until(at))),
        }
    }
}

impl<D, F> Future for Limit<'_, D, F>
where
    D: FnOnce() -> Instant,
    F: Future,
{
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.step.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let until = match *this.until {
            Some(until) => until,
            None => {
                let at = (this.deadline.take().expect("computed once"))();
                this.timer.arm(at);
                *this.until = Some(at);
                at
            }
        };
        let sleep = this.timer.sleep.as_mut().expect("armed");
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if sleep.deadline() >= until || Instant::now() >= until {
            return Poll::Ready(Err(Elapsed));
        }
        // Rang early (set by an earlier wait): on to this wait's deadline. Ringing again at
        // once means the runtime counts that deadline as passed too.
        sleep.as_mut().reset(until);
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_ready_step_completes_without_a_timer() {
        let mut timer = Timer::default();
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(timer.limit(|| past, async { 7 }).await, Ok(7));
        assert!(
            timer.sleep.is_none(),
            "no timer for a step that did not wait"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn disarming_drops_the_sleep_and_a_later_wait_still_ends_on_time() {
        let mut timer = Timer::default();
        let start = Instant::now();
        let step = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(
            timer.limit(|| start + Duration::from_secs(60), step).await,
            Ok(())
        );
        assert!(timer.sleep.is_some(), "armed by a wait that waited");
        timer.disarm();
        assert!(timer.sleep.is_none());
        let r = timer
            .limit(
                || start + Duration::from_secs(3),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        assert!(Instant::now() >= start + Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_step_ends_at_its_deadline() {
        let mut timer = Timer::default();
        let start = Instant::now();
        let r = timer
            .limit(
                || start + Duration::from_secs(5),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        assert!(Instant::now() >= start + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sleep_set_by_an_earlier_wait_does_not_end_a_later_one() {
        let mut timer = Timer::default();
        let start = Instant::now();
        // The first wait sets the sleep for start + 2 s, then completes.
        let quick = tokio::time::sleep(Duration::from_secs(1));
        let r = timer.limit(|| start + Duration::from_secs(2), quick).await;
        assert_eq!(r, Ok(()));
        // A longer wait: the sleep rings at start + 2 s, but this wait lasts to start + 10 s.
        let step = tokio::time::sleep(Duration::from_secs(5));
        let r = timer.limit(|| start + Duration::from_secs(10), step).await;
        assert_eq!(r, Ok(()), "ended by the earlier wait's sleep");
        assert!(Instant::now() >= start + Duration::from_secs(6));
        let r = timer
            .limit(
                || start + Duration::from_secs(10),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        assert!(Instant::now() >= start + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_moves_the_sleep() {
        let mut timer = Timer::default();
        let start = Instant::now();
        let step = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(
            timer.limit(|| start + Duration::from_secs(60), step).await,
            Ok(())
        );
        let r = timer
            .limit(
                || start + Duration::from_secs(3),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(r, Err(Elapsed));
        let now = Instant::now();
        assert!(now >= start + Duration::from_secs(3) && now < start + Duration::from_secs(60));
    }
}
