//! How many queries run at once: a fixed number of slots, a bounded queue of queries waiting for
//! one, and a refusal only when the queue is full.
//!
//! Thirty dashboards refreshing together must not start thirty scans on two cores and exhaust
//! memory; they should wait their turn. A queue without a bound only moves the problem into
//! unbounded latency, so past it a query is refused at once, which a client can retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A query was refused because every slot is taken and the queue is full.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the server is busy: {running} queries are running and {queued} are waiting, the most it queues; retry shortly"
)]
pub struct Busy {
    running: usize,
    queued: usize,
}

/// The slots and the queue.
#[derive(Debug)]
pub struct Admission {
    slots: Arc<Semaphore>,
    running: usize,
    max_queued: usize,
    queued: AtomicUsize,
}

/// A query's slot, given back when the query's result stream ends or is dropped.
pub type Slot = OwnedSemaphorePermit;

impl Admission {
    /// `running` queries at once, at most `max_queued` waiting behind them.
    pub fn new(running: usize, max_queued: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(running.max(1))),
            running: running.max(1),
            max_queued,
            queued: AtomicUsize::new(0),
        }
    }

    /// Waits for a slot, or refuses at once when the queue is full.
    pub async fn admit(&self) -> Result<Slot, Busy> {
        if let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() {
            return Ok(slot);
        }
        let busy = Busy {
            running: self.running,
            queued: self.max_queued,
        };
        let waiting = self.queued.fetch_add(1, Ordering::SeqCst);
        if waiting >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(busy);
        }
        // Leaving the queue is counted even when the waiting future is dropped (a client that
        // hangs up while queued).
        struct LeaveQueue<'a>(&'a AtomicUsize);
        impl Drop for LeaveQueue<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _leave = LeaveQueue(&self.queued);
        Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| busy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn queries_wait_for_a_slot_and_are_refused_only_past_the_queue() {
        let admission = Arc::new(Admission::new(1, 1));
        let first = admission.admit().await.unwrap();
        let waiting = {
            let admission = Arc::clone(&admission);
            tokio::spawn(async move { admission.admit().await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            admission.admit().await.unwrap_err(),
            Busy {
                running: 1,
                queued: 1
            }
        );
        drop(first);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert!(admission.admit().await.is_ok());
    }

    #[tokio::test]
    async fn a_query_that_gives_up_while_queued_frees_its_place() {
        let admission = Admission::new(1, 1);
        let _running = admission.admit().await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(10), admission.admit()).await;
        assert!(gave_up.is_err());
        let again = tokio::time::timeout(Duration::from_millis(10), admission.admit()).await;
        assert!(
            again.is_err(),
            "the place in the queue was free again, so it waited"
        );
    }
}
