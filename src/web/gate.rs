//! How many uploads one instance applies at once. An upload waits here for its turn
//! without holding a database connection, so that uploads can never take the whole pool
//! from the pages and the session opens; one that does not get its turn in time is
//! answered 503 with `Retry-After`, which the laptop obeys.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The settings: uploads applied at once, and how long one waits for its turn.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    pub at_once: usize,
    pub wait: Duration,
}

impl UploadLimits {
    /// Half the pool, so that the other half always serves pages, opens and downloads.
    /// (On SQLite, which applies one upload at a time whatever the number, use
    /// [`UploadLimits::one_writer`].)
    pub fn for_pool(pool_size: u32) -> Self {
        UploadLimits {
            at_once: (pool_size as usize / 2).max(1),
            wait: Duration::from_secs(20),
        }
    }
}

impl UploadLimits {
    /// One at a time: SQLite has one writer, and an upload waiting for it would hold a
    /// connection while it waits.
    pub fn one_writer() -> Self {
        UploadLimits {
            at_once: 1,
            ..Self::for_pool(2)
        }
    }
}

pub struct UploadGate {
    turns: Arc<Semaphore>,
    limits: UploadLimits,
    waiting: AtomicUsize,
}

/// An upload's turn; the next one may start when it is dropped.
pub struct Turn {
    _permit: OwnedSemaphorePermit,
    gate: Arc<UploadGate>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        // The permit goes back after this, hence the one.
        self.gate.report(1);
    }
}

impl UploadGate {
    pub fn new(limits: UploadLimits) -> Arc<Self> {
        Arc::new(UploadGate {
            turns: Arc::new(Semaphore::new(limits.at_once.max(1))),
            limits,
            waiting: AtomicUsize::new(0),
        })
    }

    fn report(&self, finishing: usize) {
        let in_flight = self.limits.at_once.max(1) - self.turns.available_permits();
        crate::telemetry::uploads(
            in_flight.saturating_sub(finishing),
            self.waiting.load(Ordering::Relaxed),
        );
    }

    /// Waits for a turn; `None` when none came within the wait (the caller answers 503,
    /// with [`UploadGate::retry_after`]).
    pub async fn turn(self: &Arc<Self>) -> Option<Turn> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.report(0);
        let permit =
            tokio::time::timeout(self.limits.wait, self.turns.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let turn = match permit {
            Ok(Ok(permit)) => Some(Turn {
                _permit: permit,
                gate: self.clone(),
            }),
            _ => {
                crate::telemetry::upload_turned_away();
                None
            }
        };
        self.report(0);
        turn
    }

    /// Seconds to tell a client who found no turn: more the longer the queue, so that a
    /// crowd spreads out.
    pub fn retry_after(&self) -> u64 {
        let queue = self.waiting.load(Ordering::Relaxed) as u64;
        (1 + queue / self.limits.at_once.max(1) as u64).min(60)
    }

    pub fn limits(&self) -> UploadLimits {
        self.limits
    }
}
