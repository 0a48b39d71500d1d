//! The API servers' side of the world: answers stamped with each server's
//! clock, conditional writes at the store, and the tenures they begin and
//! end.

use crate::names::{Reached, Violation};
use crate::world::{
    Hold, Lease, LeaseWrite, Ledger, Op, Outcome, Request, Response, State, TenureSpan, World,
    SECOND,
};

impl World {
    pub(crate) fn serve(&self, state: &mut State, request: Request) {
        let j = usize::from(request.server);
        let date = self.server(state, j, state.t).div_euclid(SECOND) * SECOND;
        let outcome = match request.op {
            Op::Read => Outcome::Lease {
                ok: true,
                now: state.lease,
            },
            Op::Write { write, decided, .. } => {
                let ok = self.apply(state, request.client, write, decided);
                Outcome::Lease {
                    ok,
                    now: state.lease,
                }
            }
            Op::LedgerRead => Outcome::Ledger {
                ok: true,
                now: state.ledger,
            },
            Op::LedgerWrite {
                instant,
                token,
                expect,
            } => {
                let ok = state.ledger.map(|entry| entry.rv) == expect;
                if ok {
                    if state.ledger.is_some_and(|entry| entry.instant >= instant) {
                        state.violated |= Violation::LedgerBackwards.bit();
                    }
                    state.revision += 1;
                    state.ledger = Some(Ledger {
                        instant,
                        token,
                        rv: state.revision,
                    });
                }
                Outcome::Ledger {
                    ok,
                    now: state.ledger,
                }
            }
            Op::Sink { token } => {
                let accepted = state.sink.is_none_or(|(highest, _)| token >= highest);
                if accepted {
                    let began = state.tenures.iter().find(|t| t.token == token);
                    let began = began.map_or(0, |tenure| tenure.began);
                    // A tenure that ended before the tenure whose write the
                    // sink accepted last began.
                    let last_began = state.sink.map_or(0, |(_, began)| began);
                    let stale = state
                        .tenures
                        .iter()
                        .find(|t| t.token == token)
                        .and_then(|tenure| tenure.ended)
                        .is_some_and(|ended| ended <= last_began);
                    if stale {
                        state.violated |= Violation::SinkStale.bit();
                    }
                    state.sink = Some((token, began));
                }
                Outcome::Sink
            }
        };
        state.responses.push(Response {
            request,
            date,
            outcome,
        });
        state.responses.sort();
    }

    /// A conditional write at the store; whether it succeeded.
    fn apply(
        &self,
        state: &mut State,
        client: u8,
        write: LeaseWrite,
        decided: Option<Lease>,
    ) -> bool {
        let t = state.t;
        match write {
            LeaseWrite::Create(hold) => {
                if state.lease.is_some() {
                    return false;
                }
                state.revision += 1;
                let lease = lease_of(hold, state.revision, state.revision);
                self.begin_tenure(state, lease.rv, t);
                state.lease = Some(lease);
                true
            }
            LeaseWrite::Update { rv, hold } => {
                let Some(old) = state.lease.filter(|lease| lease.rv == rv) else {
                    return false;
                };
                state.revision += 1;
                let lease = lease_of(hold, state.revision, old.uid);
                if lease.holder != old.holder || lease.acquire != old.acquire {
                    if lease.holder != old.holder {
                        state.reached |= Reached::Takeover.bit();
                    }
                    self.end_tenure(state, t);
                    self.begin_tenure(state, lease.rv, t);
                }
                state.lease = Some(lease);
                true
            }
            LeaseWrite::Delete { rv } => {
                let Some(old) = state
                    .lease
                    .filter(|lease| rv.is_none_or(|rv| lease.rv == rv))
                else {
                    return false;
                };
                let same =
                    decided.is_some_and(|d| d.holder == old.holder && d.acquire == old.acquire);
                if !same {
                    state.violated |= Violation::DeletedRetaken.bit();
                }
                state.reached |= if old.holder == client {
                    Reached::Released.bit()
                } else {
                    Reached::Swept.bit()
                };
                state.lease = None;
                state.revision += 1;
                self.end_tenure(state, t);
                true
            }
        }
    }

    fn begin_tenure(&self, state: &mut State, token: u64, t: u64) {
        if state.tenures.iter().any(|tenure| tenure.token >= token) {
            state.violated |= Violation::TokensBackwards.bit();
        }
        state.tenures.push(TenureSpan {
            token,
            began: t,
            ended: None,
        });
        state.reached |= Reached::Acquired.bit();
    }

    fn end_tenure(&self, state: &mut State, t: u64) {
        if let Some(last) = state.tenures.last_mut() {
            last.ended.get_or_insert(t);
        }
    }
}

fn lease_of(hold: Hold, rv: u64, uid: u64) -> Lease {
    Lease {
        holder: hold.holder,
        acquire: hold.acquire,
        renew: hold.renew,
        duration: hold.duration,
        transitions: hold.transitions,
        rv,
        uid,
    }
}
