//! A contender: one owner calling the library on a few keys, logging every
//! call. The same code runs in the test process and in child processes.

use std::collections::HashMap;
use std::time::Duration;

use celers_kube_lease::KubeLeaseLockBackend;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::mono::{mono_ns, wall_unix_ms};
use crate::record::{Line, Op, OpRecord, Outcome};
use crate::MARGIN_NS;

/// What a contender does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A random mix of every call on every key.
    Mix,
    /// Takes the first key and renews it until killed or out of time.
    Hold,
    /// Tries to take the first key until it succeeds, then releases it.
    Take,
    /// Calibrates its clock with reads, takes the first key once and logs
    /// when one TTL has passed by its own clock (which may run slow).
    Once,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "mix" => Ok(Mode::Mix),
            "hold" => Ok(Mode::Hold),
            "take" => Ok(Mode::Take),
            "once" => Ok(Mode::Once),
            other => Err(format!("unknown mode {other:?} (mix, hold, take, once)")),
        }
    }
}

impl Mode {
    /// The name `FromStr` reads.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Mix => "mix",
            Mode::Hold => "hold",
            Mode::Take => "take",
            Mode::Once => "once",
        }
    }
}

/// A contender's instructions.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Its owner identity (unique per contender).
    pub owner: String,
    /// The keys it contends for.
    pub keys: Vec<String>,
    /// TTLs are drawn from this range, in seconds.
    pub ttl_secs: (u64, u64),
    /// How long it runs.
    pub duration: Duration,
    /// Pause between calls, drawn from this range, in ms.
    pub pause_ms: (u64, u64),
    /// Seed of its random choices.
    pub seed: u64,
    /// What it does.
    pub mode: Mode,
}

/// Runs `plan` against `backend`, handing every log line to `emit`.
pub async fn run(backend: &KubeLeaseLockBackend, plan: &Plan, emit: &mut (dyn FnMut(Line) + Send)) {
    emit(Line::Start {
        owner: plan.owner.clone(),
        wall_unix_ms: wall_unix_ms(),
        mono_ns: mono_ns(),
    });
    let mut contender = Contender {
        backend,
        plan,
        emit,
        rng: StdRng::seed_from_u64(plan.seed),
        held_until: HashMap::new(),
        claim_ttl: HashMap::new(),
    };
    if !plan.keys.is_empty() {
        match plan.mode {
            Mode::Mix => contender.mix().await,
            Mode::Hold => contender.hold().await,
            Mode::Take => contender.take().await,
            Mode::Once => contender.once().await,
        }
    }
    emit(Line::Done {
        owner: plan.owner.clone(),
    });
}

struct Contender<'a> {
    backend: &'a KubeLeaseLockBackend,
    plan: &'a Plan,
    emit: &'a mut (dyn FnMut(Line) + Send),
    rng: StdRng,
    /// End of this contender's claim on each key (the checker's rule).
    held_until: HashMap<String, u64>,
    /// The TTL of each claim.
    claim_ttl: HashMap<String, u64>,
}

/// Per-key intentions of a mixing contender while it holds the key.
#[derive(Clone, Copy, Default)]
struct Intent {
    /// When to stop holding.
    finish_at: u64,
    /// Renew when less than this is left of the claim.
    renew_below: u64,
    /// Leave the key alone until then (an abandoned lock expiring).
    neglect_until: u64,
}

const MS: u64 = 1_000_000;

impl Contender<'_> {
    async fn mix(&mut self) {
        let deadline = mono_ns() + duration_ns(self.plan.duration);
        let mut intents: HashMap<String, Intent> = HashMap::new();
        while mono_ns() < deadline {
            self.pause().await;
            let key = self.plan.keys[self.rng.gen_range(0..self.plan.keys.len())].clone();
            let now = mono_ns();
            let intent = intents.get(&key).copied().unwrap_or_default();
            let held_until = self.held_until.get(&key).copied().unwrap_or(0);
            if held_until > now {
                if now >= intent.finish_at {
                    match self.rng.gen_range(0..10) {
                        0..=5 => {
                            self.call(Op::Release, Some(&key)).await;
                        }
                        6 => {
                            self.call(Op::ReleaseAll, None).await;
                        }
                        // Abandon it: stop renewing and let it expire.
                        _ => {
                            let later = self.rng.gen_range(0..2_000) * MS;
                            intents.insert(
                                key.clone(),
                                Intent {
                                    neglect_until: held_until + later,
                                    ..intent
                                },
                            );
                            self.held_until.remove(&key);
                        }
                    }
                } else if held_until - now < intent.renew_below {
                    // The holder may also refresh with try_acquire.
                    let op = if self.rng.gen_bool(0.15) {
                        Op::TryAcquire
                    } else {
                        Op::Renew
                    };
                    self.call(op, Some(&key)).await;
                } else if self.rng.gen_bool(0.1) {
                    self.call(Op::Owner, Some(&key)).await;
                }
            } else if intent.neglect_until > now {
                if self.rng.gen_bool(0.05) {
                    self.call(Op::Owner, Some(&key)).await;
                }
            } else {
                // Stray calls on a key it does not hold are part of the mix.
                let op = match self.rng.gen_range(0..100) {
                    0..=79 => Op::TryAcquire,
                    80..=85 => Op::Renew,
                    86..=92 => Op::Release,
                    93..=94 => Op::ReleaseAll,
                    95..=96 => Op::SweepExpired,
                    _ => Op::Owner,
                };
                let key_arg =
                    (!matches!(op, Op::ReleaseAll | Op::SweepExpired)).then_some(key.as_str());
                self.call(op, key_arg).await;
                if self
                    .held_until
                    .get(&key)
                    .is_some_and(|until| *until > mono_ns())
                {
                    let ttl_ns = self.held_until[&key].saturating_sub(now);
                    intents.insert(
                        key.clone(),
                        Intent {
                            finish_at: mono_ns() + self.rng.gen_range(200..3_000) * MS,
                            renew_below: ttl_ns * self.rng.gen_range(20..70) / 100,
                            neglect_until: 0,
                        },
                    );
                }
            }
        }
    }

    async fn hold(&mut self) {
        let deadline = mono_ns() + duration_ns(self.plan.duration);
        let key = self.plan.keys[0].clone();
        while mono_ns() < deadline {
            let held = self
                .held_until
                .get(&key)
                .is_some_and(|until| *until > mono_ns());
            let op = if held { Op::Renew } else { Op::TryAcquire };
            self.call(op, Some(&key)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn take(&mut self) {
        let deadline = mono_ns() + duration_ns(self.plan.duration);
        let key = self.plan.keys[0].clone();
        while mono_ns() < deadline {
            if self.call(Op::TryAcquire, Some(&key)).await == Outcome::True {
                self.call(Op::Release, Some(&key)).await;
                return;
            }
            self.pause().await;
        }
    }

    async fn once(&mut self) {
        let key = self.plan.keys[0].clone();
        // Responses at many moments narrow the clock's bound to about a
        // round trip, so no slack in it hides a drift.
        for _ in 0..100 {
            self.call(Op::Owner, Some(&key)).await;
            tokio::time::sleep(Duration::from_millis(23)).await;
        }
        let own_sent = tokio::time::Instant::now();
        if self.call(Op::TryAcquire, Some(&key)).await != Outcome::True {
            return;
        }
        let ttl = self.claim_ttl.get(&key).copied().unwrap_or_default();
        tokio::time::sleep_until(own_sent + Duration::from_secs(ttl)).await;
        (self.emit)(Line::WindowEnd {
            owner: self.plan.owner.clone(),
            mono_ns: mono_ns(),
        });
    }

    async fn pause(&mut self) {
        let (low, high) = self.plan.pause_ms;
        let ms = self.rng.gen_range(low..=high.max(low));
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Makes one call, logs it and applies the claim rule.
    async fn call(&mut self, op: Op, key: Option<&str>) -> Outcome {
        let (low, high) = self.plan.ttl_secs;
        let holding = key
            .and_then(|k| self.held_until.get(k))
            .is_some_and(|until| *until > mono_ns());
        // A claim keeps its TTL: a renewal whose answer is lost must not
        // shorten the lock behind the holder's back.
        let ttl = match (op, key.and_then(|k| self.claim_ttl.get(k))) {
            (Op::TryAcquire | Op::Renew, Some(ttl)) if holding => *ttl,
            (Op::TryAcquire | Op::Renew, _) => self.rng.gen_range(low..=high.max(low)),
            _ => 0,
        };
        let backend = self.backend;
        let owner = self.plan.owner.as_str();
        let k = key.unwrap_or_default();
        let sent_ns = mono_ns();
        let outcome = match op {
            Op::TryAcquire => Outcome::of_bool(&backend.try_acquire(k, owner, ttl).await),
            Op::Renew => Outcome::of_bool(&backend.renew(k, owner, ttl).await),
            Op::Release => Outcome::of_bool(&backend.release(k, owner).await),
            Op::ReleaseAll => match backend.release_all(owner).await {
                Ok(n) => Outcome::Count { n },
                Err(e) => Outcome::of_error(&e),
            },
            Op::SweepExpired => match backend.sweep_expired().await {
                Ok(n) => Outcome::Count { n },
                Err(e) => Outcome::of_error(&e),
            },
            Op::Owner => match backend.owner(k).await {
                Ok(holder) => Outcome::Holder { holder },
                Err(e) => Outcome::of_error(&e),
            },
            other => unreachable!("contenders never call {other}"),
        };
        let recv_ns = mono_ns();
        match (op, &outcome) {
            (Op::TryAcquire | Op::Renew, Outcome::True) => {
                let until = (sent_ns + ttl * 1_000 * MS).saturating_sub(MARGIN_NS);
                self.held_until.insert(k.to_owned(), until);
                self.claim_ttl.insert(k.to_owned(), ttl);
            }
            (Op::Release, _) => {
                self.held_until.remove(k);
            }
            (Op::ReleaseAll, _) => self.held_until.clear(),
            _ => {}
        }
        (self.emit)(Line::Op(OpRecord {
            owner: owner.to_owned(),
            op,
            key: key.map(str::to_owned),
            ttl_secs: ttl,
            sent_ns,
            recv_ns,
            outcome: outcome.clone(),
        }));
        if holding && outcome == Outcome::False && matches!(op, Op::TryAcquire | Op::Renew) {
            let holder = backend.owner(k).await.map_err(|e| e.to_string());
            (self.emit)(Line::Recheck {
                owner: owner.to_owned(),
                key: k.to_owned(),
                mono_ns: mono_ns(),
                holder,
            });
        }
        outcome
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
