//! `kubectl celers` through the real kubectl: kubectl finds the plugin on
//! `PATH` and runs it against the local control plane, on locks made with
//! the library in a fresh namespace.
//!
//! The plugin is run as `<kubectl> celers ...` with `KUBECONFIG` pointing at
//! the control plane: kubectl refuses flags before a plugin's name
//! ("flags cannot be placed before plugin name"), so `Cluster::kubectl`,
//! which puts `--kubeconfig` first, cannot start plugins; it is used for
//! everything else.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use celers_kube_lease::{lease_name, KubeLeaseLockBackend};
use celers_kube_lease_testkit::{cluster, control_plane_script, Cluster};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};

/// The real kubectl of the control plane, with the plugin on `PATH`.
struct Kubectl {
    kubectl: PathBuf,
    kubeconfig: PathBuf,
    /// A directory holding only a link to the plugin binary (cargo's
    /// target directory also holds `kubectl-celers.d`, which `kubectl
    /// plugin list` would warn about).
    plugin_dir: PathBuf,
}

impl Kubectl {
    fn new(cluster: &Cluster, name: &str) -> Self {
        let state_dir = cluster
            .kubeconfig
            .parent()
            .expect("kubeconfig in a state directory");
        let output = Command::new(control_plane_script())
            .arg("bin")
            .env("CONTROL_PLANE_DIR", state_dir)
            .output()
            .expect("run hack/control-plane.sh bin");
        assert!(output.status.success(), "hack/control-plane.sh bin failed");
        let bin = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("a directory")
            .trim()
            .to_owned();
        let kubectl = Path::new(&bin).join("kubectl");
        assert!(kubectl.is_file(), "no kubectl in {bin}");

        let plugin_dir =
            std::env::temp_dir().join(format!("kubectl-celers-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&plugin_dir);
        std::fs::create_dir_all(&plugin_dir).expect("plugin dir");
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_kubectl-celers"),
            plugin_dir.join("kubectl-celers"),
        )
        .expect("link the plugin");
        Self {
            kubectl,
            kubeconfig: cluster.kubeconfig.clone(),
            plugin_dir,
        }
    }

    fn path(&self) -> String {
        let rest = std::env::var("PATH").unwrap_or_default();
        format!("{}:{rest}", self.plugin_dir.display())
    }

    /// `kubectl ARGS` with the plugin first on `PATH`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with(&self.kubeconfig, args)
    }

    fn run_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("PATH", self.path())
            .output()
            .expect("run kubectl")
    }

    /// `kubectl celers ARGS`, which must succeed; its stdout.
    fn celers_ok(&self, args: &[&str]) -> String {
        let output = self.celers(args);
        assert!(
            output.status.success(),
            "kubectl celers {args:?} failed ({:?}): {}",
            output.status.code(),
            stderr(&output)
        );
        stdout(&output)
    }

    fn celers(&self, args: &[&str]) -> Output {
        let args: Vec<&str> = std::iter::once("celers")
            .chain(args.iter().copied())
            .collect();
        self.run(&args)
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.plugin_dir);
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {:?}, stderr {:?}",
        stdout(output),
        stderr(output)
    );
}

fn backend(client: kube::Client, namespace: &str) -> KubeLeaseLockBackend {
    KubeLeaseLockBackend::builder(client)
        .namespace(namespace)
        .sweep_interval(None)
        .build()
        .expect("valid settings")
}

/// The cells of a table row, split at runs of 3 or more spaces (cells hold
/// no such runs here).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "needs a control plane: run `make test`"]
fn kubectl_finds_the_plugin() {
    let cluster = cluster();
    let kubectl = Kubectl::new(&cluster, "found");
    // With only the plugin's directory on PATH: no warnings about others.
    let output = Command::new(&kubectl.kubectl)
        .args(["plugin", "list"])
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .env("PATH", &kubectl.plugin_dir)
        .output()
        .expect("run kubectl plugin list");
    assert_exit(&output, 0, "kubectl plugin list");
    let listed = stdout(&output);
    assert!(
        listed.contains(&format!("{}/kubectl-celers", kubectl.plugin_dir.display())),
        "{listed}"
    );

    let help = kubectl.celers_ok(&["--help"]);
    assert!(help.contains("Usage: kubectl celers"), "{help}");
    for command in ["locks", "describe", "release", "sweep"] {
        assert!(help.contains(command), "{command} in {help}");
    }
    // Usage errors exit with 2.
    for args in [
        &["release", "k"][..],
        &["release", "k", "--owner", "o", "--force"],
        &["describe"],
        &["no-such-command"],
        &["sweep", "--grace", "soon"],
        &["describe", "k", "-A"],
        &["release", "k", "--force", "-o", "json"],
        &["locks", "-o", "table"],
        &["locks", "-o", "jsonpath={.items[0}"],
        &["describe", "k", "--no-headers"],
        &["describe", "k", "-l", "a=b"],
        &["locks", "--watch-interval", "1ms", "-w"],
    ] {
        let output = kubectl.celers(args);
        assert_exit(&output, 2, &format!("{args:?}"));
    }
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn locks_describe_release_and_sweep() {
    let cluster = cluster();
    let kubectl = Kubectl::new(&cluster, "flow");
    let namespace = cluster.namespace("plugin").await;
    let ns = namespace.as_str();
    let backend = backend(cluster.client().await, ns);
    for (key, owner, ttl) in [
        ("tasks/nightly-report", "scheduler-7d9f-abcde", 60),
        ("tasks/cleanup", "scheduler-7d9f-fghij", 1),
        ("beat/leader", "scheduler-7d9f-abcde", 300),
    ] {
        assert!(backend.try_acquire(key, owner, ttl).await.expect("acquire"));
    }
    let guard = backend
        .try_lock(
            "tasks/guarded",
            "scheduler-7d9f-klmno",
            Duration::from_secs(3),
        )
        .await
        .expect("try_lock")
        .expect("free");
    // The guard records its token at its first renewal; the 1 s lock
    // expires by the API server's clock.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // locks: sorted by key, kubectl's columns.
    let table = kubectl.celers_ok(&["locks", "-n", ns]);
    println!("$ kubectl celers locks -n {ns}\n{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        cells(lines[0]),
        [
            "KEY",
            "HOLDER",
            "EXPIRES IN",
            "TTL",
            "HELD FOR",
            "TRANSITIONS",
            "LEASE",
            "AGE"
        ]
    );
    let rows: Vec<Vec<String>> = lines[1..].iter().map(|line| cells(line)).collect();
    let keys: Vec<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(
        keys,
        [
            "beat/leader",
            "tasks/cleanup",
            "tasks/guarded",
            "tasks/nightly-report"
        ]
    );
    assert_eq!(rows[0][1], "scheduler-7d9f-abcde");
    assert!(
        rows[0][2].ends_with('s') || rows[0][2].ends_with('m'),
        "{rows:?}"
    );
    assert_eq!(rows[0][3], "5m");
    assert_eq!(rows[0][5], "0");
    assert_eq!(rows[0][6], lease_name("beat/leader"));
    let age: u64 = rows[0][7]
        .trim_end_matches('s')
        .parse()
        .expect("an age in seconds");
    assert!(age < 60, "{rows:?}");
    assert_eq!(
        &rows[1][1..5],
        ["scheduler-7d9f-fghij", "expired", "1s", "<none>"]
    );
    assert_eq!(rows[3][3], "60s");
    let left: u64 = rows[3][2]
        .trim_end_matches('s')
        .parse()
        .expect("seconds left");
    assert!((50..=60).contains(&left), "{left}");
    // Columns line up: every cell starts where its header does.
    let starts = |line: &str| -> Vec<usize> {
        let mut starts = vec![0];
        let bytes = line.as_bytes();
        for i in 3..bytes.len() {
            if bytes[i] != b' ' && bytes[i - 3..i] == *b"   " {
                starts.push(i);
            }
        }
        starts
    };
    for line in &lines[1..] {
        assert_eq!(starts(line), starts(lines[0]), "{line}");
    }

    // A key prefix.
    let table = kubectl.celers_ok(&["locks", "tasks/", "-n", ns]);
    assert_eq!(table.lines().count(), 4, "{table}");

    // -o wide: the guard's fencing token, RFC 3339 renew times.
    let wide = kubectl.celers_ok(&["locks", "-n", ns, "-o", "wide"]);
    println!("$ kubectl celers locks -n {ns} -o wide\n{wide}");
    let header = cells(wide.lines().next().expect("header"));
    assert_eq!(
        header[7..],
        ["AGE", "FENCING TOKEN", "RENEWED", "RESOURCE VERSION"]
    );
    let guarded = wide
        .lines()
        .find(|line| line.starts_with("tasks/guarded "))
        .map(cells)
        .expect("guarded row");
    assert_eq!(guarded[8], guard.fencing_token().to_string());
    assert!(
        guarded[9].ends_with('Z') && guarded[9].contains('T'),
        "{guarded:?}"
    );
    let cleanup = wide
        .lines()
        .find(|line| line.starts_with("tasks/cleanup "))
        .map(cells)
        .expect("cleanup row");
    assert_eq!(cleanup[8], "<none>");

    // -o json and -o yaml.
    let json = kubectl.celers_ok(&["locks", "-n", ns, "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["kind"], "LockList");
    let items = value["items"].as_array().expect("items");
    assert_eq!(items.len(), 4);
    assert_eq!(items[1]["key"], "tasks/cleanup");
    assert_eq!(items[1]["state"], "expired");
    assert_eq!(items[1]["namespace"], ns);
    assert_eq!(items[2]["fencingToken"], guard.fencing_token().get());
    assert_eq!(items[3]["state"], "held");
    assert_eq!(items[3]["ttlSeconds"], 60);
    let yaml = kubectl.celers_ok(&["locks", "-n", ns, "-o", "yaml"]);
    assert!(yaml.starts_with("kind: LockList\nitems:\n"), "{yaml}");
    assert!(yaml.contains("key: tasks/cleanup\n"), "{yaml}");

    // -A: a NAMESPACE column first, this namespace's locks among others.
    let all = kubectl.celers_ok(&["locks", "-A"]);
    assert!(all.starts_with("NAMESPACE "), "{all}");
    let mine: Vec<Vec<String>> = all
        .lines()
        .filter(|line| line.starts_with(&format!("{ns} ")))
        .map(cells)
        .collect();
    assert_eq!(mine.len(), 4, "{all}");
    assert_eq!(mine[0][1], "beat/leader");
    let all_json = kubectl.celers_ok(&["locks", "-A", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&all_json).expect("JSON");
    let in_ns = value["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|item| item["namespace"] == ns)
        .count();
    assert_eq!(in_ns, 4);

    // An empty namespace: nothing on stdout, kubectl's note on stderr.
    let empty = cluster.namespace("plugin-empty").await;
    let output = kubectl.celers(&["locks", "-n", &empty]);
    assert_exit(&output, 0, "locks in an empty namespace");
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!("No locks found in {empty} namespace.\n")
    );

    // describe.
    let described = kubectl.celers_ok(&["describe", "tasks/nightly-report", "-n", ns]);
    println!("$ kubectl celers describe tasks/nightly-report -n {ns}\n{described}");
    for line in [
        "Key:               tasks/nightly-report".to_owned(),
        format!("Lease:             {}", lease_name("tasks/nightly-report")),
        format!("Namespace:         {ns}"),
        "Holder:            scheduler-7d9f-abcde".to_owned(),
        "State:             held".to_owned(),
        "TTL:               60s".to_owned(),
        "Transitions:       0".to_owned(),
    ] {
        assert!(
            described.contains(&format!("{line}\n")),
            "{line} in {described}"
        );
    }
    for label in [
        "Expires In:",
        "Expires At:",
        "Acquired:",
        "Renewed:",
        "Held For:",
        "Fencing Token:     <none> (plain try_acquire",
        "Resource Version:",
    ] {
        assert!(described.contains(label), "{label} in {described}");
    }
    let described = kubectl.celers_ok(&["describe", "tasks/cleanup", "-n", ns, "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&described).expect("JSON");
    assert_eq!(value["state"], "expired");
    assert_eq!(value["holder"], "scheduler-7d9f-fghij");
    let described = kubectl.celers_ok(&["describe", "tasks/guarded", "-n", ns]);
    assert!(
        described.contains(&format!("Fencing Token:     {}\n", guard.fencing_token())),
        "{described}"
    );
    let output = kubectl.celers(&["describe", "no/such/lock", "-n", ns]);
    assert_exit(&output, 1, "describe of a missing lock");
    assert_eq!(
        stderr(&output),
        format!(
            "Error from server (NotFound): lock \"no/such/lock\" has no Lease in namespace {ns}\n"
        )
    );

    // release --owner: only the holder.
    let output = kubectl.celers(&[
        "release",
        "tasks/nightly-report",
        "--owner",
        "scheduler-7d9f-fghij",
        "-n",
        ns,
    ]);
    assert_exit(&output, 1, "release by another owner");
    assert!(
        stderr(&output)
            .contains("lock \"tasks/nightly-report\" is not held by scheduler-7d9f-fghij"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains(ns));
    assert!(backend
        .is_locked("tasks/nightly-report")
        .await
        .expect("is_locked"));
    let released = kubectl.celers_ok(&[
        "release",
        "tasks/nightly-report",
        "--owner",
        "scheduler-7d9f-abcde",
        "-n",
        ns,
    ]);
    assert_eq!(released, "lock \"tasks/nightly-report\" released\n");
    assert_eq!(
        backend
            .describe("tasks/nightly-report")
            .await
            .expect("describe"),
        None
    );

    // release --force: says what it deletes, then deletes it.
    let forced = kubectl.celers_ok(&["release", "beat/leader", "--force", "-n", ns]);
    println!("$ kubectl celers release beat/leader --force -n {ns}\n{forced}");
    let lease = lease_name("beat/leader");
    assert!(
        forced.starts_with(&format!(
            "deleting Lease {ns}/{lease} of lock \"beat/leader\": holder scheduler-7d9f-abcde, expires in "
        )),
        "{forced}"
    );
    assert!(
        forced.ends_with(&format!(
            "\nlock \"beat/leader\" force-released (Lease {ns}/{lease} deleted)\n"
        )),
        "{forced}"
    );
    assert_eq!(
        backend.describe("beat/leader").await.expect("describe"),
        None
    );
    let output = kubectl.celers(&["release", "beat/leader", "--force", "-n", ns]);
    assert_exit(&output, 1, "force release of a missing lock");
    assert!(stderr(&output).contains("NotFound"), "{}", stderr(&output));

    // sweep: the dry run deletes nothing; the grace is honoured.
    let dry = kubectl.celers_ok(&["sweep", "--dry-run", "--grace", "1h", "-n", ns]);
    assert_eq!(dry, "0 Leases deleted (dry run)\n");
    let dry = kubectl.celers_ok(&["sweep", "--dry-run", "--grace", "0s", "-n", ns]);
    println!("$ kubectl celers sweep --dry-run --grace 0s -n {ns}\n{dry}");
    let lines: Vec<&str> = dry.lines().collect();
    assert_eq!(lines.len(), 3, "{dry}");
    assert!(lines[0].starts_with("KEY "), "{dry}");
    assert!(lines[1].starts_with("tasks/cleanup "), "{dry}");
    assert_eq!(lines[2], "1 Lease deleted (dry run)");
    let dry = kubectl.celers_ok(&["sweep", "--dry-run", "--grace=0s", "-n", ns, "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&dry).expect("JSON");
    assert_eq!(value["items"][0]["key"], "tasks/cleanup");
    assert!(backend
        .describe("tasks/cleanup")
        .await
        .expect("describe")
        .is_some());
    let swept = kubectl.celers_ok(&["sweep", "--grace", "1h", "-n", ns]);
    assert_eq!(swept, format!("0 Leases deleted in namespace {ns}\n"));
    let swept = kubectl.celers_ok(&["sweep", "--grace", "0s", "-n", ns]);
    assert_eq!(swept, format!("1 Lease deleted in namespace {ns}\n"));
    assert_eq!(
        backend.describe("tasks/cleanup").await.expect("describe"),
        None
    );
    let left = kubectl.celers_ok(&["locks", "-n", ns]);
    let keys: Vec<String> = left.lines().skip(1).map(|l| cells(l)[0].clone()).collect();
    assert_eq!(keys, ["tasks/guarded"], "the live guard stays: {left}");
    assert!(guard.release().await.expect("release"));
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn a_foreign_lease_is_refused_and_stays() {
    let cluster = cluster();
    let kubectl = Kubectl::new(&cluster, "foreign");
    let namespace = cluster.namespace("plugin-foreign").await;
    let ns = namespace.as_str();
    let leases: Api<Lease> = Api::namespaced(cluster.client().await, ns);
    let name = lease_name("tasks/foreign");
    let foreign: Lease = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name },
        "spec": { "holderIdentity": "someone-else", "leaseDurationSeconds": 15 },
    }))
    .expect("lease");
    leases
        .create(&PostParams::default(), &foreign)
        .await
        .expect("create");

    let output = kubectl.celers(&["release", "tasks/foreign", "--force", "-n", ns]);
    assert_exit(&output, 1, "force release of a foreign Lease");
    let message = stderr(&output);
    assert!(
        message.contains("not created by celers-kube-lease") && message.contains("tasks/foreign"),
        "{message}"
    );
    assert!(message.contains(&format!("{ns}/{name}")), "{message}");
    assert!(!stdout(&output).contains("deleting"), "{}", stdout(&output));
    assert!(leases.get_opt(&name).await.expect("get").is_some());

    let output = kubectl.celers(&["describe", "tasks/foreign", "-n", ns]);
    assert_exit(&output, 1, "describe of a foreign Lease");
    let output = kubectl.celers(&[
        "release",
        "tasks/foreign",
        "--owner",
        "someone-else",
        "-n",
        ns,
    ]);
    assert_exit(&output, 1, "release of a foreign Lease");
    assert!(stderr(&output).contains("not created by celers-kube-lease"));
    // It is not a lock of this crate: not listed, not swept.
    let output = kubectl.celers(&["locks", "-n", ns]);
    assert_exit(&output, 0, "locks");
    assert_eq!(stdout(&output), "");
    kubectl.celers_ok(&["sweep", "--grace", "0s", "-n", ns]);
    assert!(leases.get_opt(&name).await.expect("get").is_some());
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn without_rbac_the_answer_is_403() {
    let cluster = cluster();
    let kubectl = Kubectl::new(&cluster, "rbac");
    let namespace = cluster.namespace("plugin-rbac").await;
    let ns = namespace.as_str();
    let backend = backend(cluster.client().await, ns);
    assert!(backend
        .try_acquire("tasks/a", "pod-1", 60)
        .await
        .expect("acquire"));
    cluster.kubectl_ok(&["-n", ns, "create", "serviceaccount", "nobody"]);
    let token = cluster.kubectl_ok(&["-n", ns, "create", "token", "nobody"]);

    // A copy of the kubeconfig whose current context uses the token (and
    // defaults to the namespace); the admin context stays in it.
    let kubeconfig = kubectl.plugin_dir.join("kubeconfig-nobody");
    std::fs::copy(&cluster.kubeconfig, &kubeconfig).expect("copy the kubeconfig");
    let config = |args: &[&str]| {
        let output = kubectl.run_with(&kubeconfig, &[&["config"][..], args].concat());
        assert_exit(&output, 0, &format!("kubectl config {args:?}"));
        stdout(&output).trim().to_owned()
    };
    let admin_context = config(&["current-context"]);
    let cluster_name = config(&["view", "-o", "jsonpath={.contexts[0].context.cluster}"]);
    config(&[
        "set-credentials",
        "nobody",
        &format!("--token={}", token.trim()),
    ]);
    config(&[
        "set-context",
        "nobody",
        &format!("--cluster={cluster_name}"),
        "--user=nobody",
        &format!("--namespace={ns}"),
    ]);
    config(&["use-context", "nobody"]);

    for args in [
        &["locks"][..],
        &["describe", "tasks/a"],
        &["release", "tasks/a", "--force"],
        &["release", "tasks/a", "--owner", "pod-1"],
        &["sweep"],
        &["sweep", "--dry-run"],
    ] {
        let args: Vec<&str> = std::iter::once("celers")
            .chain(args.iter().copied())
            .collect();
        let output = kubectl.run_with(&kubeconfig, &args);
        assert_exit(&output, 1, &format!("{args:?} without RBAC"));
        let message = stderr(&output);
        assert!(
            message.starts_with("Error from server (Forbidden): ")
                && message.contains("403")
                && message.contains(ns),
            "{args:?}: {message}"
        );
        assert!(!message.contains("panicked"), "{message}");
    }
    let output = kubectl.run_with(&kubeconfig, &["celers", "locks", "-A"]);
    assert_exit(&output, 1, "locks -A without RBAC");
    let message = stderr(&output);
    assert!(
        message.contains("Forbidden")
            && message.contains("403")
            && message.contains("all namespaces")
            && message.contains("-n NAMESPACE"),
        "{message}"
    );

    // --context picks the admin context of the same kubeconfig; the lock
    // is untouched.
    let output = kubectl.run_with(
        &kubeconfig,
        &["celers", "--context", &admin_context, "locks", "-n", ns],
    );
    assert_exit(&output, 0, "locks with --context");
    assert!(stdout(&output).contains("tasks/a "), "{}", stdout(&output));
    // --kubeconfig wins over KUBECONFIG.
    let admin = cluster.kubeconfig.to_str().expect("UTF-8 path");
    let output = kubectl.run_with(
        &kubeconfig,
        &[
            "celers",
            "--kubeconfig",
            admin,
            "describe",
            "tasks/a",
            "-n",
            ns,
        ],
    );
    assert_exit(&output, 0, "describe with --kubeconfig");
    assert_eq!(
        backend.owner("tasks/a").await.expect("owner").as_deref(),
        Some("pod-1")
    );
}

/// The lines of `child`'s stdout, as they come.
fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("piped stdout");
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// The next `count` lines, or fewer if `within` passes first.
fn next_lines(
    lines: &std::sync::mpsc::Receiver<String>,
    count: usize,
    within: Duration,
) -> Vec<String> {
    let deadline = std::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => out.push(line),
            Err(_) => break,
        }
    }
    out
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn the_kubectl_get_staples() {
    let cluster = cluster();
    let kubectl = Kubectl::new(&cluster, "staples");
    let namespace = cluster.namespace("plugin-staples").await;
    let ns = namespace.as_str();
    let backend = backend(cluster.client().await, ns);
    for (key, owner) in [
        ("tasks/a", "pod-1"),
        ("tasks/b", "pod-2"),
        ("tasks/c", "pod-1"),
    ] {
        assert!(backend.try_acquire(key, owner, 300).await.expect("acquire"));
    }
    // A label of someone's own on one Lease, for -l.
    cluster.kubectl_ok(&[
        "-n",
        ns,
        "label",
        "lease",
        &lease_name("tasks/b"),
        "team=data",
    ]);

    // --no-headers: the rows alone.
    let bare = kubectl.celers_ok(&["locks", "-n", ns, "--no-headers"]);
    let keys: Vec<String> = bare.lines().map(|line| cells(line)[0].clone()).collect();
    assert_eq!(keys, ["tasks/a", "tasks/b", "tasks/c"], "{bare}");

    // -l: the owner label the library sets, and a label of one's own; with
    // -A too.
    let mine = kubectl.celers_ok(&["locks", "-n", ns, "-l", "celers.io/lock-owner=pod-1"]);
    let keys: Vec<String> = mine
        .lines()
        .skip(1)
        .map(|line| cells(line)[0].clone())
        .collect();
    assert_eq!(keys, ["tasks/a", "tasks/c"], "{mine}");
    // (Other tests' namespaces may hold such Leases too.)
    let all = kubectl.celers_ok(&["locks", "-A", "--selector=team=data", "--no-headers"]);
    let here: Vec<Vec<String>> = all.lines().map(cells).filter(|row| row[0] == ns).collect();
    assert_eq!(here.len(), 1, "{all}");
    assert_eq!(here[0][1], "tasks/b");
    assert!(all.lines().all(|line| cells(line)[1] == "tasks/b"), "{all}");
    let output = kubectl.celers(&["locks", "-n", ns, "-l", "team=nobody"]);
    assert_exit(&output, 0, "a selector matching nothing");
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        format!("No locks found in {ns} namespace.\n")
    );
    let output = kubectl.celers(&["locks", "-n", ns, "-l", "not a selector"]);
    assert_exit(&output, 1, "a bad selector");
    assert!(
        stderr(&output).starts_with("Error from server (BadRequest): "),
        "{}",
        stderr(&output)
    );

    // -o name, as kubectl get prints Leases; nothing at all when empty.
    let names = kubectl.celers_ok(&["locks", "tasks/b", "-n", ns, "-o", "name"]);
    assert_eq!(
        names,
        format!("lease.coordination.k8s.io/{}\n", lease_name("tasks/b"))
    );
    let raw = cluster.kubectl_ok(&["-n", ns, "get", "leases", "-l", "team=data", "-o", "name"]);
    assert_eq!(names, raw, "the same names as kubectl get");
    let output = kubectl.celers(&["locks", "-n", ns, "-l", "team=nobody", "-o", "name"]);
    assert_eq!(
        (stdout(&output), stderr(&output)),
        (String::new(), String::new())
    );
    let described = kubectl.celers_ok(&["describe", "tasks/a", "-n", ns, "-o", "name"]);
    assert_eq!(
        described,
        format!("lease.coordination.k8s.io/{}\n", lease_name("tasks/a"))
    );

    // -o jsonpath over the JSON form.
    let keys = kubectl.celers_ok(&["locks", "-n", ns, "-o", "jsonpath={.items[*].key}"]);
    assert_eq!(keys, "tasks/a tasks/b tasks/c");
    let table = kubectl.celers_ok(&[
        "locks",
        "-n",
        ns,
        "-o",
        r#"jsonpath={range .items[?(@.holder=="pod-1")]}{.key}{"\t"}{.labels.celers\.io/lock-owner}{"\n"}{end}"#,
    ]);
    assert_eq!(table, "tasks/a\tpod-1\ntasks/c\tpod-1\n");
    let holder = kubectl.celers_ok(&[
        "describe",
        "tasks/b",
        "-n",
        ns,
        "-o",
        "jsonpath={.holder} {.labels.team}",
    ]);
    assert_eq!(holder, "pod-2 data");
    let output = kubectl.celers(&["locks", "-n", ns, "-o", "jsonpath={.items[7].key}"]);
    assert_exit(&output, 1, "an index out of range");
    assert!(
        stderr(&output).contains("array index out of bounds: index 7, length 3"),
        "{}",
        stderr(&output)
    );

    // -w: the list, then changes as they happen: a new lock, a release
    // (its last row, as kubectl prints deleted objects); with
    // --output-watch-events, what happened.
    let mut child = Command::new(&kubectl.kubectl)
        .args([
            "celers",
            "locks",
            "-n",
            ns,
            "-w",
            "--output-watch-events",
            "--watch-interval",
            "200ms",
        ])
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .env("PATH", kubectl.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the watch");
    let lines = lines_of(&mut child);
    let first = next_lines(&lines, 4, Duration::from_secs(20));
    assert_eq!(first.len(), 4, "{first:?}");
    assert_eq!(cells(&first[0])[..2], ["EVENT", "KEY"]);
    assert!(
        first[1..].iter().all(|line| line.starts_with("ADDED ")),
        "{first:?}"
    );
    assert!(backend
        .try_acquire("tasks/d", "pod-3", 300)
        .await
        .expect("acquire"));
    assert!(backend.release("tasks/a", "pod-1").await.expect("release"));
    let mut more = next_lines(&lines, 2, Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    more.sort();
    assert_eq!(more.len(), 2, "{more:?}");
    assert_eq!(
        cells(&more[0])[..3],
        ["ADDED", "tasks/d", "pod-3"],
        "{more:?}"
    );
    assert_eq!(
        cells(&more[1])[..3],
        ["DELETED", "tasks/a", "pod-1"],
        "{more:?}"
    );
    // Rows after the first listing keep its columns.
    let header_starts: Vec<usize> = first[0].match_indices("KEY").map(|(at, _)| at).collect();
    assert_eq!(
        more[0].find("tasks/d"),
        header_starts.first().copied(),
        "{first:?} {more:?}"
    );

    // -w -o name, ended by its reader going away (`| head -n 1`): at the
    // next change it exits with 0, as kubectl does.
    let mut child = Command::new(&kubectl.kubectl)
        .args(["celers", "locks", "-n", ns, "-w", "-o", "name"])
        .args(["--watch-interval", "200ms"])
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .env("PATH", kubectl.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the watch");
    let mut reader = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("a line");
    assert_eq!(
        line,
        format!("lease.coordination.k8s.io/{}\n", lease_name("tasks/b"))
    );
    drop(reader);
    assert!(backend
        .try_acquire("tasks/e", "pod-3", 300)
        .await
        .expect("acquire"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch went on writing to a closed pipe"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}
