//! A client's side of the world: what it sends, decided by the library's
//! own code, and what it makes of an answer.

use celers_kube_lease::model_seam as core;
use chrono::{DateTime, Utc};
use core::{Found, Step, Write};

use crate::config::Path;
use crate::names::{Reached, Violation};
use crate::world::{
    datetime, found, hold, local_instant, local_micros, micros_of, owner, record, tenure, Act,
    Belief, Guard, Intent, LeaseWrite, Op, Outcome, Request, Response, Sampled, State, World,
    SECOND,
};

impl World {
    /// What an eager client does now, if anything.
    pub(crate) fn eager_act(&self, state: &State, c: usize) -> Option<Act> {
        let client = &state.clients[c];
        if !client.alive || client.pending || self.believes(state, c) {
            return None;
        }
        if client.acted & 2 == 0 && self.decide(state, c, Act::Take).is_some() {
            return Some(Act::Take);
        }
        (client.acted & 1 == 0).then_some(Act::Read)
    }

    /// The request client `c` sends for `act` now, if its decision is to
    /// send one.
    pub(crate) fn decide(&self, state: &State, c: usize, act: Act) -> Option<Op> {
        let client = &state.clients[c];
        let path = self.config.clients[c].path;
        let guard = match client.belief {
            Belief::Guard(guard) if !guard.lost => Some(guard),
            _ => None,
        };
        let held = self.believes(state, c);
        let needs_clock = !matches!(act, Act::Read | Act::LedgerRead | Act::Sink | Act::Release);
        let now = if needs_clock {
            Some(self.now_of(state, c)?)
        } else {
            None
        };
        let me = owner(u8::try_from(c).unwrap_or(u8::MAX));
        let ttl = self.config.ttl_secs;
        let (step, intent, decided) = match act {
            Act::Read => return Some(Op::Read),
            Act::LedgerRead => {
                return (path == Path::Guard && self.config.instants > 0 && held)
                    .then_some(Op::LedgerRead)
            }
            Act::Sink => {
                let guard = guard?;
                return (self.config.sink && held).then_some(Op::Sink { token: guard.token });
            }
            Act::Fire => {
                let guard = guard?;
                let entry = client.ledger?;
                let instant = entry.map_or(1, |entry| entry.instant + 1);
                if !held || instant > self.config.instants {
                    return None;
                }
                let current = entry.map(|entry| core::Entry {
                    instant: instant_time(entry.instant),
                    token: entry.token,
                    resource_version: entry.rv.to_string(),
                    uid: "ledger".to_owned(),
                    lease: Default::default(),
                });
                let token = core::fencing_token(&guard.token.to_string())?;
                return match core::claim(current.as_ref(), instant_time(instant), token) {
                    core::Claim::Write => Some(Op::LedgerWrite {
                        instant,
                        token: guard.token,
                        expect: entry.map(|entry| entry.rv),
                    }),
                    core::Claim::Ours | core::Claim::Fired | core::Claim::Superseded => None,
                };
            }
            Act::Take => {
                if path == Path::Sweeper || held || (guard.is_some() && path == Path::Guard) {
                    return None;
                }
                let cache = client.cache?;
                let found = found(cache.as_ref());
                let step = self.seam.take(&found, &me, ttl, now?, path == Path::Guard);
                let intent = if path == Path::Guard {
                    Intent::Lock
                } else {
                    Intent::Acquire
                };
                (step, intent, cache)
            }
            Act::Renew => {
                let guard = guard?;
                if !held {
                    return None;
                }
                let found = Found::Ours(record(&guard.held));
                let step = self.seam.renew_tenure(&found, &tenure(&guard), ttl, now?);
                (step, Intent::Renew, Some(guard.held))
            }
            Act::Release => match (path, guard) {
                (Path::Guard, Some(guard)) => {
                    let found = Found::Ours(record(&guard.held));
                    let step = self.seam.release(&found, &me, Some(&tenure(&guard)));
                    (step, Intent::Release, Some(guard.held))
                }
                (Path::Trait, _) => {
                    let cache = client.cache?;
                    let step = self.seam.release(&found(cache.as_ref()), &me, None);
                    (step, Intent::Release, cache)
                }
                _ => return None,
            },
            Act::Sweep => {
                if path != Path::Sweeper {
                    return None;
                }
                let cache = client.cache?;
                let step = self
                    .seam
                    .sweep(&found(cache.as_ref()), now?, self.config.grace_secs);
                (step, Intent::Sweep, cache)
            }
        };
        let Step::Write(write) = step else {
            return None;
        };
        let write = match write {
            Write::Create(holding) => LeaseWrite::Create(hold(&holding)),
            Write::Update {
                resource_version,
                holding,
                ..
            } => LeaseWrite::Update {
                rv: resource_version.parse().ok()?,
                hold: hold(&holding),
            },
            Write::Delete {
                resource_version, ..
            } => LeaseWrite::Delete {
                rv: if self.seam.delete_is_conditional() {
                    Some(resource_version.parse().ok()?)
                } else {
                    None
                },
            },
        };
        Some(Op::Write {
            write,
            intent,
            decided,
        })
    }

    pub(crate) fn send(&self, state: &mut State, c: usize, server: u8, op: Op) {
        let sent = self.local(c, state.t);
        // What the decision assumed about the servers' clock, checked
        // against their true readings.
        if let Op::Write { write, decided, .. } = op {
            if !matches!(write, LeaseWrite::Delete { .. }) {
                if let Some(now) = self.now_of(state, c) {
                    let (low, high) = self.server_range(state);
                    if micros_of(now.earliest) > low || micros_of(now.latest) < high {
                        state.violated |= Violation::ClockBounds.bit();
                    }
                }
            }
            if let (LeaseWrite::Update { hold, .. }, Some(decided)) = (write, decided) {
                let renewal = hold.holder == decided.holder && hold.acquire == decided.acquire;
                if renewal && self.server_range(state).1 >= decided.expiry() {
                    state.violated |= Violation::RenewedExpired.bit();
                }
            }
        }
        let client = &mut state.clients[c];
        match op {
            Op::Write {
                intent: Intent::Release,
                ..
            } => {
                // The application stops using the lock before it releases.
                client.belief = Belief::None;
            }
            Op::Read => client.acted |= 1,
            Op::Write { .. } => client.acted |= 2,
            _ => {}
        }
        client.pending = true;
        client.budget = client.budget.saturating_sub(1);
        let request = Request {
            client: u8::try_from(c).unwrap_or(u8::MAX),
            epoch: client.epoch,
            server,
            sent,
            op,
        };
        state.requests.push(request);
        state.requests.sort();
    }

    pub(crate) fn deliver(&self, state: &mut State, response: Response) {
        let c = usize::from(response.request.client);
        let received = self.local(c, state.t);
        let request = response.request;
        {
            let client = &mut state.clients[c];
            if !client.alive || client.epoch != request.epoch {
                return;
            }
            client.pending = false;
            client.samples.push(Sampled {
                sent: request.sent,
                received,
                date: response.date,
            });
        }
        let now = self.now_of(state, c);
        let leads = self.believes(state, c);
        let ttl = self.ttl();
        let mut reached = 0u16;
        let client = &mut state.clients[c];
        match response.outcome {
            Outcome::Lease { ok, now: lease } => {
                client.cache = Some(lease);
                if let Op::Write { intent, .. } = request.op {
                    match (intent, ok, lease) {
                        (Intent::Acquire, true, Some(_)) => {
                            client.belief = Belief::Trait { sent: request.sent };
                        }
                        (Intent::Lock, true, Some(lease)) => {
                            let Some(token) = core::fencing_token(&lease.rv.to_string()) else {
                                return;
                            };
                            let deadline = self.seam.deadline(local_instant(request.sent), ttl);
                            client.belief = Belief::Guard(Guard {
                                token: token.get(),
                                deadline: local_micros(deadline),
                                held: lease,
                                lost: false,
                            });
                        }
                        (Intent::Renew, true, Some(lease)) => {
                            if let Belief::Guard(guard) = &mut client.belief {
                                let deadline = self.seam.deadline_after(
                                    local_instant(request.sent),
                                    local_instant(received),
                                    ttl,
                                    local_instant(guard.deadline),
                                );
                                guard.deadline = local_micros(deadline);
                                guard.held = lease;
                            }
                            return;
                        }
                        _ => {}
                    }
                }
                // What a guard's watch would bring: the Lease as read.
                if let Belief::Guard(guard) = &mut client.belief {
                    if !guard.lost {
                        let (sees, deadline) = self.seam.guard_sees(
                            &tenure(guard),
                            &record(&guard.held),
                            &found(lease.as_ref()),
                            local_instant(received),
                            now,
                            local_instant(guard.deadline),
                        );
                        match sees {
                            core::GuardSees::Nothing => {}
                            core::GuardSees::Ended => {
                                guard.lost = true;
                                reached |= Reached::GuardLost.bit();
                            }
                            core::GuardSees::Rewritten => {
                                guard.deadline = local_micros(deadline);
                                if let Some(lease) = lease {
                                    guard.held = lease;
                                }
                            }
                        }
                    }
                }
            }
            Outcome::Ledger { ok, now: entry } => {
                client.ledger = Some(entry);
                // KubeBeat fires only while it still leads.
                if let (true, true, Op::LedgerWrite { instant, .. }) = (ok, leads, request.op) {
                    let bit = 1u8 << instant;
                    if state.fired & bit != 0 {
                        state.violated |= Violation::FiredTwice.bit();
                    }
                    state.fired |= bit;
                    reached |= Reached::Fired.bit();
                }
            }
            Outcome::Sink => {}
        }
        state.reached |= reached;
    }
}

/// The ledger's `instant`-th instant: one a minute.
fn instant_time(instant: u8) -> DateTime<Utc> {
    datetime(i64::from(instant) * 60 * SECOND)
}
