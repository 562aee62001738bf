//! Instances made ahead of demand. Every invocation still gets a fresh instance that nothing has
//! run in, but the instantiation happens before the request arrives: each active function
//! version keeps a small stock of never-used instances, refilled in the background by one keeper
//! task per version, sized by the version's recent traffic and bounded node-wide.
//!
//! A pooled instance has run no guest code after instantiation (componentize-py components run
//! none while instantiating either: the interpreter was snapshotted at build time). What is
//! per-call — configuration, caller scope, deadline — is bound when the instance is taken.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::{Function, FunctionPre};
use crate::host::InvocationState;
use crate::registry::FunctionVersion;

/// How many instances may wait, made ahead of demand.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// The most never-used instances one function version keeps (0: no pool; every
    /// invocation instantiates on the request path).
    pub per_function: usize,
    /// The most never-used instances across all functions of the node; each holds its
    /// instance's private memory (about 1 MiB for a hello world) and a pooling-allocator slot.
    pub total: usize,
    /// A version not called for this long gives its pooled instances back.
    pub idle: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { per_function: 4, total: 32, idle: Duration::from_secs(60) }
    }
}

impl PoolSettings {
    /// Pooled instances take allocator slots that live calls need: at most a quarter of them.
    pub fn bounded_by(mut self, max_instances: u32) -> Self {
        self.total = self.total.min(max_instances as usize / 4);
        self
    }
}

/// The node-wide count of pooled instances, and the node's instance slots.
#[derive(Debug)]
pub(crate) struct PoolBudget {
    settings: PoolSettings,
    /// One permit per instance the engine's pooling allocator can hold (`--max-instances`),
    /// taken before a store is made and given back only after the store is dropped, so a call
    /// waits for a slot instead of failing: the store of the call before is dropped in a task
    /// of its own after its answer, and a call that arrived meanwhile found every slot taken.
    slots: Arc<Semaphore>,
    /// Instances pooled or being made for the pool.
    pooled: AtomicUsize,
    /// Instances ready in a pool.
    ready: AtomicUsize,
}

impl PoolBudget {
    pub(crate) fn new(settings: PoolSettings, max_instances: u32) -> Arc<Self> {
        let slots = Arc::new(Semaphore::new(max_instances as usize));
        Arc::new(Self { settings, slots, pooled: AtomicUsize::new(0), ready: AtomicUsize::new(0) })
    }

    /// Instance slots no store holds now.
    pub(crate) fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }

    /// An instance slot if one is free now.
    pub(crate) fn try_instance_slot(&self) -> Option<InstanceSlot> {
        self.slots.clone().try_acquire_owned().ok().map(|permit| InstanceSlot { _permit: permit })
    }

    /// Waits until `deadline` for an instance slot; `None` when none was freed by then.
    pub(crate) async fn instance_slot(&self, deadline: Instant) -> Option<InstanceSlot> {
        let slots = self.slots.clone();
        let wait = slots.acquire_owned();
        match tokio::time::timeout_at(deadline.into(), wait).await {
            Ok(Ok(permit)) => Some(InstanceSlot { _permit: permit }),
            _ => None,
        }
    }

    fn try_reserve(&self) -> bool {
        self.pooled
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.settings.total).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, count: usize) {
        self.pooled.fetch_sub(count, Ordering::AcqRel);
    }

    /// Takes `count` ready instances out of the budget (taken by calls or dropped).
    fn remove_ready(&self, count: usize) {
        self.ready.fetch_sub(count, Ordering::AcqRel);
        self.release(count);
    }

    /// Never-used instances ready across the node.
    pub(crate) fn ready(&self) -> usize {
        self.ready.load(Ordering::Acquire)
    }
}

/// An instance slot of the engine, held until the store that uses it is dropped. A store drops
/// its data before its instances, so the slot cannot live in the store's data: it is kept
/// beside the store and dropped after it.
#[derive(Debug)]
pub(crate) struct InstanceSlot {
    _permit: OwnedSemaphorePermit,
}

/// A fresh instance and its store, not yet called. Fields drop in order: the store, then its
/// slot.
pub(crate) struct Ready {
    pub store: Store<InvocationState>,
    pub instance: Function,
    pub slot: InstanceSlot,
}

/// Creates the store of one instance of `version`: its memory limit, output capacity and a
/// deadline that lets instantiation run; per-call settings are bound later. It takes no instance
/// slot: the invoker's calls take theirs first, `wasmfn bench` measures without.
/// A store for an instance of `pre` (made with its engine: Winch's or Cranelift's, see
/// [`crate::tiers`]).
pub fn new_store(
    pre: &FunctionPre<InvocationState>,
    version: &FunctionVersion,
) -> Store<InvocationState> {
    let limits = &version.limits;
    let mut state = InvocationState::new(
        Default::default(),
        limits.memory_bytes(),
        limits.max_output_bytes,
        None,
    );
    state.limit_response(limits.max_response_bytes);
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|state| &mut state.limiter);
    // Made ahead of demand, usually by the keeper: background work that gives way to requests at
    // every tick (instantiating runs libpython's start code).
    set_deadline(&mut store, Instant::now() + limits.timeout(), BACKGROUND_SLICE_TICKS);
    store
}

/// Gives `store`'s next call its own budget: the function's timeout from now, yielding every
/// [`YIELD_SLICE_TICKS`] as an invocation's call does. For a store called more than once, or
/// long after it was made (`wasmfn bench` times calls on instances it made earlier), so that
/// each call, not the store's whole life, gets `timeout_ms`.
pub fn deadline_for_call(store: &mut Store<InvocationState>, limits: &crate::limits::Limits) {
    set_deadline(store, Instant::now() + limits.timeout(), YIELD_SLICE_TICKS);
}

/// Epoch ticks a guest runs before it yields its runtime thread to other tasks (and again after
/// each yield). One tick (1 ms) made a fifth of hello-world calls, which take ~0.1 ms, yield
/// part-way because a tick fell inside them: each then waited at the back of the run queue
/// behind every other ready request, and the pool ran dry meanwhile. Measured under
/// `wrk -c16`: server-side call time p99 3.1 ms with one tick, 0.25 ms with five.
pub(crate) const YIELD_SLICE_TICKS: u64 = 5;

/// The slice of work made ahead of demand (the keeper's instantiations): it yields at every tick.
const BACKGROUND_SLICE_TICKS: u64 = 1;

/// Interrupts the guest at `deadline`; until then it yields to the executor after every `slice`
/// epoch ticks ([`YIELD_SLICE_TICKS`] for a call), so a CPU-bound guest never holds a runtime
/// thread for more than a few milliseconds. The last slice ends at the deadline, so timeouts keep
/// one-tick precision.
pub(crate) fn set_deadline(store: &mut Store<InvocationState>, deadline: Instant, slice: u64) {
    store.set_epoch_deadline(ticks_until(deadline, Instant::now(), slice));
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        if now >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(ticks_until(deadline, now, slice)))
        }
    });
}

/// Ticks until the next check: one slice, or fewer when the deadline comes first (at least 1).
fn ticks_until(deadline: Instant, now: Instant, slice: u64) -> u64 {
    let tick = crate::engine::EPOCH_TICK.as_nanos();
    let left = deadline.saturating_duration_since(now).as_nanos().div_ceil(tick);
    (left as u64).clamp(1, slice.max(1))
}

/// The never-used instances of one function version.
#[derive(Default)]
pub(crate) struct InstancePool {
    ready: Mutex<Vec<Ready>>,
    /// Invocations so far, for the keeper's rate estimate.
    calls: AtomicU64,
    /// Set while the version's keeper task runs.
    keeper: AtomicBool,
    wake: Arc<Notify>,
    /// The budget its instances count against, once it has any.
    budget: std::sync::OnceLock<Arc<PoolBudget>>,
}

impl Drop for InstancePool {
    fn drop(&mut self) {
        // A replaced version's pooled instances go with it; so does their share of the budget.
        if let Some(budget) = self.budget.get() {
            budget.remove_ready(self.drain());
        }
    }
}

impl std::fmt::Debug for InstancePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePool").field("ready", &self.len()).finish_non_exhaustive()
    }
}

impl InstancePool {
    pub(crate) fn len(&self) -> usize {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn push(&self, ready: Ready) {
        self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(ready);
    }

    fn drain(&self) -> usize {
        let drained = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        drained.len()
    }
}

/// Takes a never-used instance of `version` if one waits, and makes sure its keeper runs.
/// Call [`refill`] once the call is over.
pub(crate) fn take(version: &Arc<FunctionVersion>, budget: &Arc<PoolBudget>) -> Option<Ready> {
    if budget.settings.per_function == 0 || budget.settings.total == 0 {
        return None;
    }
    let pool = &version.pool;
    let _ = pool.budget.set(budget.clone());
    pool.calls.fetch_add(1, Ordering::Relaxed);
    let taken = pool.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
    if taken.is_some() {
        budget.remove_ready(1);
    }
    if !pool.keeper.swap(true, Ordering::AcqRel) {
        tokio::spawn(keep(Arc::downgrade(version), budget.clone()));
    }
    taken
}

/// Tells `version`'s keeper that a call has finished and its instance was dropped: the time to
/// make the next one. Refilling after the call rather than when the instance is taken keeps the
/// keeper's work (and its page-table changes) from running beside the call, and lets the next
/// instance reuse the slot the call has just freed, which is still warm.
pub(crate) fn refill(version: &FunctionVersion) {
    if version.pool.keeper.load(Ordering::Acquire) {
        version.pool.wake.notify_one();
    }
}

/// One version's keeper: tops its pool up to the size recent traffic asks for, and gives the
/// instances back once the version has been idle (or was replaced and dropped).
async fn keep(version: Weak<FunctionVersion>, budget: Arc<PoolBudget>) {
    let settings = budget.settings.clone();
    let Some(wake) = version.upgrade().map(|v| v.pool.wake.clone()) else { return };
    let mut last_calls = 0;
    let mut last_sample = Instant::now();
    let mut last_call_seen = Instant::now();
    let mut rate = 0.0f64;
    loop {
        let Some(current) = version.upgrade() else { return };
        let pool = &current.pool;
        let calls = pool.calls.load(Ordering::Relaxed);
        let now = Instant::now();
        if calls != last_calls {
            last_call_seen = now;
        }
        if now.duration_since(last_call_seen) >= settings.idle {
            // Idle: give the memory back. A later call starts a new keeper.
            pool.keeper.store(false, Ordering::Release);
            budget.remove_ready(pool.drain());
            return;
        }
        // Calls per second, smoothed over the samples of the last second or so.
        let elapsed = now.duration_since(last_sample).as_secs_f64();
        if elapsed >= 0.05 {
            let instant_rate = (calls - last_calls) as f64 / elapsed;
            let weight = elapsed.min(1.0);
            rate = rate * (1.0 - weight) + instant_rate * weight;
            last_calls = calls;
            last_sample = now;
        }
        let target = target_size(rate, settings.per_function);
        while pool.len() < target && budget.try_reserve() {
            // Live calls come first: the pool only takes a slot that is free now.
            let Ok(permit) = budget.slots.clone().try_acquire_owned() else {
                budget.release(1);
                break;
            };
            let slot = InstanceSlot { _permit: permit };
            let pre = current.pre();
            let mut store = new_store(&pre, &current);
            match pre.instantiate_async(&mut store).await {
                Ok(instance) => {
                    // Counted before it can be taken, so the count never goes below zero.
                    budget.ready.fetch_add(1, Ordering::AcqRel);
                    pool.push(Ready { store, instance, slot });
                }
                Err(error) => {
                    budget.release(1);
                    tracing::debug!(
                        function = %current.name, error = %format!("{error:#}"),
                        "could not instantiate ahead of demand"
                    );
                    break;
                }
            }
        }
        drop(current);
        // Woken when a call ends; the timeout re-estimates the rate and notices idleness.
        let _ = tokio::time::timeout(Duration::from_millis(250), wake.notified()).await;
    }
}

/// Instances to keep for a version called `rate` times per second: enough to cover the calls
/// that arrive while one instance is being made (about a millisecond), doubled for bursts,
/// and never fewer than one for a version in use.
fn target_size(rate: f64, max: usize) -> usize {
    const INSTANTIATE_SECONDS: f64 = 0.002;
    let wanted = 1 + (rate * INSTANTIATE_SECONDS * 2.0).ceil() as usize;
    wanted.min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_end_at_the_deadline() {
        let now = Instant::now();
        let tick = crate::engine::EPOCH_TICK;
        let slice = YIELD_SLICE_TICKS;
        assert_eq!(ticks_until(now + tick * 100, now, slice), slice, "a full slice");
        assert_eq!(ticks_until(now + tick * 2, now, slice), 2, "cut short by the deadline");
        assert_eq!(ticks_until(now + tick / 2, now, slice), 1, "never less than one tick");
        assert_eq!(ticks_until(now, now + tick, slice), 1, "past the deadline: the next tick");
        assert_eq!(ticks_until(now + tick * 100, now, 0), 1, "a slice is at least one tick");
    }

    #[test]
    fn target_grows_with_traffic_within_the_bound() {
        assert_eq!(target_size(0.0, 4), 1, "a version in use keeps one");
        assert_eq!(target_size(10.0, 4), 2);
        assert_eq!(target_size(1_000.0, 4), 4, "bounded per function");
        assert_eq!(target_size(1_000.0, 0), 0, "0 disables the pool");
    }

    #[test]
    fn budget_is_shared_and_bounded() {
        let budget = PoolBudget::new(PoolSettings { total: 2, ..PoolSettings::default() }, 8);
        assert!(budget.try_reserve());
        assert!(budget.try_reserve());
        assert!(!budget.try_reserve(), "the node-wide bound holds");
        budget.release(1);
        assert!(budget.try_reserve());
        assert_eq!(budget.pooled.load(Ordering::Acquire), 2);
    }

    #[test]
    fn bounded_by_leaves_most_slots_to_live_calls() {
        let settings = PoolSettings::default().bounded_by(32);
        assert_eq!(settings.total, 8);
    }
}
