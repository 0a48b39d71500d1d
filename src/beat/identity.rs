//! Who a replica is: its identity (the pod name), and the owner string its
//! leader lock is held under, which no other process can present.

use crate::error::{Error, Operation, Result};

/// The environment variables [`identity_from_env`] reads, in order.
const IDENTITY_VARIABLES: [&str; 2] = ["POD_NAME", "HOSTNAME"];

/// The replica's identity from `POD_NAME` (the Downward API's
/// `metadata.name`), else `HOSTNAME` (a pod's hostname is its name unless
/// the pod sets another).
pub fn identity_from_env() -> Result<String> {
    identity_from(|name| std::env::var(name).ok())
}

/// [`identity_from_env`] over any source of variables.
pub(crate) fn identity_from(var: impl Fn(&str) -> Option<String>) -> Result<String> {
    IDENTITY_VARIABLES
        .iter()
        .find_map(|name| var(name).filter(|value| !value.trim().is_empty()))
        .ok_or_else(|| Error::InvalidConfig {
            operation: Operation::IdentityFromEnv,
            setting: "identity",
            reason: "neither POD_NAME nor HOSTNAME is set: set POD_NAME from the Downward API \
                     (fieldRef metadata.name)"
                .to_owned(),
        })
}

/// The owner string of one `KubeBeat`: its identity and a random suffix,
/// as client-go's examples do (`hostname_uuid`). Two processes given the
/// same identity (a reused pod name, a copied environment) still hold the
/// leader lock under different owners, so the lock excludes one of them.
pub(crate) fn unique_owner(identity: &str) -> String {
    format!("{identity}_{}", crate::naming::random_suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_name_comes_first_then_the_hostname() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            }
        };
        let both = env(&[("POD_NAME", "beat-7d9f-abcde"), ("HOSTNAME", "host")]);
        assert_eq!(identity_from(both).ok().as_deref(), Some("beat-7d9f-abcde"));
        let host = env(&[("POD_NAME", " "), ("HOSTNAME", "host")]);
        assert_eq!(identity_from(host).ok().as_deref(), Some("host"));
        let error = identity_from(env(&[])).expect_err("no identity");
        let message = error.to_string();
        assert!(
            message.contains("POD_NAME") && message.contains("HOSTNAME"),
            "{message}"
        );
    }

    #[test]
    fn two_beats_with_one_identity_have_different_owners() {
        let (a, b) = (unique_owner("pod"), unique_owner("pod"));
        assert_ne!(a, b);
        assert!(a.starts_with("pod_") && b.starts_with("pod_"));
    }
}
