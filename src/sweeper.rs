//! When the background sweep of expired Leases is due, and that only one
//! runs at a time. The sweep itself is `sweep_expired` (bulk.rs), started by
//! `maybe_sweep` after a create.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::LocalInstant;

/// When the background sweep last started, and whether it is running.
#[derive(Debug)]
pub(crate) struct Sweeper {
    interval: Option<Duration>,
    last: Mutex<LocalInstant>,
    running: Arc<AtomicBool>,
}

/// Marks a sweep as running until dropped, even if the sweep panics or its
/// task is dropped.
pub(crate) struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Sweeper {
    pub fn new(interval: Option<Duration>) -> Self {
        Self {
            interval,
            last: Mutex::new(LocalInstant::now()),
            running: Arc::new(AtomicBool::new(false)),
        }
    }

    /// `Some` if a sweep is due and none is running: it is then marked as
    /// running until the returned guard is dropped.
    pub fn start(&self) -> Option<Running> {
        let interval = self.interval?;
        {
            let mut last = self.last.lock().ok()?;
            let now = LocalInstant::now();
            if now.saturating_since(*last) < interval {
                return None;
            }
            *last = now;
        }
        (!self.running.swap(true, Ordering::AcqRel)).then(|| Running(Arc::clone(&self.running)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_start_only_when_due_and_never_twice_at_once() {
        let sweeper = Sweeper::new(Some(Duration::from_nanos(1)));
        std::thread::sleep(Duration::from_millis(1));
        let running = sweeper.start();
        assert!(running.is_some());
        std::thread::sleep(Duration::from_millis(1));
        assert!(sweeper.start().is_none(), "one is running");
        drop(running);
        std::thread::sleep(Duration::from_millis(1));
        assert!(sweeper.start().is_some(), "the guard ended it");
        assert!(Sweeper::new(None).start().is_none(), "off");
        let slow = Sweeper::new(Some(Duration::from_secs(3600)));
        assert!(slow.start().is_none(), "not due yet");
    }

    #[test]
    fn a_panicking_sweep_does_not_stop_sweeps_for_good() {
        let sweeper = Sweeper::new(Some(Duration::from_nanos(1)));
        std::thread::sleep(Duration::from_millis(1));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _running = sweeper.start();
            panic!("a sweep failed badly");
        }));
        assert!(caught.is_err());
        std::thread::sleep(Duration::from_millis(1));
        assert!(sweeper.start().is_some());
    }
}
