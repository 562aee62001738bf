//! Work metering for query evaluation: one document can cost arbitrarily much (a `$in` of
//! 100 000 values against an array field of 20 000 elements is two billion comparisons), so the
//! evaluator counts its comparisons and looks at the clock every [`CHECK_EVERY`] of them. Once the
//! deadline has passed, evaluation stops at the next count and its result is discarded.

use std::cell::Cell;
use std::time::Instant;

/// Comparisons between two looks at the clock: a look costs about as much as a few dozen
/// comparisons, and 256 comparisons take well under a millisecond.
const CHECK_EVERY: u32 = 256;

/// Evaluation stopped because its deadline passed; the partial result means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfTime;

/// Counts the work of one evaluation against an optional deadline. Not `Sync`: one evaluation
/// runs on one thread.
#[derive(Debug)]
pub struct Meter {
    deadline: Option<Instant>,
    work: Cell<u32>,
    exceeded: Cell<bool>,
}

impl Meter {
    /// A meter that stops evaluation once `deadline` has passed.
    pub fn until(deadline: Instant) -> Self {
        Self { deadline: Some(deadline), work: Cell::new(0), exceeded: Cell::new(false) }
    }

    /// A meter that never stops anything (for evaluation bounded otherwise, and tests).
    pub fn unbounded() -> Self {
        Self { deadline: None, work: Cell::new(0), exceeded: Cell::new(false) }
    }

    /// Counts one unit of work; false once the deadline has passed, and from then on.
    pub fn tick(&self) -> bool {
        if self.exceeded.get() {
            return false;
        }
        let work = self.work.get().wrapping_add(1);
        self.work.set(work);
        if work.is_multiple_of(CHECK_EVERY) && self.deadline.is_some_and(|at| Instant::now() > at) {
            self.exceeded.set(true);
            return false;
        }
        true
    }

    /// Whether the deadline passed during evaluation (checked at the last count).
    pub fn check(&self) -> Result<(), OutOfTime> {
        if self.exceeded.get() {
            Err(OutOfTime)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_passed_deadline_stops_counting_within_one_check_interval() {
        let meter = Meter::until(Instant::now() - Duration::from_millis(1));
        let allowed = (0..10 * CHECK_EVERY).take_while(|_| meter.tick()).count();
        assert_eq!(allowed, CHECK_EVERY as usize - 1);
        assert_eq!(meter.check(), Err(OutOfTime));
        assert!(!meter.tick(), "stays stopped");
    }

    #[test]
    fn an_unbounded_meter_never_stops() {
        let meter = Meter::unbounded();
        assert!((0..10 * CHECK_EVERY).all(|_| meter.tick()));
        assert_eq!(meter.check(), Ok(()));
    }
}
