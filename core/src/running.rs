//! How many invocations run guest code at once across the node.
//!
//! Without a bound, 64 concurrent calls on 2 cores share the CPU in 1 ms slices: every call
//! takes ~32× its own CPU time in wall-clock time and a good call can reach its timeout only
//! because others ran (the reliability suite saw a 5 ms hello world time out at 1 s next to
//! infinite loops and memory bombs). With a bound, extra calls wait in line first; a function's
//! timeout counts from when it starts running, so it measures the function, not the queue.
//! Throughput is the same (the CPU is the limit either way) and fewer instances are live.
//!
//! A call that waits on the network (an IXON API request) gives its slot up meanwhile, so slow
//! upstreams do not idle the node.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Running invocations per CPU core when the operator sets no bound.
pub const PER_CORE: usize = 4;

/// CPU cores the process may use (1 when that cannot be told).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The bound for this machine: `PER_CORE` per core the process may use.
pub fn default_max_running() -> usize {
    cores() * PER_CORE
}

/// The node's run slots.
#[derive(Debug)]
pub struct RunSlots {
    semaphore: Arc<Semaphore>,
    size: usize,
}

impl RunSlots {
    /// `size` slots; 0 means [`default_max_running`].
    pub fn new(size: usize) -> Arc<Self> {
        let size = if size == 0 { default_max_running() } else { size };
        Arc::new(Self { semaphore: Arc::new(Semaphore::new(size)), size })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Invocations running now.
    pub fn running(&self) -> usize {
        self.size - self.semaphore.available_permits()
    }

    /// Waits in line (first come, first served) for a slot.
    pub async fn acquire(&self) -> RunSlot {
        RunSlot::take(self.semaphore.clone()).await
    }
}

/// One running invocation's slot; given back when dropped.
#[derive(Debug)]
pub struct RunSlot {
    semaphore: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl RunSlot {
    async fn take(semaphore: Arc<Semaphore>) -> Self {
        // The semaphore is never closed.
        let permit = semaphore.clone().acquire_owned().await.ok();
        Self { semaphore, permit }
    }

    /// Gives the slot up while the call waits on something outside the node.
    pub fn park(&mut self) {
        self.permit = None;
    }

    /// Takes a slot again after [`park`](Self::park), in line with new calls.
    pub async fn resume(&mut self) {
        if self.permit.is_none() {
            self.permit = self.semaphore.clone().acquire_owned().await.ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_parked_slot_lets_another_call_run_and_is_taken_back() {
        let slots = RunSlots::new(1);
        let mut first = slots.acquire().await;
        assert_eq!(slots.running(), 1);
        // No second slot while the first runs.
        assert!(tokio::time::timeout(std::time::Duration::from_millis(20), slots.acquire())
            .await
            .is_err());
        first.park();
        let second = slots.acquire().await;
        assert_eq!(slots.running(), 1);
        // Resuming waits for the second to finish.
        let resumed = tokio::spawn(async move {
            first.resume().await;
            first
        });
        tokio::task::yield_now().await;
        assert!(!resumed.is_finished());
        drop(second);
        let first = resumed.await.unwrap();
        assert_eq!(slots.running(), 1);
        drop(first);
        assert_eq!(slots.running(), 0);
    }

    #[test]
    fn zero_means_per_core() {
        assert_eq!(RunSlots::new(0).size(), default_max_running());
        assert!(default_max_running() >= PER_CORE);
    }
}
