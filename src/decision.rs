//! The decision: given what a read found and the server's time, what to write.
//!
//! Pure functions, no I/O: the backend reads (or remembers) a Lease, asks
//! here what to do, performs the write conditionally on the resourceVersion
//! it decided on, and comes back here with a fresh read when the write loses
//! a race.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::clock::{self, ServerTime};
use crate::lease::{Found, Holding, Lease, Record, TokenNote};

/// A write, conditional on the state it was decided from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Create the Lease (fails with AlreadyExists if someone else did).
    Create(Holding),
    /// Update the Lease if its resourceVersion is still this one.
    Update {
        /// The precondition.
        resource_version: String,
        /// The Lease the decision was made from: a replacement keeps every
        /// field the lock does not set.
        base: Arc<Lease>,
        /// The new state.
        holding: Holding,
    },
    /// Delete the Lease if its resourceVersion and uid are still these.
    Delete {
        /// The precondition.
        resource_version: String,
        /// The precondition.
        uid: String,
    },
}

/// What an operation does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Perform this write; the operation succeeds if the write does.
    Write(Write),
    /// Answer without writing.
    Answer(bool),
    /// The Lease with the lock's name is not this crate's: touch nothing.
    Foreign,
}

/// Whether the lock has no live holder: no holder, no usable times, or
/// certainly past its expiry even by the earliest the server's clock can
/// read. A lease in doubt is live, so nobody takes over early.
pub fn is_expired(record: &Record, now: ServerTime) -> bool {
    record
        .expires_at()
        .is_none_or(|expires| now.earliest >= expires)
}

/// Whether the lock is live even by the latest time the server's clock can
/// read: only such a lock is renewed, so an expired one is never brought
/// back.
pub fn is_certainly_live(record: &Record, now: ServerTime) -> bool {
    record
        .expires_at()
        .is_some_and(|expires| now.latest < expires)
}

/// The `renewTime` (and, for a new term, `acquireTime`) a write of a lock
/// with this TTL carries: the latest time the server's clock can read, plus
/// the drift allowance over the TTL, so that a holder counting the TTL on its
/// own clock from when it sent the write stops before the server's clock
/// reaches the expiry (see the `clock` module).
pub fn write_time(now: ServerTime, ttl_secs: i32) -> DateTime<Utc> {
    let ttl = Duration::from_secs(u64::try_from(ttl_secs).unwrap_or(0));
    TimeDelta::from_std(clock::drift_over(ttl))
        .ok()
        .and_then(|drift| now.latest.checked_add_signed(drift))
        .unwrap_or(now.latest)
}

/// The live holder of a lock, if any.
pub fn live_holder(found: &Found, now: ServerTime) -> Result<Option<&str>, Foreign> {
    match found {
        Found::Missing => Ok(None),
        Found::Foreign => Err(Foreign),
        Found::Ours(record) if is_expired(record, now) => Ok(None),
        Found::Ours(record) => Ok(record.holder.as_deref()),
    }
}

/// Marker: the Lease with the lock's name is not this crate's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Foreign;

/// `try_acquire(owner, ttl)`.
///
/// - no Lease: create it;
/// - live and held by another owner (or in doubt): `false`, nothing written;
/// - held by `owner` and certainly live: refresh the times and the TTL;
/// - expired, without holder, or held by `owner` but possibly expired: a new
///   term (`acquireTime` is now, and `leaseTransitions` grows by one when the
///   holder changes).
pub fn try_acquire(found: &Found, owner: &str, ttl_secs: i32, now: ServerTime) -> Step {
    take(found, owner, ttl_secs, now, true)
}

/// `try_lock(owner, ttl)`, the start of a guard's tenure: as
/// [`try_acquire`], but a lock `owner` already holds gets a new term too, so
/// that every guard has its own tenure (and fencing token).
pub fn lock(found: &Found, owner: &str, ttl_secs: i32, now: ServerTime) -> Step {
    take(found, owner, ttl_secs, now, false)
}

fn take(found: &Found, owner: &str, ttl_secs: i32, now: ServerTime, renew_own: bool) -> Step {
    let written = write_time(now, ttl_secs);
    let record = match found {
        Found::Missing => {
            return Step::Write(Write::Create(Holding {
                holder: owner.to_owned(),
                duration_secs: ttl_secs,
                acquire_time: written,
                renew_time: written,
                transitions: 0,
                token: TokenNote::Keep,
            }))
        }
        Found::Foreign => return Step::Foreign,
        Found::Ours(record) => record,
    };
    let held_by_owner = record.holder.as_deref() == Some(owner);
    if !held_by_owner && !is_expired(record, now) {
        return Step::Answer(false);
    }
    if renew_own && held_by_owner && is_certainly_live(record, now) {
        return Step::Write(renewal(record, owner, ttl_secs, now));
    }
    let transitions = if held_by_owner {
        record.transitions
    } else {
        record.transitions.saturating_add(1)
    };
    Step::Write(Write::Update {
        resource_version: record.resource_version.clone(),
        base: Arc::clone(&record.lease),
        holding: Holding {
            holder: owner.to_owned(),
            duration_secs: ttl_secs,
            acquire_time: written,
            renew_time: written,
            transitions,
            token: TokenNote::Remove,
        },
    })
}

/// A guard's tenure: the holder and the `acquireTime` its first write gave
/// the Lease. A renewal keeps both; a new term or another holder ends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenure {
    /// The owner.
    pub holder: String,
    /// When the tenure started, as written into the Lease.
    pub since: DateTime<Utc>,
    /// The guard's fencing token, once known, to record in the Lease.
    pub token: Option<u64>,
}

impl Tenure {
    /// The tenure a Lease shows, if it has a holder and an `acquireTime`.
    pub fn of(record: &Record) -> Option<Self> {
        Some(Self {
            holder: record.holder.clone()?,
            since: record.acquire_time?,
            token: None,
        })
    }

    fn is_current(&self, record: &Record) -> bool {
        record.holder.as_ref() == Some(&self.holder) && record.acquire_time == Some(self.since)
    }
}

/// A guard's renewal: only while its own tenure is current and certainly
/// live.
pub fn renew_tenure(found: &Found, tenure: &Tenure, ttl_secs: i32, now: ServerTime) -> Step {
    match found {
        Found::Foreign => Step::Foreign,
        Found::Ours(record) if tenure.is_current(record) && is_certainly_live(record, now) => {
            let mut write = renewal(record, &tenure.holder, ttl_secs, now);
            if let (Write::Update { holding, .. }, Some(token)) = (&mut write, tenure.token) {
                holding.token = TokenNote::Record(token);
            }
            Step::Write(write)
        }
        _ => Step::Answer(false),
    }
}

/// What a guard makes of its Lease's state as its watch brought it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardSees {
    /// Nothing new: the guard's own write, or a state older than it.
    Nothing,
    /// The tenure goes on, but someone else wrote the Lease (the same owner
    /// through the trait's `renew` or `try_acquire`, maybe with a shorter
    /// TTL; a hand edit): the guard takes this state and renews at once.
    Rewritten,
    /// The tenure is over: the Lease was deleted (a release, a
    /// `force_release`, a sweep), another holder or a new term of the same
    /// owner took it, or it has no usable expiry any more.
    Ended,
}

/// What a guard whose last write left `held` makes of `seen`, a state of
/// its Lease brought by a watch: decided by the tenure (holder and
/// `acquireTime`), and by the resourceVersion to tell its own writes and
/// older states apart.
pub fn guard_sees(tenure: &Tenure, held: &Record, seen: &Found) -> GuardSees {
    let record = match seen {
        Found::Missing | Found::Foreign => return GuardSees::Ended,
        Found::Ours(record) => record,
    };
    let not_newer = match (
        record.resource_version.parse::<u64>(),
        held.resource_version.parse::<u64>(),
    ) {
        (Ok(seen), Ok(held)) => seen <= held,
        _ => record.resource_version == held.resource_version,
    };
    if not_newer {
        GuardSees::Nothing
    } else if !tenure.is_current(record) || record.expires_at().is_none() {
        GuardSees::Ended
    } else {
        GuardSees::Rewritten
    }
}

/// A guard's release: deletes the Lease only while its own tenure is
/// current (live, or expired and not taken over).
pub fn release_tenure(found: &Found, tenure: &Tenure) -> Step {
    match found {
        Found::Foreign => Step::Foreign,
        Found::Ours(record) if tenure.is_current(record) => Step::Write(deletion(record)),
        _ => Step::Answer(false),
    }
}

/// When a waiter should look again: the server time at which the lock's
/// holder is certainly expired, or `None` when it is free already.
pub fn expires_at(found: &Found) -> Option<DateTime<Utc>> {
    match found {
        Found::Ours(record) => record.expires_at(),
        Found::Missing | Found::Foreign => None,
    }
}

/// `renew(owner, ttl)`: only the holder of a certainly live lock renews; an
/// expired lock is never brought back, even by its last holder, and one that
/// may have expired (within the clock's uncertainty) is not renewed either.
pub fn renew(found: &Found, owner: &str, ttl_secs: i32, now: ServerTime) -> Step {
    match found {
        Found::Missing => Step::Answer(false),
        Found::Foreign => Step::Foreign,
        Found::Ours(record)
            if record.holder.as_deref() == Some(owner) && is_certainly_live(record, now) =>
        {
            Step::Write(renewal(record, owner, ttl_secs, now))
        }
        Found::Ours(_) => Step::Answer(false),
    }
}

/// After `write` was answered 409 or 404, whether `after` (a read right
/// after the answer) shows that the write itself committed: kube's client
/// retries a write answered 429, 503 or 504 (a 504 can come after the write
/// committed), and the retry then fails its own precondition.
///
/// - a create or an update committed when the Lease has the holder, the
///   duration, the `acquireTime` and the `renewTime` it wrote: times with
///   microseconds from this process's estimate of the server's clock, which
///   no other write repeats;
/// - a delete committed when the Lease is gone, if it was decided from a
///   `fresh` read (if someone else deleted it after that read, the lock is
///   released all the same). A delete decided from a remembered state may
///   find the Lease gone because others took and released it since: the
///   call did not hold the lock, so it is not counted as ours (found by the
///   linearizability check of a reliability run).
pub fn committed(write: &Write, after: &Found, fresh: bool) -> bool {
    match (write, after) {
        (Write::Create(holding) | Write::Update { holding, .. }, Found::Ours(record)) => {
            record.holder.as_deref() == Some(holding.holder.as_str())
                && record.duration_secs == Some(holding.duration_secs)
                && record.acquire_time == Some(holding.acquire_time)
                && record.renew_time == Some(holding.renew_time)
        }
        (Write::Delete { .. }, Found::Missing) => fresh,
        _ => false,
    }
}

/// After a conditional write decided from `before` lost its race, whether
/// `after` (a fresh read) shows that another writer took the lock or started
/// a new term in between: the lock was held by someone else at that moment,
/// so the truthful answer is `false`. A create that lost (409: a Lease was
/// there) and then finds none lost too: another owner created the Lease and
/// released it in between. Otherwise (a Lease that was read is deleted, or
/// a write changed nothing about the holder, such as a label edited by
/// hand) the operation decides again.
pub fn lost_to_another(before: &Found, after: &Found) -> bool {
    match (before, after) {
        (Found::Missing, Found::Ours(_) | Found::Missing) => true,
        (Found::Ours(before), Found::Ours(after)) => {
            before.holder != after.holder || before.acquire_time != after.acquire_time
        }
        _ => false,
    }
}

/// `release(owner)`: the holder deletes the Lease, also after it expired as
/// long as nobody took it over.
pub fn release(found: &Found, owner: &str) -> Step {
    match found {
        Found::Missing => Step::Answer(false),
        Found::Foreign => Step::Foreign,
        Found::Ours(record) if record.holder.as_deref() == Some(owner) => {
            Step::Write(deletion(record))
        }
        Found::Ours(_) => Step::Answer(false),
    }
}

/// Whether a garbage sweep deletes this Lease: it has been expired for at
/// least `grace` (or has no holder or usable times at all).
pub fn is_garbage(record: &Record, now: ServerTime, grace: TimeDelta) -> bool {
    match record.expires_at() {
        None => true,
        Some(expires) => expires
            .checked_add_signed(grace)
            .is_some_and(|collectable| now.earliest >= collectable),
    }
}

/// `sweep_expired`, for one listed Lease: delete it if it is garbage,
/// otherwise leave it (foreign, gone, live or still in its grace).
pub fn sweep(found: &Found, now: ServerTime, grace: TimeDelta) -> Step {
    match found {
        Found::Ours(record) if is_garbage(record, now, grace) => Step::Write(deletion(record)),
        _ => Step::Answer(false),
    }
}

/// The conditional delete of a Lease as read.
pub fn deletion(record: &Record) -> Write {
    Write::Delete {
        resource_version: record.resource_version.clone(),
        uid: record.uid.clone(),
    }
}

fn renewal(record: &Record, owner: &str, ttl_secs: i32, now: ServerTime) -> Write {
    let written = write_time(now, ttl_secs);
    Write::Update {
        resource_version: record.resource_version.clone(),
        base: Arc::clone(&record.lease),
        holding: Holding {
            holder: owner.to_owned(),
            duration_secs: ttl_secs,
            acquire_time: record.acquire_time.unwrap_or(written),
            renew_time: written,
            transitions: record.transitions,
            token: TokenNote::Keep,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lease::parse_time;

    const TTL: i32 = 30;

    fn t(secs: i64) -> DateTime<Utc> {
        parse_time("2026-11-26T06:00:00Z").expect("valid") + TimeDelta::seconds(secs)
    }

    /// The server's clock is known to within ±`slack_ms` around `secs`.
    fn now(secs: i64, slack_ms: i64) -> ServerTime {
        ServerTime {
            earliest: t(secs) - TimeDelta::milliseconds(slack_ms),
            latest: t(secs) + TimeDelta::milliseconds(slack_ms),
        }
    }

    fn held(holder: &str, renewed_at: i64, duration: i32) -> Found {
        Found::Ours(Record {
            resource_version: "7".into(),
            uid: "uid-1".into(),
            holder: Some(holder.into()),
            acquire_time: Some(t(renewed_at - 100)),
            renew_time: Some(t(renewed_at)),
            duration_secs: Some(duration),
            transitions: 4,
            lease: Default::default(),
        })
    }

    fn update(step: Step) -> (String, Holding) {
        match step {
            Step::Write(Write::Update {
                resource_version,
                holding,
                ..
            }) => (resource_version, holding),
            other => panic!("expected an update, got {other:?}"),
        }
    }

    #[test]
    fn acquire_creates_a_missing_lease() {
        let step = try_acquire(&Found::Missing, "me", TTL, now(0, 5));
        let expected = Holding {
            holder: "me".into(),
            duration_secs: TTL,
            acquire_time: write_time(now(0, 5), TTL),
            renew_time: write_time(now(0, 5), TTL),
            transitions: 0,
            token: TokenNote::Keep,
        };
        assert_eq!(step, Step::Write(Write::Create(expected)));
    }

    #[test]
    fn acquire_by_the_live_holder_refreshes_the_ttl() {
        let (version, holding) = update(try_acquire(&held("me", 0, TTL), "me", 60, now(10, 5)));
        assert_eq!(version, "7");
        assert_eq!(holding.holder, "me");
        assert_eq!(holding.duration_secs, 60);
        assert_eq!(holding.renew_time, write_time(now(10, 5), 60));
        assert_eq!(holding.acquire_time, t(-100), "a renewal keeps the term");
        assert_eq!(holding.transitions, 4);
    }

    #[test]
    fn acquire_of_another_owners_live_lease_is_refused() {
        for at in [0, 10, TTL as i64 - 1] {
            let step = try_acquire(&held("other", 0, TTL), "me", TTL, now(at, 5));
            assert_eq!(step, Step::Answer(false), "at {at}");
        }
    }

    #[test]
    fn acquire_takes_over_an_expired_lease() {
        let (version, holding) = update(try_acquire(
            &held("other", 0, TTL),
            "me",
            5,
            now(TTL as i64 + 1, 5),
        ));
        assert_eq!(version, "7");
        assert_eq!(
            holding,
            Holding {
                holder: "me".into(),
                duration_secs: 5,
                acquire_time: write_time(now(TTL as i64 + 1, 5), 5),
                renew_time: write_time(now(TTL as i64 + 1, 5), 5),
                transitions: 5,
                token: TokenNote::Remove,
            }
        );
    }

    #[test]
    fn acquire_of_own_expired_lease_starts_a_new_term_without_a_transition() {
        let (_, holding) = update(try_acquire(&held("me", 0, TTL), "me", TTL, now(100, 5)));
        assert_eq!(holding.acquire_time, write_time(now(100, 5), TTL));
        assert_eq!(holding.transitions, 4);
    }

    #[test]
    fn acquire_takes_over_a_lease_without_holder() {
        let mut found = held("x", 0, TTL);
        if let Found::Ours(record) = &mut found {
            record.holder = None;
        }
        let (_, holding) = update(try_acquire(&found, "me", TTL, now(1, 5)));
        assert_eq!(holding.holder, "me");
        assert_eq!(holding.transitions, 5);
    }

    #[test]
    fn acquire_takes_over_a_lease_with_unusable_times() {
        for edit in [
            |r: &mut Record| r.renew_time = None,
            |r: &mut Record| {
                r.renew_time = None;
                r.acquire_time = None
            },
            |r: &mut Record| r.duration_secs = None,
            |r: &mut Record| r.duration_secs = Some(-1),
        ] {
            let mut found = held("other", 0, TTL);
            if let Found::Ours(record) = &mut found {
                edit(record);
            }
            let (_, holding) = update(try_acquire(&found, "me", TTL, now(1, 5)));
            assert_eq!(holding.holder, "me");
        }
    }

    #[test]
    fn a_lease_in_doubt_is_live() {
        // Expiry at 30 s; the server's clock reads somewhere in 29.5..30.5 s.
        let in_doubt = now(TTL as i64, 500);
        assert_eq!(
            try_acquire(&held("other", 0, TTL), "me", TTL, in_doubt),
            Step::Answer(false)
        );
        assert_eq!(
            live_holder(&held("other", 0, TTL), in_doubt),
            Ok(Some("other"))
        );
        // Once the earliest possible time reaches expiry, it is expired.
        let past = ServerTime {
            earliest: t(TTL as i64),
            latest: t(TTL as i64 + 1),
        };
        assert_eq!(live_holder(&held("other", 0, TTL), past), Ok(None));
    }

    #[test]
    fn writes_use_the_latest_possible_time_plus_the_drift_over_the_ttl() {
        // So that by the server's clock the lock never ends before send + ttl
        // as the holder counts it.
        let (_, holding) = update(renew(&held("me", 0, TTL), "me", TTL, now(5, 800)));
        let drift = TimeDelta::milliseconds(i64::from(TTL)); // 1000 ppm
        assert_eq!(
            holding.renew_time,
            t(5) + TimeDelta::milliseconds(800) + drift
        );
        let (_, holding) = update(renew(&held("me", 0, TTL), "me", 120, now(5, 0)));
        assert_eq!(holding.renew_time, t(5) + TimeDelta::milliseconds(120));
    }

    #[test]
    fn a_lock_that_may_have_expired_is_not_renewed() {
        // Expiry at 30 s; the server's clock reads somewhere in 29.5..30.5 s.
        let in_doubt = now(TTL as i64, 500);
        assert_eq!(
            renew(&held("me", 0, TTL), "me", TTL, in_doubt),
            Step::Answer(false)
        );
        // ...but its holder may start a new term with try_acquire, which
        // nobody else can do yet.
        let (_, holding) = update(try_acquire(&held("me", 0, TTL), "me", TTL, in_doubt));
        assert_eq!(holding.acquire_time, write_time(in_doubt, TTL));
        assert_eq!(holding.transitions, 4);
        // Just before the doubt zone it is still renewed.
        let live = now(TTL as i64 - 1, 500);
        assert!(matches!(
            renew(&held("me", 0, TTL), "me", TTL, live),
            Step::Write(Write::Update { .. })
        ));
    }

    #[test]
    fn a_race_lost_to_another_writer_is_told_apart_from_noise() {
        let before = held("a", 0, TTL);
        let mut relabelled = before.clone();
        let mut new_term = before.clone();
        let mut taken = before.clone();
        if let (Found::Ours(r), Found::Ours(n), Found::Ours(t2)) =
            (&mut relabelled, &mut new_term, &mut taken)
        {
            r.resource_version = "8".into();
            n.resource_version = "8".into();
            n.acquire_time = Some(t(5));
            t2.resource_version = "8".into();
            t2.holder = Some("b".into());
        }
        assert!(
            lost_to_another(&Found::Missing, &before),
            "created meanwhile"
        );
        assert!(lost_to_another(&before, &taken), "taken over");
        assert!(lost_to_another(&before, &new_term), "a new term");
        assert!(
            !lost_to_another(&before, &relabelled),
            "nothing about the holder"
        );
        assert!(
            !lost_to_another(&before, &Found::Missing),
            "deleted: decide again"
        );
        assert!(
            lost_to_another(&Found::Missing, &Found::Missing),
            "a create lost to a Lease created and deleted again"
        );
        assert!(!lost_to_another(&before, &Found::Foreign));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let Found::Ours(record) = held("a", 0, TTL) else {
            unreachable!()
        };
        assert!(!is_garbage(&record, now(10, 5), TimeDelta::MAX));
        let far = ServerTime {
            earliest: DateTime::<Utc>::MAX_UTC,
            latest: DateTime::<Utc>::MAX_UTC,
        };
        assert_eq!(write_time(far, i32::MAX), DateTime::<Utc>::MAX_UTC);
        let mut record = record;
        record.renew_time = Some(DateTime::<Utc>::MAX_UTC);
        assert_eq!(record.expires_at(), None);
    }

    #[test]
    fn foreign_leases_are_never_written() {
        let t0 = now(0, 5);
        assert_eq!(try_acquire(&Found::Foreign, "me", TTL, t0), Step::Foreign);
        assert_eq!(renew(&Found::Foreign, "me", TTL, t0), Step::Foreign);
        assert_eq!(release(&Found::Foreign, "me"), Step::Foreign);
        assert_eq!(live_holder(&Found::Foreign, t0), Err(Foreign));
    }

    #[test]
    fn renew_by_the_live_holder_writes_time_and_duration() {
        let (version, holding) = update(renew(&held("me", 0, TTL), "me", 7, now(3, 5)));
        assert_eq!(version, "7");
        assert_eq!(holding.renew_time, write_time(now(3, 5), 7));
        assert_eq!(holding.duration_secs, 7);
        assert_eq!(holding.transitions, 4);
        assert_eq!(holding.acquire_time, t(-100));
    }

    #[test]
    fn renew_is_refused_to_non_holders_missing_and_expired_leases() {
        let t1 = now(1, 5);
        assert_eq!(renew(&Found::Missing, "me", TTL, t1), Step::Answer(false));
        assert_eq!(
            renew(&held("other", 0, TTL), "me", TTL, t1),
            Step::Answer(false)
        );
        assert_eq!(
            renew(&held("me", 0, TTL), "me", TTL, now(TTL as i64 + 1, 5)),
            Step::Answer(false),
            "an expired lock is never resurrected"
        );
    }

    #[test]
    fn release_deletes_the_holders_lease_live_or_expired() {
        let expected = Step::Write(Write::Delete {
            resource_version: "7".into(),
            uid: "uid-1".into(),
        });
        assert_eq!(release(&held("me", 0, TTL), "me"), expected);
        assert_eq!(release(&held("me", -1000, TTL), "me"), expected);
    }

    #[test]
    fn release_by_others_or_of_missing_leases_changes_nothing() {
        assert_eq!(release(&Found::Missing, "me"), Step::Answer(false));
        assert_eq!(release(&held("other", 0, TTL), "me"), Step::Answer(false));
    }

    #[test]
    fn live_holder_reports_only_live_holders() {
        assert_eq!(live_holder(&Found::Missing, now(0, 5)), Ok(None));
        assert_eq!(live_holder(&held("a", 0, TTL), now(1, 5)), Ok(Some("a")));
        assert_eq!(live_holder(&held("a", 0, TTL), now(31, 5)), Ok(None));
    }

    #[test]
    fn garbage_is_expired_for_at_least_the_grace() {
        let grace = TimeDelta::seconds(60);
        let Found::Ours(record) = held("a", 0, TTL) else {
            unreachable!()
        };
        assert!(!is_garbage(&record, now(10, 5), grace), "live");
        assert!(
            !is_garbage(&record, now(TTL as i64 + 59, 5), grace),
            "in grace"
        );
        assert!(is_garbage(&record, now(TTL as i64 + 61, 5), grace));
        let no_holder = Record {
            holder: None,
            ..record
        };
        assert!(is_garbage(&no_holder, now(0, 5), grace));
    }

    #[test]
    fn sweeps_delete_only_garbage_of_ours() {
        let grace = TimeDelta::seconds(60);
        let late = now(TTL as i64 + 61, 5);
        assert_eq!(
            sweep(&held("a", 0, TTL), late, grace),
            Step::Write(Write::Delete {
                resource_version: "7".into(),
                uid: "uid-1".into(),
            })
        );
        assert_eq!(
            sweep(&held("a", 0, TTL), now(1, 5), grace),
            Step::Answer(false)
        );
        assert_eq!(sweep(&Found::Missing, late, grace), Step::Answer(false));
        assert_eq!(sweep(&Found::Foreign, late, grace), Step::Answer(false));
    }

    #[test]
    fn a_lock_always_starts_a_new_tenure() {
        // Held by another owner: refused, like try_acquire.
        assert_eq!(
            lock(&held("other", 0, TTL), "me", TTL, now(1, 5)),
            Step::Answer(false)
        );
        // Already held by the owner: a new term, not a renewal.
        let (_, holding) = update(lock(&held("me", 0, TTL), "me", TTL, now(1, 5)));
        assert_eq!(holding.acquire_time, write_time(now(1, 5), TTL));
        assert_eq!(holding.transitions, 4);
        assert!(matches!(
            lock(&Found::Missing, "me", TTL, now(1, 5)),
            Step::Write(Write::Create(_))
        ));
        assert_eq!(lock(&Found::Foreign, "me", TTL, now(1, 5)), Step::Foreign);
    }

    #[test]
    fn a_tenure_is_renewed_and_released_only_while_current() {
        let Found::Ours(record) = held("me", 0, TTL) else {
            unreachable!()
        };
        let tenure = Tenure::of(&record).expect("held");
        let mine = Found::Ours(record.clone());
        let (_, holding) = update(renew_tenure(&mine, &tenure, TTL, now(1, 5)));
        assert_eq!(
            holding.acquire_time, tenure.since,
            "a renewal keeps the tenure"
        );
        assert!(matches!(
            release_tenure(&mine, &tenure),
            Step::Write(Write::Delete { .. })
        ));

        let mut next_term = record.clone();
        next_term.acquire_time = Some(t(1));
        let mut taken = record.clone();
        taken.holder = Some("other".into());
        for found in [Found::Ours(next_term), Found::Ours(taken), Found::Missing] {
            assert_eq!(
                renew_tenure(&found, &tenure, TTL, now(2, 5)),
                Step::Answer(false)
            );
            assert_eq!(release_tenure(&found, &tenure), Step::Answer(false));
        }
        assert_eq!(
            renew_tenure(&mine, &tenure, TTL, now(TTL as i64, 500)),
            Step::Answer(false),
            "possibly expired"
        );
        assert_eq!(expires_at(&mine), Some(t(TTL as i64)));
        assert_eq!(expires_at(&Found::Missing), None);
    }

    /// Issue 26, item 4: a retried write answered 409/404 is recognised as
    /// our own when the Lease shows exactly what it wrote.
    #[test]
    fn a_committed_write_is_recognised_after_a_409_or_404() {
        let now = now(10, 5);
        let Step::Write(create) = try_acquire(&Found::Missing, "me", TTL, now) else {
            panic!("a create");
        };
        let Write::Create(holding) = &create else {
            panic!("a create");
        };
        let as_written = |holding: &Holding| {
            Found::Ours(Record {
                resource_version: "9".into(),
                uid: "uid-2".into(),
                holder: Some(holding.holder.clone()),
                acquire_time: Some(holding.acquire_time),
                renew_time: Some(holding.renew_time),
                duration_secs: Some(holding.duration_secs),
                transitions: holding.transitions,
                lease: Default::default(),
            })
        };
        assert!(committed(&create, &as_written(holding), true));
        // Another process with the same owner string, a moment apart.
        let other_moment = Holding {
            acquire_time: holding.acquire_time + TimeDelta::microseconds(1),
            renew_time: holding.renew_time + TimeDelta::microseconds(1),
            ..holding.clone()
        };
        assert!(!committed(&create, &as_written(&other_moment), true));
        let other_owner = Holding {
            holder: "other".into(),
            ..holding.clone()
        };
        assert!(!committed(&create, &as_written(&other_owner), true));
        let shorter = Holding {
            duration_secs: 5,
            ..holding.clone()
        };
        assert!(!committed(&create, &as_written(&shorter), true));
        assert!(!committed(&create, &Found::Missing, true));
        assert!(!committed(&create, &Found::Foreign, true));

        // A renewal: same term, its own renewTime.
        let renewal = renew(&held("me", 0, TTL), "me", TTL, now);
        let Step::Write(Write::Update { holding, .. }) = &renewal else {
            panic!("an update");
        };
        let Step::Write(update) = renewal.clone() else {
            panic!("an update");
        };
        assert!(committed(&update, &as_written(holding), true));
        let before = held("me", 0, TTL);
        assert!(
            !committed(&update, &before, true),
            "the renewal did not commit"
        );
        assert!(!committed(&update, &Found::Missing, true));

        // A delete committed when the Lease is gone.
        let Found::Ours(record) = &before else {
            panic!("ours");
        };
        let delete = deletion(record);
        assert!(committed(&delete, &Found::Missing, true));
        assert!(!committed(&delete, &Found::Missing, false));
        assert!(!committed(&delete, &before, true));
        assert!(!committed(&delete, &Found::Foreign, true));
    }

    /// Issue 26, item 2: a guard's watch tells its own writes, a
    /// same-tenure rewrite and the end of its tenure apart.
    #[test]
    fn a_guard_tells_what_its_watch_brings() {
        let Found::Ours(held_record) = held("me", 0, TTL) else {
            panic!("ours");
        };
        let tenure = Tenure::of(&held_record).expect("a tenure");
        let at = |version: &str, found: Found| match found {
            Found::Ours(record) => Found::Ours(Record {
                resource_version: version.into(),
                ..record
            }),
            other => other,
        };
        // Its own write, and an older state.
        assert_eq!(
            guard_sees(&tenure, &held_record, &held("me", 0, TTL)),
            GuardSees::Nothing
        );
        assert_eq!(
            guard_sees(&tenure, &held_record, &at("6", held("other", 0, TTL))),
            GuardSees::Nothing
        );
        // The same owner renewed through the trait, with a shorter TTL.
        let Found::Ours(shortened) = at("8", held("me", 0, TTL)) else {
            panic!("ours");
        };
        let shortened = Found::Ours(Record {
            renew_time: Some(t(5)),
            duration_secs: Some(2),
            ..shortened
        });
        assert_eq!(
            guard_sees(&tenure, &held_record, &shortened),
            GuardSees::Rewritten
        );
        // Released or force-released; taken by another owner; a new term of
        // the same owner (another process, try_lock); no usable expiry.
        assert_eq!(
            guard_sees(&tenure, &held_record, &Found::Missing),
            GuardSees::Ended
        );
        assert_eq!(
            guard_sees(&tenure, &held_record, &Found::Foreign),
            GuardSees::Ended
        );
        assert_eq!(
            guard_sees(&tenure, &held_record, &at("8", held("other", 0, TTL))),
            GuardSees::Ended
        );
        let Found::Ours(new_term) = at("8", held("me", 0, TTL)) else {
            panic!("ours");
        };
        let new_term = Found::Ours(Record {
            acquire_time: Some(t(5)),
            ..new_term
        });
        assert_eq!(
            guard_sees(&tenure, &held_record, &new_term),
            GuardSees::Ended
        );
        let Found::Ours(no_duration) = at("8", held("me", 0, TTL)) else {
            panic!("ours");
        };
        let no_duration = Found::Ours(Record {
            duration_secs: None,
            ..no_duration
        });
        assert_eq!(
            guard_sees(&tenure, &held_record, &no_duration),
            GuardSees::Ended
        );
    }

    #[test]
    fn transitions_saturate() {
        let mut found = held("other", 0, TTL);
        if let Found::Ours(record) = &mut found {
            record.transitions = i32::MAX;
        }
        let (_, holding) = update(try_acquire(&found, "me", TTL, now(100, 5)));
        assert_eq!(holding.transitions, i32::MAX);
    }
}
