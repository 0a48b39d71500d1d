//! The sequential specification of a TTL lock on one key, on the machine's
//! monotonic clock, which the [linearizability](crate::linearizability)
//! checker holds a real history against.
//!
//! The state is `Free` or `Held` by one owner. An operation takes effect at
//! one instant `t` within its call, `[invoke, return]`.
//!
//! # Time
//!
//! The library judges expiry on the API server's clock, which the history
//! does not show, so a grant's end is known only within bounds. A grant
//! (`Ok(true)` of `try_acquire` or `renew`) with TTL `ttl`, invoked at `s`
//! and answered at `r`, leaves the lock `Held` with
//!
//! - `sure_until = s + ttl − margin`: the lock is certainly held before it
//!   (the holder's own count, as in the [checker](crate::checker)'s claim
//!   rule; the library writes the Lease's expiry no earlier than `s + ttl`
//!   by any clock involved);
//! - `expired_by = r + ttl + slack`: the lock is certainly free from then on
//!   (`slack` covers the library's uncertainty about the server's clock, a
//!   `Date` header's second, a round trip and the API servers' skew).
//!
//! In between the lock is *in doubt*: before each operation the
//! specification may let it expire (at an instant no earlier than
//! `sure_until`), or keep it (at an instant before `expired_by`), and
//! both ways are explored. Once expired it is free until the next grant,
//! for anyone to take; but until `expired_by` it is *expired in doubt*: a
//! client whose clock cannot prove the expiry yet may still see the last
//! holder hold it (each client judges expiry by its own bounds on the
//! server's clock, so one may see the lock free while another does not).
//! Only refusals and reads may see that; a grant never does.
//!
//! # Operations (owner `a`)
//!
//! | call | answer | allowed when | then |
//! |---|---|---|---|
//! | `try_acquire` | `true` | free, expired, or held by `a` | held by `a` |
//! | `try_acquire` | `false` | held by another owner, or expired in doubt from another owner | unchanged |
//! | `renew` | `true` | held by `a` | held by `a` |
//! | `renew` | `false` | always (a renewal in doubt is refused) | unchanged |
//! | `release` | `true` | held by `a`, or expired in doubt from `a` | free |
//! | `release` | `false` | free, expired, or held by another owner | unchanged |
//! | `release_all` | (count) | always | free if held (or expired in doubt) by `a` |
//! | `owner` | `Some(x)` | held by `x`, or expired in doubt from `x` | unchanged |
//! | `owner` | `None` | free or expired | unchanged |
//! | `is_locked` | `true` | held, or expired in doubt | unchanged |
//! | `is_locked` | `false` | free or expired | unchanged |
//!
//! `renew` answering `false` to the holder is allowed because the library
//! refuses a renewal it cannot prove live on every API server's clock, and
//! that doubt is not in the history (the checker's `lost` and `refused in
//! doubt` figures count such answers); a refusal never frees the lock here,
//! so a takeover before `sure_until` is still a violation.
//!
//! A call that failed may or may not have taken effect, once, at an instant
//! from its invocation to `late` after its error (a write that reached the
//! API server may commit after the client gave up): the checker may apply
//! its successful form ([`successful`]) or leave it out.

use crate::history::{Answer, Call, Operation};

/// The time bounds of the specification, in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowance {
    /// A grant is certainly held until `invoke + ttl − margin`.
    pub margin_ns: u64,
    /// A grant is certainly over at `return + ttl + slack`.
    pub slack_ns: u64,
    /// A failed call may take effect until `late` after its error (a write
    /// that reached the API server may commit after the client gave up).
    pub late_ns: u64,
}

impl Default for Allowance {
    fn default() -> Self {
        Allowance {
            margin_ns: crate::MARGIN_NS,
            slack_ns: 5_000_000_000,
            late_ns: 60_000_000_000,
        }
    }
}

/// The lock's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lock {
    /// Nobody holds it.
    Free,
    /// `owner`'s grant has expired: anyone may take the lock, but until
    /// `expired_by` a client whose clock cannot prove the expiry yet may
    /// still see `owner` hold it (`try_acquire` or `is_locked` refused,
    /// `owner()` naming it). Those are refusals and reads, never grants.
    Expired {
        /// The last holder.
        owner: u32,
        /// Certainly free from this instant on.
        expired_by: u64,
    },
    /// `owner` holds it: certainly before `sure_until`, certainly not from
    /// `expired_by` on.
    Held {
        /// The holder.
        owner: u32,
        /// Certainly held before this instant.
        sure_until: u64,
        /// Certainly free from this instant on.
        expired_by: u64,
    },
}

impl Allowance {
    /// The state a grant by `op` leaves.
    pub fn grant(&self, op: &Operation) -> Lock {
        Lock::Held {
            owner: op.owner,
            sure_until: (op.invoke_ns + op.ttl_ns).saturating_sub(self.margin_ns),
            expired_by: op
                .return_ns
                .saturating_add(op.ttl_ns)
                .saturating_add(self.slack_ns),
        }
    }

    /// Every way `op` can take effect at one instant in `[from, to]` on
    /// `lock`: the earliest such instant and the state after, for keeping
    /// an in-doubt lock and for letting it expire first. The earliest
    /// instant is the best choice: the state after does not depend on it,
    /// and a later one only narrows what may follow.
    pub fn linearize(&self, lock: Lock, op: &Operation, from: u64, to: u64) -> Vec<(u64, Lock)> {
        let mut ways = Vec::with_capacity(2);
        if from > to {
            return ways;
        }
        match lock {
            Lock::Free => ways.extend(self.apply(Lock::Free, op).map(|l| (from, l))),
            Lock::Expired { expired_by, .. } => {
                let seen = if from < expired_by { lock } else { Lock::Free };
                ways.extend(self.apply(seen, op).map(|l| (from, l)));
            }
            Lock::Held {
                owner,
                sure_until,
                expired_by,
            } => {
                if from < expired_by {
                    ways.extend(self.apply(lock, op).map(|l| (from, l)));
                }
                let expiry = from.max(sure_until);
                let expired = if expiry < expired_by {
                    Lock::Expired { owner, expired_by }
                } else {
                    Lock::Free
                };
                if expiry <= to {
                    if let Some(after) = self.apply(expired, op) {
                        if !ways.iter().any(|(_, l)| *l == after) {
                            ways.push((expiry, after));
                        }
                    }
                }
            }
        }
        ways
    }

    /// `op`'s effect on `lock` at an instant where it is (still) `lock`:
    /// the state after, or `None` if its answer is not allowed.
    fn apply(&self, lock: Lock, op: &Operation) -> Option<Lock> {
        let mine = matches!(lock, Lock::Held { owner, .. } if owner == op.owner);
        let other = matches!(lock, Lock::Held { owner, .. } if owner != op.owner);
        // The last holder, as a client in doubt may still see it.
        let stale = match lock {
            Lock::Expired { owner, .. } => Some(owner),
            Lock::Free | Lock::Held { .. } => None,
        };
        match (op.call, &op.answer) {
            (_, Answer::Unknown) => self.apply(lock, &successful(op)),
            (Call::TryAcquire, Answer::Bool(true)) => (!other).then(|| self.grant(op)),
            (Call::TryAcquire, Answer::Bool(false)) => {
                (other || stale.is_some_and(|owner| owner != op.owner)).then_some(lock)
            }
            (Call::Renew, Answer::Bool(true)) => mine.then(|| self.grant(op)),
            (Call::Renew, Answer::Bool(false)) => Some(lock),
            (Call::Release, Answer::Bool(true)) => {
                (mine || stale == Some(op.owner)).then_some(Lock::Free)
            }
            (Call::Release, Answer::Bool(false)) => (!mine).then_some(lock),
            (Call::ReleaseAll, _) => Some(if mine || stale == Some(op.owner) {
                Lock::Free
            } else {
                lock
            }),
            (Call::Owner, Answer::Holder(holder)) => match (lock, holder) {
                (Lock::Free | Lock::Expired { .. }, None) => Some(lock),
                (Lock::Held { owner, .. } | Lock::Expired { owner, .. }, Some(named))
                    if owner == *named =>
                {
                    Some(lock)
                }
                _ => None,
            },
            (Call::IsLocked, Answer::Bool(locked)) => {
                let may_be_locked = matches!(lock, Lock::Held { .. }) || stale.is_some();
                (*locked == matches!(lock, Lock::Held { .. }) || (*locked && may_be_locked))
                    .then_some(lock)
            }
            // An answer of a kind the call never gives.
            _ => None,
        }
    }
}

/// A failed call as if it had succeeded: `Ok(true)` for `try_acquire`,
/// `renew` and `release` (their only answer with an effect), the same call
/// for `release_all`.
pub fn successful(op: &Operation) -> Operation {
    let answer = match op.call {
        Call::ReleaseAll => Answer::Unchecked,
        _ => Answer::Bool(true),
    };
    Operation {
        answer,
        ..op.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn op(owner: u32, call: Call, answer: Answer, invoke: u64, ret: u64) -> Operation {
        Operation {
            owner,
            call,
            ttl_ns: 2 * S,
            invoke_ns: invoke,
            return_ns: ret,
            answer,
            line: 0,
        }
    }

    #[test]
    fn a_held_lock_is_taken_over_only_once_it_may_have_expired() {
        let a = Allowance::default();
        let held = a.grant(&op(
            0,
            Call::TryAcquire,
            Answer::Bool(true),
            10 * S,
            10 * S + 5,
        ));
        let take = op(1, Call::TryAcquire, Answer::Bool(true), 11 * S, 11 * S + 5);
        // Inside the call the lock is certainly held: no way.
        assert!(a.linearize(held, &take, 11 * S, 11 * S + 5).is_empty());
        // A call reaching past sure_until (12 s − 100 ms) may take it then.
        let ways = a.linearize(held, &take, 11 * S, 12 * S);
        assert_eq!(ways.len(), 1);
        assert_eq!(ways[0].0, 12 * S - crate::MARGIN_NS);
    }

    #[test]
    fn a_failed_call_may_apply_its_successful_form() {
        let a = Allowance::default();
        let failed = op(0, Call::TryAcquire, Answer::Unknown, 10 * S, 12 * S);
        let ways = a.linearize(Lock::Free, &failed, 10 * S, 12 * S);
        assert_eq!(ways, vec![(10 * S, a.grant(&failed))]);
        let release = op(1, Call::Release, Answer::Unknown, 10 * S, 12 * S);
        assert!(a
            .linearize(ways[0].1, &release, 10 * S, 10 * S + 5)
            .is_empty());
    }
}
