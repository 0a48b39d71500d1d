//! The API server's clock, as seen from this process.
//!
//! Expiry is judged on the API server's clock, never on the local wall clock,
//! so replicas whose clocks disagree (by an hour, say) still agree on who
//! holds a lock. Every response carries a `Date` header stamped by the API
//! server between the moment the request was sent and the moment the response
//! arrived. With the local *monotonic* clock `m`, each response bounds the
//! offset `θ = server time − m`:
//!
//! ```text
//! date − m_received  ≤  θ  <  date + 1 s − m_sent
//! ```
//!
//! (the header has whole seconds). [`ServerClock`] intersects these intervals
//! over all responses, widened by a drift allowance as they age, so the bound
//! tightens, as responses arrive at varied moments, towards one round trip. If the
//! server's clock steps, the intersection becomes empty and the clock starts
//! again from the newest response.
//!
//! Decisions then use both ends of the interval:
//! - a Lease is *expired* only when the earliest possible server time is past
//!   `renewTime + leaseDurationSeconds`, so nobody takes over early;
//! - times written into a Lease are the latest possible server time, so the
//!   holder's lock never ends before `send + ttl` by the server's clock.
//!
//! client-go's leader election instead measures expiry from when *it* first
//! observed a record, which tolerates skew but makes every newcomer wait a
//! full TTL even for a long-dead holder. With the server's clock, a lock whose
//! holder died is takeable within its TTL plus the (small) uncertainty.

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

/// Drift allowed between the local monotonic clock and the server's clock,
/// in parts per million, when an old bound is carried forward.
const DRIFT_PPM: i64 = 200;
/// Width of the `Date` header's resolution.
const DATE_RESOLUTION_MICROS: i64 = 1_000_000;

/// Bounds on the API server's current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTime {
    /// The server's clock reads at least this.
    pub earliest: DateTime<Utc>,
    /// The server's clock reads at most this.
    pub latest: DateTime<Utc>,
}

/// What one response told about the server's clock.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the request was sent, on the local monotonic clock.
    pub sent: Instant,
    /// When the response headers arrived, on the local monotonic clock.
    pub received: Instant,
    /// The response's `Date` header.
    pub date: DateTime<Utc>,
}

/// Running estimate of the offset between the local monotonic clock and the
/// API server's clock.
#[derive(Clone, Debug)]
pub struct ServerClock {
    origin: Instant,
    bound: Option<Bound>,
}

/// `θ` in microseconds relative to `origin`: `low ≤ θ ≤ high`, last
/// tightened at `at` (microseconds since `origin`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bound {
    low: i64,
    high: i64,
    at: i64,
}

impl ServerClock {
    /// A clock with no samples yet.
    pub fn new(origin: Instant) -> Self {
        Self {
            origin,
            bound: None,
        }
    }

    /// Takes one response into account.
    pub fn observe(&mut self, sample: Sample) {
        let sent = self.micros(sample.sent);
        let received = self.micros(sample.received).max(sent);
        let date = sample.date.timestamp_micros();
        let fresh = Bound {
            low: date - received,
            high: date + DATE_RESOLUTION_MICROS - sent,
            at: received,
        };
        self.bound = Some(match self.bound {
            None => fresh,
            Some(old) => {
                let drift = (received - old.at).max(0) * DRIFT_PPM / 1_000_000;
                let low = fresh.low.max(old.low - drift);
                let high = fresh.high.min(old.high + drift);
                if low <= high {
                    Bound {
                        low,
                        high,
                        at: received,
                    }
                } else {
                    // The server's clock stepped: trust only the newest answer.
                    fresh
                }
            }
        });
    }

    /// Bounds on the server's time at the local instant `at`, or `None`
    /// before the first response.
    pub fn at(&self, at: Instant) -> Option<ServerTime> {
        let bound = self.bound?;
        let local = self.micros(at);
        let drift = (local - bound.at).max(0) * DRIFT_PPM / 1_000_000;
        Some(ServerTime {
            earliest: from_micros(local + bound.low - drift),
            latest: from_micros(local + bound.high + drift),
        })
    }

    fn micros(&self, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.origin);
        i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
    }
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + TimeDelta::microseconds(micros)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn date(secs: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::seconds(secs)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn uncalibrated_clock_knows_nothing() {
        let origin = Instant::now();
        let clock = ServerClock::new(origin);
        assert_eq!(clock.at(origin), None);
    }

    #[test]
    fn one_sample_bounds_the_time_within_a_second_and_a_round_trip() {
        let origin = Instant::now();
        let mut clock = ServerClock::new(origin);
        clock.observe(Sample {
            sent: origin,
            received: origin + ms(10),
            date: date(1_000),
        });
        let now = clock.at(origin + ms(10)).expect("calibrated");
        assert_eq!(now.earliest, date(1_000));
        assert_eq!(now.latest, date(1_001) + TimeDelta::milliseconds(10));
    }

    #[test]
    fn samples_across_a_second_boundary_tighten_the_bound() {
        // The server's clock is 1000.3 s at local 0 (θ = 1000.3 s).
        let origin = Instant::now();
        let mut clock = ServerClock::new(origin);
        for step in 0..40u64 {
            let sent = origin + ms(step * 50);
            let received = sent + ms(2);
            // Stamped in the middle of the round trip, truncated to seconds.
            let server_micros = 1_000_300_000 + (step * 50 + 1) as i64 * 1_000;
            clock.observe(Sample {
                sent,
                received,
                date: date(server_micros / 1_000_000),
            });
        }
        let at = origin + ms(2_000);
        let now = clock.at(at).expect("calibrated");
        let truth = date(1_002) + TimeDelta::milliseconds(300);
        assert!(now.earliest <= truth && truth <= now.latest, "{now:?}");
        // As tight as the spacing of the samples around a second boundary.
        assert!(
            now.latest - now.earliest <= TimeDelta::milliseconds(55),
            "{now:?}"
        );
    }

    #[test]
    fn the_bound_widens_with_age() {
        let origin = Instant::now();
        let mut clock = ServerClock::new(origin);
        clock.observe(Sample {
            sent: origin,
            received: origin,
            date: date(0),
        });
        let soon = clock.at(origin).expect("calibrated");
        let later = clock
            .at(origin + Duration::from_secs(1_000))
            .expect("calibrated");
        let soon_width = soon.latest - soon.earliest;
        let later_width = later.latest - later.earliest;
        assert_eq!(later_width - soon_width, TimeDelta::milliseconds(400));
    }

    #[test]
    fn a_stepped_server_clock_resets_the_bound() {
        let origin = Instant::now();
        let mut clock = ServerClock::new(origin);
        clock.observe(Sample {
            sent: origin,
            received: origin + ms(1),
            date: date(1_000),
        });
        // One hour later by the server's clock, 1 s later locally.
        clock.observe(Sample {
            sent: origin + ms(1_000),
            received: origin + ms(1_001),
            date: date(4_601),
        });
        let now = clock.at(origin + ms(1_001)).expect("calibrated");
        assert_eq!(now.earliest, date(4_601));
    }

    #[test]
    fn local_wall_clock_does_not_matter() {
        // Only the monotonic instants and the Date header go in: a client
        // whose wall clock is an hour off computes the same bounds.
        let origin = Instant::now();
        let mut a = ServerClock::new(origin);
        let mut b = ServerClock::new(origin);
        let sample = Sample {
            sent: origin,
            received: origin + ms(3),
            date: date(77),
        };
        a.observe(sample);
        b.observe(sample);
        assert_eq!(a.at(origin + ms(500)), b.at(origin + ms(500)));
    }

    #[test]
    fn responses_before_the_origin_are_clamped() {
        let origin = Instant::now() + Duration::from_secs(5);
        let mut clock = ServerClock::new(origin);
        clock.observe(Sample {
            sent: Instant::now(),
            received: Instant::now(),
            date: date(10),
        });
        assert!(clock.at(origin).is_some());
    }
}
