//! The properties' names, and the bits in which the world records the
//! moments they judge (a write's decision, a store's apply, a fire) as they
//! happen.

/// No instant of true time at which two clients each believe they hold
/// the lock (the trait path: until `sent + TTL` on the holder's own clock
/// from its last successful `try_acquire`; guards: `is_held()`).
pub const MUTUAL_EXCLUSION: &str = "mutual exclusion in true time";
/// Every decision that sent a write took the servers' time between bounds
/// that contain every API server's clock at that instant.
pub const CLOCK_BOUNDS: &str = "decisions' server-time bounds contain every server's clock";
/// A renewal (`try_acquire` of one's own lock, a guard's renewal) is sent
/// only while the Lease is live on every server's clock.
pub const RENEW_ONLY_LIVE: &str =
    "renewals are sent only while every server's clock is before the expiry";
/// Each tenure's token is larger than every earlier tenure's.
pub const TOKENS_INCREASE: &str = "fencing tokens strictly increase with tenures";
/// The sink keeps the highest token and never accepts a write from a
/// tenure that ended before the tenure of a write it accepted began.
pub const SINK_FENCED: &str =
    "the sink never accepts a tenure that ended before an accepted one began";
/// Releases (also `release_all`, one Lease at a time) and sweeps delete only
/// the state they decided on, never a Lease another owner has re-taken.
pub const DELETE_ONLY_DECIDED: &str =
    "release, release_all and sweep never delete a re-taken Lease";
/// The beat ledger's instant only grows.
pub const LEDGER_FORWARD: &str = "the beat ledger moves only forward";
/// No instant fires twice.
pub const FIRED_ONCE: &str = "each instant fires at most once";
/// Eager runs: a Lease whose holder died is taken over within its expiry
/// plus the stated uncertainty.
pub const DEAD_TAKEN: &str = "a dead holder's lock is taken within expiry + uncertainty";
/// Eager runs: every path acquires the free lock.
pub const FREE_ACQUIRED: &str = "a free lock is acquired";

/// A safety violation recorded in the state when it happens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// See [`CLOCK_BOUNDS`].
    ClockBounds,
    /// See [`RENEW_ONLY_LIVE`].
    RenewedExpired,
    /// See [`TOKENS_INCREASE`].
    TokensBackwards,
    /// See [`SINK_FENCED`].
    SinkStale,
    /// See [`DELETE_ONLY_DECIDED`].
    DeletedRetaken,
    /// See [`LEDGER_FORWARD`].
    LedgerBackwards,
    /// See [`FIRED_ONCE`].
    FiredTwice,
}

impl Violation {
    /// Its bit in [`State::violated`].
    pub fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// An interesting state, recorded in the state when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reached {
    /// A tenure began.
    Acquired,
    /// Another owner took the Lease over.
    Takeover,
    /// A guard's `lost()` was cancelled.
    GuardLost,
    /// A ledger instant fired.
    Fired,
    /// A Lease was deleted by someone other than its holder (a sweep).
    Swept,
    /// A holder deleted its own Lease.
    Released,
    /// A client crashed.
    Crashed,
}

impl Reached {
    /// Its bit in [`State::reached`].
    pub fn bit(self) -> u16 {
        1 << self as u16
    }
}
