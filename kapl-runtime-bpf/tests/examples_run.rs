//! The parameterised example policies of `tests/examples/` on the real
//! kernel (root): each built with `--param` for a project made here, and
//! its steps run with the real programs (python3 and git; cargo and rustc
//! offline; a shell release script with tar, gzip, sha256sum and git tag),
//! with no denial printed by the work itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn kaplc() -> PathBuf {
    let p = Path::new(kapl_run()).with_file_name("kaplc");
    assert!(
        p.is_file(),
        "kaplc is missing beside kapl-run: `cargo build -p kaplc` (scripts/test does)"
    );
    p
}

fn example(name: &str) -> String {
    format!(
        "{}/../tests/examples/{name}.kapl",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Builds example `name` with `params` into `out`.
fn build(name: &str, params: &[(&str, &str)], out: &str) {
    let mut c = Command::new(kaplc());
    c.args(["build", &example(name), "-o", out]);
    for (k, v) in params {
        c.args(["--param", &format!("{k}={v}")]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{name}: {}", text(&o).1);
}

/// Runs a program outside any session (setting up the project).
fn sh(cwd: &str, args: &[&str]) {
    let o = Command::new(args[0])
        .args(&args[1..])
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o).1);
}

/// Makes `dir` a git repository with everything in it committed.
fn git_repo(dir: &str) {
    sh(dir, &["git", "init", "-q"]);
    for step in [&["add", "-A"][..], &["commit", "-qm", "first"]] {
        let mut a = vec!["git", "-c", "user.name=t", "-c", "user.email=t@e"];
        a.extend(step);
        sh(dir, &a);
    }
}

/// A session of `plan` of `img`, and a way to run commands in it from
/// `cwd` with a fixed environment.
struct Run {
    s: SessionGuard,
    cwd: String,
    env: Vec<(String, String)>,
}

impl Run {
    fn start(img: &str, plan: &str, cwd: &str, env: &[(&str, &str)]) -> Run {
        let o = kapl(&["session", "start", img, "--plan", plan]);
        assert!(o.status.success(), "{}", text(&o).1);
        Run {
            s: SessionGuard(text(&o).0.trim().to_string()),
            cwd: cwd.into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Runs `args` in the session: must succeed with no denial printed.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = Command::new(kapl_run())
            .args(["exec", "--session", &self.s.0, "--"])
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let (out, err) = text(&o);
        assert!(
            o.status.success() && !err.contains("denied"),
            "{args:?}: exit {:?}\n{err}",
            o.status.code()
        );
        out
    }

    fn step(&self, name: &str) {
        let o = kapl(&["step", "--session", &self.s.0, name]);
        assert!(o.status.success(), "{}", text(&o).1);
    }
}

#[test]
fn a_python_repository_is_explored_edited_tested_and_committed() {
    let t = Tmp::new("ex-python");
    let repo = t.path("repo");
    t.write("repo/pkg/__init__.py", "def greet():\n    return 'hello'\n");
    t.write(
        "repo/tests/test_greet.py",
        "import unittest\nfrom pkg import greet\nclass T(unittest.TestCase):\n    def test(self):\n        self.assertEqual(greet(), 'hello')\n",
    );
    t.write("repo/tests/__init__.py", "");
    t.write("repo/.env", "TOKEN=secret\n");
    t.write("repo/.gitignore", ".env\n__pycache__/\n");
    git_repo(&repo);
    let img = t.path("p.kapi");
    build("python-repo", &[("repo", &repo)], &img);
    let env = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", repo.as_str()),
        ("GIT_AUTHOR_NAME", "agent"),
        ("GIT_AUTHOR_EMAIL", "agent@example.com"),
        ("GIT_COMMITTER_NAME", "agent"),
        ("GIT_COMMITTER_EMAIL", "agent@example.com"),
    ];
    let r = Run::start(&img, "change", &repo, &env);
    assert!(r.ok(&["git", "log", "--oneline"]).contains("first"));
    assert!(r.ok(&["cat", "pkg/__init__.py"]).contains("hello"));
    r.step("edit");
    r.ok(&[
        "sed",
        "-i",
        "s/hello/hi/",
        "pkg/__init__.py",
        "tests/test_greet.py",
    ]);
    r.step("test");
    r.ok(&[
        "/usr/bin/python3",
        "-m",
        "unittest",
        "discover",
        "-s",
        "tests",
        "-t",
        ".",
    ]);
    r.step("commit");
    r.ok(&["git", "commit", "-qam", "say hi"]);
    assert!(r.ok(&["git", "log", "--oneline"]).contains("say hi"));
    drop(r);
    assert_no_leftover_cgroups();
}

#[test]
fn a_rust_crate_is_built_and_tested_offline() {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let cargo_bin = format!("{home}/.cargo/bin");
    assert!(
        Path::new(&cargo_bin).join("cargo").exists(),
        "this test needs rustup's cargo in {cargo_bin}"
    );
    let t = Tmp::new("ex-rust");
    let krate = t.path("crate");
    t.write(
        "crate/Cargo.toml",
        "[package]\nname = \"ex\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    t.write(
        "crate/src/lib.rs",
        "pub fn add(a: u32, b: u32) -> u32 { a + b }\n#[cfg(test)]\nmod tests { #[test] fn adds() { assert_eq!(super::add(2, 2), 4); } }\n",
    );
    let img = t.path("p.kapi");
    build("rust-crate", &[("crate", &krate), ("home", &home)], &img);
    let path = format!("{cargo_bin}:/usr/bin:/bin");
    let env = [("PATH", path.as_str()), ("HOME", home.as_str())];
    let r = Run::start(&img, "check", &krate, &env);
    r.ok(&["mkdir", "-p", "target"]);
    r.step("build");
    r.ok(&["cargo", "build", "--offline"]);
    r.ok(&["cargo", "test", "--no-run", "--offline"]);
    r.step("test");
    let out = r.ok(&["cargo", "test", "--offline"]);
    assert!(out.contains("test tests::adds ... ok"), "{out}");
    drop(r);
    assert_no_leftover_cgroups();
}

#[test]
fn a_release_is_packed_checksummed_and_tagged_by_its_script() {
    let t = Tmp::new("ex-release");
    let repo = t.path("repo");
    t.write("repo/src/tool.sh", "echo tool\n");
    t.write(
        "repo/release.sh",
        "#!/usr/bin/bash\nset -eu\nv=\"$1\"\nname=\"$(basename \"$PWD\")-$v\"\ntar czf \"dist/$name.tar.gz\" src\n(cd dist && sha256sum \"$name.tar.gz\" > SHA256SUMS)\ngit tag \"v$v\"\ncat dist/SHA256SUMS\n",
    );
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            t.0.join("repo/release.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    git_repo(&repo);
    let img = t.path("p.kapi");
    build("release", &[("repo", &repo)], &img);
    let env = [("PATH", "/usr/bin:/bin"), ("HOME", repo.as_str())];
    let r = Run::start(&img, "cut", &repo, &env);
    r.ok(&["mkdir", "dist"]);
    r.step("package");
    let out = r.ok(&["./release.sh", "1.0"]);
    assert!(out.contains("repo-1.0.tar.gz"), "{out}");
    drop(r);
    assert!(t.0.join("repo/dist/repo-1.0.tar.gz").is_file());
    assert!(t.0.join("repo/.git/refs/tags/v1.0").is_file());
    assert_no_leftover_cgroups();
}
