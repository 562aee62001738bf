//! Per-space storage quotas: what each space uses of a store (documents, bytes, collections;
//! objects, bytes) against the operator's limits. A [`Ledger`] is the one place a store asks
//! before it commits a write that grows a space, and tells after one that shrinks it.
//!
//! A write first [`Ledger::reserve`]s its growth: refused, with the measure that would pass its
//! limit, when the space's usage plus the growth is over it; otherwise counted at once, so that
//! concurrent writers of one space (to different collections or keys) cannot both pass the
//! last room. The [`Reservation`] is released when the write fails and made final with
//! [`Reservation::keep`] once the write committed; only then do the write's shrinking parts
//! (a smaller replacement, an overwritten object's old size) count, so a failed write never
//! leaves the space looking emptier than it is. Deletes [`Ledger::settle`] after they commit.
//!
//! The ledger lives in memory: each store recounts it from its data when it opens (a linear
//! scan), so usage is right after a restart without a second copy of the counts on disk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The usage of one space, one number per measure (a store's `MEASURES` names them).
pub type Usage<const N: usize> = [u64; N];

/// A write's change to a space's usage, per measure (negative: frees room).
pub type Delta<const N: usize> = [i64; N];

/// A refused reservation: which measure would pass its limit, and the numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The index of the measure.
    pub measure: usize,
    /// What the space uses now.
    pub used: u64,
    /// What the write would add.
    pub adding: u64,
    pub limit: u64,
}

/// What every space uses of one store, and the limits.
#[derive(Debug)]
pub struct Ledger<const N: usize> {
    limits: Usage<N>,
    used: Mutex<BTreeMap<String, Usage<N>>>,
}

impl<const N: usize> Ledger<N> {
    /// A ledger with no usage yet, limiting each space to `limits`.
    pub fn new(limits: Usage<N>) -> Arc<Self> {
        Arc::new(Self { limits, used: Mutex::new(BTreeMap::new()) })
    }

    pub fn limits(&self) -> Usage<N> {
        self.limits
    }

    /// Counts the growth of `delta` for `space`, or refuses when a growing measure would pass
    /// its limit. A write that only shrinks (or keeps) a space is never refused, even over a
    /// lowered limit.
    pub fn reserve(
        self: &Arc<Self>,
        space: &str,
        delta: Delta<N>,
    ) -> Result<Reservation<N>, Refusal> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let now = used.get(space).copied().unwrap_or([0; N]);
        for measure in 0..N {
            let adding = delta[measure].max(0).unsigned_abs();
            if adding > 0 && now[measure].saturating_add(adding) > self.limits[measure] {
                return Err(Refusal {
                    measure,
                    used: now[measure],
                    adding,
                    limit: self.limits[measure],
                });
            }
        }
        let growth = delta.map(|d| d.max(0));
        if growth.iter().any(|&g| g > 0) {
            apply(&mut used, space, growth);
        }
        Ok(Reservation { ledger: self.clone(), space: space.to_string(), delta, kept: false })
    }

    /// Counts a committed change that needs no permission (a delete).
    pub fn settle(&self, space: &str, delta: Delta<N>) {
        apply(&mut self.used.lock().unwrap_or_else(|e| e.into_inner()), space, delta);
    }

    /// Sets a space's usage as counted from the stored data (at open).
    pub fn set(&self, space: &str, usage: Usage<N>) {
        self.used.lock().unwrap_or_else(|e| e.into_inner()).insert(space.to_string(), usage);
    }

    /// Forgets a space (its data was dropped).
    pub fn forget(&self, space: &str) {
        self.used.lock().unwrap_or_else(|e| e.into_inner()).remove(space);
    }

    /// Every space's usage, by space name.
    pub fn usage(&self) -> Vec<(String, Usage<N>)> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.iter().map(|(space, usage)| (space.clone(), *usage)).collect()
    }

    /// One space's usage (zeros when it stores nothing).
    pub fn of(&self, space: &str) -> Usage<N> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.get(space).copied().unwrap_or([0; N])
    }
}

/// Adds `delta` to a space's usage; a space left with nothing has no entry, so that /metrics
/// lists the spaces that store something.
fn apply<const N: usize>(used: &mut BTreeMap<String, Usage<N>>, space: &str, delta: Delta<N>) {
    let entry = used.entry(space.to_string()).or_insert([0; N]);
    for (value, change) in entry.iter_mut().zip(delta) {
        *value = value.saturating_add_signed(change);
    }
    if entry.iter().all(|&value| value == 0) {
        used.remove(space);
    }
}

/// Room counted for one write; released on drop unless the write committed ([`Self::keep`]).
#[derive(Debug)]
pub struct Reservation<const N: usize> {
    ledger: Arc<Ledger<N>>,
    space: String,
    delta: Delta<N>,
    kept: bool,
}

impl<const N: usize> Reservation<N> {
    /// The write committed: its growth stays counted and its shrinking parts count now.
    pub fn keep(mut self) {
        self.kept = true;
        let shrink = self.delta.map(|d| d.min(0));
        if shrink.iter().any(|&s| s < 0) {
            self.ledger.settle(&self.space, shrink);
        }
    }
}

impl<const N: usize> Drop for Reservation<N> {
    fn drop(&mut self) {
        if !self.kept {
            let growth = self.delta.map(|d| -d.max(0));
            if growth.iter().any(|&g| g < 0) {
                self.ledger.settle(&self.space, growth);
            }
        }
    }
}

/// A size or count as a signed change.
pub fn signed(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_past_a_limit_is_refused_and_a_refused_space_gets_no_entry() {
        let ledger = Ledger::new([2, 100]);
        ledger.reserve("a", [2, 60]).unwrap().keep();
        let refused = ledger.reserve("a", [1, 0]).unwrap_err();
        assert_eq!(refused, Refusal { measure: 0, used: 2, adding: 1, limit: 2 });
        let refused = ledger.reserve("b", [1, 101]).unwrap_err();
        assert_eq!(refused.measure, 1);
        assert_eq!(ledger.usage(), vec![("a".to_string(), [2, 60])]);
    }

    #[test]
    fn a_dropped_reservation_gives_its_room_back_and_shrinking_counts_only_when_kept() {
        let ledger = Ledger::new([10, 100]);
        ledger.set("a", [5, 50]);
        let pending = ledger.reserve("a", [1, 10]).unwrap();
        assert_eq!(ledger.of("a"), [6, 60], "counted while the write runs");
        drop(pending);
        assert_eq!(ledger.of("a"), [5, 50], "a failed write gives it back");

        let shrinking = ledger.reserve("a", [0, -20]).unwrap();
        assert_eq!(ledger.of("a"), [5, 50], "not freed before the write commits");
        shrinking.keep();
        assert_eq!(ledger.of("a"), [5, 30]);
        ledger.settle("a", [-5, -30]);
        assert_eq!(ledger.of("a"), [0, 0]);
        assert!(ledger.usage().is_empty(), "an empty space has no entry");
    }

    #[test]
    fn a_space_over_a_lowered_limit_may_still_shrink() {
        let ledger = Ledger::new([1, 10]);
        ledger.set("a", [5, 50]);
        ledger.reserve("a", [0, -10]).unwrap().keep();
        assert!(ledger.reserve("a", [0, 1]).is_err());
        assert_eq!(ledger.of("a"), [5, 40]);
    }
}
