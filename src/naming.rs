//! Naming of Leases and labels.
//!
//! Any UTF-8 key maps to a valid Lease name (a DNS subdomain of at most 253
//! characters): a readable, sanitized prefix of the key followed by a hash of
//! the whole key. The prefix helps people reading `kubectl get leases`; the
//! hash keeps distinct keys (`Task` and `task`) apart. The original key is
//! kept in an annotation, and a Lease whose annotation names another key is
//! treated as foreign, so even a hash collision cannot merge two locks.
//!
//! Owners go into `spec.holderIdentity` verbatim. They are also written as a
//! label, so that `release_all` can select an owner's Leases on the server;
//! label values are limited to 63 characters of a small alphabet, so owners
//! that are not valid label values are sanitized and suffixed with a hash.

use sha2::{Digest, Sha256};

/// Longest readable part of a Lease name taken from the key.
const NAME_PREFIX_MAX: usize = 80;
/// Longest label value Kubernetes accepts.
const LABEL_VALUE_MAX: usize = 63;
/// Hex digits of SHA-256 kept in names and label values (64 bits).
const HASH_HEX_LEN: usize = 16;

/// The Lease name that stores the lock `key`.
///
/// Deterministic, so every replica computes the same name without talking to
/// the others.
pub fn lease_name(key: &str) -> String {
    let readable = sanitize(key, NAME_PREFIX_MAX, |c| c.is_ascii_alphanumeric(), true);
    let readable = if readable.is_empty() {
        "lock".to_owned()
    } else {
        readable
    };
    format!("{readable}-{}", short_hash(key))
}

/// The value of the owner label for `owner`: the owner itself when it is a
/// valid label value, otherwise a sanitized prefix and a hash.
pub fn owner_label_value(owner: &str) -> String {
    if is_valid_label_value(owner) {
        return owner.to_owned();
    }
    let max_prefix = LABEL_VALUE_MAX - HASH_HEX_LEN - 1;
    let readable = sanitize(owner, max_prefix, is_label_char, false);
    let readable = if readable.is_empty() {
        "owner".to_owned()
    } else {
        readable
    };
    format!("{readable}-{}", short_hash(owner))
}

/// 16 random hex digits, to tell apart processes (or backends) that present
/// the same name. `RandomState` is seeded from the operating system.
pub fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// One lock: its key and the name of its Lease, computed once (a hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    pub key: String,
    pub name: String,
}

impl Lock {
    pub fn new(key: impl Into<String>) -> Self {
        let key = key.into();
        let name = lease_name(&key);
        Self { key, name }
    }
}

/// Whether `value` may be used as a Kubernetes label value.
pub fn is_valid_label_value(value: &str) -> bool {
    value.len() <= LABEL_VALUE_MAX
        && value.chars().all(is_label_char)
        && value
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

/// Whether `name` is a valid DNS label (RFC 1123), as namespace names must be.
pub fn is_valid_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a valid DNS subdomain (RFC 1123), as label prefixes and
/// field managers' domains must be.
pub fn is_valid_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Keeps the characters `keep` accepts (lowercased when `lowercase`), turns
/// runs of anything else into one `-`, trims separators from both ends and
/// truncates to `max` characters.
fn sanitize(input: &str, max: usize, keep: impl Fn(char) -> bool, lowercase: bool) -> String {
    let mut out = String::with_capacity(max);
    for c in input.chars() {
        if out.len() >= max {
            break;
        }
        if keep(c) {
            out.push(if lowercase { c.to_ascii_lowercase() } else { c });
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn short_hash(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut hex = String::with_capacity(HASH_HEX_LEN);
    for byte in digest.iter().take(HASH_HEX_LEN / 2) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_readable_and_valid() {
        let cases = [
            ("beat_leader", "beat-leader-"),
            (
                "celers-beat:dispatch:hourly@2026-11-26T06:00:00+00:00",
                "celers-beat-dispatch-hourly-2026-11-26t06-00-00-00-00-",
            ),
            ("Tasks/Daily", "tasks-daily-"),
            ("タスク", "lock-"),
            ("---", "lock-"),
            ("a", "a-"),
        ];
        for (key, prefix) in cases {
            let name = lease_name(key);
            assert!(name.starts_with(prefix), "{key:?} -> {name}");
            assert!(is_valid_dns_subdomain(&name), "{key:?} -> {name}");
        }
    }

    #[test]
    fn long_keys_give_short_valid_names() {
        let key = "x".repeat(1000);
        let name = lease_name(&key);
        assert!(name.len() <= 80 + 1 + 16, "{name}");
        assert!(is_valid_dns_subdomain(&name));
    }

    #[test]
    fn distinct_keys_never_share_a_name() {
        assert_ne!(lease_name("Task"), lease_name("task"));
        assert_ne!(lease_name("a/b"), lease_name("a:b"));
        assert_ne!(
            lease_name("x".repeat(1000).as_str()),
            lease_name(&"x".repeat(999))
        );
        assert_eq!(lease_name("Task"), lease_name("Task"));
    }

    #[test]
    fn valid_owners_are_kept_as_label_values() {
        for owner in ["scheduler-1", "beat-7d9f8-abcde", "A.b_c", "x"] {
            assert_eq!(owner_label_value(owner), owner);
        }
    }

    #[test]
    fn other_owners_are_sanitized_and_hashed() {
        for owner in [
            "host:1234",
            "-leading",
            "trailing-",
            "über",
            "a b",
            &"o".repeat(64),
            "\u{0}",
        ] {
            let value = owner_label_value(owner);
            assert!(is_valid_label_value(&value), "{owner:?} -> {value}");
            assert!(value.len() <= 63);
            assert_ne!(value, owner);
        }
        assert_ne!(owner_label_value("a b"), owner_label_value("a:b"));
    }

    #[test]
    fn namespace_names_are_checked() {
        assert!(is_valid_dns_label("default"));
        assert!(is_valid_dns_label("celers-beat"));
        for bad in ["", "Default", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_valid_dns_label(bad), "{bad:?}");
        }
    }

    #[test]
    fn label_prefixes_are_checked() {
        assert!(is_valid_dns_subdomain("celers.io"));
        assert!(is_valid_dns_subdomain("example"));
        for bad in ["", ".a", "a.", "A.io", "a..b", "a/b"] {
            assert!(!is_valid_dns_subdomain(bad), "{bad:?}");
        }
    }
}
