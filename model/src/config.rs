//! The named configurations: the world's bounds for one run of the checker.

use std::time::Duration;

use crate::defect::Defect;

/// What a client does with the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// The `DistributedLockBackend` trait: `try_acquire` (which also renews
    /// its own lock) and `release`.
    Trait,
    /// Guards: `lock`, background renewals, the fencing token, a sink, the
    /// beat ledger, and the guard's release.
    Guard,
    /// `sweep_expired` only (a replica that holds nothing).
    Sweeper,
}

/// One client process.
#[derive(Clone, Copy, Debug)]
pub struct ClientConfig {
    /// What it does with the lock.
    pub path: Path,
    /// The rate of its local clock against the servers' (which keep true
    /// time): true time elapses `1 + rate_ppm / 10⁶` times as much as the
    /// local clock, so a positive rate is a slow local clock.
    pub rate_ppm: i64,
}

/// The bounds of one run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Its name on the command line.
    pub name: &'static str,
    /// What it checks, one line.
    pub about: &'static str,
    /// The clients.
    pub clients: Vec<ClientConfig>,
    /// The API servers' clock offsets from true time, in milliseconds
    /// (within `skew` of each other).
    pub server_offsets_ms: Vec<i64>,
    /// A server clock step the model may take once: (server, new offset).
    pub server_step: Option<(u8, i64)>,
    /// The clients' `api_server_skew`.
    pub skew: Duration,
    /// The lock's TTL, in seconds (`leaseDurationSeconds`).
    pub ttl_secs: i32,
    /// The sweep's grace, in seconds.
    pub grace_secs: i64,
    /// The steps true time may advance by, in milliseconds.
    pub ticks_ms: Vec<u64>,
    /// True time ends here, in milliseconds.
    pub horizon_ms: u64,
    /// How many times true time may advance.
    pub max_ticks: u8,
    /// Requests each client may send (not in eager runs).
    pub requests_per_client: u8,
    /// Messages the network may lose.
    pub losses: u8,
    /// Client crashes (each followed by a restart with empty memory, or,
    /// in eager runs, by death).
    pub crashes: u8,
    /// Whether requests may go to any server (else to the first one).
    pub any_server: bool,
    /// Instants the beat ledger may fire.
    pub instants: u8,
    /// Whether guards write to the fencing sink.
    pub sink: bool,
    /// Eager clients: no fault but a holder's death, every client acts at
    /// once at every tick, and time moves only when all have acted (the
    /// fault-free paths on which liveness is required).
    pub eager: bool,
    /// The injected defect, if any.
    pub defect: Option<Defect>,
    /// The search covers every path of up to this many steps from an
    /// initial state (0: every reachable state).
    pub max_steps: usize,
}

const SLOW: i64 = 999;
const FAST: i64 = -999;

fn trait_client(rate_ppm: i64) -> ClientConfig {
    ClientConfig {
        path: Path::Trait,
        rate_ppm,
    }
}

fn guard_client(rate_ppm: i64) -> ClientConfig {
    ClientConfig {
        path: Path::Guard,
        rate_ppm,
    }
}

/// The trait path with two API servers 250 ms apart, answering any client,
/// a clock step of one of them within the bound, losses and a crash.
pub fn trait_skew() -> Config {
    Config {
        name: "trait-skew",
        about: "trait path, 2 clients (slow/fast clocks), 2 API servers 250 ms apart, a server step, loss, crash",
        clients: vec![trait_client(SLOW), trait_client(FAST)],
        server_offsets_ms: vec![0, 250],
        server_step: Some((1, 125)),
        skew: Duration::from_millis(250),
        ttl_secs: 10,
        grace_secs: 0,
        ticks_ms: vec![250, 5_000],
        horizon_ms: 26_000,
        max_ticks: 8,
        requests_per_client: 4,
        losses: 1,
        crashes: 1,
        any_server: true,
        instants: 0,
        sink: false,
        eager: false,
        defect: None,
        max_steps: 9,
    }
}

/// Drift alone: one API server, no skew, a TTL long enough that the drift
/// allowance over it (4 s) outweighs the `Date` header's second.
pub fn drift() -> Config {
    Config {
        name: "drift",
        about: "trait path, 2 clients at -999/+999 ppm, 1 API server, zero skew, TTL 4000 s",
        clients: vec![trait_client(SLOW), trait_client(FAST)],
        server_offsets_ms: vec![0],
        server_step: None,
        skew: Duration::ZERO,
        ttl_secs: 4_000,
        grace_secs: 0,
        ticks_ms: vec![1_000, 4_000_000],
        horizon_ms: 4_010_000,
        max_ticks: 8,
        requests_per_client: 4,
        losses: 0,
        crashes: 0,
        any_server: false,
        instants: 0,
        sink: false,
        eager: false,
        defect: None,
        max_steps: 12,
    }
}

/// Guards: renewals in flight, `lost()` by the deadline or by what a read
/// shows, a sink that keeps the highest token, the beat ledger.
pub fn guards() -> Config {
    Config {
        name: "guards",
        about: "2 guard clients (slow/fast), 2 API servers 250 ms apart, renewals, a sink, the beat ledger, loss",
        clients: vec![guard_client(SLOW), guard_client(FAST)],
        server_offsets_ms: vec![0, 250],
        server_step: None,
        skew: Duration::from_millis(250),
        ttl_secs: 10,
        grace_secs: 0,
        ticks_ms: vec![500, 4_000],
        horizon_ms: 24_000,
        max_ticks: 8,
        requests_per_client: 5,
        losses: 1,
        crashes: 0,
        any_server: true,
        instants: 2,
        sink: true,
        eager: false,
        defect: None,
        max_steps: 9,
    }
}

/// Releases and sweeps against takeovers: two trait clients and a sweeper.
pub fn release_sweep() -> Config {
    Config {
        name: "release-sweep",
        about:
            "trait path with release/release_all, plus a sweeping replica, 1 API server, a crash",
        clients: vec![
            trait_client(SLOW),
            trait_client(FAST),
            ClientConfig {
                path: Path::Sweeper,
                rate_ppm: 0,
            },
        ],
        server_offsets_ms: vec![0],
        server_step: None,
        skew: Duration::from_millis(250),
        ttl_secs: 10,
        grace_secs: 1,
        ticks_ms: vec![500, 5_000],
        horizon_ms: 24_000,
        max_ticks: 8,
        requests_per_client: 4,
        losses: 0,
        crashes: 1,
        any_server: false,
        instants: 0,
        sink: false,
        eager: false,
        defect: None,
        max_steps: 9,
    }
}

/// Liveness on fault-free paths: eager clients, the holder dies once.
pub fn liveness() -> Config {
    Config {
        name: "liveness",
        about: "eager trait clients, 2 API servers 250 ms apart, no fault but the holder's death",
        clients: vec![trait_client(SLOW), trait_client(FAST)],
        server_offsets_ms: vec![0, 250],
        server_step: None,
        skew: Duration::from_millis(250),
        ttl_secs: 10,
        grace_secs: 0,
        ticks_ms: vec![500],
        horizon_ms: 30_000,
        max_ticks: 60,
        requests_per_client: 0,
        losses: 0,
        crashes: 1,
        any_server: true,
        instants: 0,
        sink: false,
        eager: true,
        defect: None,
        max_steps: 0,
    }
}

/// Every configuration, in the order `make model` runs them.
pub fn all() -> Vec<Config> {
    vec![trait_skew(), drift(), guards(), release_sweep(), liveness()]
}

/// The configuration named `name`.
pub fn named(name: &str) -> Option<Config> {
    all().into_iter().find(|config| config.name == name)
}

impl Config {
    /// Its bounds, one line.
    pub fn bounds(&self) -> String {
        let clients: Vec<String> = self
            .clients
            .iter()
            .map(|c| format!("{:?} {:+} ppm", c.path, c.rate_ppm))
            .collect();
        let step = self.server_step.map_or(String::new(), |(j, to)| {
            format!(", s{j} may step to {to} ms")
        });
        let steps = match self.max_steps {
            0 => "every reachable state".to_owned(),
            n => format!("paths of up to {n} steps"),
        };
        format!(
            "clients [{}]; server offsets {:?} ms{step}; skew {} ms; TTL {} s; ticks {:?} ms, at most {}; \
             {} requests per client; {} losses, {} crashes; {steps}",
            clients.join(", "),
            self.server_offsets_ms,
            self.skew.as_millis(),
            self.ttl_secs,
            self.ticks_ms,
            self.max_ticks,
            self.requests_per_client,
            self.losses,
            self.crashes,
        )
    }

    /// This configuration with `defect` injected.
    pub fn with_defect(mut self, defect: Defect) -> Self {
        self.defect = Some(defect);
        self
    }

    /// The configuration in which `defect` is checked: the smallest world
    /// that shows it, so that breadth-first search reaches it quickly.
    pub fn for_defect(defect: Defect) -> Self {
        let quiet = |config: Config| Config {
            losses: 0,
            crashes: 0,
            server_step: None,
            ..config
        };
        let base = match defect {
            Defect::NoDriftAllowance => drift(),
            Defect::NoSkewWidening => trait_skew(),
            Defect::RenewInDoubt => quiet(trait_skew()),
            Defect::DeadlineFromReceipt => Config {
                server_offsets_ms: vec![0],
                any_server: false,
                ticks_ms: vec![4_000],
                instants: 0,
                sink: false,
                ..quiet(guards())
            },
            Defect::UnconditionalDelete => Config {
                ticks_ms: vec![5_000],
                ..quiet(release_sweep())
            },
        };
        Config {
            max_steps: 12,
            ..base.with_defect(defect)
        }
    }
}
