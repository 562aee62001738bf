//! The time budget of one document-store operation, and the one decision every write takes:
//! commit, or give up. The budget ends at the store's own limit (`max_query_time`) or at the
//! calling function's deadline, whichever comes first; it is checked per document and, through a
//! [`Meter`], per comparison inside a document. A write commits only through [`Budget::commit`],
//! which refuses once the deadline passed or the caller stopped waiting, so a write that timed
//! out is never committed behind the caller's back.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::query::Meter;
use super::{DocError, Limits};

/// Whether a write may still commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    Committing,
    Abandoned,
}

/// When the caller of an operation must be done, and how its error names that caller.
#[derive(Debug, Clone, Copy)]
pub struct CallDeadline {
    pub at: Instant,
    /// Completes "operation exceeded the time left to …".
    pub caller: &'static str,
}

/// The deadline of one operation and its commit decision; clones share the decision.
#[derive(Debug, Clone)]
pub struct Budget {
    at: Instant,
    /// The store's own limit, for the message when that is what ran out.
    limit: Duration,
    /// The caller, when its deadline rather than the store's limit ends the budget.
    call_bound: Option<&'static str>,
    gate: Arc<Mutex<Gate>>,
}

impl Budget {
    /// A budget starting now: `limits.max_query_time`, cut short by `call` (the deadline of the
    /// function or session request making the call, and how to name that caller in the error)
    /// when that comes first.
    pub fn new(limits: &Limits, call: Option<CallDeadline>) -> Self {
        let own = Instant::now() + limits.max_query_time;
        let (at, call_bound) = match call {
            Some(CallDeadline { at, caller }) if at < own => (at, Some(caller)),
            _ => (own, None),
        };
        Self {
            at,
            limit: limits.max_query_time,
            call_bound,
            gate: Arc::new(Mutex::new(Gate::Open)),
        }
    }

    /// When the operation must have finished.
    pub fn deadline(&self) -> Instant {
        self.at
    }

    /// The error of an operation that ran out of time.
    pub fn exceeded(&self) -> DocError {
        if let Some(caller) = self.call_bound {
            DocError::LimitExceeded(format!("operation exceeded the time left to {caller}"))
        } else {
            DocError::LimitExceeded(format!(
                "operation exceeded time limit of {} ms",
                self.limit.as_millis()
            ))
        }
    }

    /// Checked before each unit of work (a document read, checked or written).
    pub fn check(&self) -> Result<(), DocError> {
        if Instant::now() > self.at {
            return Err(self.exceeded());
        }
        Ok(())
    }

    /// A meter for evaluating queries within this budget, on the current thread.
    pub fn meter(&self) -> Meter {
        Meter::until(self.at)
    }

    /// Decides that the write commits now. Refused once the deadline passed or the caller gave
    /// up waiting ([`Budget::abandon`]); once granted, the caller waits for the outcome.
    pub fn commit(&self) -> Result<(), DocError> {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if *gate == Gate::Open && Instant::now() <= self.at {
            *gate = Gate::Committing;
            return Ok(());
        }
        *gate = Gate::Abandoned;
        Err(self.exceeded())
    }

    /// Gives the operation up unless its commit already started; true when it was given up (and
    /// so will never commit).
    pub fn abandon(&self) -> bool {
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        if *gate == Gate::Committing {
            return false;
        }
        *gate = Gate::Abandoned;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ms: u64) -> Limits {
        Limits { max_query_time: Duration::from_millis(ms), ..Limits::default() }
    }

    #[test]
    fn the_earlier_of_the_store_limit_and_the_call_deadline_ends_the_budget() {
        let at = Instant::now() + Duration::from_millis(10);
        let budget = Budget::new(&limits(5000), Some(CallDeadline { at, caller: "the caller" }));
        assert_eq!(budget.deadline(), at);
        assert_eq!(budget.exceeded().to_string(), "operation exceeded the time left to the caller");
        let at = Instant::now() + Duration::from_secs(60);
        let budget = Budget::new(&limits(5000), Some(CallDeadline { at, caller: "the caller" }));
        assert!(budget.deadline() < Instant::now() + Duration::from_secs(6));
        assert!(budget.exceeded().to_string().contains("time limit of 5000 ms"));
    }

    #[test]
    fn a_passed_deadline_fails_the_check_and_refuses_the_commit() {
        let at = Instant::now() - Duration::from_millis(1);
        let budget = Budget::new(&limits(5000), Some(CallDeadline { at, caller: "the caller" }));
        assert!(matches!(budget.check(), Err(DocError::LimitExceeded(_))));
        assert!(budget.commit().is_err());
    }

    #[test]
    fn commit_and_abandon_are_decided_once() {
        let budget = Budget::new(&limits(5000), None);
        assert!(budget.abandon(), "nothing committed yet: given up");
        assert!(budget.commit().is_err(), "a given-up write never commits");

        let budget = Budget::new(&limits(5000), None);
        budget.commit().unwrap();
        assert!(!budget.clone().abandon(), "a started commit is waited for");
    }
}
