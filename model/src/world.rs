//! The world the model owns: true time, the API servers' clocks, one Lease
//! and a beat ledger entry in the servers' store, a fencing sink, the
//! network, and the clients, whose decisions are the library's own. What a
//! client sends and makes of an answer is in `client.rs`, what a server does
//! with a request in `server.rs` (more `impl World`).

use std::time::Duration;

use celers_kube_lease::model_seam as core;
use chrono::{DateTime, Utc};
use core::{Found, Holding, LocalInstant, Record, ServerTime, Tenure};

use crate::config::{Config, Path};
use crate::defect::Seam;
use crate::names::Reached;

/// Microseconds.
pub type Micros = i64;

/// True time 0 on the servers' clocks: 2026-01-01T00:00:00Z.
const EPOCH_MICROS: Micros = 1_767_225_600_000_000;
pub(crate) const SECOND: Micros = 1_000_000;
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

pub(crate) fn owner_index(name: &str) -> u8 {
    name.strip_prefix('c')
        .and_then(|n| n.parse().ok())
        .unwrap_or(u8::MAX)
}

/// Server microseconds as a `DateTime`.
pub fn datetime(micros: Micros) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(EPOCH_MICROS + micros)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

pub(crate) fn micros_of(time: DateTime<Utc>) -> Micros {
    time.timestamp_micros() - EPOCH_MICROS
}

pub(crate) fn local_instant(micros: Micros) -> LocalInstant {
    LocalInstant::from_duration(Duration::from_micros(u64::try_from(micros).unwrap_or(0)))
}

pub(crate) fn record(lease: &Lease) -> Record {
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

pub(crate) fn found(lease: Option<&Lease>) -> Found {
    lease.map_or(Found::Missing, |lease| Found::Ours(record(lease)))
}

pub(crate) fn hold(holding: &Holding) -> Hold {
    Hold {
        holder: owner_index(&holding.holder),
        duration: holding.duration_secs,
        acquire: micros_of(holding.acquire_time),
        renew: micros_of(holding.renew_time),
        transitions: holding.transitions,
    }
}

pub(crate) fn tenure(guard: &Guard) -> Tenure {
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

    pub(crate) fn ttl(&self) -> Duration {
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

    pub(crate) fn server_range(&self, state: &State) -> (Micros, Micros) {
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

pub(crate) fn local_micros(instant: LocalInstant) -> Micros {
    i64::try_from(
        instant
            .saturating_since(LocalInstant::from_duration(Duration::ZERO))
            .as_micros(),
    )
    .unwrap_or(i64::MAX)
}
