//! The bad-input table: each input gets a documented `Err` or a defined
//! answer, a rejected call writes nothing, and other locks stay intact.

use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use celers_kube_lease::{lease_name, KubeLeaseLockBackend, MAX_KEY_BYTES, MAX_OWNER_BYTES};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

use crate::cluster::{self, Connect};
use crate::proxy::Proxy;
use crate::record::error_kind;
use crate::Result;

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Case {
    /// What was tried.
    pub name: String,
    /// The documented answer.
    pub expected: String,
    /// The answer.
    pub got: String,
    /// Whether they agree (and nothing was written by a rejected call).
    pub ok: bool,
    /// A set-up or clean-up step rather than a check.
    pub setup: bool,
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.ok { "ok" } else { "FAILED" };
        write!(
            f,
            "{mark}: {}: expected {}, got {}",
            self.name, self.expected, self.got
        )
    }
}

/// `Ok(..)` or `Err(Variant)`.
fn show<T: Debug>(result: &celers_kube_lease::Result<T>) -> String {
    match result {
        Ok(value) => format!("Ok({value:?})"),
        Err(e) => format!("Err({})", error_kind(e)),
    }
}

struct Table {
    client: Client,
    namespace: String,
    leases: Api<Lease>,
    cases: Vec<Case>,
}

impl Table {
    /// Name → resourceVersion of every Lease in the namespace.
    async fn snapshot(&self) -> Result<BTreeMap<String, String>> {
        let list = self.leases.list(&Default::default()).await?;
        Ok(list
            .items
            .into_iter()
            .map(|l| {
                (
                    l.metadata.name.unwrap_or_default(),
                    l.metadata.resource_version.unwrap_or_default(),
                )
            })
            .collect())
    }

    fn record(&mut self, name: &str, expected: String, got: String, ok: bool) {
        self.cases.push(Case {
            name: name.to_owned(),
            expected,
            got,
            ok,
            setup: name.starts_with("setup:") || name.starts_with("clean-up:"),
        });
    }

    /// The call must fail with `kind` and change no Lease.
    async fn rejected<T: Debug>(
        &mut self,
        name: &str,
        kind: &str,
        call: impl Future<Output = celers_kube_lease::Result<T>>,
    ) -> Result<()> {
        let before = self.snapshot().await?;
        let result = call.await;
        let after = self.snapshot().await?;
        let mut got = show(&result);
        if before != after {
            got.push_str(", and Leases changed");
        }
        let ok = got == format!("Err({kind})");
        self.record(name, format!("Err({kind}), nothing written"), got, ok);
        Ok(())
    }

    /// The call must answer `expected`.
    async fn answers<T: Debug + PartialEq>(
        &mut self,
        name: &str,
        expected: T,
        call: impl Future<Output = celers_kube_lease::Result<T>>,
    ) {
        let result = call.await;
        let ok = matches!(&result, Ok(v) if *v == expected);
        self.record(name, format!("Ok({expected:?})"), show(&result), ok);
    }

    /// Edits the Lease of `key` by hand; `Err` with the status if the API
    /// server refuses the edit.
    async fn edit(&self, key: &str, patch: serde_json::Value) -> Result<Option<u16>> {
        let name = lease_name(key);
        match self
            .leases
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(status)) if (400..500).contains(&status.code) => {
                Ok(Some(status.code))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Runs every case against the control plane of `kubeconfig`.
pub async fn run(kubeconfig: &Path) -> Result<Vec<Case>> {
    let client = cluster::client(kubeconfig, &Connect::default()).await?;
    let namespace = cluster::create_namespace(&client, "reliability-input").await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let mut t = Table {
        client,
        namespace,
        leases,
        cases: Vec::new(),
    };
    let b = cluster::backend(t.client.clone(), &t.namespace, Duration::from_secs(10))?;

    // Another lock that every case must leave alone.
    let sentinel = "reliability/sentinel";
    t.answers(
        "setup: a sentinel lock",
        true,
        b.try_acquire(sentinel, "sentinel-owner", 3600),
    )
    .await;
    let sentinel_before = t.snapshot().await?.get(&lease_name(sentinel)).cloned();

    keys_and_owners(&mut t, &b).await?;
    ttls(&mut t, &b).await?;
    settings_and_environment(&mut t, kubeconfig).await?;
    foreign_lease(&mut t, &b).await?;
    edited_leases(&mut t, &b).await?;

    let sentinel_after = t.snapshot().await?.get(&lease_name(sentinel)).cloned();
    let owner = b.owner(sentinel).await;
    let intact =
        sentinel_before == sentinel_after && matches!(&owner, Ok(Some(o)) if o == "sentinel-owner");
    t.record(
        "afterwards: the sentinel lock",
        "unchanged, held by sentinel-owner".to_owned(),
        format!(
            "{} ({})",
            show(&owner),
            if intact { "unchanged" } else { "CHANGED" }
        ),
        intact,
    );
    t.answers(
        "clean-up: release the sentinel",
        true,
        b.release(sentinel, "sentinel-owner"),
    )
    .await;
    Ok(t.cases)
}

async fn keys_and_owners(t: &mut Table, b: &KubeLeaseLockBackend) -> Result<()> {
    let long_key = "k".repeat(MAX_KEY_BYTES + 1);
    let long_owner = "o".repeat(MAX_OWNER_BYTES + 1);
    t.rejected("empty key", "InvalidInput(key)", b.try_acquire("", "o", 10))
        .await?;
    t.rejected(
        "key of MAX_KEY_BYTES + 1 bytes",
        "InvalidInput(key)",
        b.try_acquire(&long_key, "o", 10),
    )
    .await?;
    t.rejected(
        "key with a NUL",
        "InvalidInput(key)",
        b.try_acquire("a\0b", "o", 10),
    )
    .await?;
    t.rejected(
        "is_locked of a key with a NUL",
        "InvalidInput(key)",
        b.is_locked("a\0b"),
    )
    .await?;
    t.rejected(
        "empty owner",
        "InvalidInput(owner)",
        b.try_acquire("k", "", 10),
    )
    .await?;
    t.rejected(
        "owner of MAX_OWNER_BYTES + 1 bytes",
        "InvalidInput(owner)",
        b.try_acquire("k", &long_owner, 10),
    )
    .await?;
    t.rejected(
        "owner with a NUL",
        "InvalidInput(owner)",
        b.try_acquire("k", "a\0b", 10),
    )
    .await?;
    t.rejected(
        "owner with a newline",
        "InvalidInput(owner)",
        b.renew("k", "a\nb", 10),
    )
    .await?;
    t.rejected(
        "release_all of an empty owner",
        "InvalidInput(owner)",
        b.release_all(""),
    )
    .await?;

    // Accepted oddities: a defined result each.
    let huge_key = "k".repeat(MAX_KEY_BYTES);
    t.answers(
        "key of exactly MAX_KEY_BYTES bytes: acquire",
        true,
        b.try_acquire(&huge_key, "o", 10),
    )
    .await;
    t.answers(
        "key of exactly MAX_KEY_BYTES bytes: owner",
        Some("o".to_owned()),
        b.owner(&huge_key),
    )
    .await;
    t.answers(
        "key of exactly MAX_KEY_BYTES bytes: release",
        true,
        b.release(&huge_key, "o"),
    )
    .await;
    let odd_key = "\u{FFFD}\u{FEFF}\u{00FF}\u{00FE}\u{7F}/../タスク";
    t.answers(
        "non-UTF-8-looking key (U+FFFD, BOM, ÿþ, DEL): acquire",
        true,
        b.try_acquire(odd_key, "o", 10),
    )
    .await;
    t.answers(
        "same key, another owner",
        false,
        b.try_acquire(odd_key, "p", 10),
    )
    .await;
    t.answers(
        "a key differing only in case is another lock",
        true,
        b.try_acquire("TASK", "p", 10),
    )
    .await;
    t.answers("... and its twin", true, b.try_acquire("task", "q", 10))
        .await;
    let odd_owner = "  über owner: 100% \u{FFFD}  ";
    t.answers(
        "owner with spaces and non-ASCII: acquire",
        true,
        b.try_acquire("odd-owner", odd_owner, 10),
    )
    .await;
    t.answers(
        "... owner() returns it verbatim",
        Some(odd_owner.to_owned()),
        b.owner("odd-owner"),
    )
    .await;
    t.answers(
        "... release_all finds it by its sanitized label",
        1,
        b.release_all(odd_owner),
    )
    .await;
    for (key, owner) in [(odd_key, "o"), ("TASK", "p"), ("task", "q")] {
        t.answers(
            &format!("clean-up: release {key:?}"),
            true,
            b.release(key, owner),
        )
        .await;
    }
    Ok(())
}

async fn ttls(t: &mut Table, b: &KubeLeaseLockBackend) -> Result<()> {
    t.rejected(
        "TTL 0",
        "InvalidInput(ttl_secs)",
        b.try_acquire("ttl", "o", 0),
    )
    .await?;
    t.rejected(
        "renew with TTL 0",
        "InvalidInput(ttl_secs)",
        b.renew("ttl", "o", 0),
    )
    .await?;
    t.rejected(
        "TTL i32::MAX + 1",
        "InvalidInput(ttl_secs)",
        b.try_acquire("ttl", "o", i32::MAX as u64 + 1),
    )
    .await?;
    t.rejected(
        "TTL u64::MAX",
        "InvalidInput(ttl_secs)",
        b.try_acquire("ttl", "o", u64::MAX),
    )
    .await?;
    t.answers("TTL 1: acquire", true, b.try_acquire("ttl-1", "o", 1))
        .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    t.answers(
        "TTL 1: expired 2.5 s later, another owner takes it",
        true,
        b.try_acquire("ttl-1", "p", 1),
    )
    .await;
    t.answers(
        "TTL i32::MAX: acquire",
        true,
        b.try_acquire("ttl-max", "o", i32::MAX as u64),
    )
    .await;
    t.answers("TTL i32::MAX: held", true, b.is_locked("ttl-max"))
        .await;
    t.answers(
        "TTL i32::MAX: renew",
        true,
        b.renew("ttl-max", "o", i32::MAX as u64),
    )
    .await;
    t.answers("TTL i32::MAX: release", true, b.release("ttl-max", "o"))
        .await;
    t.answers("clean-up: release_all(p)", 1, b.release_all("p"))
        .await;
    Ok(())
}

async fn settings_and_environment(t: &mut Table, kubeconfig: &Path) -> Result<()> {
    let client = t.client.clone();
    // The builder refuses an invalid namespace; `new` sends nothing ever.
    let built = KubeLeaseLockBackend::builder(client.clone())
        .namespace("Not_A_Namespace")
        .build();
    let got = match &built {
        Ok(_) => "Ok(backend)".to_owned(),
        Err(e) => format!("Err({})", error_kind(e)),
    };
    t.record(
        "builder with namespace \"Not_A_Namespace\"",
        "Err(InvalidConfig(namespace))".to_owned(),
        got.clone(),
        got == "Err(InvalidConfig(namespace))",
    );
    for (what, built, setting) in [
        (
            "new() with namespace \"Not_A_Namespace\"",
            KubeLeaseLockBackend::new(client.clone(), "Not_A_Namespace"),
            "namespace",
        ),
        (
            "builder with sweep_grace Duration::MAX",
            KubeLeaseLockBackend::builder(client.clone())
                .sweep_grace(Duration::MAX)
                .build(),
            "sweep_grace",
        ),
        (
            "builder with request_timeout Duration::MAX",
            KubeLeaseLockBackend::builder(client.clone())
                .request_timeout(Duration::MAX)
                .build(),
            "request_timeout",
        ),
        (
            "builder with api_server_skew Duration::MAX",
            KubeLeaseLockBackend::builder(client.clone())
                .api_server_skew(Duration::MAX)
                .build(),
            "api_server_skew",
        ),
    ] {
        let expected = format!("Err(InvalidConfig({setting}))");
        let got = match &built {
            Ok(_) => "Ok(backend)".to_owned(),
            Err(e) => format!("Err({})", error_kind(e)),
        };
        let ok = got == expected;
        t.record(what, expected, got, ok);
    }

    let missing = cluster::backend(
        client.clone(),
        "no-such-namespace-here",
        Duration::from_secs(5),
    )?;
    t.rejected(
        "namespace that does not exist: try_acquire",
        "Api(404)",
        missing.try_acquire("k", "o", 10),
    )
    .await?;
    t.answers(
        "namespace that does not exist: is_locked",
        false,
        missing.is_locked("k"),
    )
    .await;

    // A ServiceAccount without any RoleBinding.
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &t.namespace);
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "no-rbac" }
    }))?;
    accounts.create(&PostParams::default(), &account).await?;
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({ "spec": { "audiences": [] } }))?;
    let token = accounts
        .create_token_request("no-rbac", &PostParams::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or("the TokenRequest has no token")?;
    let unauthorized = cluster::backend(
        cluster::client_with_token(kubeconfig, &token).await?,
        &t.namespace,
        Duration::from_secs(5),
    )?;
    t.rejected(
        "token without RBAC: try_acquire",
        "Api(403)",
        unauthorized.try_acquire("k", "o", 10),
    )
    .await?;
    t.rejected(
        "token without RBAC: is_locked",
        "Api(403)",
        unauthorized.is_locked("k"),
    )
    .await?;
    t.rejected(
        "token without RBAC: release_all",
        "Api(403)",
        unauthorized.release_all("o"),
    )
    .await?;
    t.rejected(
        "token without RBAC: sweep_expired",
        "Api(403)",
        unauthorized.sweep_expired(),
    )
    .await?;

    // Nothing listens on a port that was just closed.
    let closed = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await?
        .local_addr()?
        .port();
    let down = cluster::backend(
        cluster::client(
            kubeconfig,
            &Connect {
                server_port: Some(closed),
                ..Connect::default()
            },
        )
        .await?,
        &t.namespace,
        Duration::from_secs(5),
    )?;
    t.rejected(
        "API server down (closed port): try_acquire",
        "Transport",
        down.try_acquire("k", "o", 10),
    )
    .await?;
    t.rejected(
        "API server down: release_all",
        "Transport",
        down.release_all("o"),
    )
    .await?;

    // An API server that accepts connections and never answers.
    let silent = Proxy::start(cluster::server_addr(kubeconfig)?).await?;
    silent.blackhole(true);
    let hung = cluster::backend(
        cluster::client(
            kubeconfig,
            &Connect {
                server_port: Some(silent.port()),
                ..Connect::default()
            },
        )
        .await?,
        &t.namespace,
        Duration::from_millis(300),
    )?;
    let started = std::time::Instant::now();
    t.rejected(
        "API server silent, request_timeout 300 ms: renew",
        "Timeout",
        hung.renew("k", "o", 10),
    )
    .await?;
    let took = started.elapsed();
    t.record(
        "... and the call returned within 2 s",
        "< 2 s".to_owned(),
        format!("{:.2} s", took.as_secs_f64()),
        took < Duration::from_secs(2),
    );
    Ok(())
}

async fn foreign_lease(t: &mut Table, b: &KubeLeaseLockBackend) -> Result<()> {
    let key = "reliability/foreign";
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": lease_name(key) },
        "spec": { "holderIdentity": "another-program", "leaseDurationSeconds": 1 }
    }))?;
    t.leases.create(&PostParams::default(), &lease).await?;
    t.rejected(
        "foreign Lease with the computed name: try_acquire",
        "ForeignLease",
        b.try_acquire(key, "o", 10),
    )
    .await?;
    t.rejected(
        "... renew",
        "ForeignLease",
        b.renew(key, "another-program", 10),
    )
    .await?;
    t.rejected(
        "... release",
        "ForeignLease",
        b.release(key, "another-program"),
    )
    .await?;
    t.rejected("... owner", "ForeignLease", b.owner(key))
        .await?;
    t.rejected("... is_locked", "ForeignLease", b.is_locked(key))
        .await?;
    let before = t.snapshot().await?;
    t.answers(
        "... release_all of its holder deletes nothing",
        0,
        b.release_all("another-program"),
    )
    .await;
    t.answers("... sweep_expired deletes nothing", 0, b.sweep_expired())
        .await;
    let after = t.snapshot().await?;
    t.record(
        "... the foreign Lease is unchanged",
        "same resourceVersion".to_owned(),
        if before == after {
            "unchanged"
        } else {
            "CHANGED"
        }
        .to_owned(),
        before == after,
    );
    Ok(())
}

/// A Lease of this crate edited by hand, the expected answer of another
/// owner's `try_acquire` afterwards, and what the edit means.
struct Edit {
    name: &'static str,
    patch: serde_json::Value,
    taken_over: bool,
}

async fn edited_leases(t: &mut Table, b: &KubeLeaseLockBackend) -> Result<()> {
    use serde_json::json;
    let edits = [
        Edit {
            name: "spec removed",
            patch: json!({ "spec": null }),
            taken_over: true,
        },
        Edit {
            name: "leaseDurationSeconds 0",
            patch: json!({ "spec": { "leaseDurationSeconds": 0 } }),
            taken_over: true,
        },
        Edit {
            name: "leaseDurationSeconds -5",
            patch: json!({ "spec": { "leaseDurationSeconds": -5 } }),
            taken_over: true,
        },
        Edit {
            name: "renewTime and acquireTime removed",
            patch: json!({ "spec": { "renewTime": null, "acquireTime": null } }),
            taken_over: true,
        },
        Edit {
            name: "renewTime removed (acquireTime stands in: still live)",
            patch: json!({ "spec": { "renewTime": null } }),
            taken_over: false,
        },
        Edit {
            name: "holderIdentity empty",
            patch: json!({ "spec": { "holderIdentity": "" } }),
            taken_over: true,
        },
        Edit {
            name: "holderIdentity whitespace (a live holder named \"   \")",
            patch: json!({ "spec": { "holderIdentity": "   " } }),
            taken_over: false,
        },
        Edit {
            name: "renewTime not a time",
            patch: json!({ "spec": { "renewTime": "yesterday" } }),
            taken_over: true,
        },
        Edit {
            name: "renewTime in 1970 (expired)",
            patch: json!({ "spec": { "renewTime": "1970-01-01T00:00:00.000000Z", "acquireTime": "1970-01-01T00:00:00.000000Z" } }),
            taken_over: true,
        },
        Edit {
            name: "renewTime in 2100 (trusted: held until then)",
            patch: json!({ "spec": { "renewTime": "2100-01-01T00:00:00.000000Z" } }),
            taken_over: false,
        },
        Edit {
            name: "leaseTransitions -3",
            patch: json!({ "spec": { "leaseTransitions": -3 } }),
            taken_over: false,
        },
    ];
    for (n, edit) in edits.iter().enumerate() {
        let key = format!("reliability/edited-{n}");
        if b.try_acquire(&key, "victim", 30).await? {
            let name = format!("Lease edited by hand: {}", edit.name);
            match t.edit(&key, edit.patch.clone()).await? {
                Some(status) => {
                    // The API server's own validation: the lock must be intact.
                    let owner = b.owner(&key).await;
                    let ok = matches!(&owner, Ok(Some(o)) if o == "victim");
                    t.record(
                        &name,
                        "taken over, or the edit refused by the API server with the lock intact"
                            .to_owned(),
                        format!("edit refused with HTTP {status}; owner {}", show(&owner)),
                        ok,
                    );
                }
                None => {
                    t.answers(&name, edit.taken_over, b.try_acquire(&key, "taker", 30))
                        .await;
                }
            }
        }
        for owner in ["victim", "taker"] {
            b.release_all(owner).await?;
        }
        // The whitespace holder is nobody's to release: delete it by hand.
        let _ = t
            .leases
            .delete(&lease_name(&key), &Default::default())
            .await;
    }

    // Relabelled or re-annotated Leases are no longer this crate's.
    let key = "reliability/relabelled";
    b.try_acquire(key, "victim", 30).await?;
    t.edit(key, serde_json::json!({ "metadata": { "labels": { "app.kubernetes.io/managed-by": "someone-else" } } }))
        .await?;
    t.rejected(
        "managed-by label changed by hand: try_acquire",
        "ForeignLease",
        b.try_acquire(key, "taker", 30),
    )
    .await?;
    t.answers(
        "... release_all of its holder leaves it",
        0,
        b.release_all("victim"),
    )
    .await;
    let key = "reliability/reannotated";
    b.try_acquire(key, "victim", 30).await?;
    t.edit(key, serde_json::json!({ "metadata": { "annotations": { "celers.io/lock-key": "another key" } } }))
        .await?;
    t.rejected(
        "key annotation changed by hand: release",
        "ForeignLease",
        b.release(key, "victim"),
    )
    .await?;
    let key = "reliability/owner-label";
    b.try_acquire(key, "victim", 30).await?;
    t.edit(
        key,
        serde_json::json!({ "metadata": { "labels": { "celers.io/lock-owner": "somebody" } } }),
    )
    .await?;
    t.answers(
        "owner label changed by hand: release_all of its holder misses it",
        0,
        b.release_all("victim"),
    )
    .await;
    t.answers(
        "... release_all of the label's owner does not delete it",
        0,
        b.release_all("somebody"),
    )
    .await;
    t.answers(
        "... release by key still works",
        true,
        b.release(key, "victim"),
    )
    .await;
    for key in ["reliability/relabelled", "reliability/reannotated"] {
        let _ = t.leases.delete(&lease_name(key), &Default::default()).await;
    }
    Ok(())
}
