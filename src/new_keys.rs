//! Whether the locks a backend knows nothing of are likely new.
//!
//! celers-beat takes a fresh key for every run, so a backend creates the
//! Lease of an unknown lock straight away: one request instead of a read
//! and a create. Where unknown locks mostly exist already (a restarted
//! replica taking back its locks, replicas racing for the same run), each
//! such create fails with 409 and costs a read on top. So the backend keeps
//! guessing only while the guess pays: while at least half of its last
//! [`WINDOW`] creates succeeded.

use std::sync::atomic::{AtomicU32, Ordering};

/// Creates whose outcome counts.
pub const WINDOW: u32 = 16;
const MASK: u32 = (1 << WINDOW) - 1;

/// The outcomes of the last [`WINDOW`] creates, newest in the lowest bit
/// (1: created, 0: the Lease was there). Starts as if all had succeeded.
#[derive(Debug)]
pub struct NewKeys(AtomicU32);

impl Default for NewKeys {
    fn default() -> Self {
        Self(AtomicU32::new(MASK))
    }
}

impl NewKeys {
    /// Whether an unknown lock's Lease is worth creating without a read.
    pub fn likely(&self) -> bool {
        (self.0.load(Ordering::Relaxed) & MASK).count_ones() * 2 >= WINDOW
    }

    /// Counts a create: `created`, or answered 409 because the Lease existed.
    pub fn record(&self, created: bool) {
        let shift = |bits: u32| Some(((bits << 1) | u32::from(created)) & MASK);
        // The closure always returns Some, so this never fails.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, shift);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_are_assumed_until_most_creates_fail() {
        let keys = NewKeys::default();
        assert!(keys.likely());
        for _ in 0..WINDOW / 2 {
            keys.record(false);
            assert!(keys.likely(), "half of the window still succeeded");
        }
        keys.record(false);
        assert!(!keys.likely());
    }

    #[test]
    fn guessing_resumes_once_creates_succeed_again() {
        let keys = NewKeys::default();
        for _ in 0..WINDOW {
            keys.record(false);
        }
        for _ in 0..WINDOW / 2 - 1 {
            keys.record(true);
            assert!(!keys.likely());
        }
        keys.record(true);
        assert!(keys.likely());
    }

    #[test]
    fn only_the_window_counts() {
        let keys = NewKeys::default();
        for _ in 0..1000 {
            keys.record(true);
        }
        for _ in 0..=WINDOW / 2 {
            keys.record(false);
        }
        assert!(!keys.likely(), "a long run of successes does not linger");
    }
}
