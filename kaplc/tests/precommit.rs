//! The pre-commit hooks manifest (`.pre-commit-hooks.yaml`) run by the real
//! `pre-commit` tool (PyPI): `pre-commit try-repo <repository root> HOOK
//! --files F` in a temporary git repository, with the kaplc under test first
//! on PATH. pre-commit is installed into target/ when missing
//! (`scripts/setup` installs it there too); when PyPI cannot be reached
//! the test fails and says so.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The pre-commit release the test runs (and `scripts/setup` installs).
const PRE_COMMIT: &str = "4.7.0";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where pre-commit is installed: target/tmp/pre-commit-VERSION.
fn pre_commit_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pre-commit-{PRE_COMMIT}"))
}

/// Installs pre-commit with pip unless it is there already: once per test
/// process, into a fresh directory renamed into place, so a run cut short
/// or a concurrent one never leaves a half-installed tool behind.
fn install_pre_commit() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = pre_commit_dir();
        if dir.join("pre_commit/__init__.py").exists() {
            return dir;
        }
        let partial = dir.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        let o = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&partial)
            .arg(format!("pre-commit=={PRE_COMMIT}"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 -m pip (install python3 and pip): {e}"));
        assert!(
            o.status.success() && partial.join("pre_commit/__init__.py").exists(),
            "cannot install pre-commit {PRE_COMMIT} from PyPI into {} (is PyPI reachable? \
             scripts/setup installs it there ahead of time):\n{}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        if std::fs::rename(&partial, &dir).is_err() {
            // Another test process installed it meanwhile.
            let _ = std::fs::remove_dir_all(&partial);
        }
        assert!(
            dir.join("pre_commit/__init__.py").exists(),
            "pre-commit is not in {}",
            dir.display()
        );
        dir
    })
    .clone()
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git (is it installed?): {e}"));
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A checked, formatted policy; one that names an undefined objective; one
/// that checks but is not formatted.
const GOOD: &str = r#"objective o {
  bound {
    fs read "/srv/**"
  }
}

plan p under o {
  step s {
    grant fs read "/srv/a/**"
  }
}
"#;
const BAD: &str = "plan p under ghost {\n  step s {\n    grant fs read \"/srv/a\"\n  }\n}\n";
const UNFORMATTED: &str = "objective o { bound { fs read \"/srv/**\" } }\n";

struct Project {
    dir: tempfile::TempDir,
    pre_commit: PathBuf,
    home: tempfile::TempDir,
}

fn project() -> Project {
    let pre_commit = install_pre_commit();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    git(dir.path(), &["init", "-q"]);
    for (name, text) in [
        ("good.kapl", GOOD),
        ("bad.kapl", BAD),
        ("unformatted.kapl", UNFORMATTED),
    ] {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    git(dir.path(), &["add", "."]);
    Project {
        dir,
        pre_commit,
        home,
    }
}

/// `pre-commit try-repo <root> HOOK --files FILES` in the project.
fn try_repo(p: &Project, hook: &str, files: &[&str]) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_kaplc"))
        .parent()
        .unwrap_or_else(|| panic!("kaplc has no directory"))
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap_or_else(|e| panic!("PATH: {e}"));
    Command::new("python3")
        .args(["-m", "pre_commit", "try-repo"])
        .arg(root())
        .arg(hook)
        .arg("--files")
        .args(files)
        .current_dir(p.dir.path())
        .env("PYTHONPATH", &p.pre_commit)
        .env("PATH", path)
        .env("PRE_COMMIT_HOME", p.home.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 -m pre_commit: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_manifest_is_where_pre_commit_looks() {
    let manifest = std::fs::read_to_string(root().join(".pre-commit-hooks.yaml"))
        .unwrap_or_else(|e| panic!(".pre-commit-hooks.yaml: {e}"));
    for id in ["- id: kapl-check", "- id: kapl-fmt"] {
        assert!(manifest.contains(id), "{id} missing");
    }
    let setup = std::fs::read_to_string(root().join("scripts/setup"))
        .unwrap_or_else(|e| panic!("scripts/setup: {e}"));
    assert!(
        setup.contains(&format!("PRE_COMMIT_VERSION={PRE_COMMIT}")),
        "scripts/setup must install pre-commit {PRE_COMMIT}, the release this test runs"
    );
}

#[test]
fn kapl_check_passes_a_good_policy_and_fails_a_bad_one() {
    let p = project();
    let o = try_repo(&p, "kapl-check", &["good.kapl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("kaplc check"), "{}", text(&o));
    let o = try_repo(&p, "kapl-check", &["good.kapl", "bad.kapl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("KAPL0301"), "{}", text(&o));
    assert!(text(&o).contains("bad.kapl"), "{}", text(&o));
}

#[test]
fn kapl_fmt_passes_a_formatted_policy_and_fails_an_unformatted_one() {
    let p = project();
    let o = try_repo(&p, "kapl-fmt", &["good.kapl"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = try_repo(&p, "kapl-fmt", &["good.kapl", "unformatted.kapl"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("unformatted.kapl:1: not formatted"),
        "{}",
        text(&o)
    );
    // Files that are not policies are not passed to the hooks.
    std::fs::write(p.dir.path().join("notes.txt"), "not a policy")
        .unwrap_or_else(|e| panic!("notes.txt: {e}"));
    let o = try_repo(&p, "kapl-fmt", &["notes.txt"]);
    assert!(o.status.success(), "{}", text(&o));
}
