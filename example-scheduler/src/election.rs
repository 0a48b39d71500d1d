//! Leader election with celers-beat's `BeatHeartbeat` over the Lease locks.

use std::sync::Arc;
use std::time::Duration;

use celers_beat::heartbeat::{BeatHeartbeat, BeatRole};
use celers_kube_lease_scheduler::runs::ROLE_CHANGED;

use crate::operating::Leadership;
use tokio::sync::watch;

/// Logs the role if it differs from `previous` (and records it: gauge and
/// Event), and returns it.
pub async fn log_role(
    heartbeat: &BeatHeartbeat,
    owner: &str,
    previous: BeatRole,
    leadership: &Leadership,
) -> BeatRole {
    let role = heartbeat.role().await;
    if role != previous && role != BeatRole::Unknown {
        tracing::info!(role = %role, owner = %owner, "{ROLE_CHANGED}");
        leadership
            .changed(role == BeatRole::Leader, previous == BeatRole::Leader)
            .await;
    }
    role
}

/// Ticks the heartbeat every `period` (the leader renews its lease, a
/// standby takes over an expired one) until `stop` changes.
pub async fn run(
    heartbeat: Arc<BeatHeartbeat>,
    owner: String,
    period: Duration,
    mut role: BeatRole,
    leadership: Leadership,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let won = heartbeat.stats().leader_elections_won();
        if let Err(error) = heartbeat.tick().await {
            tracing::warn!(%error, owner = %owner, "leader election tick failed; retrying next tick");
        }
        let previous = role;
        role = log_role(&heartbeat, &owner, previous, &leadership).await;
        // A leader whose renewals failed until its lease expired, and that
        // took the lease again in this tick, stays leader: say so.
        if previous == BeatRole::Leader
            && role == BeatRole::Leader
            && heartbeat.stats().leader_elections_won() > won
        {
            tracing::info!(role = %role, owner = %owner, "the leader lease had expired; re-acquired it");
        }
    }
}
