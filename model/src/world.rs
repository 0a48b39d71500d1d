//! The world the model owns: true time, the API servers' clocks, one Lease
//! and a beat ledger entry in the servers' store, a fencing sink, the
//! network, and the clients, whose decisions are the library's own.

use std::time::Duration;

use celers_kube_lease::model_seam as core;
use chrono::{DateTime, Utc};
use core::{Found, Holding, LocalInstant, Record, ServerTime, Step, Tenure, Write};

use crate::config::{Config, Path};
use crate::defect::Seam;
use crate::names::{Reached, Violation};

/// Microseconds.
pub type Micros = i64;

/// True time 0 on the servers' clocks: 2026-01-01T00:00:00Z.
const EPOCH_MICROS: Micros = 1_767_225_600_000_000;
const SECOND: Micros = 1_000_000;
/// Where each client's local (boot) clock reads at true time 0.
const LOCAL_BASE: Micros = 3_600 * SECOND;

/// The Lease as the servers store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lease {
    /// `holderIdentity`: client `c<holder>`.
    pub holder: u8,
    /// `acquireTime`, server microseconds.
    pub acquire: Micros,
    /// `renewTime`, server microseconds.
    pub renew: Micros,
    /// `leaseDurationSeconds`.
    pub duration: i32,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// resourceVersion: the store's revision when written.
    pub rv: u64,
    /// uid: new for each create.
    pub uid: u64,
}

impl Lease {
    /// Its expiry by the servers' clock, microseconds.
    pub fn expiry(&self) -> Micros {
        self.renew + i64::from(self.duration) * SECOND
    }
}

/// The beat ledger entry as the servers store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ledger {
    /// The last instant fired (1, 2, …).
    pub instant: u8,
    /// The fencing token of the leader that fired it.
    pub token: u64,
    /// resourceVersion.
    pub rv: u64,
}

/// A `Date` header's story: when the request was sent and the response
/// came (local microseconds), and the header (server microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sampled {
    /// Local send time.
    pub sent: Micros,
    /// Local receive time.
    pub received: Micros,
    /// The `Date` header.
    pub date: Micros,
}

/// A guard's tenure as its process knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guard {
    /// The fencing token.
    pub token: u64,
    /// Local deadline.
    pub deadline: Micros,
    /// The Lease as its last write (or a rewrite it saw) left it.
    pub held: Lease,
    /// `lost()` was cancelled.
    pub lost: bool,
}

/// What a client believes about the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Belief {
    /// Nothing.
    None,
    /// The trait path: held until `sent + TTL` on its own clock, `sent`
    /// being when its last successful `try_acquire` was sent.
    Trait {
        /// Local send time.
        sent: Micros,
    },
    /// A guard.
    Guard(Guard),
}

/// One client process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Client {
    /// Grows at each restart; answers to an older epoch are ignored.
    pub epoch: u8,
    /// False once dead (eager runs).
    pub alive: bool,
    /// The `Date` samples it took, oldest first.
    pub samples: Vec<Sampled>,
    /// The Lease as last seen: `None` before any read.
    pub cache: Option<Option<Lease>>,
    /// The ledger entry as last seen.
    pub ledger: Option<Option<Ledger>>,
    /// A request is outstanding.
    pub pending: bool,
    /// What it believes.
    pub belief: Belief,
    /// Requests it may still send.
    pub budget: u8,
    /// Eager runs: read (bit 0) and wrote (bit 1) since the last tick.
    pub acted: u8,
}

/// Why a lock write was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    /// `try_acquire` (also a renewal of its own lock).
    Acquire,
    /// A guard's `lock`.
    Lock,
    /// A guard's renewal.
    Renew,
    /// `release` (also what `release_all` does per Lease), or a guard's.
    Release,
    /// `sweep_expired`.
    Sweep,
}

/// A lock write as it travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseWrite {
    /// Create; fails if a Lease exists.
    Create(Hold),
    /// Update if the resourceVersion is still `rv`.
    Update {
        /// The precondition.
        rv: u64,
        /// The new spec.
        hold: Hold,
    },
    /// Delete, if the resourceVersion is still `rv` (no precondition when
    /// `None`: the defect).
    Delete {
        /// The precondition.
        rv: Option<u64>,
    },
}

/// The spec a write gives the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hold {
    /// Holder.
    pub holder: u8,
    /// `leaseDurationSeconds`.
    pub duration: i32,
    /// `acquireTime`.
    pub acquire: Micros,
    /// `renewTime`.
    pub renew: Micros,
    /// `leaseTransitions`.
    pub transitions: i32,
}

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Get the Lease.
    Read,
    /// A conditional write, decided from `decided`.
    Write {
        /// The write.
        write: LeaseWrite,
        /// Why.
        intent: Intent,
        /// The Lease it was decided from.
        decided: Option<Lease>,
    },
    /// Get the ledger entry.
    LedgerRead,
    /// Record `instant` fired by the leader with `token`, conditionally.
    LedgerWrite {
        /// The instant.
        instant: u8,
        /// The leader's token.
        token: u64,
        /// The precondition (`None`: create).
        expect: Option<u64>,
    },
    /// A write to the fencing sink.
    Sink {
        /// The writer's token.
        token: u64,
    },
}

/// A request on its way to a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// From.
    pub client: u8,
    /// Its epoch.
    pub epoch: u8,
    /// To.
    pub server: u8,
    /// Local send time.
    pub sent: Micros,
    /// What.
    pub op: Op,
}

/// What the server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// A Lease request: whether a write succeeded, and the Lease now.
    Lease {
        /// The write succeeded (always for a read).
        ok: bool,
        /// The Lease after it.
        now: Option<Lease>,
    },
    /// A ledger request.
    Ledger {
        /// The write succeeded.
        ok: bool,
        /// The entry after it.
        now: Option<Ledger>,
    },
    /// A sink write.
    Sink,
}

/// A response on its way back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Response {
    /// The request.
    pub request: Request,
    /// The `Date` header.
    pub date: Micros,
    /// The answer.
    pub outcome: Outcome,
}

/// A tenure as the store saw it begin and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TenureSpan {
    /// The resourceVersion of the write that began it.
    pub token: u64,
    /// True time it began (ms).
    pub began: u64,
    /// True time it ended, if it did (ms).
    pub ended: Option<u64>,
}

/// The state of the world.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// True time, ms.
    pub t: u64,
    /// Each API server's clock offset from true time, ms.
    pub offsets: Vec<i64>,
    /// The Lease.
    pub lease: Option<Lease>,
    /// The ledger entry.
    pub ledger: Option<Ledger>,
    /// The store's revision.
    pub revision: u64,
    /// The highest token the sink accepted, and the tenure's begin time.
    pub sink: Option<(u64, u64)>,
    /// Tenures, oldest first.
    pub tenures: Vec<TenureSpan>,
    /// Instants fired (bit i: instant i).
    pub fired: u8,
    /// Requests in flight, sorted.
    pub requests: Vec<Request>,
    /// Responses in flight, sorted.
    pub responses: Vec<Response>,
    /// The clients.
    pub clients: Vec<Client>,
    /// Faults left: losses, crashes, server steps.
    pub losses: u8,
    /// Crashes left.
    pub crashes: u8,
    /// Server steps left.
    pub steps: u8,
    /// Time advances left.
    pub ticks: u8,
    /// Properties violated (bits of [`Violation`]).
    pub violated: u16,
    /// Interesting states reached (bits of [`Reached`]).
    pub reached: u16,
}

/// What a client sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Act {
    /// Get the Lease.
    Read,
    /// `try_acquire` or `lock`.
    Take,
    /// A guard's renewal.
    Renew,
    /// `release`.
    Release,
    /// `sweep_expired`.
    Sweep,
    /// Get the ledger entry.
    LedgerRead,
    /// Fire the next instant.
    Fire,
    /// Write to the sink.
    Sink,
}

/// One step of the world.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// True time advances by this many ms.
    Tick(u64),
    /// A client sends a request to a server.
    Send {
        /// Who.
        client: u8,
        /// To which server.
        server: u8,
        /// What.
        act: Act,
    },
    /// A server handles the request at this index.
    Serve(usize),
    /// The response at this index arrives.
    Deliver(usize),
    /// The request at this index is lost.
    LoseRequest(usize),
    /// The response at this index is lost.
    LoseResponse(usize),
    /// A client crashes (and restarts with empty memory, or in eager runs
    /// stays dead).
    Crash(u8),
    /// A server's clock steps to its configured new offset.
    StepServer,
}

/// The model: a configuration and its seam.
#[derive(Clone, Debug)]
pub struct World {
    /// The bounds.
    pub config: Config,
    /// The calls of the library.
    pub seam: Seam,
}

/// A client's name as the holder of a Lease.
pub fn owner(client: u8) -> String {
    format!("c{client}")
}

fn owner_index(name: &str) -> u8 {
    name.strip_prefix('c')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u8::MAX)
}

/// Server microseconds as a `DateTime`.
pub fn datetime(micros: Micros) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(EPOCH_MICROS + micros)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn micros_of(time: DateTime<Utc>) -> Micros {
    time.timestamp_micros() - EPOCH_MICROS
}

fn local_instant(micros: Micros) -> LocalInstant {
    LocalInstant::from_duration(Duration::from_micros(u64::try_from(micros).unwrap_or(0)))
}

fn record(lease: &Lease) -> Record {
    Record {
        resource_version: lease.rv.to_string(),
        uid: lease.uid.to_string(),
        holder: Some(owner(lease.holder)),
        acquire_time: Some(datetime(lease.acquire)),
        renew_time: Some(datetime(lease.renew)),
        duration_secs: Some(lease.duration),
        transitions: lease.transitions,
        lease: Default::default(),
    }
}

fn found(lease: Option<&Lease>) -> Found {
    lease.map_or(Found::Missing, |lease| Found::Ours(record(lease)))
}

fn hold(holding: &Holding) -> Hold {
    Hold {
        holder: owner_index(&holding.holder),
        duration: holding.duration_secs,
        acquire: micros_of(holding.acquire_time),
        renew: micros_of(holding.renew_time),
        transitions: holding.transitions,
    }
}

fn tenure(guard: &Guard) -> Tenure {
    Tenure {
        holder: owner(guard.held.holder),
        since: datetime(guard.held.acquire),
        token: Some(guard.token),
    }
}

impl World {
    /// The model of `config`.
    pub fn new(config: Config) -> Self {
        let seam = Seam {
            defect: config.defect,
        };
        Self { config, seam }
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.config.ttl_secs).unwrap_or(0))
    }

    /// Client `c`'s local clock at true time `t` ms.
    pub fn local(&self, c: usize, t: u64) -> Micros {
        let rate = self.config.clients[c].rate_ppm;
        let t = i64::try_from(t).unwrap_or(i64::MAX) * 1_000;
        LOCAL_BASE + t * 1_000_000 / (1_000_000 + rate)
    }

    /// Server `j`'s clock at true time `t` ms, microseconds.
    pub fn server(&self, state: &State, j: usize, t: u64) -> Micros {
        (i64::try_from(t).unwrap_or(i64::MAX) + state.offsets[j]) * 1_000
    }

    fn server_range(&self, state: &State) -> (Micros, Micros) {
        let readings = (0..state.offsets.len()).map(|j| self.server(state, j, state.t));
        let low = readings.clone().min().unwrap_or(0);
        (low, readings.max().unwrap_or(0))
    }

    /// Client `c`'s bounds on the servers' time now.
    pub fn now_of(&self, state: &State, c: usize) -> Option<ServerTime> {
        let samples: Vec<_> = state.clients[c]
            .samples
            .iter()
            .map(|s| core::Sample {
                sent: local_instant(s.sent),
                received: local_instant(s.received),
                date: datetime(s.date),
            })
            .collect();
        let clock = self.seam.clock(self.config.skew, &samples);
        clock.at(local_instant(self.local(c, state.t)))
    }

    /// Whether client `c` believes it holds the lock at this instant.
    pub fn believes(&self, state: &State, c: usize) -> bool {
        let client = &state.clients[c];
        if !client.alive {
            return false;
        }
        let local = self.local(c, state.t);
        match client.belief {
            Belief::None => false,
            Belief::Trait { sent } => local < sent + i64::from(self.config.ttl_secs) * SECOND,
            Belief::Guard(guard) => !guard.lost && local < guard.deadline,
        }
    }

    /// Whether the network is empty and no eager client has anything left
    /// to do at this instant.
    pub fn quiescent(&self, state: &State) -> bool {
        state.requests.is_empty()
            && state.responses.is_empty()
            && (0..state.clients.len()).all(|c| self.eager_act(state, c).is_none())
    }

    /// What an eager client does now, if anything.
    fn eager_act(&self, state: &State, c: usize) -> Option<Act> {
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
    fn decide(&self, state: &State, c: usize, act: Act) -> Option<Op> {
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

    fn send(&self, state: &mut State, c: usize, server: u8, op: Op) {
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

    fn serve(&self, state: &mut State, request: Request) {
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

    fn deliver(&self, state: &mut State, response: Response) {
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

    fn tick(&self, state: &mut State, by: u64) {
        state.t += by;
        state.ticks = state.ticks.saturating_sub(1);
        for c in 0..state.clients.len() {
            let local = self.local(c, state.t);
            let client = &mut state.clients[c];
            client.acted = 0;
            if let Belief::Guard(guard) = &mut client.belief {
                if !guard.lost && local >= guard.deadline {
                    guard.lost = true;
                    state.reached |= Reached::GuardLost.bit();
                }
            }
        }
    }

    fn fresh_client(&self, epoch: u8) -> Client {
        Client {
            epoch,
            alive: true,
            samples: Vec::new(),
            cache: None,
            ledger: None,
            pending: false,
            belief: Belief::None,
            budget: self.config.requests_per_client,
            acted: 0,
        }
    }

    /// The initial state.
    pub fn init(&self) -> State {
        State {
            t: 0,
            offsets: self.config.server_offsets_ms.clone(),
            lease: None,
            ledger: None,
            revision: 1,
            sink: None,
            tenures: Vec::new(),
            fired: 0,
            requests: Vec::new(),
            responses: Vec::new(),
            clients: (0..self.config.clients.len())
                .map(|_| self.fresh_client(0))
                .collect(),
            losses: self.config.losses,
            crashes: self.config.crashes,
            steps: u8::from(self.config.server_step.is_some()),
            ticks: self.config.max_ticks,
            violated: 0,
            reached: 0,
        }
    }

    /// The world right after client 0 read the free Lease and took it, each
    /// message served and answered at once: the six steps most paths begin
    /// with, taken before the search so that its depth bound is spent where
    /// clients contend. `None` if client 0 could not take the lock.
    pub fn head_start(&self) -> Option<State> {
        let take = match self.config.clients.first()?.path {
            Path::Sweeper => return None,
            Path::Trait | Path::Guard => Act::Take,
        };
        let mut state = self.init();
        for act in [Act::Read, take] {
            state = self.step(
                &state,
                Action::Send {
                    client: 0,
                    server: 0,
                    act,
                },
            )?;
            state = self.step(&state, Action::Serve(0))?;
            state = self.step(&state, Action::Deliver(0))?;
        }
        self.believes(&state, 0).then_some(state)
    }

    /// The steps possible in `state`.
    pub fn actions_of(&self, state: &State, actions: &mut Vec<Action>) {
        // A violation is recorded in the state; nothing after it matters.
        if state.violated != 0 {
            return;
        }
        let servers = if self.config.any_server {
            state.offsets.len()
        } else {
            1
        };
        let servers = (0..servers).map(|j| u8::try_from(j).unwrap_or(0));
        for i in 0..state.requests.len() {
            actions.push(Action::Serve(i));
        }
        for i in 0..state.responses.len() {
            actions.push(Action::Deliver(i));
        }
        if self.config.eager {
            for c in 0..state.clients.len() {
                let client = u8::try_from(c).unwrap_or(u8::MAX);
                if let Some(act) = self.eager_act(state, c) {
                    for server in servers.clone() {
                        actions.push(Action::Send {
                            client,
                            server,
                            act,
                        });
                    }
                }
                if state.crashes > 0 && state.clients[c].alive && self.believes(state, c) {
                    actions.push(Action::Crash(client));
                }
            }
            if self.quiescent(state) && state.t < self.config.horizon_ms && state.ticks > 0 {
                for &by in &self.config.ticks_ms {
                    actions.push(Action::Tick(by));
                }
            }
            return;
        }
        if state.losses > 0 {
            for i in 0..state.requests.len() {
                actions.push(Action::LoseRequest(i));
            }
            for i in 0..state.responses.len() {
                actions.push(Action::LoseResponse(i));
            }
        }
        if state.steps > 0 {
            actions.push(Action::StepServer);
        }
        for c in 0..state.clients.len() {
            let client = &state.clients[c];
            let id = u8::try_from(c).unwrap_or(u8::MAX);
            if state.crashes > 0 && (self.believes(state, c) || client.pending) {
                actions.push(Action::Crash(id));
            }
            if client.pending || client.budget == 0 || !client.alive {
                continue;
            }
            for act in [
                Act::Read,
                Act::Take,
                Act::Renew,
                Act::Release,
                Act::Sweep,
                Act::LedgerRead,
                Act::Fire,
                Act::Sink,
            ] {
                if self.decide(state, c, act).is_some() {
                    for server in servers.clone() {
                        actions.push(Action::Send {
                            client: id,
                            server,
                            act,
                        });
                    }
                }
            }
        }
        if state.ticks > 0 {
            for &by in &self.config.ticks_ms {
                if state.t + by <= self.config.horizon_ms {
                    actions.push(Action::Tick(by));
                }
            }
        }
    }

    /// The state after `action`.
    pub fn step(&self, state: &State, action: Action) -> Option<State> {
        let mut next = state.clone();
        match action {
            Action::Tick(by) => self.tick(&mut next, by),
            Action::Send {
                client,
                server,
                act,
            } => {
                let c = usize::from(client);
                let op = self.decide(state, c, act)?;
                self.send(&mut next, c, server, op);
            }
            Action::Serve(i) => {
                let request = next.requests.remove(i);
                self.serve(&mut next, request);
            }
            Action::Deliver(i) => {
                let response = next.responses.remove(i);
                self.deliver(&mut next, response);
            }
            Action::LoseRequest(i) => {
                next.requests.remove(i);
                next.losses -= 1;
                self.forget(&mut next);
            }
            Action::LoseResponse(i) => {
                next.responses.remove(i);
                next.losses -= 1;
                self.forget(&mut next);
            }
            Action::Crash(client) => {
                let c = usize::from(client);
                next.crashes -= 1;
                let epoch = next.clients[c].epoch.saturating_add(1);
                next.clients[c] = self.fresh_client(epoch);
                next.clients[c].alive = !self.config.eager;
                next.reached |= Reached::Crashed.bit();
            }
            Action::StepServer => {
                let (j, offset) = self.config.server_step?;
                next.offsets[usize::from(j)] = offset;
                next.steps = 0;
            }
        }
        Some(next)
    }

    /// After a loss, the client waiting for that answer gives up on it (a
    /// timeout) and may send again.
    fn forget(&self, state: &mut State) {
        for c in 0..state.clients.len() {
            let waiting = state
                .requests
                .iter()
                .map(|request| (request.client, request.epoch))
                .chain(
                    state
                        .responses
                        .iter()
                        .map(|response| (response.request.client, response.request.epoch)),
                )
                .any(|(client, epoch)| usize::from(client) == c && epoch == state.clients[c].epoch);
            if !waiting {
                state.clients[c].pending = false;
            }
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

fn local_micros(instant: LocalInstant) -> Micros {
    i64::try_from(
        instant
            .saturating_since(LocalInstant::from_duration(Duration::ZERO))
            .as_micros(),
    )
    .unwrap_or(i64::MAX)
}

/// The ledger's `instant`-th instant: one a minute.
fn instant_time(instant: u8) -> DateTime<Utc> {
    datetime(i64::from(instant) * 60 * SECOND)
}
