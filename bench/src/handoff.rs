//! Guards handing a lock on: release -> the next waiter holds it, and a
//! dead holder -> a waiter holds it, against client-go's LeaderElector.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use celers_kube_lease::KubeLeaseLockBackend;
use tokio::sync::watch;

use crate::measure::{Phase, Result, Stats};
use crate::ours::Ours;

/// How long each holder keeps the lock before it hands it on (as the
/// client-go peer does): long enough for the waiters to be watching.
const HOLD_FOR: Duration = Duration::from_millis(100);

/// What the holders share: when the last release began, and how many terms
/// have started (a released holder waits for the next before it queues
/// again, so that every handoff goes to a waiter).
#[derive(Default)]
struct Relay {
    released: Option<Instant>,
    stats: Stats,
    handoffs: usize,
}

impl Ours {
    /// `waiters + 1` clients, each its own backend, take one lock in turn
    /// with `lock()` until `n` handoffs happened; a handoff's latency is the
    /// holder's release call -> the next holder's `lock()` returning.
    pub async fn handoffs(&self, waiters: usize, n: usize) -> Result<Phase> {
        let key = self.keys("handoff", 1).remove(0);
        let relay = Arc::new(Mutex::new(Relay::default()));
        let (terms, _) = watch::channel(0_usize);
        let mut backends = Vec::new();
        for _ in 0..=waiters {
            backends.push(self.fresh_backend()?);
        }
        let work = async {
            let start = Instant::now();
            let tasks: Vec<_> = backends
                .into_iter()
                .enumerate()
                .map(|(i, backend)| {
                    let (key, relay, terms) = (key.clone(), Arc::clone(&relay), terms.clone());
                    let owner = format!("{}-{i}", self.owner());
                    tokio::spawn(hand_on(backend, key, owner, self.ttl, relay, terms, n))
                })
                .collect();
            for task in tasks {
                task.await??;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(start.elapsed())
        };
        let (elapsed, usage) = self.probe().counted(work).await?;
        let elapsed = elapsed?;
        let stats = std::mem::take(&mut relay.lock().map_err(|_| "poisoned")?.stats);
        Ok(stats.phase("handoff", waiters + 1, elapsed, usage))
    }

    /// `trials` holders that die (a lock taken with `try_acquire` and never
    /// renewed) with a guard waiting in `lock()`, both with warm clocks;
    /// the latency is the waiter holding it - (the holder's write + TTL).
    pub async fn dead_holder(&self, trials: usize, ttl_secs: u64) -> Result<Phase> {
        let keys = self.keys("dead-holder", trials);
        let dead = self.fresh_backend()?;
        let waiter = self.fresh_backend()?;
        // Long-running replicas know the server's clock well: answers at
        // many moments narrow the bound to about a round trip.
        for _ in 0..30 {
            dead.is_locked(&keys[0]).await?;
            waiter.is_locked(&keys[0]).await?;
            tokio::time::sleep(Duration::from_millis(47)).await;
        }
        let ttl = Duration::from_secs(ttl_secs);
        let work = async {
            let mut stats = Stats::default();
            let start = Instant::now();
            for key in &keys {
                let written = Instant::now();
                dead.try_acquire(key, "lease-bench-dead", ttl_secs).await?;
                let guard = waiter
                    .lock(key, &self.owner(), ttl, ttl + Duration::from_secs(30))
                    .await?
                    .ok_or("the dead holder's lock was never taken over")?;
                let after = written.elapsed().saturating_sub(ttl);
                stats.record(after, Ok(true));
                guard.release().await?;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((stats, start.elapsed()))
        };
        let (outcome, usage) = self.probe().counted(work).await?;
        let (stats, elapsed) = outcome?;
        Ok(stats.phase("dead_holder", 1, elapsed, usage))
    }
}

async fn hand_on(
    backend: KubeLeaseLockBackend,
    key: String,
    owner: String,
    ttl_secs: u64,
    relay: Arc<Mutex<Relay>>,
    terms: watch::Sender<usize>,
    n: usize,
) -> Result<()> {
    let ttl = Duration::from_secs(ttl_secs);
    let mut seen = terms.subscribe();
    loop {
        if relay.lock().map_err(|_| "poisoned")?.handoffs >= n {
            return Ok(());
        }
        let Some(guard) = backend
            .lock(&key, &owner, ttl, Duration::from_secs(5))
            .await?
        else {
            continue;
        };
        let done = {
            let mut relay = relay.lock().map_err(|_| "poisoned")?;
            if let Some(released) = relay.released.take() {
                relay.stats.record(released.elapsed(), Ok(true));
                relay.handoffs += 1;
            }
            relay.handoffs >= n
        };
        terms.send_modify(|term| *term += 1);
        if done {
            guard.release().await?;
            return Ok(());
        }
        tokio::time::sleep(HOLD_FOR).await;
        let term = *seen.borrow_and_update();
        relay.lock().map_err(|_| "poisoned")?.released = Some(Instant::now());
        guard.release().await?;
        // Queue again only once another client holds the lock.
        while *seen.borrow_and_update() == term {
            let next = tokio::time::timeout(Duration::from_secs(5), seen.changed()).await;
            if next.is_err() || relay.lock().map_err(|_| "poisoned")?.handoffs >= n {
                break;
            }
        }
    }
}
