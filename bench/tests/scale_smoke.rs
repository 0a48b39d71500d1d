//! `lease-bench-scale` with tiny numbers against the shared control plane,
//! so that it keeps building and running. Checked: completion, the tables'
//! shape, and that the counts add up; never timing.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::cell_of as cell;

/// The value of the two-column summary row named `name`.
fn summary(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let rest = line.strip_prefix(&format!("| {name} | "))?;
        Some(rest.trim_end_matches(" |").to_owned())
    })
}

#[tokio::test]
#[ignore = "needs a control plane: run `make test`"]
async fn lease_bench_scale_runs_with_tiny_numbers() {
    let cluster = celers_kube_lease_testkit::cluster();
    let namespace = cluster.namespace("lease-bench-scale").await;
    let files = std::env::temp_dir().join(&namespace);
    std::fs::create_dir_all(&files).expect("a directory for the outputs");
    let markdown = files.join("BENCHMARKS.md");
    let plot: PathBuf = files.join("scale-lifetime.svg");
    std::fs::write(&markdown, "# Benchmarks\n\n## Scale\n\nkept\n").expect("write markdown");

    let output = Command::new(env!("CARGO_BIN_EXE_lease-bench-scale"))
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(["--namespace", &namespace])
        .args(["--own", "300", "--foreign", "30"])
        .args([
            "--release-all",
            "50",
            "--expired",
            "100",
            "--is-locked",
            "40",
        ])
        .args(["--list-page-sizes", "10,100"])
        .args([
            "--duration-secs",
            "15",
            "--tasks",
            "20",
            "--interval-secs",
            "2",
        ])
        .args(["--lock-ttl-secs", "2", "--sweep-interval-secs", "3"])
        .args(["--sweep-grace-secs", "2", "--sample-secs", "3"])
        .arg("--markdown")
        .arg(&markdown)
        .arg("--plot")
        .arg(&plot)
        .output()
        .expect("run lease-bench-scale");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "lease-bench-scale failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );

    let deleted = |operation: &str| cell(&stdout, &[operation], "Deleted");
    assert_eq!(
        deleted("`release_all` of one owner's 50").as_deref(),
        Some("50/50"),
        "{stdout}"
    );
    assert_eq!(
        deleted("`sweep_expired`, 100 expired (grace 0 s)").as_deref(),
        Some("100/100"),
        "{stdout}"
    );
    for in_flight in ["1", "32"] {
        let calls = cell(&stdout, &[in_flight], "Calls");
        assert_eq!(
            calls.as_deref(),
            Some("40"),
            "is_locked, {in_flight}: {stdout}"
        );
        // 150 of the 300 keys are live: the answers are a mix.
        let held: u64 = cell(&stdout, &[in_flight], "Answered held")
            .and_then(|held| held.parse().ok())
            .unwrap_or(u64::MAX);
        assert!(held < 40, "is_locked, {in_flight}: {held} held\n{stdout}");
    }
    // Every page size, in the full namespace (300) and after release_all
    // and the sweep (150).
    for (page, listed, requests) in [("10", "300", 30), ("10", "150", 15), ("100", "300", 3)] {
        let counted: f64 = cell(&stdout, &[page, listed], "List requests")
            .and_then(|requests| requests.parse().ok())
            .unwrap_or_else(|| panic!("no list row {page}, {listed}:\n{stdout}"));
        // The API server also counts its own Lease renewals.
        assert!(
            counted >= requests as f64,
            "{page}, {listed}: {counted}\n{stdout}"
        );
    }
    assert!(cell(&stdout, &["100", "150"], "Client high-water − before MiB").is_some());

    // 20 tasks every 2 s for 15 s: 150 runs, each attempted by the leader
    // and by both standbys.
    let leader = summary(&stdout, "Acquired by the leader").unwrap_or_default();
    assert!(leader.contains(" of 150 attempts"), "{leader}\n{stdout}");
    let standbys = summary(&stdout, "Standby attempts: refused, acquired").unwrap_or_default();
    assert!(standbys.starts_with("300: "), "{standbys}\n{stdout}");
    let samples = stdout
        .lines()
        .skip_while(|line| !line.starts_with("| Elapsed s |"))
        .filter(|line| line.starts_with("| ") && !line.starts_with("| Elapsed"))
        .count();
    assert!(
        samples >= 5,
        "{samples} samples in 15 s every 3 s\n{stdout}"
    );

    let svg = std::fs::read_to_string(&plot).expect("the plot");
    assert!(svg.starts_with("<svg ") && svg.matches("<polyline").count() == 2);
    let written = std::fs::read_to_string(&markdown).expect("the markdown");
    assert!(written.starts_with("# Benchmarks\n\n## Scale\n\nkept\n"));
    assert!(
        written.contains("<!-- lease-bench-scale:begin")
            && written.contains("<!-- lease-bench-scale:end -->")
    );
    assert!(written.contains("](scale-lifetime.svg)"), "{written}");
    let _ = std::fs::remove_dir_all(&files);
}
