//! The clock seam: the only place that reads the wall clock or makes unique ids.
//!
//! Everything that stamps time (`commitInfo.timestamp`, `modificationTime`, tombstone
//! deletion times) or names a file (`part-<uuid>…`) asks a [`Clock`], so tests can inject
//! a deterministic one and replay a seed.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Time and unique ids.
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// A fresh unique id.
    fn unique_id(&self) -> uuid::Uuid;
}

/// The real clock and random v4 UUIDs.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn unique_id(&self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }
}

/// A deterministic clock for tests: time starts at `start_ms` and advances by `step_ms` on
/// every read; ids count up from a seed.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
    step_ms: i64,
    next_id: AtomicU64,
    seed: u64,
}

impl ManualClock {
    /// A clock at `start_ms` that advances `step_ms` per reading, with ids derived from `seed`.
    #[must_use]
    pub fn new(start_ms: i64, step_ms: i64, seed: u64) -> Self {
        Self {
            now_ms: AtomicI64::new(start_ms),
            step_ms,
            next_id: AtomicU64::new(0),
            seed,
        }
    }

    /// Move the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.fetch_add(self.step_ms, Ordering::SeqCst)
    }

    fn unique_id(&self) -> uuid::Uuid {
        let n = self.next_id.fetch_add(1, Ordering::SeqCst);
        uuid::Uuid::from_u64_pair(self.seed, n)
    }
}
