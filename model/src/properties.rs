//! The properties, each a named `always`, `sometimes` or `eventually`.
//!
//! Safety properties that concern one moment (a write's decision, a
//! store's apply, a fire) are checked where it happens and recorded as a
//! bit in the state; the property reads the bit. Mutual exclusion and the
//! liveness bound are judged on the state itself.

use std::time::Duration;

use stateright::Property;

use crate::config::{Config, Path};
use crate::names::{
    Reached, Violation, CLOCK_BOUNDS, DEAD_TAKEN, DELETE_ONLY_DECIDED, FIRED_ONCE, FREE_ACQUIRED,
    LEDGER_FORWARD, MUTUAL_EXCLUSION, RENEW_ONLY_LIVE, SINK_FENCED, TOKENS_INCREASE,
};
use crate::world::{State, World};

fn clear(state: &State, violation: Violation) -> bool {
    state.violated & violation.bit() == 0
}

fn reached(state: &State, what: Reached) -> bool {
    state.reached & what.bit() != 0
}

fn mutual_exclusion(world: &World, state: &State) -> bool {
    (0..state.clients.len())
        .filter(|&c| world.believes(state, c))
        .count()
        <= 1
}

/// The uncertainty a takeover may wait beyond the expiry: the `Date`
/// header's second, the skew bound on both ends, one time step, and the
/// drift allowance over the TTL.
pub fn takeover_uncertainty(config: &Config) -> Duration {
    let ttl = Duration::from_secs(u64::try_from(config.ttl_secs).unwrap_or(0));
    let tick = config.ticks_ms.iter().copied().max().unwrap_or(0);
    Duration::from_secs(1)
        + config.skew * 2
        + Duration::from_millis(tick)
        + celers_kube_lease::model_seam::drift_over(ttl)
}

fn dead_taken(world: &World, state: &State) -> bool {
    let Some(lease) = state.lease else {
        return true;
    };
    if state.clients[usize::from(lease.holder)].alive || !world.quiescent(state) {
        return true;
    }
    let uncertainty =
        i64::try_from(takeover_uncertainty(&world.config).as_micros()).unwrap_or(i64::MAX);
    let earliest_server = (0..state.offsets.len())
        .map(|j| world.server(state, j, state.t))
        .min()
        .unwrap_or(0);
    earliest_server < lease.expiry() + uncertainty
}

/// The properties checked in `config`.
pub fn all(config: &Config) -> Vec<Property<World>> {
    let mut properties = vec![
        Property::always(MUTUAL_EXCLUSION, mutual_exclusion),
        Property::always(CLOCK_BOUNDS, |_, s| clear(s, Violation::ClockBounds)),
        Property::always(TOKENS_INCREASE, |_, s| clear(s, Violation::TokensBackwards)),
        Property::always(DELETE_ONLY_DECIDED, |_, s| {
            clear(s, Violation::DeletedRetaken)
        }),
        Property::always(RENEW_ONLY_LIVE, |_, s| clear(s, Violation::RenewedExpired)),
        Property::sometimes("a lock is acquired", |_, s| reached(s, Reached::Acquired)),
    ];
    let guards = config.clients.iter().any(|c| c.path == Path::Guard);
    let sweeper = config.clients.iter().any(|c| c.path == Path::Sweeper);
    if !config.eager {
        properties.push(Property::sometimes("a takeover happens", |_, s| {
            reached(s, Reached::Takeover)
        }));
    }
    if guards {
        properties.push(Property::sometimes("a guard loses", |_, s| {
            reached(s, Reached::GuardLost)
        }));
    }
    if guards && config.sink {
        properties.push(Property::always(SINK_FENCED, |_, s| {
            clear(s, Violation::SinkStale)
        }));
    }
    if guards && config.instants > 0 {
        properties.extend([
            Property::always(LEDGER_FORWARD, |_, s| clear(s, Violation::LedgerBackwards)),
            Property::always(FIRED_ONCE, |_, s| clear(s, Violation::FiredTwice)),
            Property::sometimes("a ledger fire happens", |_, s| reached(s, Reached::Fired)),
        ]);
    }
    if sweeper {
        properties.extend([
            Property::sometimes("a sweep deletes", |_, s| reached(s, Reached::Swept)),
            Property::sometimes("a release deletes", |_, s| reached(s, Reached::Released)),
        ]);
    }
    if config.crashes > 0 {
        properties.push(Property::sometimes("a client crashes", |_, s| {
            reached(s, Reached::Crashed)
        }));
    }
    if config.eager {
        properties.extend([
            Property::always(DEAD_TAKEN, dead_taken),
            Property::eventually(FREE_ACQUIRED, |_, s| reached(s, Reached::Acquired)),
        ]);
    }
    properties
}
