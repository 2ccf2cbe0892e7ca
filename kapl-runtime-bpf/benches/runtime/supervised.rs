//! The supervised layer's rows (issue 13, item 7): name-making calls and
//! git, each under a real `kapl-run` session (the supervisor serves the
//! calls) beside the same work unconfined, the two taking turns within
//! each round; each keeps its best round.
//!
//! - create + write + close of N small files, then their unlink: the loop
//!   is `kapl-probe create-unlink`, which times itself inside the command,
//!   so neither `kapl-run exec` nor process start-up is counted.
//! - `git status`, `git add -A`, `git commit` on a 2,000-file repository
//!   with 100 files modified: each timed as a whole command, `git ...`
//!   against `kapl-run exec --session ID -- git ...` (the session is
//!   started once, outside the timing). Every round modifies the same 100
//!   files with new contents and undoes its commit afterwards (`git reset
//!   HEAD~1`, its objects pruned; untimed), so every round writes the same
//!   objects into the same repository.

use super::{quick, ratio};
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The step: everything under `root` and `shm`, the probe, git and its
/// helpers, on top of std.runtime's loader, git configuration and user
/// lookups.
fn policy(root: &str, shm: &str, git: &Git) -> String {
    format!(
        r#"use std.runtime
objective o {{
  bound {{ fs read, write, create, delete "/**" exec "/**" }}
}}
plan p under o {{
  grant use runtime.loader
  grant use runtime.git
  grant use runtime.users
  step work {{
    grant fs read, write, create, delete "{root}/**", "{shm}/**"
    grant exec "{probe}", "{bin}", "{exec_path}/*", "/usr/bin/true"
    grant fs read "{prefix}/etc/**", "{prefix}/share/git-core/**"
  }}
}}
"#,
        probe = probe_bin(),
        bin = git.bin.display(),
        exec_path = git.exec_path.display(),
        prefix = git.prefix.display(),
    )
}

/// The git found on PATH, as the agent's commands would run it.
struct Git {
    bin: PathBuf,
    exec_path: PathBuf,
    /// Its installation prefix (system configuration, templates).
    prefix: PathBuf,
}

impl Git {
    fn find() -> Git {
        let bin = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join("git"))
            .find(|p| p.is_file())
            .expect("git on PATH");
        let bin = std::fs::canonicalize(bin).unwrap();
        let o = Command::new(&bin).arg("--exec-path").output().unwrap();
        let exec_path = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
        let prefix = bin.parent().and_then(Path::parent).unwrap().to_path_buf();
        Git {
            bin,
            exec_path,
            prefix,
        }
    }
}

/// A session of the bench policy, and the files it works on: a
/// temporary directory on the disk, and one on tmpfs (`/dev/shm`), where
/// the file system itself costs least and the supervisor's share shows
/// most.
pub struct World {
    t: Tmp,
    shm: PathBuf,
    git: Git,
    session: Session,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.shm);
    }
}

impl World {
    pub fn new() -> World {
        let t = Tmp::new("bench-sup");
        let git = Git::find();
        std::fs::create_dir_all(t.0.join("files")).unwrap();
        let shm = PathBuf::from(format!("/dev/shm/kapl-bench-sup-{}", std::process::id()));
        std::fs::create_dir_all(shm.join("files")).unwrap();
        let img = t.path("p.kapi");
        let text = policy(&t.0.display().to_string(), &shm.display().to_string(), &git);
        std::fs::write(&img, image_from_text("bench", &text)).unwrap();
        let session = Session::start(&img, Some(&t.path("audit.jsonl")));
        World {
            t,
            shm,
            git,
            session,
        }
    }

    /// `kapl-run exec --session ID -- ARGS` (or ARGS alone unconfined),
    /// in `cwd`, with a fixed environment.
    fn command(&self, confined: bool, cwd: &Path, args: &[&str]) -> Command {
        let mut c = if confined {
            let mut c = Command::new(kapl_run());
            c.args(["exec", "--session", &self.session.id, "--"]);
            c.args(args);
            c
        } else {
            let mut c = Command::new(args[0]);
            c.args(&args[1..]);
            c
        };
        c.current_dir(cwd)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &self.t.0)
            .env("LANG", "C.UTF-8")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com");
        c
    }
}

/// One run of `kapl-probe create-unlink` in `dir`: (create phase, unlink
/// phase).
fn create_unlink(w: &World, dir: &str, confined: bool, n: usize) -> (Duration, Duration) {
    let ns = n.to_string();
    let o = w
        .command(confined, &w.t.0, &[probe_bin(), "create-unlink", dir, &ns])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let f: Vec<&str> = out.split_whitespace().collect();
    assert!(
        o.status.success() && f.len() == 4 && f[1] == "ok",
        "create-unlink (confined: {confined}): {out}"
    );
    let d = |s: &str| Duration::from_nanos(s.parse().unwrap());
    (d(f[2]), d(f[3]))
}

fn us(d: Duration, n: usize) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Create + write + close, then unlink, of `n` small files, on the disk
/// and on tmpfs.
pub fn files(w: &World) {
    let (n, reps) = if quick() { (10_000, 3) } else { (10_000, 8) };
    let disk = w.t.path("files");
    let shm = w.shm.join("files").display().to_string();
    for (fs, dir) in [("disk (/tmp, ext4)", &disk), ("tmpfs", &shm)] {
        let mut best = [(Duration::MAX, Duration::MAX); 2];
        for _ in 0..reps {
            for (i, confined) in [false, true].into_iter().enumerate() {
                let (c, u) = create_unlink(w, dir, confined, n);
                if c + u < best[i].0.saturating_add(best[i].1) {
                    best[i] = (c, u);
                }
            }
        }
        let [(uc, uu), (kc, ku)] = best;
        println!(
            "| create + write + close, {n} small files, {fs}: per create (supervised) | {} | | {} | {:.2}× | |",
            us(uc, n),
            us(kc, n),
            ratio(kc, uc)
        );
        println!(
            "| unlink, {n} small files, {fs}: per unlink (supervised) | {} | | {} | {:.2}× | |",
            us(uu, n),
            us(ku, n),
            ratio(ku, uu)
        );
        println!(
            "| create + write + close + unlink, {n} small files, {fs} | {} | | {} | {:.2}× (target ≤ 2.5×) | |",
            ms(uc + uu),
            ms(kc + ku),
            ratio(kc + ku, uc + uu)
        );
    }
}

/// A 2,000-file repository (20 directories of 100), committed once and
/// packed.
fn make_repo(w: &World) -> PathBuf {
    let repo = w.t.0.join("repo");
    for d in 0..20 {
        for f in 0..100 {
            w.t.write(
                &format!("repo/d{d:02}/f{f:03}.txt"),
                &format!("file {d}/{f}\n{}\n", "x".repeat(200)),
            );
        }
    }
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-qm", "initial"],
        &["gc", "-q"],
    ] {
        git_ok(w, false, &repo, args);
    }
    repo
}

/// Runs `git ARGS` in `repo`; its wall-clock time.
fn git_ok(w: &World, confined: bool, repo: &Path, args: &[&str]) -> Duration {
    let bin = w.git.bin.display().to_string();
    let mut all = vec![bin.as_str()];
    all.extend(args);
    let t = Instant::now();
    let o = w
        .command(confined, repo, &all)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let el = t.elapsed();
    assert!(
        o.status.success(),
        "git {args:?} (confined: {confined}): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    el
}

/// `git status`, `git add -A` and `git commit` with 100 files modified.
pub fn git(w: &World) {
    let reps = if quick() { 3 } else { 20 };
    let repo = make_repo(w);
    let cmds: [&[&str]; 3] = [&["status"], &["add", "-A"], &["commit", "-qm", "round"]];
    let mut best = [[Duration::MAX; 4]; 2];
    let mut round = 0;
    for _ in 0..reps {
        for (i, confined) in [false, true].into_iter().enumerate() {
            round += 1;
            // The same 100 files each round, with contents new to the
            // repository: every `add` hashes and writes 100 new blobs.
            for k in 0..100 {
                let (d, f) = (k % 20, (k * 7) % 100);
                w.t.write(
                    &format!("repo/d{d:02}/f{f:03}.txt"),
                    &format!("file {d}/{f} round {round}\n{}\n", "y".repeat(200)),
                );
            }
            for (j, args) in cmds.iter().enumerate() {
                best[i][j] = best[i][j].min(git_ok(w, confined, &repo, args));
            }
            // What `kapl-run exec` itself adds to any command, measured
            // the same way in the same rounds.
            let t = Instant::now();
            let ok = w
                .command(confined, &repo, &["/usr/bin/true"])
                .status()
                .unwrap()
                .success();
            assert!(ok, "/usr/bin/true (confined: {confined})");
            best[i][3] = best[i][3].min(t.elapsed());
            // Back to the same repository: the round's commit undone and
            // its objects pruned (else loose objects pile up round after
            // round, and every later `add` and `commit` works in a larger
            // object store).
            for args in [
                &["reset", "-q", "HEAD~1"][..],
                &["reflog", "expire", "--expire-unreachable=now", "--all"],
                &["prune", "--expire=now"],
            ] {
                git_ok(w, false, &repo, args);
            }
        }
    }
    for (j, label) in ["git status", "git add -A", "git commit"]
        .iter()
        .enumerate()
    {
        let (un, k) = (best[0][j], best[1][j]);
        println!(
            "| {label}, 2000-file repository, 100 files modified (whole command; `kapl-run exec` in a running session) | {} | | {} | {:.2}× (target ≤ 1.5×), +{:.1} ms | |",
            ms(un),
            ms(k),
            ratio(k, un),
            (k.as_secs_f64() - un.as_secs_f64()) * 1e3
        );
    }
    // What `kapl-run exec` adds to any command, beside the rows above.
    let (un0, k0) = (best[0][3], best[1][3]);
    println!(
        "| `/usr/bin/true` in the same rounds (exec start-up) | {} | | {} | +{:.1} ms | |",
        ms(un0),
        ms(k0),
        (k0.as_secs_f64() - un0.as_secs_f64()) * 1e3
    );
}
