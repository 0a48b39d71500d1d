//! Fencing tokens (see [`FencingToken`]).

use std::fmt;

/// The fencing token of a guard's tenure: the resourceVersion of the write
/// that started it. Renewals keep it; every later tenure of any lock gets a
/// larger one.
///
/// The resourceVersions of an API server backed by etcd are etcd's revision:
/// a decimal integer that increases with every write, cluster-wide (since
/// Kubernetes 1.35, KEP-5504, the API promises it; older servers backed by
/// etcd behave the same without the promise).
/// The resourceVersion of the write that starts a tenure (a create, a
/// takeover, or a new term of one's own lock) is therefore larger than that
/// of every earlier tenure of any lock of the namespace, including tenures
/// of a Lease that was since deleted and created again (unlike
/// `leaseTransitions`, which starts again at 0).
///
/// A store that keeps the highest token it has seen per resource and
/// rejects writes carrying a lower one turns the advisory lock into a safe
/// one: a holder that paused past its TTL and woke up after another took
/// over carries a lower token, and its writes are refused. The token does
/// not stop the paused holder from acting on things that check no token.
///
/// Tokens go backwards if etcd is restored from a snapshot without
/// `etcdutl snapshot restore --bump-revision`: a store that checks tokens
/// then refuses the new holders until the revision passes the highest token
/// it saw (safe, but stuck).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FencingToken(u64);

impl FencingToken {
    /// The token as a number, to store beside what it guards.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The token of a write answered with `resource_version`, if that is a
    /// decimal integer (an API server backed by etcd).
    pub(crate) fn from_resource_version(resource_version: &str) -> Option<Self> {
        if resource_version.is_empty() || !resource_version.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        resource_version.parse().ok().map(Self)
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_decimal_resource_versions() {
        let token = FencingToken::from_resource_version("123456").expect("decimal");
        assert_eq!(token.get(), 123_456);
        assert_eq!(token.to_string(), "123456");
        assert!(
            FencingToken::from_resource_version("9") < FencingToken::from_resource_version("10")
        );
        for opaque in [
            "",
            "+1",
            "-1",
            "1e3",
            "abc",
            "12a",
            " 1",
            "99999999999999999999999",
        ] {
            assert_eq!(
                FencingToken::from_resource_version(opaque),
                None,
                "{opaque:?}"
            );
        }
    }
}
