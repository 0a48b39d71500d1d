//! Which instants of an entry are due: a pure function of the entry, the
//! last instant the ledger records for it, and the API server's time.
//!
//! The instants come from the schedule and the ledger alone, never from a
//! replica's own history, so every leader computes the same ones: a new
//! leader continues where the previous one stopped.

use celers_beat::{CatchupPolicy, Schedule, ScheduleError, ScheduledTask};
use chrono::{DateTime, SubsecRound, Utc};

/// Most instants of one entry given out in one tick; a longer catch-up goes
/// on in the next ticks.
pub const MAX_FIRES_PER_TICK: usize = 100;

/// The instants of `task` due at `now`, oldest first, given the last instant
/// fired (`None`: the entry has never fired) and when this leader's tenure
/// began (`leading_since`).
///
/// - A new interval entry fires at once, at `now` to the whole second, as
///   celers-beat fires an entry that never ran; a one-time entry fires at
///   its instant; a new crontab (or solar) entry fires at its first instant
///   after the tenure began, not at a moment of no meaning to it.
/// - Otherwise the instants after `last` up to `now` are due (an instant
///   with jitter when its jittered time has come). The latest of them is
///   always fired; the older ones are missed, and the entry's
///   [`CatchupPolicy`] says which of those fire too: none for `Skip` and
///   `RunOnce`, the latest `max_catchup` for `RunMultiple`, those within
///   the window for `TimeWindow`.
pub fn due(
    task: &ScheduledTask,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    leading_since: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
    let last = match (last, &task.schedule) {
        (Some(last), _) => last,
        (None, Schedule::Interval { .. }) => return Ok(vec![now.trunc_subsecs(0)]),
        (None, Schedule::OneTime { run_at }) => {
            return Ok((*run_at <= now).then_some(*run_at).into_iter().collect())
        }
        // Crontab and solar schedules exist only with celers-beat's `cron`
        // and `solar` features, which the application enables or not:
        // without them this arm is unreachable.
        #[allow(unreachable_patterns)]
        (None, _) => {
            let missed = celers_beat::compute_missed(&task.schedule, leading_since, now)?;
            return Ok(missed.latest().into_iter().collect());
        }
    };
    let missed = celers_beat::compute_missed(&task.schedule, last, now)?;
    let mut instants = missed.instants;
    if let Some(jitter) = &task.jitter {
        let due = instants
            .iter()
            .take_while(|instant| jitter.apply(**instant, &task.name) <= now)
            .count();
        instants.truncate(due);
    }
    let Some((&latest, older)) = instants.split_last() else {
        return Ok(Vec::new());
    };
    let mut fire: Vec<_> = match task.catchup_policy {
        CatchupPolicy::Skip | CatchupPolicy::RunOnce => Vec::new(),
        CatchupPolicy::RunMultiple { max_catchup } => {
            let keep = usize::try_from(max_catchup).unwrap_or(usize::MAX);
            older[older.len().saturating_sub(keep)..].to_vec()
        }
        CatchupPolicy::TimeWindow { window_seconds } => {
            let window =
                chrono::TimeDelta::try_seconds(i64::try_from(window_seconds).unwrap_or(i64::MAX))
                    .unwrap_or(chrono::TimeDelta::MAX);
            older
                .iter()
                .copied()
                .filter(|instant| now.signed_duration_since(*instant) <= window)
                .collect()
        }
    };
    fire.push(latest);
    let extra = fire.len().saturating_sub(MAX_FIRES_PER_TICK);
    fire.drain(..extra);
    Ok(fire)
}

#[cfg(test)]
mod tests {
    use celers_beat::Jitter;
    use chrono::TimeZone;

    use super::*;

    /// `due` for a tenure that began long ago.
    fn due(
        task: &ScheduledTask,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, ScheduleError> {
        super::due(task, last, now, at(-100_000))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0)
            .single()
            .unwrap_or_default()
    }

    fn every(secs: u64) -> ScheduledTask {
        ScheduledTask::new("report".to_owned(), Schedule::interval(secs))
    }

    #[test]
    fn a_new_entry_fires_at_once_on_the_whole_second() {
        let now = at(10) + chrono::TimeDelta::milliseconds(700);
        assert_eq!(due(&every(5), None, now).ok(), Some(vec![at(10)]));
    }

    #[test]
    fn nothing_is_due_before_the_next_instant() {
        assert_eq!(due(&every(5), Some(at(10)), at(14)).ok(), Some(vec![]));
    }

    #[test]
    fn the_next_instant_follows_the_ledger_not_the_clock_of_the_replica() {
        // Due at 15 whoever computes it, however late the tick comes.
        assert_eq!(
            due(&every(5), Some(at(10)), at(15)).ok(),
            Some(vec![at(15)])
        );
        assert_eq!(
            due(&every(5), Some(at(10)), at(17)).ok(),
            Some(vec![at(15)])
        );
    }

    #[test]
    fn missed_instants_follow_the_catch_up_policy() {
        let last = Some(at(0));
        let now = at(23); // 5, 10, 15, 20 are due; 20 is the current one
        let with = |policy| every(5).with_catchup_policy(policy);
        assert_eq!(
            due(&with(CatchupPolicy::Skip), last, now).ok(),
            Some(vec![at(20)])
        );
        assert_eq!(
            due(&with(CatchupPolicy::RunOnce), last, now).ok(),
            Some(vec![at(20)])
        );
        assert_eq!(
            due(
                &with(CatchupPolicy::RunMultiple { max_catchup: 2 }),
                last,
                now
            )
            .ok(),
            Some(vec![at(10), at(15), at(20)])
        );
        assert_eq!(
            due(
                &with(CatchupPolicy::RunMultiple { max_catchup: 99 }),
                last,
                now
            )
            .ok(),
            Some(vec![at(5), at(10), at(15), at(20)])
        );
        assert_eq!(
            due(
                &with(CatchupPolicy::TimeWindow { window_seconds: 10 }),
                last,
                now
            )
            .ok(),
            Some(vec![at(15), at(20)])
        );
    }

    #[test]
    fn a_long_catch_up_is_spread_over_ticks() {
        let task = every(1).with_catchup_policy(CatchupPolicy::RunMultiple {
            max_catchup: u32::MAX,
        });
        let fires = due(&task, Some(at(0)), at(1000)).unwrap_or_default();
        assert_eq!(fires.len(), MAX_FIRES_PER_TICK);
        assert_eq!(fires.last(), Some(&at(1000)));
    }

    #[test]
    fn jitter_delays_an_instant_but_does_not_move_it() {
        let task = every(60).with_jitter(Jitter::new(30, 30));
        assert_eq!(due(&task, Some(at(0)), at(80)).ok(), Some(vec![]));
        assert_eq!(due(&task, Some(at(0)), at(90)).ok(), Some(vec![at(60)]));
    }

    #[test]
    fn a_one_time_entry_fires_once_at_its_instant() {
        let task = ScheduledTask::new("once".to_owned(), Schedule::onetime(at(50)));
        assert_eq!(due(&task, None, at(49)).ok(), Some(vec![]));
        assert_eq!(due(&task, None, at(51)).ok(), Some(vec![at(50)]));
        assert_eq!(due(&task, Some(at(50)), at(99)).ok(), Some(vec![]));
    }

    #[test]
    fn a_new_crontab_entry_fires_at_its_first_instant_of_the_tenure() {
        let task = ScheduledTask::new(
            "minutely".to_owned(),
            Schedule::crontab("*", "*", "*", "*", "*"),
        );
        // 1_800_000_000 is a whole minute; the tenure began 10 s before it.
        let since = at(-10);
        assert_eq!(super::due(&task, None, at(-5), since).ok(), Some(vec![]));
        assert_eq!(
            super::due(&task, None, at(3), since).ok(),
            Some(vec![at(0)])
        );
        // A tenure that began after that minute waits for the next one.
        assert_eq!(super::due(&task, None, at(3), at(1)).ok(), Some(vec![]));
    }

    #[test]
    fn crontab_instants_are_aligned_whoever_fired_last() {
        // Every minute: after a fire at 00:01:00, 00:02:00 is due at 00:02:00.
        let task = ScheduledTask::new(
            "minutely".to_owned(),
            Schedule::crontab("*", "*", "*", "*", "*"),
        );
        let minute = |m: i64| {
            Utc.timestamp_opt(1_800_000_000 + m * 60, 0)
                .single()
                .unwrap_or_default()
        };
        assert_eq!(
            due(
                &task,
                Some(minute(1)),
                minute(2) - chrono::TimeDelta::seconds(1)
            )
            .ok(),
            Some(vec![])
        );
        assert_eq!(
            due(&task, Some(minute(1)), minute(2)).ok(),
            Some(vec![minute(2)])
        );
    }
}
