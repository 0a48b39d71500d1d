//! The commands: each talks to the API server through the library and
//! returns what to print, or a [`Failure`] saying what went wrong.

use std::collections::BTreeSet;
use std::time::Duration;

use celers_kube_lease::{Error, KubeLeaseLockBackend, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use crate::output::{self, Format, Lock, LockList, LockView};

/// A failed command: the message to print on stderr (exit code 1).
#[derive(Debug)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error of the library, worded as kubectl words errors: `Error from
/// server (Reason): ...` for what the API server answered, `error: ...`
/// otherwise. The library's message names the operation, key, Lease and
/// namespace.
pub fn library_failure(error: &Error) -> Failure {
    let inner = match error {
        Error::Incomplete { source, .. } => source.as_ref(),
        other => other,
    };
    match inner {
        Error::Api { reason, status, .. } => {
            let reason = if reason.is_empty() {
                status.to_string()
            } else {
                reason.clone()
            };
            Failure(format!("Error from server ({reason}): {error}"))
        }
        _ => Failure(format!("error: {}", with_causes(error))),
    }
}

/// `error` and what caused it, as far as the causes add something: "could
/// not be reached: ... Connection refused".
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        let text = source.to_string();
        if !message.contains(&text) {
            message = format!("{message}: {text}");
        }
        cause = source.source();
    }
    message
}

/// How to reach the cluster: kubectl's connection flags.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// `--kubeconfig`.
    pub kubeconfig: Option<std::path::PathBuf>,
    /// `--context`.
    pub context: Option<String>,
}

/// Settings of the backends the commands build.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The backends' `label_prefix`.
    pub label_prefix: String,
    /// The backends' `request_timeout`.
    pub request_timeout: Option<Duration>,
}

/// A client as kubectl would make one: `--kubeconfig`, else `KUBECONFIG`
/// or `~/.kube/config` (or the pod's service account inside a cluster);
/// `--context`, else the current context.
///
/// # Errors
///
/// When no kubeconfig can be read or it names no usable context.
pub async fn connect(connection: &Connection) -> Result<Client, Failure> {
    let options = KubeConfigOptions {
        context: connection.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&connection.kubeconfig, &connection.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                Failure(format!(
                    "error: cannot read kubeconfig {}: {e}",
                    path.display()
                ))
            })?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| {
                    Failure(format!(
                        "error: cannot use kubeconfig {}: {e}",
                        path.display()
                    ))
                })?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| Failure(format!("error: cannot use kubeconfig: {e}")))?,
        (None, None) => kube::Config::infer()
            .await
            .map_err(|e| Failure(format!("error: no usable kubeconfig: {e}")))?,
    };
    Client::try_from(config).map_err(|e| Failure(format!("error: cannot make a client: {e}")))
}

fn backend(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    grace: Option<Duration>,
) -> Result<KubeLeaseLockBackend, Failure> {
    let mut builder = KubeLeaseLockBackend::builder(client.clone())
        .namespace(namespace)
        .label_prefix(settings.label_prefix.clone())
        // The plugin never starts background sweeps.
        .sweep_interval(None);
    if let Some(timeout) = settings.request_timeout {
        builder = builder.request_timeout(timeout);
    }
    if let Some(grace) = grace {
        builder = builder.sweep_grace(grace);
    }
    builder.build().map_err(|error| library_failure(&error))
}

/// Where `locks` looks.
#[derive(Clone, Debug)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace holding Leases of this crate.
    AllNamespaces,
}

/// How to print locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Printer {
    /// The table.
    Table,
    /// The table with more columns.
    Wide,
    /// JSON or YAML.
    Serialized(Format),
}

/// What a command prints: stdout, then stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Printed {
    /// For stdout.
    pub stdout: String,
    /// For stderr (notes such as "No locks found").
    pub stderr: String,
}

/// The namespaces holding Leases of this crate (by the managed-by label),
/// listed cluster-wide, page by page.
async fn namespaces_with_locks(client: &Client) -> Result<BTreeSet<String>, Failure> {
    let leases: Api<Lease> = Api::all(client.clone());
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let mut namespaces = BTreeSet::new();
    let mut params = ListParams::default().labels(&selector).limit(500);
    loop {
        let page = leases.list_metadata(&params).await.map_err(|error| {
            let detail = match &error {
                kube::Error::Api(status) if status.code == 403 => format!(
                    "Error from server (Forbidden): listing Leases ({selector}) in all namespaces \
                     is forbidden (HTTP 403): {}; -A needs permission to list Leases cluster-wide, \
                     use -n NAMESPACE instead",
                    status.message
                ),
                kube::Error::Api(status) => format!(
                    "Error from server ({}): listing Leases ({selector}) in all namespaces failed \
                     (HTTP {}): {}",
                    status.reason, status.code, status.message
                ),
                other => format!(
                    "error: listing Leases ({selector}) in all namespaces: {}",
                    with_causes(other)
                ),
            };
            Failure(detail)
        })?;
        namespaces.extend(
            page.items
                .iter()
                .filter_map(|lease| lease.metadata.namespace.clone()),
        );
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(namespaces)
}

/// The locks in scope whose keys start with `prefix`, sorted by namespace
/// and key.
async fn list(
    client: &Client,
    scope: &Scope,
    settings: &Settings,
    prefix: &str,
) -> Result<Vec<Lock>, Failure> {
    let namespaces: Vec<String> = match scope {
        Scope::Namespace(namespace) => vec![namespace.clone()],
        Scope::AllNamespaces => namespaces_with_locks(client).await?.into_iter().collect(),
    };
    let mut locks = Vec::new();
    for namespace in namespaces {
        let backend = backend(client, &namespace, settings, None)?;
        let found = backend
            .locks(prefix)
            .await
            .map_err(|error| library_failure(&error))?;
        locks.extend(found.into_iter().map(|info| Lock::new(&namespace, info)));
    }
    output::sort_locks(&mut locks);
    Ok(locks)
}

fn print_locks(locks: &[Lock], scope: &Scope, printer: Printer) -> Result<Printed, Failure> {
    let all = matches!(scope, Scope::AllNamespaces);
    match printer {
        Printer::Serialized(format) => Ok(Printed {
            stdout: output::serialized(&LockList::new(locks), format).map_err(Failure)?,
            stderr: String::new(),
        }),
        Printer::Table | Printer::Wide if locks.is_empty() => Ok(Printed {
            stdout: String::new(),
            stderr: output::no_locks_found(match scope {
                Scope::Namespace(namespace) => Some(namespace),
                Scope::AllNamespaces => None,
            }) + "\n",
        }),
        Printer::Table | Printer::Wide => Ok(Printed {
            stdout: output::locks_table(locks, all, printer == Printer::Wide),
            stderr: String::new(),
        }),
    }
}

/// `kubectl celers locks [PREFIX]`.
///
/// # Errors
///
/// API errors; with `-A`, a cluster-wide list that is refused.
pub async fn locks(
    client: &Client,
    scope: &Scope,
    settings: &Settings,
    prefix: &str,
    printer: Printer,
) -> Result<Printed, Failure> {
    let locks = list(client, scope, settings, prefix).await?;
    print_locks(&locks, scope, printer)
}

fn not_found(key: &str, namespace: &str) -> Failure {
    Failure(format!(
        "Error from server (NotFound): lock {key:?} has no Lease in namespace {namespace}"
    ))
}

async fn describe_lock(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    key: &str,
) -> Result<Lock, Failure> {
    let backend = backend(client, namespace, settings, None)?;
    match backend.describe(key).await {
        Ok(Some(info)) => Ok(Lock::new(namespace, info)),
        Ok(None) => Err(not_found(key, namespace)),
        Err(error) => Err(library_failure(&error)),
    }
}

/// `kubectl celers describe KEY`.
///
/// # Errors
///
/// A lock without a Lease (NotFound), a foreign Lease, API errors.
pub async fn describe(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    key: &str,
    printer: Printer,
) -> Result<Printed, Failure> {
    let lock = describe_lock(client, namespace, settings, key).await?;
    let stdout = match printer {
        Printer::Serialized(format) => {
            output::serialized(&LockView::from(&lock), format).map_err(Failure)?
        }
        Printer::Table | Printer::Wide => output::describe_text(&lock),
    };
    Ok(Printed {
        stdout,
        stderr: String::new(),
    })
}

/// `kubectl celers release KEY --owner OWNER`: the holder's release.
///
/// # Errors
///
/// When `owner` does not hold the lock, a foreign Lease, API errors.
pub async fn release(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    key: &str,
    owner: &str,
) -> Result<Printed, Failure> {
    let backend = backend(client, namespace, settings, None)?;
    match backend.release(key, owner).await {
        Ok(true) => Ok(Printed {
            stdout: format!("lock {key:?} released\n"),
            stderr: String::new(),
        }),
        Ok(false) => Err(Failure(format!(
            "error: lock {key:?} is not held by {owner} in namespace {namespace}"
        ))),
        Err(error) => Err(library_failure(&error)),
    }
}

/// `kubectl celers release KEY --force`: says what it deletes, then deletes
/// it whoever holds it (a conditional delete; foreign Leases are refused).
/// The notice goes out before the delete is sent.
///
/// # Errors
///
/// A lock without a Lease, a foreign Lease, API errors.
pub async fn force_release(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    key: &str,
    notice: &mut dyn FnMut(&str),
) -> Result<Printed, Failure> {
    let lock = describe_lock(client, namespace, settings, key).await?;
    notice(&output::force_release_notice(&lock));
    let backend = backend(client, namespace, settings, None)?;
    match backend.force_release(key).await {
        Ok(Some(info)) => Ok(Printed {
            stdout: format!(
                "lock {key:?} force-released (Lease {namespace}/{} deleted)\n",
                info.lease
            ),
            stderr: String::new(),
        }),
        Ok(None) => Err(not_found(key, namespace)),
        Err(error) => Err(library_failure(&error)),
    }
}

/// The API server's clock, at least: the `Date` header of a `/version`
/// request (whole seconds, cut off, so never ahead of the server's clock).
async fn server_time_at_least(client: &Client) -> Result<DateTime<Utc>, Failure> {
    let request = http::Request::get("/version")
        .body(Vec::new())
        .map_err(|e| Failure(format!("error: cannot build a request for /version: {e}")))?;
    let response = client
        .send(request.map(kube::client::Body::from))
        .await
        .map_err(|e| {
            Failure(format!(
                "error: reading the API server's clock (GET /version): {e}"
            ))
        })?;
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| httpdate::parse_http_date(value).ok())
        .ok_or_else(|| {
            Failure(
                "error: the API server sent no Date header, so the dry run cannot tell \
                 which locks expired more than the grace ago"
                    .to_owned(),
            )
        })?;
    Ok(DateTime::<Utc>::from(date))
}

/// `kubectl celers sweep [--dry-run] [--grace D]`.
///
/// # Errors
///
/// API errors; a sweep stopped part-way says how many it deleted.
pub async fn sweep(
    client: &Client,
    namespace: &str,
    settings: &Settings,
    grace: Duration,
    dry_run: bool,
    printer: Printer,
) -> Result<Printed, Failure> {
    if dry_run {
        let scope = Scope::Namespace(namespace.to_owned());
        let locks = list(client, &scope, settings, "").await?;
        let now = server_time_at_least(client).await?;
        let doomed: Vec<Lock> = locks
            .into_iter()
            .filter(|lock| lock.is_sweepable(now, grace))
            .collect();
        let count = u64::try_from(doomed.len()).unwrap_or(u64::MAX);
        let summary = format!("{}\n", output::leases_deleted(count, true));
        return Ok(match printer {
            // stdout stays pure JSON or YAML.
            Printer::Serialized(_) => Printed {
                stdout: print_locks(&doomed, &scope, printer)?.stdout,
                stderr: summary,
            },
            Printer::Table | Printer::Wide if doomed.is_empty() => Printed {
                stdout: summary,
                stderr: String::new(),
            },
            Printer::Table | Printer::Wide => Printed {
                stdout: print_locks(&doomed, &scope, printer)?.stdout + &summary,
                stderr: String::new(),
            },
        });
    }
    let backend = backend(client, namespace, settings, Some(grace))?;
    match backend.sweep_expired().await {
        Ok(count) => Ok(Printed {
            stdout: format!(
                "{} in namespace {namespace}\n",
                output::leases_deleted(count, false)
            ),
            stderr: String::new(),
        }),
        Err(error) => Err(library_failure(&error)),
    }
}
