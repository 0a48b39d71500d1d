//! The seam between the model and the library: every call of the crate's
//! pure core goes through here, and an injected [`Defect`] swaps exactly one
//! of them for a deliberately broken variant. The library itself has no
//! defect, feature or flag for this.

use std::time::Duration;

use chrono::{DateTime, Utc};

use celers_kube_lease::model_seam as core;
use core::{Found, GuardSees, LocalInstant, Record, ServerClock, ServerTime, Step, Tenure, Write};

/// A deliberately broken variant of one call, to show that the model finds
/// what it is meant to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Defect {
    /// (a) Times written into a Lease without the drift allowance over the
    /// TTL (`write_time` less `drift_over(ttl)`).
    NoDriftAllowance,
    /// (b) Clock samples intersected without the skew widening (a
    /// `ServerClock` told the API servers agree exactly).
    NoSkewWidening,
    /// (c) A holder renews a Lease that may have expired (`try_acquire` of
    /// its own lock, or a guard's renewal): judged by the earliest possible
    /// server time instead of the latest.
    RenewInDoubt,
    /// (d) A guard's deadline counted from when the renewal's answer
    /// arrived, ignoring the time it was in flight.
    DeadlineFromReceipt,
    /// (e) Releases and sweeps delete without the resourceVersion
    /// precondition.
    UnconditionalDelete,
}

impl Defect {
    /// Every defect, in the order `make model` checks them.
    pub const ALL: [Defect; 5] = [
        Defect::NoDriftAllowance,
        Defect::NoSkewWidening,
        Defect::RenewInDoubt,
        Defect::DeadlineFromReceipt,
        Defect::UnconditionalDelete,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Defect::NoDriftAllowance => "no-drift-allowance",
            Defect::NoSkewWidening => "no-skew-widening",
            Defect::RenewInDoubt => "renew-in-doubt",
            Defect::DeadlineFromReceipt => "deadline-from-receipt",
            Defect::UnconditionalDelete => "unconditional-delete",
        }
    }

    /// The defect named `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|defect| defect.name() == name)
    }

    /// The property whose counterexample shows it.
    pub fn breaks(self) -> &'static str {
        match self {
            Defect::NoDriftAllowance | Defect::DeadlineFromReceipt => {
                crate::names::MUTUAL_EXCLUSION
            }
            Defect::NoSkewWidening => crate::names::CLOCK_BOUNDS,
            Defect::RenewInDoubt => crate::names::RENEW_ONLY_LIVE,
            Defect::UnconditionalDelete => crate::names::DELETE_ONLY_DECIDED,
        }
    }
}

/// The calls of the library's pure core, with `defect` injected.
#[derive(Clone, Copy, Debug)]
pub struct Seam {
    /// The injected defect, if any.
    pub defect: Option<Defect>,
}

impl Seam {
    fn is(self, defect: Defect) -> bool {
        self.defect == Some(defect)
    }

    /// A client's estimate of the servers' clock from its samples.
    pub fn clock(self, skew: Duration, samples: &[core::Sample]) -> ServerClock {
        let skew = if self.is(Defect::NoSkewWidening) {
            Duration::ZERO
        } else {
            skew
        };
        let mut clock = ServerClock::new(skew);
        for sample in samples {
            clock.observe(*sample);
        }
        clock
    }

    /// `try_acquire`, or `lock` for a guard.
    pub fn take(self, found: &Found, owner: &str, ttl: i32, now: ServerTime, guard: bool) -> Step {
        let decide = |now| {
            if guard {
                core::lock(found, owner, ttl, now)
            } else {
                core::try_acquire(found, owner, ttl, now)
            }
        };
        let step = self.in_doubt(decide, now, ttl);
        self.dated(step, now, ttl)
    }

    /// A guard's renewal.
    pub fn renew_tenure(self, found: &Found, tenure: &Tenure, ttl: i32, now: ServerTime) -> Step {
        let step = self.in_doubt(|now| core::renew_tenure(found, tenure, ttl, now), now, ttl);
        self.dated(step, now, ttl)
    }

    /// `decide` at `now`, or, with [`Defect::RenewInDoubt`], at a time
    /// whose latest end is its earliest (so a Lease that may have expired
    /// looks certainly live), dated by `now` all the same.
    fn in_doubt(self, decide: impl Fn(ServerTime) -> Step, now: ServerTime, ttl: i32) -> Step {
        if !self.is(Defect::RenewInDoubt) {
            return decide(now);
        }
        let pretend = ServerTime {
            earliest: now.earliest,
            latest: now.earliest,
        };
        redated(
            decide(pretend),
            core::write_time(pretend, ttl),
            core::write_time(now, ttl),
        )
    }

    /// The trait's `release`, or a guard's release of its tenure.
    pub fn release(self, found: &Found, owner: &str, tenure: Option<&Tenure>) -> Step {
        match tenure {
            Some(tenure) => core::release_tenure(found, tenure),
            None => core::release(found, owner),
        }
    }

    /// `sweep_expired` for one listed Lease.
    pub fn sweep(self, found: &Found, now: ServerTime, grace_secs: i64) -> Step {
        core::sweep(found, now, chrono::TimeDelta::seconds(grace_secs))
    }

    /// Whether a delete carries its resourceVersion precondition.
    pub fn delete_is_conditional(self) -> bool {
        !self.is(Defect::UnconditionalDelete)
    }

    /// The deadline of a guard whose tenure began with a write sent at
    /// `sent`.
    pub fn deadline(self, sent: LocalInstant, ttl: Duration) -> LocalInstant {
        core::deadline(sent, ttl)
    }

    /// The deadline after a renewal sent at `sent` and answered at
    /// `received` succeeded.
    pub fn deadline_after(
        self,
        sent: LocalInstant,
        received: LocalInstant,
        ttl: Duration,
        old: LocalInstant,
    ) -> LocalInstant {
        let from = if self.is(Defect::DeadlineFromReceipt) {
            received
        } else {
            sent
        };
        core::deadline_after(from, ttl, old)
    }

    /// What a guard makes of a state of its Lease, and its deadline after.
    pub fn guard_sees(
        self,
        tenure: &Tenure,
        held: &Record,
        seen: &Found,
        at: LocalInstant,
        now: Option<ServerTime>,
        deadline: LocalInstant,
    ) -> (GuardSees, LocalInstant) {
        let sees = core::guard_sees(tenure, held, seen);
        let deadline = match (sees, seen, now) {
            (GuardSees::Rewritten, Found::Ours(record), Some(now)) => {
                record.expires_at().map_or(deadline, |expiry| {
                    deadline.min(core::deadline_by_expiry(at, now, expiry))
                })
            }
            _ => deadline,
        };
        (sees, deadline)
    }

    /// Dates a write as the defect says: without the drift allowance for
    /// [`Defect::NoDriftAllowance`], as written otherwise.
    fn dated(self, step: Step, now: ServerTime, ttl: i32) -> Step {
        if self.is(Defect::NoDriftAllowance) {
            redated(step, core::write_time(now, ttl), now.latest)
        } else {
            step
        }
    }
}

/// `step` with the times it writes that read `from` changed to `to`.
fn redated(mut step: Step, from: DateTime<Utc>, to: DateTime<Utc>) -> Step {
    if let Step::Write(Write::Create(holding) | Write::Update { holding, .. }) = &mut step {
        if holding.renew_time == from {
            holding.renew_time = to;
        }
        if holding.acquire_time == from {
            holding.acquire_time = to;
        }
    }
    step
}
