//! Checks of the arguments of every call, before anything is sent.

use std::time::Duration;

use crate::error::{Error, Operation, Result};

/// Longest key accepted, in bytes (it is stored in an annotation).
pub const MAX_KEY_BYTES: usize = 4096;
/// Longest owner accepted, in bytes (it is `spec.holderIdentity`).
pub const MAX_OWNER_BYTES: usize = 1024;

/// A lock key: 1 to [`MAX_KEY_BYTES`] bytes, no NUL.
pub fn check_key(operation: Operation, key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "must not be empty".to_owned()
    } else if key.len() > MAX_KEY_BYTES {
        format!(
            "is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        )
    } else if key.contains('\0') {
        "must not contain NUL characters".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        operation,
        input: "key",
        reason,
    })
}

/// An owner: 1 to [`MAX_OWNER_BYTES`] bytes, no control characters.
pub fn check_owner(operation: Operation, owner: &str) -> Result<()> {
    let reason = if owner.is_empty() {
        "must not be empty".to_owned()
    } else if owner.len() > MAX_OWNER_BYTES {
        format!(
            "is {} bytes long; at most {MAX_OWNER_BYTES} are allowed",
            owner.len()
        )
    } else if owner.chars().any(char::is_control) {
        format!("{owner:?} contains control characters")
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        operation,
        input: "owner",
        reason,
    })
}

/// A TTL in seconds: `1..=i32::MAX` (`leaseDurationSeconds` is an int32).
pub fn check_ttl(operation: Operation, ttl_secs: u64) -> Result<i32> {
    match i32::try_from(ttl_secs) {
        Ok(ttl) if ttl >= 1 => Ok(ttl),
        _ => Err(Error::InvalidInput {
            operation,
            input: "ttl_secs",
            reason: format!(
                "{ttl_secs} is not in 1..={} (leaseDurationSeconds is an int32)",
                i32::MAX
            ),
        }),
    }
}

/// A guard's TTL: whole seconds in `1..=i32::MAX`.
pub fn check_ttl_duration(operation: Operation, ttl: Duration) -> Result<i32> {
    let whole = ttl.subsec_nanos() == 0;
    match i32::try_from(ttl.as_secs()) {
        Ok(secs) if secs >= 1 && whole => Ok(secs),
        _ => Err(Error::InvalidInput {
            operation,
            input: "ttl",
            reason: format!(
                "{ttl:?} is not a whole number of seconds in 1..={} \
                 (leaseDurationSeconds is an int32 of seconds)",
                i32::MAX
            ),
        }),
    }
}

/// A key and an owner, as every call on one lock takes them.
pub fn check_key_and_owner(operation: Operation, key: &str, owner: &str) -> Result<()> {
    check_key(operation, key)?;
    check_owner(operation, owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(result: Result<impl std::fmt::Debug>) -> &'static str {
        match result {
            Err(Error::InvalidInput { input, .. }) => input,
            other => panic!("expected an input rejection, got {other:?}"),
        }
    }

    #[test]
    fn keys_are_checked() {
        let op = Operation::TryAcquire;
        assert!(check_key(op, "k").is_ok());
        assert!(check_key(op, "タスク").is_ok());
        assert!(check_key(op, &"k".repeat(MAX_KEY_BYTES)).is_ok());
        assert_eq!(input(check_key(op, "")), "key");
        assert_eq!(input(check_key(op, &"k".repeat(MAX_KEY_BYTES + 1))), "key");
        assert_eq!(input(check_key(op, "a\0b")), "key");
    }

    #[test]
    fn owners_are_checked() {
        let op = Operation::Renew;
        assert!(check_owner(op, "scheduler-1").is_ok());
        assert!(check_owner(op, "host:1234 über").is_ok());
        assert_eq!(input(check_owner(op, "")), "owner");
        assert_eq!(input(check_owner(op, "a\0b")), "owner");
        assert_eq!(input(check_owner(op, "a\nb")), "owner");
        assert_eq!(
            input(check_owner(op, &"o".repeat(MAX_OWNER_BYTES + 1))),
            "owner"
        );
    }

    #[test]
    fn guard_ttls_are_whole_seconds() {
        let op = Operation::TryLock;
        assert_eq!(
            check_ttl_duration(op, Duration::from_secs(30)).ok(),
            Some(30)
        );
        for bad in [
            Duration::ZERO,
            Duration::from_millis(1_500),
            Duration::from_millis(999),
            Duration::from_secs(i32::MAX as u64 + 1),
            Duration::MAX,
        ] {
            assert_eq!(input(check_ttl_duration(op, bad)), "ttl", "{bad:?}");
        }
    }

    #[test]
    fn ttls_are_checked() {
        let op = Operation::TryAcquire;
        assert_eq!(check_ttl(op, 1).ok(), Some(1));
        assert_eq!(check_ttl(op, i32::MAX as u64).ok(), Some(i32::MAX));
        for bad in [0, i32::MAX as u64 + 1, u64::MAX] {
            assert_eq!(input(check_ttl(op, bad)), "ttl_secs");
        }
    }
}
