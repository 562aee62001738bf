//! The node's time, which cron schedulers read and wait on and the invocation log keeps its
//! retention by: the system's wall clock in production, a manually advanced one in tests, so
//! that a test of a monthly schedule takes milliseconds.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A source of wall-clock time that can be waited on.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= at`.
    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(async move {
            // Tokio sleeps on the monotonic clock; re-check the wall clock after waking, so a
            // clock set back (NTP step) never fires a tick early. Waking at most a minute apart
            // also notices a clock set forward.
            loop {
                let remaining = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if remaining.is_zero() {
                    return;
                }
                tokio::time::sleep(remaining.min(Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { now: watch::Sender::new(start) }
    }

    /// Moves the clock forward by `by`, waking whoever sleeps until a time now reached.
    pub fn advance(&self, by: chrono::Duration) {
        self.now.send_modify(|now| *now += by);
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: DateTime<Utc>) {
        self.now.send_replace(at);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock; if the clock is gone, time never comes.
            if now.wait_for(|now| *now >= at).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_advanced_past_their_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().to_utc();
        let clock = ManualClock::new(start);
        let wake = clock.sleep_until(start + chrono::Duration::minutes(1));
        let sleeper = tokio::spawn(wake);
        clock.advance(chrono::Duration::seconds(59));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!sleeper.is_finished(), "not yet time");
        clock.advance(chrono::Duration::seconds(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper).await.unwrap().unwrap();
        assert_eq!(clock.now(), start + chrono::Duration::minutes(1));
    }
}
