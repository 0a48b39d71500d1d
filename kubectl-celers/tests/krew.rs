//! The krew manifest: `hack/krew-archive.sh` packs the plugin and writes
//! `celers.yaml` from `kubectl-celers/krew/plugin.yaml`; krew's own
//! validator (`validate-krew-manifest`, built from krew's Go module by
//! `hack/krew-tools.sh`) accepts it, and krew installs the plugin from the
//! local archive into a krew root of its own, from where it runs.

#![allow(clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn run(command: &mut Command) -> Output {
    command.output().expect("run")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs Go (builds krew): run `make test`"]
fn krew_validates_and_installs_the_plugin_from_a_local_archive() {
    let tools = run(&mut Command::new(root().join("hack/krew-tools.sh")));
    assert!(
        tools.status.success(),
        "hack/krew-tools.sh: {}",
        text(&tools)
    );
    let tools = PathBuf::from(String::from_utf8_lossy(&tools.stdout).trim());
    let dir =
        TempDir(std::env::temp_dir().join(format!("kubectl-celers-krew-{}", std::process::id())));
    let out = dir.0.join("out");

    let packed = run(Command::new(root().join("hack/krew-archive.sh"))
        .arg(&out)
        .args(["--binary", env!("CARGO_BIN_EXE_kubectl-celers")])
        .env("KREW_OS", "linux")
        .env("KREW_ARCH", "amd64"));
    assert!(
        packed.status.success(),
        "hack/krew-archive.sh: {}",
        text(&packed)
    );
    let version = env!("CARGO_PKG_VERSION");
    let archive = out.join(format!("kubectl-celers_v{version}_linux_amd64.tar.gz"));
    let manifest = out.join("celers.yaml");
    let written = std::fs::read_to_string(&manifest).expect("celers.yaml");
    assert!(
        written.contains(&format!("\n  version: v{version}\n")),
        "{written}"
    );
    assert!(
        !written.contains("@VERSION@") && !written.contains("platforms: []"),
        "{written}"
    );

    // krew's validator: structure, name, platforms.
    let validate = |manifest: &Path| {
        run(Command::new(tools.join("validate-krew-manifest"))
            .arg("-manifest")
            .arg(manifest)
            .arg("-skip-install"))
    };
    let validated = validate(&manifest);
    assert!(validated.status.success(), "{}", text(&validated));
    assert!(
        text(&validated).contains("structural validation OK"),
        "{}",
        text(&validated)
    );

    // krew installs it from the archive (checking its sha256), and the
    // installed plugin runs.
    let install = |manifest: &Path, krew_root: &Path| {
        run(Command::new(tools.join("krew"))
            .arg("install")
            .arg(format!("--manifest={}", manifest.display()))
            .arg(format!("--archive={}", archive.display()))
            .env("KREW_ROOT", krew_root)
            .env("KREW_OS", "linux")
            .env("KREW_ARCH", "amd64"))
    };
    let krew_root = dir.0.join("krew");
    let installed = install(&manifest, &krew_root);
    assert!(
        installed.status.success(),
        "krew install: {}",
        text(&installed)
    );
    let ran = run(Command::new(krew_root.join("bin/kubectl-celers")).arg("--version"));
    assert!(ran.status.success(), "{}", text(&ran));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        format!("kubectl-celers {version}\n")
    );
    assert!(krew_root
        .join(format!("store/celers/v{version}/LICENSE"))
        .is_file());

    // The checks bite: a manifest under another name, one with a broken
    // field, and an archive that does not match its sha256 are refused.
    let renamed = out.join("other.yaml");
    std::fs::write(&renamed, &written).expect("write");
    assert!(
        !validate(&renamed).status.success(),
        "a manifest named other than its plugin"
    );
    let broken = dir.0.join("broken/celers.yaml");
    std::fs::create_dir_all(broken.parent().expect("dir")).expect("dir");
    std::fs::write(&broken, written.replace("bin: kubectl-celers", "bin: ''")).expect("write");
    assert!(
        !validate(&broken).status.success(),
        "a platform without bin"
    );
    let sha = written
        .lines()
        .find_map(|line| line.trim().strip_prefix("sha256: "))
        .expect("a sha256")
        .trim_matches('"');
    assert_eq!(sha.len(), 64, "{sha}");
    let tampered = dir.0.join("tampered/celers.yaml");
    std::fs::create_dir_all(tampered.parent().expect("dir")).expect("dir");
    std::fs::write(&tampered, written.replace(sha, &"0".repeat(64))).expect("write");
    assert!(
        validate(&tampered).status.success(),
        "the structure alone is fine"
    );
    let refused = install(&tampered, &dir.0.join("krew-tampered"));
    assert!(
        !refused.status.success(),
        "an archive whose sha256 does not match"
    );
}
