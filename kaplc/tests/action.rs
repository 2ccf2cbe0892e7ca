//! The GitHub Action's review (`scripts/action/review.sh`, what `action.yml`
//! runs) against a temporary git repository: a base commit of a policy, a
//! commit that widens it (and adds a new policy), one that narrows it and
//! one that breaks it, run with the environment a GitHub runner gives a
//! pull-request job (no token, so no comment and no network) and the kaplc
//! under test.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const BASE: &str = r#"objective o {
  bound {
    fs read "/srv/**"
    exec "/usr/bin/{cat,ls}"
  }
}

plan p under o {
  step s {
    grant fs read "/srv/a/**"
    grant exec "/usr/bin/cat"
  }
}
"#;

/// git in `dir`, with an identity and without the user's configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap_or_else(|e| panic!("cannot run git (is it installed?): {e}"));
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    }
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// The repository: `main` (the base), and branches `widen`, `narrow`,
/// `broken` on top of it. Returns it and the commit of each.
struct Repo {
    dir: tempfile::TempDir,
    base: String,
    widen: String,
    narrow: String,
    broken: String,
}

fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write(d, "policies/web.kapl", BASE);
    write(d, "README", "policies\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    let base = git(d, &["rev-parse", "HEAD"]);
    // GitHub's checkout has the base branch as origin/BASE_REF.
    git(d, &["update-ref", "refs/remotes/origin/main", &base]);

    git(d, &["switch", "-qc", "widen"]);
    write(
        d,
        "policies/web.kapl",
        &BASE.replace(r#"grant fs read "/srv/a/**""#, r#"grant fs read "/srv/**""#),
    );
    write(d, "policies/extra.kapl", BASE);
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "widen"]);
    let widen = git(d, &["rev-parse", "HEAD"]);

    git(d, &["switch", "-q", "main"]);
    git(d, &["switch", "-qc", "narrow"]);
    write(
        d,
        "policies/web.kapl",
        &BASE.replace(r#""/srv/a/**""#, r#""/srv/a/docs/**""#),
    );
    write(d, "README", "only the README and a narrowing\n");
    git(d, &["commit", "-qam", "narrow"]);
    let narrow = git(d, &["rev-parse", "HEAD"]);

    git(d, &["switch", "-q", "main"]);
    git(d, &["switch", "-qc", "broken"]);
    write(
        d,
        "policies/web.kapl",
        &BASE.replace("plan p under o", "plan p under ghost"),
    );
    git(d, &["commit", "-qam", "broken"]);
    let broken = git(d, &["rev-parse", "HEAD"]);
    git(d, &["switch", "-q", "main"]);
    Repo {
        dir,
        base,
        widen,
        narrow,
        broken,
    }
}

/// What a run left: its exit status, the step summary, the SARIF log (if
/// written) and the `GITHUB_OUTPUT` lines.
struct Run {
    out: Output,
    summary: String,
    sarif: Option<serde_json::Value>,
    output: String,
}

impl Run {
    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }
}

/// Runs the review as the action does on a pull request whose head is
/// `head`, with `vars` on top of a runner's environment.
fn review(repo: &Repo, head: &str, vars: &[(&str, &str)]) -> Run {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let summary = tmp.path().join("step-summary.md");
    let output = tmp.path().join("github-output");
    let sarif = tmp.path().join("kapl.sarif");
    for f in [&summary, &output] {
        std::fs::write(f, "").unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
    let mut c = Command::new("bash");
    c.arg(root().join("scripts/action/review.sh"))
        .current_dir(repo.dir.path())
        .env("KAPLC", env!("CARGO_BIN_EXE_kaplc"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_BASE_REF", "main")
        .env("GITHUB_HEAD_REF", "feature")
        .env("GITHUB_SHA", head)
        .env("GITHUB_REPOSITORY", "example/policies")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .env("KAPL_SARIF", &sarif)
        .env("KAPL_PR_NUMBER", "7")
        .env_remove("GH_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env_remove("KAPL_BASE_SHA")
        .env_remove("KAPL_HEAD_SHA")
        .env_remove("KAPL_LABELS")
        .env_remove("KAPL_APPROVAL_LABEL")
        .env_remove("KAPL_PATHS")
        .env_remove("KAPL_SUMMARY");
    for (k, v) in vars {
        c.env(k, v);
    }
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let sarif = std::fs::read(&sarif).ok().map(|b| {
        serde_json::from_slice(&b).unwrap_or_else(|e| panic!("the SARIF log is not JSON: {e}"))
    });
    Run {
        summary: read(&summary),
        output: read(&output),
        sarif,
        out,
    }
}

fn explain(r: &Run) -> String {
    format!(
        "exit {}\n--- summary\n{}\n--- stdout\n{}\n--- stderr\n{}",
        r.code(),
        r.summary,
        String::from_utf8_lossy(&r.out.stdout),
        String::from_utf8_lossy(&r.out.stderr)
    )
}

#[test]
fn a_widening_fails_and_the_summary_names_it() {
    let repo = repo();
    let r = review(&repo, &repo.widen, &[("KAPL_LABELS", "documentation")]);
    assert_eq!(r.code(), 1, "{}", explain(&r));
    let s = &r.summary;
    assert!(s.contains("## KAPL policy review"), "{}", explain(&r));
    assert!(
        s.contains("| `policies/web.kapl` | ok | **widens** |"),
        "{}",
        explain(&r)
    );
    assert!(
        s.contains("`policies/extra.kapl` (new policy: compared with an empty one)"),
        "{}",
        explain(&r)
    );
    assert!(s.contains("**Widening not approved**"), "{}", explain(&r));
    assert!(s.contains("`kapl-widening-approved`"), "{}", explain(&r));
    // What widens: the step's read of /srv/a/** became /srv/**.
    assert!(s.contains("/srv"), "{}", explain(&r));
    // The SARIF log of the head revisions, for the upload step.
    let sarif = r
        .sarif
        .as_ref()
        .unwrap_or_else(|| panic!("{}", explain(&r)));
    assert_eq!(sarif["version"], "2.1.0");
    assert!(r.output.contains("sarif="), "{}", r.output);
    // No token: nothing was posted (and nothing tried the network).
    assert!(!String::from_utf8_lossy(&r.out.stdout).contains("::warning::"));
    // The temporary worktrees are gone.
    let worktrees = git(repo.dir.path(), &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "{worktrees}");
}

#[test]
fn a_widening_with_the_approval_label_passes_and_says_so() {
    let repo = repo();
    let r = review(
        &repo,
        &repo.widen,
        &[("KAPL_LABELS", "documentation, kapl-widening-approved")],
    );
    assert_eq!(r.code(), 0, "{}", explain(&r));
    assert!(
        r.summary
            .contains("**Widening approved** by the label `kapl-widening-approved`"),
        "{}",
        explain(&r)
    );
    assert!(r.summary.contains("`policies/web.kapl`"), "{}", explain(&r));

    // Another label name, given as the action's input.
    let r = review(
        &repo,
        &repo.widen,
        &[
            ("KAPL_LABELS", "kapl-widening-approved"),
            ("KAPL_APPROVAL_LABEL", "owner-ok"),
        ],
    );
    assert_eq!(r.code(), 1, "{}", explain(&r));
    let r = review(
        &repo,
        &repo.widen,
        &[
            ("KAPL_LABELS", "owner-ok"),
            ("KAPL_APPROVAL_LABEL", "owner-ok"),
        ],
    );
    assert_eq!(r.code(), 0, "{}", explain(&r));
}

#[test]
fn a_narrowing_passes() {
    let repo = repo();
    // The base as the action passes it (the pull request's base commit).
    let r = review(
        &repo,
        &repo.narrow,
        &[("KAPL_BASE_SHA", repo.base.as_str())],
    );
    assert_eq!(r.code(), 0, "{}", explain(&r));
    assert!(
        r.summary
            .contains("| `policies/web.kapl` | ok | does not widen |"),
        "{}",
        explain(&r)
    );
    assert!(
        r.summary.contains("No policy widens authority."),
        "{}",
        explain(&r)
    );
    assert!(!r.summary.contains("README"), "{}", explain(&r));
}

#[test]
fn a_policy_that_does_not_check_fails_even_with_the_label() {
    let repo = repo();
    let r = review(
        &repo,
        &repo.broken,
        &[("KAPL_LABELS", "kapl-widening-approved")],
    );
    assert_eq!(r.code(), 1, "{}", explain(&r));
    assert!(r.summary.contains("does not check"), "{}", explain(&r));
    assert!(r.summary.contains("KAPL0301"), "{}", explain(&r));
    let results = r
        .sarif
        .as_ref()
        .and_then(|s| s["runs"][0]["results"].as_array().cloned())
        .unwrap_or_default();
    assert!(
        results.iter().any(|x| x["ruleId"] == "KAPL0301"
            && x["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "policies/web.kapl"),
        "{results:?}"
    );
}

#[test]
fn no_base_revision_is_a_usage_error() {
    let repo = repo();
    let r = review(&repo, &repo.widen, &[("GITHUB_BASE_REF", "")]);
    assert_eq!(r.code(), 2, "{}", explain(&r));
    assert!(
        String::from_utf8_lossy(&r.out.stderr).contains("no base revision"),
        "{}",
        explain(&r)
    );
}

/// With a token the summary becomes a pull-request comment through `gh`
/// (here a stand-in on PATH that records its calls: no network). The first
/// run has no comment of its own to edit, so `--edit-last` fails and a new
/// comment is added.
#[test]
fn with_a_token_the_summary_is_posted_through_gh() {
    let repo = repo();
    let bin = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let log = bin.path().join("gh.log");
    let gh = bin.path().join("gh");
    std::fs::write(
        &gh,
        "#!/bin/sh\n\
         echo \"$* GH_TOKEN=$GH_TOKEN GH_REPO=$GH_REPO\" >> \"$FAKE_GH_LOG\"\n\
         edit=0\n\
         while [ $# -gt 0 ]; do\n\
           [ \"$1\" = --edit-last ] && edit=1\n\
           [ \"$1\" = --body-file ] && cat \"$2\" > \"$FAKE_GH_LOG.body\"\n\
           shift\n\
         done\n\
         exit $edit\n",
    )
    .unwrap_or_else(|e| panic!("{}: {e}", gh.display()));
    let chmod = Command::new("chmod")
        .arg("+x")
        .arg(&gh)
        .status()
        .unwrap_or_else(|e| panic!("chmod: {e}"));
    assert!(chmod.success());
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let log_s = log.display().to_string();
    let r = review(
        &repo,
        &repo.widen,
        &[
            ("PATH", path.as_str()),
            ("GH_TOKEN", "t0ken"),
            ("GH_REPO", "example/policies"),
            ("FAKE_GH_LOG", log_s.as_str()),
        ],
    );
    assert_eq!(r.code(), 1, "{}", explain(&r));
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    let lines: Vec<&str> = calls.lines().collect();
    assert_eq!(lines.len(), 2, "{calls}");
    assert!(
        lines[0].starts_with("pr comment 7 --edit-last --body-file "),
        "{calls}"
    );
    assert!(lines[1].starts_with("pr comment 7 --body-file "), "{calls}");
    assert!(
        lines[1].ends_with("GH_TOKEN=t0ken GH_REPO=example/policies"),
        "{calls}"
    );
    let body = std::fs::read_to_string(format!("{log_s}.body")).unwrap_or_default();
    assert_eq!(body, r.summary, "the comment is the step summary");
}
