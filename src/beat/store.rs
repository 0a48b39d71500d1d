//! The ledger's I/O: read a beat's ledger, move an entry forward, delete
//! the entry of a removed schedule entry. Each write is conditional on the
//! resourceVersion it was decided from; a write that loses reads the entry
//! again and decides again ([`ledger::claim`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::ledger::{self, Claim, Entry};
use super::KubeBeat;
use crate::api::Failure;
use crate::error::{Error, Operation, Result};
use crate::fencing::FencingToken;
use crate::naming::Lock;

const OP: Operation = Operation::BeatTick;

impl KubeBeat {
    /// Every entry of this beat's ledger (paginated list by label).
    pub(super) async fn load_ledger(&self) -> Result<HashMap<String, Entry>> {
        let api = &self.backend.inner.api;
        let selector = self.marks.selector(&self.name);
        let page_size = self.backend.inner.config.page_size;
        let mut ledger = HashMap::new();
        let mut continue_token = None;
        loop {
            let page = api
                .list(&selector, page_size, continue_token)
                .await
                .map_err(|failure| self.backend.failed(OP, None, failure))?;
            for lease in &page.items {
                if let Some((entry, record)) = self.marks.read(&self.name, lease) {
                    ledger.insert(entry, record);
                }
            }
            continue_token = page
                .metadata
                .continue_token
                .filter(|token| !token.is_empty());
            if continue_token.is_none() {
                return Ok(ledger);
            }
        }
    }

    /// Records `instant` of `entry` as fired by this tenure, unless it (or a
    /// later instant) was fired already or a later leader wrote the entry.
    /// `current` is the entry as last seen, and is kept up to date.
    pub(super) async fn claim(
        &self,
        current: &mut Option<Entry>,
        entry: &str,
        instant: DateTime<Utc>,
        token: FencingToken,
    ) -> Result<Claim> {
        let key = ledger::key(&self.name, entry);
        let lock = Lock::new(&key);
        let api = &self.backend.inner.api;
        let retries = self.backend.inner.config.conflict_retries;
        for _ in 0..=retries {
            match ledger::claim(current.as_ref(), instant, token) {
                Claim::Write => {}
                decided => return Ok(decided),
            }
            let written = match current {
                None => {
                    let lease =
                        self.marks
                            .new_lease(&self.name, entry, &self.owner, instant, token);
                    api.create(&lease).await
                }
                Some(seen) => {
                    let lease = self.marks.replacement(seen, &self.owner, instant, token);
                    api.replace(&lock.name, &lease).await
                }
            };
            match written {
                Ok(lease) => {
                    *current = self.marks.read(&self.name, &lease).map(|(_, entry)| entry);
                    return Ok(Claim::Write);
                }
                // 404 on a create means the namespace is missing, not a race.
                Err(failure)
                    if lost_race(&failure)
                        && (current.is_some() || failure.code() == Some(409)) =>
                {
                    *current = self.read_entry(&lock, entry).await?;
                }
                Err(failure) => return Err(self.backend.failed(OP, Some(&lock), failure)),
            }
        }
        Err(Error::Contended {
            operation: OP,
            target: self.backend.target(Some(&lock)),
            attempts: retries.saturating_add(1),
        })
    }

    /// Deletes the ledger entry of an entry the scheduler no longer has, if
    /// nobody wrote it since it was read.
    pub(super) async fn forget(&self, entry: &str, seen: &Entry) -> Result<()> {
        let key = ledger::key(&self.name, entry);
        let lock = Lock::new(&key);
        match self
            .backend
            .inner
            .api
            .delete(&lock.name, &seen.resource_version, &seen.uid)
            .await
        {
            Ok(()) => Ok(()),
            Err(failure) if lost_race(&failure) => Ok(()),
            Err(failure) => Err(self.backend.failed(OP, Some(&lock), failure)),
        }
    }

    async fn read_entry(&self, lock: &Lock, entry: &str) -> Result<Option<Entry>> {
        let lease = self
            .backend
            .inner
            .api
            .get(&lock.name)
            .await
            .map_err(|failure| self.backend.failed(OP, Some(lock), failure))?;
        match lease {
            None => Ok(None),
            Some(lease) => match self.marks.read(&self.name, &lease) {
                Some((name, record)) if name == entry => Ok(Some(record)),
                _ => Err(Error::ForeignLease {
                    operation: OP,
                    target: self.backend.target(Some(lock)),
                }),
            },
        }
    }
}

/// 409 (changed or created since read) or 404 (deleted since read).
fn lost_race(failure: &Failure) -> bool {
    matches!(failure.code(), Some(409 | 404))
}
