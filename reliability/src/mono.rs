//! Time stamps every process of the machine agrees on.

use std::time::{SystemTime, UNIX_EPOCH};

use rustix::time::{clock_gettime, ClockId};

/// Nanoseconds on `CLOCK_MONOTONIC`, comparable across processes. Read
/// through the vDSO, so libfaketime never fakes it.
pub fn mono_ns() -> u64 {
    let t = clock_gettime(ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000_000 + nanos
}

/// The wall clock (as this process sees it, faked or not), in ms since 1970.
pub fn wall_unix_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `wall - mono` in ms: differs between two processes by their wall skew.
pub fn wall_offset_ms(wall_unix_ms: i64, mono_ns: u64) -> i64 {
    wall_unix_ms - i64::try_from(mono_ns / 1_000_000).unwrap_or(i64::MAX)
}
