//! The commands: each talks to the API server through the library and
//! returns what to print, or a [`Failure`] saying what went wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use celers_kube_lease::{Error, KubeLeaseLockBackend, MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

use crate::jsonpath::Template;
use crate::output::{self, Columns, Format, LeaseMeta, Lock, LockList, LockView, WatchEvent};

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

impl Scope {
    fn namespace(&self) -> Option<&str> {
        match self {
            Self::Namespace(namespace) => Some(namespace),
            Self::AllNamespaces => None,
        }
    }
}

/// Which locks `locks` lists.
#[derive(Clone, Debug)]
pub struct Query {
    /// Where.
    pub scope: Scope,
    /// Keys starting with this.
    pub prefix: String,
    /// `-l`: a label selector the Leases must match too.
    pub selector: Option<String>,
}

/// How to print locks.
#[derive(Clone, Debug, PartialEq)]
pub enum Printer {
    /// The table; `wide` with more columns.
    Table {
        /// `-o wide`.
        wide: bool,
    },
    /// JSON or YAML.
    Serialized(Format),
    /// `-o name`.
    Name,
    /// `-o jsonpath=...`.
    JsonPath(Template),
}

/// A printer and kubectl's flags that shape what it prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Print {
    /// The format.
    pub printer: Printer,
    /// Whether tables have their header (`--no-headers` turns it off).
    pub headers: bool,
}

/// What a command prints: stdout, then stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Printed {
    /// For stdout.
    pub stdout: String,
    /// For stderr (notes such as "No locks found").
    pub stderr: String,
}

fn list_failure(error: &kube::Error, selector: &str, scope: &Scope) -> Failure {
    let place = match scope.namespace() {
        Some(namespace) => format!("in namespace {namespace}"),
        None => "in all namespaces".to_owned(),
    };
    let detail = match error {
        kube::Error::Api(status) if status.code == 403 => {
            let hint = match scope {
                Scope::AllNamespaces => {
                    "; -A needs permission to list Leases cluster-wide, use -n NAMESPACE instead"
                }
                Scope::Namespace(_) => "",
            };
            format!(
                "Error from server (Forbidden): listing Leases ({selector}) {place} is forbidden \
                 (HTTP 403): {}{hint}",
                status.message
            )
        }
        kube::Error::Api(status) => format!(
            "Error from server ({}): listing Leases ({selector}) {place} failed (HTTP {}): {}",
            status.reason, status.code, status.message
        ),
        other => format!(
            "error: listing Leases ({selector}) {place}: {}",
            with_causes(other)
        ),
    };
    Failure(detail)
}

/// What the plugin reads of the Leases itself, beside the library's
/// `locks`: the names, creation times and labels of this crate's Leases in
/// scope that match the selector, by namespace and name. One list of
/// metadata only (`PartialObjectMetadata`), page by page.
///
/// The library's `LockInfo` carries neither the creation time nor the
/// labels, and `locks` takes no label selector; this fills both in.
async fn lease_metadata(
    client: &Client,
    scope: &Scope,
    selector: Option<&str>,
) -> Result<BTreeMap<(String, String), LeaseMeta>, Failure> {
    let leases: Api<Lease> = match scope {
        Scope::Namespace(namespace) => Api::namespaced(client.clone(), namespace),
        Scope::AllNamespaces => Api::all(client.clone()),
    };
    let mut full_selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    if let Some(selector) = selector.filter(|s| !s.trim().is_empty()) {
        full_selector = format!("{full_selector},{selector}");
    }
    let mut found = BTreeMap::new();
    let mut params = ListParams::default().labels(&full_selector).limit(500);
    loop {
        let page = leases
            .list_metadata(&params)
            .await
            .map_err(|error| list_failure(&error, &full_selector, scope))?;
        for lease in &page.items {
            let metadata = &lease.metadata;
            if let (Some(namespace), Some(name)) = (&metadata.namespace, &metadata.name) {
                found.insert(
                    (namespace.clone(), name.clone()),
                    LeaseMeta {
                        created: metadata.creation_timestamp.as_ref().map(|time| {
                            DateTime::<Utc>::from_timestamp(time.0.as_second(), 0)
                                .unwrap_or_default()
                        }),
                        labels: metadata.labels.clone().unwrap_or_default(),
                    },
                );
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    Ok(found)
}

/// The locks of `query`, sorted by namespace and key: the library's
/// `locks` in each namespace, joined with the plugin's own read of the
/// Leases' metadata (for AGE, labels and `-l`).
async fn list(client: &Client, query: &Query, settings: &Settings) -> Result<Vec<Lock>, Failure> {
    let metadata = lease_metadata(client, &query.scope, query.selector.as_deref()).await?;
    let namespaces: BTreeSet<String> = match &query.scope {
        // With a selector, only namespaces with matching Leases are asked.
        Scope::Namespace(namespace) if query.selector.is_none() => {
            BTreeSet::from([namespace.clone()])
        }
        _ => metadata
            .keys()
            .map(|(namespace, _)| namespace.clone())
            .collect(),
    };
    let mut locks = Vec::new();
    for namespace in namespaces {
        let backend = backend(client, &namespace, settings, None)?;
        let found = backend
            .locks(&query.prefix)
            .await
            .map_err(|error| library_failure(&error))?;
        for info in found {
            let meta = metadata.get(&(namespace.clone(), info.lease.clone()));
            // A Lease made between the two lists has no metadata yet: shown
            // without AGE, unless a selector asks for what it cannot tell.
            if meta.is_none() && query.selector.is_some() {
                continue;
            }
            locks.push(Lock {
                namespace: namespace.clone(),
                info,
                meta: meta.cloned().unwrap_or_default(),
            });
        }
    }
    output::sort_locks(&mut locks);
    Ok(locks)
}

/// The local clock, as kubectl reads it for AGE (the one column that is
/// not judged on the API server's clock, as in `kubectl get`).
fn local_now() -> DateTime<Utc> {
    Utc::now()
}

fn columns(scope: &Scope, printer: &Printer) -> Columns {
    Columns {
        all_namespaces: matches!(scope, Scope::AllNamespaces),
        wide: matches!(printer, Printer::Table { wide: true }),
    }
}

fn print_locks(locks: &[Lock], scope: &Scope, print: &Print) -> Result<Printed, Failure> {
    let stdout = match &print.printer {
        Printer::Serialized(format) => {
            output::serialized(&LockList::new(locks), *format).map_err(Failure)?
        }
        Printer::Name => locks.iter().map(|lock| lock.name() + "\n").collect(),
        Printer::JsonPath(template) => {
            let value = serde_json::to_value(LockList::new(locks))
                .map_err(|e| Failure(format!("error: cannot print JSON: {e}")))?;
            template
                .render(&value)
                .map_err(|e| Failure(format!("error: {e}")))?
        }
        Printer::Table { .. } if locks.is_empty() => {
            return Ok(Printed {
                stdout: String::new(),
                stderr: output::no_locks_found(scope.namespace()) + "\n",
            })
        }
        Printer::Table { .. } => output::locks_table(
            locks,
            columns(scope, &print.printer),
            print.headers,
            local_now(),
        ),
    };
    Ok(Printed {
        stdout,
        stderr: String::new(),
    })
}

/// `kubectl celers locks [PREFIX]`.
///
/// # Errors
///
/// API errors; with `-A`, a cluster-wide list that is refused.
pub async fn locks(
    client: &Client,
    query: &Query,
    settings: &Settings,
    print: &Print,
) -> Result<Printed, Failure> {
    let locks = list(client, query, settings).await?;
    print_locks(&locks, &query.scope, print)
}

/// How `--watch` goes on.
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    /// `--watch-only`: no listing first.
    pub only: bool,
    /// `--output-watch-events`: say ADDED, MODIFIED or DELETED.
    pub events: bool,
    /// How often the locks are listed again.
    pub interval: Duration,
}

/// What a watch has seen of one lock: enough to tell a change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    resource_version: String,
    state: output::State,
}

fn seen(lock: &Lock) -> Seen {
    Seen {
        resource_version: lock.info.resource_version.clone(),
        state: lock.state(),
    }
}

/// The changes between two listings, in the order kubectl would print
/// them: what is new or changed (ADDED, MODIFIED) in the new listing's
/// order, then what is gone (DELETED, as last seen).
fn changes<'a>(
    before: &'a BTreeMap<(String, String), Lock>,
    now: &'a [Lock],
) -> Vec<(&'static str, &'a Lock)> {
    let mut out = Vec::new();
    let mut present = BTreeSet::new();
    for lock in now {
        let id = (lock.namespace.clone(), lock.info.key.clone());
        match before.get(&id) {
            None => out.push(("ADDED", lock)),
            Some(old) if seen(old) != seen(lock) => out.push(("MODIFIED", lock)),
            Some(_) => {}
        }
        present.insert(id);
    }
    for (id, lock) in before {
        if !present.contains(id) {
            out.push(("DELETED", lock));
        }
    }
    out
}

/// Prints locks one by one as a watch does: table rows aligned to the
/// columns of the first, JSON one compact object a line, YAML documents
/// separated by `---`, names a line each, the jsonpath template per lock.
struct WatchPrinter<'a> {
    print: &'a Print,
    columns: Columns,
    events: bool,
    widths: Option<Vec<usize>>,
    printed_yaml: bool,
}

impl WatchPrinter<'_> {
    fn print(
        &mut self,
        batch: &[(&'static str, &Lock)],
        out: &mut dyn Write,
    ) -> Result<(), WatchStop> {
        let mut text = String::new();
        match &self.print.printer {
            Printer::Table { .. } => {
                let now = local_now();
                let mut lines = Vec::new();
                for (event, lock) in batch {
                    let mut row = output::lock_row(lock, self.columns, now);
                    if self.events {
                        row.insert(0, (*event).to_owned());
                    }
                    lines.push(output::escaped(&row));
                }
                if self.widths.is_none() {
                    if batch.is_empty() {
                        return Ok(());
                    }
                    let mut header: Vec<String> = output::locks_header(self.columns)
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    if self.events {
                        header.insert(0, "EVENT".to_owned());
                    }
                    if self.print.headers {
                        lines.insert(0, header.clone());
                    }
                    let mut measured = lines.clone();
                    measured.push(header);
                    self.widths = Some(output::widths(&measured));
                }
                let widths = self.widths.clone().unwrap_or_default();
                for line in lines {
                    text.push_str(&output::table_line(&line, &widths));
                }
            }
            Printer::Serialized(format) => {
                for (event, lock) in batch {
                    let view = LockView::from(*lock);
                    let value = if self.events {
                        serde_json::to_value(WatchEvent {
                            kind: event,
                            object: view,
                        })
                    } else {
                        serde_json::to_value(view)
                    }
                    .map_err(|e| WatchStop::Failed(Failure(format!("error: {e}"))))?;
                    match format {
                        Format::Json => {
                            text.push_str(&value.to_string());
                            text.push('\n');
                        }
                        Format::Yaml => {
                            if self.printed_yaml {
                                text.push_str("---\n");
                            }
                            self.printed_yaml = true;
                            text.push_str(
                                &output::serialized(&value, Format::Yaml)
                                    .map_err(|e| WatchStop::Failed(Failure(e)))?,
                            );
                        }
                    }
                }
            }
            Printer::Name => {
                for (_, lock) in batch {
                    text.push_str(&lock.name());
                    text.push('\n');
                }
            }
            Printer::JsonPath(template) => {
                for (_, lock) in batch {
                    let value = serde_json::to_value(LockView::from(*lock))
                        .map_err(|e| WatchStop::Failed(Failure(format!("error: {e}"))))?;
                    text.push_str(
                        &template
                            .render(&value)
                            .map_err(|e| WatchStop::Failed(Failure(format!("error: {e}"))))?,
                    );
                }
            }
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|_| WatchStop::Closed)
    }
}

/// Why a watch stopped.
#[derive(Debug)]
pub enum WatchStop {
    /// Its output was closed (`| head`): a normal end.
    Closed,
    /// A listing failed.
    Failed(Failure),
}

/// `kubectl celers locks --watch`: the locks, then every change until
/// interrupted.
///
/// It lists the locks again every `interval` through the library's
/// `locks` and prints what changed: a new lock (ADDED), a write to a Lease
/// (a new resourceVersion: a renewal, a takeover) or a lock that expired
/// without any write (MODIFIED), a Lease deleted (DELETED, printed as last
/// seen, as kubectl prints deleted objects). A watch of the Leases would
/// see no expiry (nothing is written when a lock expires, which is the
/// change people watch for), and only the library judges expiry on the API
/// server's clock and reads keys and fencing tokens; so this polls the
/// library's public API instead, one list per namespace and interval.
///
/// # Errors
///
/// The first failed listing ends the watch, as a failed watch ends
/// `kubectl get --watch`.
pub async fn watch_locks(
    client: &Client,
    query: &Query,
    settings: &Settings,
    print: &Print,
    watch: Watch,
    out: &mut dyn Write,
) -> Result<std::convert::Infallible, WatchStop> {
    let mut printer = WatchPrinter {
        print,
        columns: columns(&query.scope, &print.printer),
        events: watch.events,
        widths: None,
        printed_yaml: false,
    };
    let mut before: BTreeMap<(String, String), Lock> = BTreeMap::new();
    let mut first = true;
    loop {
        let locks = list(client, query, settings)
            .await
            .map_err(WatchStop::Failed)?;
        if !(first && watch.only) {
            let batch = changes(&before, &locks);
            printer.print(&batch, out)?;
        }
        first = false;
        before = locks
            .into_iter()
            .map(|lock| ((lock.namespace.clone(), lock.info.key.clone()), lock))
            .collect();
        tokio::time::sleep(watch.interval).await;
    }
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
    let info = match backend.describe(key).await {
        Ok(Some(info)) => info,
        Ok(None) => return Err(not_found(key, namespace)),
        Err(error) => return Err(library_failure(&error)),
    };
    // The creation time and labels, which LockInfo does not carry; a Lease
    // deleted in between is shown without them.
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let meta = match leases.get_metadata_opt(&info.lease).await {
        Ok(found) => found
            .map(|lease| LeaseMeta {
                created: lease.metadata.creation_timestamp.as_ref().map(|time| {
                    DateTime::<Utc>::from_timestamp(time.0.as_second(), 0).unwrap_or_default()
                }),
                labels: lease.metadata.labels.unwrap_or_default(),
            })
            .unwrap_or_default(),
        Err(error) => {
            return Err(Failure(format!(
                "error: reading Lease {namespace}/{}: {}",
                info.lease,
                with_causes(&error)
            )))
        }
    };
    Ok(Lock {
        namespace: namespace.to_owned(),
        info,
        meta,
    })
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
    printer: &Printer,
) -> Result<Printed, Failure> {
    let lock = describe_lock(client, namespace, settings, key).await?;
    let stdout = match printer {
        Printer::Serialized(format) => {
            output::serialized(&LockView::from(&lock), *format).map_err(Failure)?
        }
        Printer::Name => lock.name() + "\n",
        Printer::JsonPath(template) => {
            let value = serde_json::to_value(LockView::from(&lock))
                .map_err(|e| Failure(format!("error: cannot print JSON: {e}")))?;
            template
                .render(&value)
                .map_err(|e| Failure(format!("error: {e}")))?
        }
        Printer::Table { .. } => output::describe_text(&lock),
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
    print: &Print,
) -> Result<Printed, Failure> {
    if dry_run {
        let scope = Scope::Namespace(namespace.to_owned());
        let query = Query {
            scope: scope.clone(),
            prefix: String::new(),
            selector: None,
        };
        let locks = list(client, &query, settings).await?;
        let now = server_time_at_least(client).await?;
        let doomed: Vec<Lock> = locks
            .into_iter()
            .filter(|lock| lock.is_sweepable(now, grace))
            .collect();
        let count = u64::try_from(doomed.len()).unwrap_or(u64::MAX);
        let summary = format!("{}\n", output::leases_deleted(count, true));
        return Ok(match print.printer {
            // stdout stays pure JSON, YAML, names or the template's text.
            Printer::Serialized(_) | Printer::Name | Printer::JsonPath(_) => Printed {
                stdout: print_locks(&doomed, &scope, print)?.stdout,
                stderr: summary,
            },
            Printer::Table { .. } if doomed.is_empty() => Printed {
                stdout: summary,
                stderr: String::new(),
            },
            Printer::Table { .. } => Printed {
                stdout: print_locks(&doomed, &scope, print)?.stdout + &summary,
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
