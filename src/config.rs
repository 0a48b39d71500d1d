//! Validated settings of the backend: their defaults, their ranges, and the
//! check the builder runs before anything is sent.

use std::time::Duration;

use crate::error::{Error, Operation, Result};
use crate::naming;

/// Validated settings of a backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    pub namespace: String,
    pub field_manager: String,
    pub label_prefix: String,
    pub request_timeout: Duration,
    pub conflict_retries: u32,
    pub sweep_interval: Option<Duration>,
    pub sweep_grace: Duration,
    pub page_size: u32,
    pub delete_concurrency: usize,
    pub api_server_skew: Duration,
    pub guard_renewals_per_ttl: u32,
}

/// Default `fieldManager` of every write.
pub const DEFAULT_FIELD_MANAGER: &str = "celers-kube-lease";
/// Default prefix of the owner label and the key annotation.
pub const DEFAULT_LABEL_PREFIX: &str = "celers.io";

/// Longest request timeout accepted.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);
/// Longest sweep interval and sweep grace accepted.
const MAX_SWEEP_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);
/// Largest API-server skew accepted.
const MAX_API_SERVER_SKEW: Duration = Duration::from_secs(60);
/// Most conflict retries accepted.
const MAX_CONFLICT_RETRIES: u32 = 100;

impl Config {
    pub(crate) fn defaults(namespace: String) -> Self {
        Self {
            namespace,
            field_manager: DEFAULT_FIELD_MANAGER.to_owned(),
            label_prefix: DEFAULT_LABEL_PREFIX.to_owned(),
            request_timeout: Duration::from_secs(10),
            conflict_retries: 5,
            sweep_interval: Some(Duration::from_secs(300)),
            sweep_grace: Duration::from_secs(60),
            page_size: 500,
            delete_concurrency: 16,
            api_server_skew: Duration::from_millis(250),
            guard_renewals_per_ttl: 3,
        }
    }

    /// The first invalid setting, if any.
    pub(crate) fn validate(&self, operation: Operation) -> Result<(), Error> {
        let invalid = |setting, reason: String| {
            Err(Error::InvalidConfig {
                operation,
                setting,
                reason,
            })
        };
        if !naming::is_valid_dns_label(&self.namespace) {
            return invalid(
                "namespace",
                format!(
                    "{:?} is not a valid namespace name (lowercase letters, digits and '-', \
                     at most 63 characters, starting and ending with a letter or digit)",
                    self.namespace
                ),
            );
        }
        if self.field_manager.is_empty()
            || self.field_manager.len() > 128
            || self.field_manager.chars().any(char::is_control)
        {
            return invalid(
                "field_manager",
                format!(
                    "{:?} must be 1 to 128 printable characters",
                    self.field_manager
                ),
            );
        }
        if self.label_prefix.len() > 200 || !naming::is_valid_dns_subdomain(&self.label_prefix) {
            return invalid(
                "label_prefix",
                format!(
                    "{:?} is not a DNS subdomain such as \"celers.io\"",
                    self.label_prefix
                ),
            );
        }
        if self.request_timeout.is_zero() || self.request_timeout > MAX_REQUEST_TIMEOUT {
            return invalid(
                "request_timeout",
                format!(
                    "{:?} is not in (0, {MAX_REQUEST_TIMEOUT:?}]",
                    self.request_timeout
                ),
            );
        }
        if self.conflict_retries > MAX_CONFLICT_RETRIES {
            return invalid(
                "conflict_retries",
                format!(
                    "{} is more than {MAX_CONFLICT_RETRIES}",
                    self.conflict_retries
                ),
            );
        }
        if let Some(interval) = self.sweep_interval {
            if interval.is_zero() || interval > MAX_SWEEP_PERIOD {
                return invalid(
                    "sweep_interval",
                    format!(
                        "{interval:?} is not in (0, {MAX_SWEEP_PERIOD:?}] (use None to turn \
                         sweeping off)"
                    ),
                );
            }
        }
        if self.sweep_grace > MAX_SWEEP_PERIOD {
            return invalid(
                "sweep_grace",
                format!("{:?} is more than {MAX_SWEEP_PERIOD:?}", self.sweep_grace),
            );
        }
        if self.api_server_skew > MAX_API_SERVER_SKEW {
            return invalid(
                "api_server_skew",
                format!(
                    "{:?} is more than {MAX_API_SERVER_SKEW:?}",
                    self.api_server_skew
                ),
            );
        }
        if !(2..=60).contains(&self.guard_renewals_per_ttl) {
            return invalid(
                "guard_renewals_per_ttl",
                format!("{} is not in 2..=60", self.guard_renewals_per_ttl),
            );
        }
        if !(1..=5000).contains(&self.page_size) {
            return invalid(
                "page_size",
                format!("{} is not in 1..=5000", self.page_size),
            );
        }
        if !(1..=256).contains(&self.delete_concurrency) {
            return invalid(
                "delete_concurrency",
                format!("{} is not in 1..=256", self.delete_concurrency),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(config: Config) -> &'static str {
        match config.validate(Operation::Build) {
            Err(Error::InvalidConfig { setting, .. }) => setting,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            Config::defaults("default".into())
                .validate(Operation::Build)
                .ok(),
            Some(())
        );
    }

    #[test]
    fn invalid_settings_are_named() {
        let base = Config::defaults("default".into());
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    namespace: "Not_A_Namespace".into(),
                    ..base.clone()
                },
                "namespace",
            ),
            (
                Config {
                    namespace: String::new(),
                    ..base.clone()
                },
                "namespace",
            ),
            (
                Config {
                    field_manager: String::new(),
                    ..base.clone()
                },
                "field_manager",
            ),
            (
                Config {
                    label_prefix: "Celers".into(),
                    ..base.clone()
                },
                "label_prefix",
            ),
            (
                Config {
                    request_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "request_timeout",
            ),
            (
                Config {
                    sweep_interval: Some(Duration::ZERO),
                    ..base.clone()
                },
                "sweep_interval",
            ),
            (
                Config {
                    page_size: 0,
                    ..base.clone()
                },
                "page_size",
            ),
            (
                Config {
                    delete_concurrency: 0,
                    ..base.clone()
                },
                "delete_concurrency",
            ),
        ];
        let extremes: Vec<(Config, &str)> = vec![
            (
                Config {
                    request_timeout: Duration::MAX,
                    ..base.clone()
                },
                "request_timeout",
            ),
            (
                Config {
                    conflict_retries: u32::MAX,
                    ..base.clone()
                },
                "conflict_retries",
            ),
            (
                Config {
                    sweep_interval: Some(Duration::MAX),
                    ..base.clone()
                },
                "sweep_interval",
            ),
            (
                Config {
                    sweep_grace: Duration::MAX,
                    ..base.clone()
                },
                "sweep_grace",
            ),
            (
                Config {
                    api_server_skew: Duration::MAX,
                    ..base.clone()
                },
                "api_server_skew",
            ),
            (
                Config {
                    guard_renewals_per_ttl: 1,
                    ..base.clone()
                },
                "guard_renewals_per_ttl",
            ),
            (
                Config {
                    page_size: u32::MAX,
                    ..base.clone()
                },
                "page_size",
            ),
            (
                Config {
                    delete_concurrency: usize::MAX,
                    ..base.clone()
                },
                "delete_concurrency",
            ),
        ];
        for (config, setting) in cases.into_iter().chain(extremes) {
            assert_eq!(rejected(config), setting);
        }
    }

    #[test]
    fn rejections_explain_themselves() {
        let config = Config {
            namespace: "Bad Namespace".into(),
            ..Config::defaults(String::new())
        };
        let message = config
            .validate(Operation::Build)
            .err()
            .map(|error| error.to_string())
            .unwrap_or_default();
        assert!(
            message.starts_with("build: invalid setting namespace: \"Bad Namespace\""),
            "{message}"
        );
    }
}
