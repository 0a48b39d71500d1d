//! Prometheus metrics, with the cargo feature `metrics` (the list is in the
//! crate docs); without the feature, or without a registry, every record
//! here does nothing.

use std::collections::HashMap;
use std::time::Duration;

use crate::clock::LocalInstant;
use crate::error::Operation;
use crate::lease::Found;

#[cfg(feature = "metrics")]
pub use enabled::Metrics;

#[cfg(not(feature = "metrics"))]
pub use disabled::Metrics;

#[cfg(feature = "metrics")]
mod enabled {
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    use crate::error::Operation;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct OperationLabels {
        operation: String,
        result: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct RequestLabels {
        verb: &'static str,
        code: String,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct VerbLabels {
        verb: &'static str,
    }

    fn latency_histogram() -> Histogram {
        // 1 ms to about 16 s.
        Histogram::new(exponential_buckets(0.001, 2.0, 15))
    }

    /// The backend's metrics.
    #[derive(Clone, Debug, Default)]
    pub struct Metrics(Option<Registered>);

    #[derive(Clone, Debug)]
    struct Registered {
        operations: Family<OperationLabels, Counter>,
        requests: Family<RequestLabels, Counter>,
        latency: Family<VerbLabels, Histogram, fn() -> Histogram>,
        conflicts: Counter,
        shared_owner: Counter,
        held: Gauge,
        sweeps: Counter,
        swept: Counter,
    }

    impl Metrics {
        /// Registers the metrics in `registry` under the prefix `celers_lock`.
        pub fn register(registry: &mut Registry) -> Self {
            let registered = Registered {
                operations: Family::default(),
                requests: Family::default(),
                latency: Family::new_with_constructor(latency_histogram),
                conflicts: Counter::default(),
                shared_owner: Counter::default(),
                held: Gauge::default(),
                sweeps: Counter::default(),
                swept: Counter::default(),
            };
            let r = registry.sub_registry_with_prefix("celers_lock");
            let m = &registered;
            r.register("operations", "Lock calls by result", m.operations.clone());
            r.register(
                "api_requests",
                "API requests by verb and status",
                m.requests.clone(),
            );
            r.register(
                "api_request_duration_seconds",
                "Latency of API requests",
                m.latency.clone(),
            );
            r.register(
                "conflicts",
                "Conditional writes rejected",
                m.conflicts.clone(),
            );
            r.register(
                "shared_owner",
                "Writes that kept a live lock of the same owner written by another backend instance",
                m.shared_owner.clone(),
            );
            r.register("held", "Locks this backend holds", m.held.clone());
            r.register(
                "sweeps",
                "Sweeps of expired Leases that completed",
                m.sweeps.clone(),
            );
            r.register("swept_leases", "Leases deleted by sweeps", m.swept.clone());
            Self(Some(registered))
        }

        pub fn operation(&self, operation: Operation, result: &'static str) {
            if let Some(m) = &self.0 {
                let labels = OperationLabels {
                    operation: operation.to_string(),
                    result,
                };
                m.operations.get_or_create(&labels).inc();
            }
        }

        pub fn request(&self, verb: &'static str, code: &str, seconds: f64) {
            if let Some(m) = &self.0 {
                let labels = RequestLabels {
                    verb,
                    code: code.to_owned(),
                };
                m.requests.get_or_create(&labels).inc();
                m.latency
                    .get_or_create(&VerbLabels { verb })
                    .observe(seconds);
            }
        }

        pub fn conflict(&self) {
            if let Some(m) = &self.0 {
                m.conflicts.inc();
            }
        }

        pub fn shared_owner(&self) {
            if let Some(m) = &self.0 {
                m.shared_owner.inc();
            }
        }

        /// Whether a registry is registered: the held-lock tally is kept
        /// only then.
        pub fn enabled(&self) -> bool {
            self.0.is_some()
        }

        pub fn set_held(&self, held: usize) {
            if let Some(m) = &self.0 {
                m.held.set(i64::try_from(held).unwrap_or(i64::MAX));
            }
        }

        pub fn swept(&self, deleted: u64) {
            if let Some(m) = &self.0 {
                m.sweeps.inc();
                m.swept.inc_by(deleted);
            }
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use crate::error::Operation;

    /// The backend's metrics: none without the feature `metrics`.
    #[derive(Clone, Debug, Default)]
    pub struct Metrics(());

    impl Metrics {
        pub fn operation(&self, _: Operation, _: &'static str) {}
        pub fn request(&self, _: &'static str, _: &str, _: f64) {}
        pub fn conflict(&self) {}
        pub fn shared_owner(&self) {}
        pub fn enabled(&self) -> bool {
            false
        }
        pub fn set_held(&self, _: usize) {}
        pub fn swept(&self, _: u64) {}
    }
}

/// The locks this backend's last writes hold, with their local end.
#[derive(Debug, Default)]
pub(crate) struct Held {
    until: HashMap<String, LocalInstant>,
    pruned: Option<LocalInstant>,
}

impl Held {
    /// Notes what a write left of the lock in the Lease `name` at local
    /// time `now`, and returns how many locks are held.
    pub fn note(&mut self, name: &str, found: &Found, now: LocalInstant) -> usize {
        match found {
            Found::Ours(record) if record.holder.is_some() => {
                let ttl = record
                    .duration_secs
                    .and_then(|secs| u64::try_from(secs).ok());
                let until = now.saturating_add(Duration::from_secs(ttl.unwrap_or(0)));
                self.until.insert(name.to_owned(), until);
            }
            _ => {
                self.until.remove(name);
            }
        }
        self.prune(now);
        self.until.len()
    }

    /// Forgets the locks whose TTL has run out, at most once a second: a
    /// backend holding many locks would otherwise pay for all of them on
    /// every write.
    fn prune(&mut self, now: LocalInstant) {
        let due = self
            .pruned
            .is_none_or(|at| now.saturating_since(at) >= Duration::from_secs(1));
        if due {
            self.until.retain(|_, until| *until > now);
            self.pruned = Some(now);
        }
    }
}

/// The `result` label of a call that answered `answer`.
pub fn result_of(operation: Operation, answer: bool) -> &'static str {
    use Operation as Op;
    match (operation, answer) {
        (Op::TryAcquire | Op::TryLock | Op::Lock, true) => "acquired",
        (Op::TryAcquire | Op::TryLock | Op::Lock, false) => "refused",
        (Op::Renew, true) => "renewed",
        (Op::Release | Op::ReleaseAll | Op::SweepExpired | Op::ForceRelease, true) => "released",
        (Op::Renew | Op::Release | Op::ReleaseAll | Op::SweepExpired | Op::ForceRelease, false) => {
            "not_held"
        }
        _ => "answered",
    }
}

/// The `result` label of a failed call.
pub fn result_of_error(error: &crate::error::Error) -> &'static str {
    use crate::error::Class;
    match error.class() {
        Class::Configuration => "error_configuration",
        Class::Timeout => "error_timeout",
        Class::Broker => "error_broker",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Operation;

    #[test]
    fn results_are_named_by_what_happened() {
        assert_eq!(result_of(Operation::TryAcquire, true), "acquired");
        assert_eq!(result_of(Operation::Lock, false), "refused");
        assert_eq!(result_of(Operation::Renew, false), "not_held");
        assert_eq!(result_of(Operation::Release, true), "released");
        assert_eq!(result_of(Operation::Owner, true), "answered");
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn metrics_are_registered_and_counted() {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.operation(Operation::TryAcquire, "acquired");
        metrics.request("update", "200", 0.003);
        metrics.conflict();
        metrics.set_held(2);
        metrics.swept(5);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        for line in [
            "celers_lock_operations_total{operation=\"try_acquire\",result=\"acquired\"} 1",
            "celers_lock_api_requests_total{verb=\"update\",code=\"200\"} 1",
            "celers_lock_api_request_duration_seconds_count{verb=\"update\"} 1",
            "celers_lock_conflicts_total 1",
            "celers_lock_held 2",
            "celers_lock_sweeps_total 1",
            "celers_lock_swept_leases_total 5",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
