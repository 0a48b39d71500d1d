//! The celers-core trait implementations: thin adapters over the inherent
//! methods of [`KubeLeaseLockBackend`], and the mapping of [`Error`] onto
//! `CelersError`.

use crate::backend::KubeLeaseLockBackend;
use crate::error::{Class, Error};

/// Implements `DistributedLockBackend` and `From<Error> for CelersError` of
/// one celers-core version (0.2 and 0.3 have identical `lock` and `error`
/// modules).
macro_rules! impl_celers_core {
    ($core:ident $(, $attr:meta)*) => {
        $(#[$attr])*
        impl From<Error> for $core::error::CelersError {
            fn from(error: Error) -> Self {
                let message = describe(&error);
                match error.class() {
                    Class::Configuration => Self::Configuration(message),
                    Class::Timeout => Self::Timeout(message),
                    Class::Broker => Self::Broker(message),
                }
            }
        }

        $(#[$attr])*
        #[async_trait::async_trait]
        impl $core::lock::DistributedLockBackend for KubeLeaseLockBackend {
            async fn try_acquire(
                &self,
                key: &str,
                owner: &str,
                ttl_secs: u64,
            ) -> $core::error::Result<bool> {
                Ok(KubeLeaseLockBackend::try_acquire(self, key, owner, ttl_secs).await?)
            }

            async fn release(&self, key: &str, owner: &str) -> $core::error::Result<bool> {
                Ok(KubeLeaseLockBackend::release(self, key, owner).await?)
            }

            async fn renew(
                &self,
                key: &str,
                owner: &str,
                ttl_secs: u64,
            ) -> $core::error::Result<bool> {
                Ok(KubeLeaseLockBackend::renew(self, key, owner, ttl_secs).await?)
            }

            async fn is_locked(&self, key: &str) -> $core::error::Result<bool> {
                Ok(KubeLeaseLockBackend::is_locked(self, key).await?)
            }

            async fn owner(&self, key: &str) -> $core::error::Result<Option<String>> {
                Ok(KubeLeaseLockBackend::owner(self, key).await?)
            }

            async fn release_all(&self, owner: &str) -> $core::error::Result<u64> {
                Ok(KubeLeaseLockBackend::release_all(self, owner).await?)
            }
        }
    };
}

/// The error and its causes, as one message: `CelersError` keeps only text.
/// Causes whose text is already in the message (many errors repeat their
/// source's text) are not repeated.
fn describe(error: &Error) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl_celers_core!(celers_core);
#[cfg(feature = "celers-core-03")]
impl_celers_core!(
    celers_core_03,
    cfg_attr(docsrs, doc(cfg(feature = "celers-core-03")))
);

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use celers_core::error::CelersError;

    use crate::error::{Operation, Target};

    use super::*;

    fn target() -> Target {
        Target {
            namespace: "ns".into(),
            key: Some("k".into()),
            lease: Some("k-0".into()),
        }
    }

    #[test]
    fn errors_map_onto_celers_errors() {
        let invalid = Error::InvalidInput {
            operation: Operation::TryAcquire,
            input: "key",
            reason: "must not be empty".into(),
        };
        assert!(
            matches!(CelersError::from(invalid), CelersError::Configuration(m) if m.contains("invalid key"))
        );
        let timeout = Error::Timeout {
            operation: Operation::Renew,
            target: target(),
            timeout: Duration::from_secs(1),
        };
        assert!(matches!(
            CelersError::from(timeout),
            CelersError::Timeout(_)
        ));
        let api = Error::Api {
            operation: Operation::Release,
            target: target(),
            status: 500,
            reason: "InternalError".into(),
            message: "etcd is down".into(),
        };
        let mapped = CelersError::from(api);
        assert!(mapped.is_retryable());
        assert!(matches!(mapped, CelersError::Broker(m) if m.contains("HTTP 500")));
    }

    #[test]
    fn the_backend_is_a_cheap_shareable_trait_object() {
        fn shareable<T: Clone + std::fmt::Debug + Send + Sync + 'static>() {}
        shareable::<KubeLeaseLockBackend>();
        let _: fn(KubeLeaseLockBackend) -> Arc<dyn celers_core::lock::DistributedLockBackend> =
            |backend| Arc::new(backend);
        #[cfg(feature = "celers-core-03")]
        let _: fn(
            KubeLeaseLockBackend,
        ) -> Arc<dyn celers_core_03::lock::DistributedLockBackend> = |backend| Arc::new(backend);
    }

    #[test]
    fn celers_errors_carry_the_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::Transport {
            operation: Operation::Owner,
            target: target(),
            source: Box::new(kube::Error::ReadEvents(cause)),
        };
        match CelersError::from(error) {
            CelersError::Broker(message) => assert_eq!(
                message,
                "owner of lock \"k\" (Lease ns/k-0): the API server could not be reached: \
                 Error reading events stream: refused"
            ),
            other => panic!("{other:?}"),
        }
    }
}
