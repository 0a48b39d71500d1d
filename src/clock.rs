//! The API server's clock, as seen from this process.
//!
//! This is the one place that explains the time model; the crate docs and
//! the README link here.
//!
//! # Why the server's clock
//!
//! Expiry is judged on the API server's clock, never on the local wall clock
//! (the library does not read it; clippy enforces that), so replicas whose
//! clocks disagree (by an hour, say) still agree on who holds a lock.
//! client-go's leader election instead measures expiry from when *it* first
//! observed a record, which tolerates skew but makes every newcomer wait a
//! full TTL even for a long-dead holder. With the server's clock, a lock whose
//! holder died is takeable within its TTL plus a small uncertainty.
//!
//! # How the server's clock is known
//!
//! Every response carries a `Date` header stamped by the API server between
//! the moment the request was sent and the moment the response arrived. With
//! the local clock `m` ([`LocalInstant`]), each response bounds the offset
//! `θ = server time − m`:
//!
//! ```text
//! date − m_received  ≤  θ  <  date + 1 s − m_sent
//! ```
//!
//! (the header has whole seconds). [`ServerClock`] intersects these
//! intervals, each widened by the drift allowance as it ages, so the bound
//! tightens towards one round trip as responses arrive at varied moments.
//! It also keeps the last [`WINDOW`] intervals (none older than
//! [`WINDOW_AGE`]) to tell whether recent responses contradict each other.
//!
//! # What is assumed
//!
//! - **Drift.** The local clock and the server's run at rates that differ by
//!   at most [`DRIFT_PPM`] (0.1 %): Linux slews an NTP-disciplined clock by
//!   at most 500 ppm, on either side. Carried-forward bounds widen by that
//!   much, and every time written into a Lease is moved later by the drift
//!   over its TTL, so a holder that counts its TTL on its own clock from
//!   when it sent the request stops before the server's clock reaches the
//!   Lease's expiry.
//! - **Several API servers.** Behind a load balancer, successive responses
//!   may come from servers whose clocks differ. The builder's
//!   `api_server_skew` (default 250 ms) is the largest difference assumed
//!   between any two of them; every bound is widened by it, so a decision is
//!   right by the clock of every API server. Responses that contradict each
//!   other by more than that break the assumption: the clock then says so in
//!   a `tracing` warning and widens the *earliest* end to the hull of all the
//!   intervals in its window, which only lengthens the wait for takeovers,
//!   until the contradicting responses have left the window. A client that
//!   talks to one API server only (HTTP/2 keeps one connection; a load
//!   balancer in TCP mode pins it) never sees another server's clock: for
//!   it the skew bound is an assumption it cannot check.
//! - **One bad `Date`.** A response that contradicts the running
//!   intersection by more than the skew bound (a server stepped by an hour,
//!   a proxy's error page stamped by its own clock) is *quarantined*: it
//!   widens the earliest end as above, but moves the *latest* end, the one
//!   writes are dated with and renewals are judged by, by at most one more
//!   skew bound. So one outlier can neither date a Lease an hour ahead (and
//!   leave it live for an hour after its holder died) nor make every renewal
//!   look late. The running intersection moves to the contradicting clock
//!   only once [`CONFIRM`] responses in a row agree with each other and
//!   contradict it (fewer while the running intersection itself rests on
//!   fewer responses: a first response that was the outlier is outvoted by
//!   two that agree): a clock that really stepped is followed after a few
//!   requests, a single outlier never.
//! - **Suspend.** On Linux the local clock is `CLOCK_BOOTTIME`, which keeps
//!   counting while the machine is suspended, so a resumed process does not
//!   date its writes too early. Elsewhere it is [`std::time::Instant`],
//!   which on some systems stops during suspend: there, do not suspend a
//!   machine that holds locks.
//!
//! # How decisions use it
//!
//! [`ServerTime`] has both ends of the bound:
//! - a Lease is *expired* only when the earliest possible server time is past
//!   `renewTime + leaseDurationSeconds`, so nobody takes over early;
//! - a holder renews only while the latest possible server time is before the
//!   expiry, so an expired lock is never brought back;
//! - times written into a Lease are the latest possible server time plus the
//!   drift over the TTL, so the lock never ends before `send + ttl` by any
//!   clock involved.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Largest rate difference assumed between the local clock and an API
/// server's clock, in parts per million.
pub const DRIFT_PPM: u32 = 1_000;
/// How many responses the clock remembers.
pub const WINDOW: usize = 32;
/// How long the clock remembers a response (the newest one is always kept).
pub const WINDOW_AGE: Duration = Duration::from_secs(120);
/// How many responses in a row, agreeing with each other, it takes to move
/// the running intersection to a clock that contradicts it.
pub const CONFIRM: u32 = 3;
/// Width of the `Date` header's resolution.
const DATE_RESOLUTION_MICROS: i64 = 1_000_000;

/// The drift allowance over `span`: how far two clocks may drift apart in it.
pub fn drift_over(span: Duration) -> Duration {
    span / (1_000_000 / DRIFT_PPM)
}

/// A reading of the local clock, which counts while suspended (see the
/// module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalInstant(Duration);

impl LocalInstant {
    /// The local clock now.
    pub fn now() -> Self {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Ok(time) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
            if let (Ok(secs), Ok(nanos)) =
                (u64::try_from(time.tv_sec()), u32::try_from(time.tv_nsec()))
            {
                return Self(Duration::new(secs, nanos));
            }
        }
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        Self(ORIGIN.get_or_init(Instant::now).elapsed())
    }

    /// A reading at `since` after the clock's origin.
    pub fn from_duration(since: Duration) -> Self {
        Self(since)
    }

    /// `self + span`, at most the end of time.
    pub fn saturating_add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(span))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    fn micros(self) -> i64 {
        i64::try_from(self.0.as_micros()).unwrap_or(i64::MAX)
    }
}

/// Bounds on the API server's current time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerTime {
    /// Every API server's clock reads at least this.
    pub earliest: DateTime<Utc>,
    /// Every API server's clock reads at most this.
    pub latest: DateTime<Utc>,
}

/// What one response told about the server's clock.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the request was sent.
    pub sent: LocalInstant,
    /// When the response headers arrived.
    pub received: LocalInstant,
    /// The response's `Date` header.
    pub date: DateTime<Utc>,
}

/// Running estimate of the offset between the local clock and the API
/// servers' clocks.
#[derive(Clone, Debug)]
pub struct ServerClock {
    skew_micros: i64,
    /// The intersection of every response that agreed with it since it was
    /// last confirmed; its ends may cross by up to the skew bound.
    running: Option<Interval>,
    /// How many responses `running` rests on (saturating).
    support: u32,
    /// Responses in a row that contradicted `running` but agree with each
    /// other: their intersection and how many.
    challenger: Option<(Interval, u32)>,
    /// The last responses, to tell whether they contradict each other.
    recent: VecDeque<Interval>,
    contradicted: bool,
}

/// A bound on `θ` in microseconds, `low ≤ θ ≤ high`, as of local time `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interval {
    low: i64,
    high: i64,
    at: i64,
}

impl Interval {
    /// The bound carried forward to local time `local`: wider by the drift.
    fn at(self, local: i64) -> (i64, i64) {
        let drift = drift_micros(local.saturating_sub(self.at).max(0));
        (self.low - drift, self.high + drift)
    }
}

impl ServerClock {
    /// A clock with no samples yet, for API servers whose clocks differ by at
    /// most `skew`.
    pub fn new(skew: Duration) -> Self {
        Self {
            skew_micros: i64::try_from(skew.as_micros()).unwrap_or(i64::MAX),
            running: None,
            support: 0,
            challenger: None,
            recent: VecDeque::with_capacity(WINDOW),
            contradicted: false,
        }
    }

    /// Takes one response into account.
    pub fn observe(&mut self, sample: Sample) {
        let sent = sample.sent.micros();
        let received = sample.received.micros().max(sent);
        let date = sample.date.timestamp_micros();
        // The stamp fell somewhere in the round trip: the latest end counts
        // the drift over all of it, the earliest end none (it is as of
        // `received`, from which `Interval::at` counts the drift on).
        let fresh = Interval {
            low: date - received,
            high: date + DATE_RESOLUTION_MICROS - sent + drift_micros(received - sent),
            at: received,
        };
        match self.running {
            None => {
                self.running = Some(fresh);
                self.support = 1;
            }
            Some(running) => match self.merged(running, fresh) {
                Some(merged) => {
                    self.running = Some(merged);
                    self.support = self.support.saturating_add(1);
                    self.challenger = None;
                }
                None => self.quarantine(fresh),
            },
        }
        let max_age = i64::try_from(WINDOW_AGE.as_micros()).unwrap_or(i64::MAX);
        self.recent
            .retain(|old| received.saturating_sub(old.at) <= max_age);
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(fresh);
        self.contradicted = self.recent_spread(received).is_some_and(|spread| {
            spread.max_low.saturating_sub(spread.min_high) > self.skew_micros
        });
    }

    /// `running` carried forward to `fresh` and narrowed by it, or `None`
    /// when they contradict each other by more than the skew bound.
    fn merged(&self, running: Interval, fresh: Interval) -> Option<Interval> {
        let (low, high) = running.at(fresh.at);
        let (low, high) = (low.max(fresh.low), high.min(fresh.high));
        (low.saturating_sub(high) <= self.skew_micros).then_some(Interval {
            low,
            high,
            at: fresh.at,
        })
    }

    /// A response that contradicts the running intersection: kept out of
    /// it unless enough responses in a row agree with it (see the module
    /// docs, "One bad `Date`").
    fn quarantine(&mut self, fresh: Interval) {
        let challenger = match self.challenger {
            Some((challenger, count)) => self
                .merged(challenger, fresh)
                .map_or((fresh, 1), |merged| (merged, count.saturating_add(1))),
            None => (fresh, 1),
        };
        if challenger.1 >= CONFIRM.min(self.support.saturating_add(1)) {
            tracing::warn!(
                responses = challenger.1,
                "the API server's clock moved by more than api_server_skew; following it"
            );
            self.running = Some(challenger.0);
            self.support = challenger.1;
            self.challenger = None;
        } else {
            tracing::warn!(
                "an API server's clock disagrees with earlier answers by more than \
                 api_server_skew (several servers out of sync, a clock stepped, or a bad \
                 Date header); not dating writes by it"
            );
            self.challenger = Some(challenger);
        }
    }

    /// Bounds on the server's time at the local instant `at`, or `None`
    /// before the first response.
    ///
    /// The running intersection, widened by the skew bound; while the
    /// recent responses contradict each other by more than that, the
    /// earliest end is widened further to their hull, and the latest end
    /// towards it by at most one more skew bound (see the module docs).
    pub fn at(&self, at: LocalInstant) -> Option<ServerTime> {
        let local = at.micros();
        let (low, high) = self.running?.at(local);
        let (mut low, mut high) = (
            low.saturating_sub(self.skew_micros),
            high.saturating_add(self.skew_micros),
        );
        if self.contradicted {
            if let Some(spread) = self.recent_spread(local) {
                low = low.min(spread.min_low);
                high = high.max(spread.max_high.min(high.saturating_add(self.skew_micros)));
            }
        }
        Some(ServerTime {
            earliest: from_micros(local.saturating_add(low)),
            latest: from_micros(local.saturating_add(high)),
        })
    }

    /// Whether the recent responses contradict each other by more than the
    /// skew bound.
    #[cfg(test)]
    pub fn is_contradicted(&self) -> bool {
        self.contradicted
    }

    fn recent_spread(&self, local: i64) -> Option<Spread> {
        let mut intervals = self.recent.iter().map(|interval| interval.at(local));
        let (low, high) = intervals.next()?;
        let first = Spread {
            max_low: low,
            min_high: high,
            min_low: low,
            max_high: high,
        };
        Some(intervals.fold(first, |spread, (low, high)| Spread {
            max_low: spread.max_low.max(low),
            min_high: spread.min_high.min(high),
            min_low: spread.min_low.min(low),
            max_high: spread.max_high.max(high),
        }))
    }
}

/// The recent responses carried forward to one local time.
#[derive(Clone, Copy, Debug)]
struct Spread {
    /// The highest low end...
    max_low: i64,
    /// ...and the lowest high end: they cross when responses disagree.
    min_high: i64,
    /// The hull of all of them.
    min_low: i64,
    max_high: i64,
}

fn drift_micros(span_micros: i64) -> i64 {
    span_micros / (1_000_000 / i64::from(DRIFT_PPM))
}

fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn date_ms(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + TimeDelta::milliseconds(ms)
    }

    fn date(secs: i64) -> DateTime<Utc> {
        date_ms(secs * 1_000)
    }

    fn local_ms(ms: u64) -> LocalInstant {
        LocalInstant::from_duration(Duration::from_millis(ms))
    }

    /// A response from a server whose clock reads `server_ms` at local 0,
    /// sent at local `at_ms`, with a 2 ms round trip stamped in its middle.
    fn sample(server_ms: i64, at_ms: u64) -> Sample {
        let stamped = server_ms + at_ms as i64 + 1;
        Sample {
            sent: local_ms(at_ms),
            received: local_ms(at_ms + 2),
            date: date_ms(stamped.div_euclid(1_000) * 1_000),
        }
    }

    fn truth(server_ms: i64, at_ms: u64) -> DateTime<Utc> {
        date_ms(server_ms + at_ms as i64)
    }

    #[test]
    fn uncalibrated_clock_knows_nothing() {
        let clock = ServerClock::new(Duration::ZERO);
        assert_eq!(clock.at(local_ms(0)), None);
    }

    #[test]
    fn one_sample_bounds_the_time_within_a_second_and_a_round_trip() {
        let mut clock = ServerClock::new(Duration::ZERO);
        clock.observe(Sample {
            sent: local_ms(0),
            received: local_ms(10),
            date: date(1_000),
        });
        let now = clock.at(local_ms(10)).expect("calibrated");
        assert_eq!(now.earliest, date(1_000));
        // The round trip, and the drift over it (10 µs at 1000 ppm).
        assert_eq!(
            now.latest,
            date(1_001) + TimeDelta::milliseconds(10) + TimeDelta::microseconds(10)
        );
    }

    /// Found by the model (`make model`, configuration `drift`): a response
    /// slow in coming left the drift over its round trip out of the latest
    /// end. A local clock 999 ppm slow, a 3000 s round trip.
    #[test]
    fn the_latest_end_counts_the_drift_over_the_round_trip() {
        let mut clock = ServerClock::new(Duration::ZERO);
        let slow = |true_ms: u64| local_ms(true_ms * 1_000_000 / 1_000_999);
        clock.observe(Sample {
            sent: slow(0),
            received: slow(3_000_000),
            date: date(0),
        });
        let now = clock.at(slow(3_000_500)).expect("calibrated");
        assert!(now.latest >= date_ms(3_000_500), "{now:?}");
        assert!(now.earliest <= date_ms(3_000_500), "{now:?}");
    }

    #[test]
    fn the_skew_bound_widens_both_ends() {
        let mut clock = ServerClock::new(Duration::from_millis(250));
        clock.observe(Sample {
            sent: local_ms(0),
            received: local_ms(10),
            date: date(1_000),
        });
        let now = clock.at(local_ms(10)).expect("calibrated");
        assert_eq!(now.earliest, date(1_000) - TimeDelta::milliseconds(250));
        assert_eq!(
            now.latest,
            date(1_001) + TimeDelta::milliseconds(260) + TimeDelta::microseconds(10)
        );
    }

    #[test]
    fn samples_across_a_second_boundary_tighten_the_bound() {
        let mut clock = ServerClock::new(Duration::ZERO);
        for step in 0..30u64 {
            clock.observe(sample(1_000_300, step * 50));
        }
        let now = clock.at(local_ms(1_500)).expect("calibrated");
        let truth = truth(1_000_300, 1_500);
        assert!(now.earliest <= truth && truth <= now.latest, "{now:?}");
        assert!(
            now.latest - now.earliest <= TimeDelta::milliseconds(55),
            "{now:?}"
        );
    }

    #[test]
    fn the_bound_widens_with_age_by_the_drift_allowance() {
        let mut clock = ServerClock::new(Duration::ZERO);
        clock.observe(Sample {
            sent: local_ms(0),
            received: local_ms(0),
            date: date(0),
        });
        let soon = clock.at(local_ms(0)).expect("calibrated");
        let later = clock.at(local_ms(1_000_000)).expect("calibrated");
        let widened = (later.latest - later.earliest) - (soon.latest - soon.earliest);
        // 1000 s at 1000 ppm, on each side.
        assert_eq!(widened, TimeDelta::seconds(2));
        assert_eq!(
            drift_over(Duration::from_secs(60)),
            Duration::from_millis(60)
        );
    }

    /// Two API servers behind a balancer, answering in turn.
    fn two_servers(offset_ms: i64, skew_ms: u64) -> ServerClock {
        let mut clock = ServerClock::new(Duration::from_millis(skew_ms));
        for step in 0..30u64 {
            let server = if step % 2 == 0 { 0 } else { offset_ms };
            clock.observe(sample(1_000_000 + server, step * 37));
        }
        clock
    }

    #[test]
    fn servers_within_the_skew_bound_are_all_inside_the_bound() {
        // Without the skew bound, the intersection would leave one of them out.
        let clock = two_servers(200, 250);
        assert!(!clock.is_contradicted());
        let at = 1_200;
        let now = clock.at(local_ms(at)).expect("calibrated");
        for server in [0, 200] {
            let truth = truth(1_000_000 + server, at);
            assert!(
                now.earliest <= truth && truth <= now.latest,
                "server +{server} ms: {now:?}"
            );
        }
        // A plain intersection of the samples would leave one server out.
        let spread = clock.recent_spread(at as i64 * 1_000).expect("calibrated");
        assert!(spread.max_low > spread.min_high, "{spread:?}");
    }

    #[test]
    fn servers_beyond_the_skew_bound_are_detected_and_still_inside_the_bound() {
        let clock = two_servers(400, 250);
        assert!(clock.is_contradicted());
        let at = 1_200;
        let now = clock.at(local_ms(at)).expect("calibrated");
        for server in [0, 400] {
            let truth = truth(1_000_000 + server, at);
            assert!(
                now.earliest <= truth && truth <= now.latest,
                "server +{server} ms: {now:?}"
            );
        }
    }

    #[test]
    fn a_stepped_clock_is_followed_once_confirmed_and_waited_for_until_old_samples_leave() {
        let mut clock = ServerClock::new(Duration::from_millis(250));
        for step in 0..5u64 {
            clock.observe(sample(1_000_000, step * 37));
        }
        // One hour later by the server's clock, from then on.
        for step in 0..u64::from(CONFIRM) {
            clock.observe(sample(4_600_000, 1_000 + step * 37));
        }
        assert!(clock.is_contradicted());
        let at = 1_200;
        let now = clock.at(local_ms(at)).expect("calibrated");
        // Writes follow the new clock; takeovers still wait for the old one.
        assert!(now.latest >= truth(4_600_000, at), "{now:?}");
        assert!(now.earliest <= truth(1_000_000, at), "{now:?}");
        for step in 0..WINDOW as u64 {
            clock.observe(sample(4_600_000, 2_000 + step * 37));
        }
        assert!(!clock.is_contradicted());
        let now = clock.at(local_ms(4_000)).expect("calibrated");
        assert!(now.earliest > truth(1_000_000, 4_000) + TimeDelta::minutes(59));
    }

    /// Issue 26, item 3: one response whose `Date` is an hour ahead (a
    /// server stepped and stepped back, a proxy's error page with its own
    /// clock) must not date writes an hour ahead, nor make renewals look
    /// late; takeovers may wait longer, never less.
    #[test]
    fn one_response_an_hour_ahead_moves_written_times_by_at_most_the_skew_bound() {
        let skew = TimeDelta::milliseconds(250);
        let mut clock = ServerClock::new(Duration::from_millis(250));
        for step in 0..10u64 {
            clock.observe(sample(1_000_000, step * 37));
        }
        let at = 500;
        let before = clock.at(local_ms(at)).expect("calibrated");
        clock.observe(sample(4_600_000, 400));
        assert!(clock.is_contradicted());
        let after = clock.at(local_ms(at)).expect("calibrated");
        assert!(
            after.latest <= before.latest + skew,
            "written times moved from {before:?} to {after:?}"
        );
        assert!(after.earliest <= before.earliest, "takeovers wait less");
        let real = truth(1_000_000, at);
        assert!(after.earliest <= real && real <= after.latest);
        // A holder whose Lease expires 10 s from now still renews.
        let renewal_possible = after.latest < real + TimeDelta::seconds(10);
        assert!(renewal_possible, "{after:?}");
        // The good responses that follow keep it so; the outlier leaves the
        // window in time and the bound is as tight as before.
        for step in 0..WINDOW as u64 {
            clock.observe(sample(1_000_000, 600 + step * 37));
        }
        assert!(!clock.is_contradicted());
        let later = clock.at(local_ms(2_000)).expect("calibrated");
        let real = truth(1_000_000, 2_000);
        assert!(later.earliest <= real && real <= later.latest);
        assert!(later.latest - later.earliest <= TimeDelta::milliseconds(600));
    }

    #[test]
    fn one_response_an_hour_behind_only_lengthens_takeovers() {
        let mut clock = ServerClock::new(Duration::from_millis(250));
        for step in 0..10u64 {
            clock.observe(sample(4_600_000, step * 37));
        }
        let before = clock.at(local_ms(500)).expect("calibrated");
        clock.observe(sample(1_000_000, 400));
        let after = clock.at(local_ms(500)).expect("calibrated");
        assert!(after.latest <= before.latest + TimeDelta::milliseconds(250));
        assert!(after.earliest <= truth(1_000_000, 500));
    }

    #[test]
    fn a_first_response_that_was_the_outlier_is_outvoted() {
        let mut clock = ServerClock::new(Duration::from_millis(250));
        clock.observe(sample(4_600_000, 0));
        clock.observe(sample(1_000_000, 37));
        clock.observe(sample(1_000_000, 74));
        let now = clock.at(local_ms(100)).expect("calibrated");
        assert!(
            now.latest <= truth(1_000_000, 100) + TimeDelta::seconds(2),
            "{now:?}"
        );
    }

    #[test]
    fn outliers_that_disagree_with_each_other_never_take_over() {
        let mut clock = ServerClock::new(Duration::from_millis(250));
        for step in 0..10u64 {
            clock.observe(sample(1_000_000, step * 37));
        }
        // Bad answers in a row, each off in its own way.
        for (step, server) in [4_600_000, 8_200_000, 2_000_000, 5_000_000]
            .into_iter()
            .enumerate()
        {
            clock.observe(sample(server, 400 + step as u64 * 37));
        }
        let now = clock.at(local_ms(600)).expect("calibrated");
        assert!(
            now.latest <= truth(1_000_000, 600) + TimeDelta::seconds(2),
            "{now:?}"
        );
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut clock = ServerClock::new(Duration::ZERO);
        clock.observe(sample(0, 0));
        let age = WINDOW_AGE.as_millis() as u64;
        clock.observe(sample(5_000, age + 1_000));
        assert!(!clock.is_contradicted(), "the old sample was dropped");
    }

    #[test]
    fn local_wall_clock_does_not_matter() {
        // Only local-clock instants and the Date header go in: a client whose
        // wall clock is an hour off computes the same bounds.
        let mut a = ServerClock::new(Duration::ZERO);
        let mut b = ServerClock::new(Duration::ZERO);
        a.observe(sample(77_000, 0));
        b.observe(sample(77_000, 0));
        assert_eq!(a.at(local_ms(500)), b.at(local_ms(500)));
    }

    #[test]
    fn responses_received_before_they_were_sent_are_clamped() {
        let mut clock = ServerClock::new(Duration::ZERO);
        clock.observe(Sample {
            sent: local_ms(10),
            received: local_ms(5),
            date: date(10),
        });
        let now = clock.at(local_ms(10)).expect("calibrated");
        assert!(now.earliest <= now.latest);
    }

    /// `/proc/uptime` counts time suspended (it is `CLOCK_BOOTTIME`); the
    /// local clock must read the same clock.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_local_clock_is_the_boot_clock() {
        let uptime = std::fs::read_to_string("/proc/uptime").expect("/proc/uptime");
        let secs: f64 = uptime
            .split_whitespace()
            .next()
            .and_then(|secs| secs.parse().ok())
            .expect("seconds");
        let local = LocalInstant::now().0.as_secs_f64();
        assert!(
            (local - secs).abs() < 0.1,
            "boot clock {local} s, uptime {secs} s"
        );
    }

    #[test]
    fn the_local_clock_moves_forward() {
        let a = LocalInstant::now();
        let b = LocalInstant::now();
        assert!(b >= a);
        assert_eq!(a.saturating_since(b), Duration::ZERO);
    }
}
