//! The supervised layer on the real kernel (issue 13): the calls Landlock
//! has no right for — changing a file's mode, owner, times or extended
//! attributes, inotify watches, `listen` without `bind` — are sent by the
//! seccomp filter to the supervisor, decided exactly against the step's
//! grants, performed on the command's behalf and reported with their
//! chain; races against the supervisor's resolution operate on an object
//! the grant covers, or are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::Right;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const RW: &[Right] = &[Right::Read, Right::Write];
const ALL: &[Right] = &[Right::Read, Right::Write, Right::Create, Right::Delete];

fn spec(grants: Vec<G>) -> PolicySpec {
    let mut g = vec![probe_exec()];
    g.extend(grants);
    one_step(vec![], "work", g)
}

/// The probe's stdout lines.
#[track_caller]
fn lines(s: &Session, args: &[&str]) -> Vec<String> {
    let o = s.probe(args);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    out.lines().map(str::to_string).collect()
}

/// Mode and modification time of `p`.
fn stamp(p: &str) -> (u32, i64) {
    let m = std::fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.mtime())
}

fn set_mode(p: &str, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The supervisor's deny record of `op` on `object`, with its chain.
#[track_caller]
fn denied(recs: &[serde_json::Value], op: &str, object: &str) {
    let r = recs
        .iter()
        .find(|r| r["verdict"] == "deny" && r["operation"] == op && r["object"] == object)
        .unwrap_or_else(|| panic!("no deny record of {op} on {object}: {recs:#?}"));
    assert_eq!(r["mechanism"], "supervisor", "{r}");
    assert_eq!(r["step"], "work", "{r}");
    assert_eq!(r["plan"], "p", "{r}");
    assert_eq!(r["objective"], "o", "{r}");
    assert_eq!(
        r["reason"], "no grant of step work (plan p, objective o) covers it",
        "{r}"
    );
}

const META_REFUSED: &[&str] = &[
    "chmod refused 13",
    "chown refused 13",
    "utimensat refused 13",
    "setxattr refused 13",
    "removexattr refused 13",
    "open ok",
    "fchmod refused 13",
    "futimens refused 13",
    "fsetxattr refused 13",
];

#[test]
fn metadata_changes_need_write_and_are_reported() {
    let t = Tmp::new("sup-meta");
    t.write("r/f.txt", "read only\n");
    t.write("w/f.txt", "writable\n");
    t.write("w/keep.txt", "excepted\n");
    t.write("u/f.txt", "ungranted\n");
    for f in ["r/f.txt", "w/f.txt", "w/keep.txt", "u/f.txt"] {
        set_mode(&t.path(f), 0o644);
    }
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(&[Right::Read], vec![t.path("r/**")], vec![]),
            G::Fs(RW, vec![t.path("w/**")], vec![t.path("w/keep.txt")]),
            G::Fs(&[Right::Read], vec![t.path("w/keep.txt")], vec![]),
        ]),
    );
    let before: Vec<_> = ["r/f.txt", "w/keep.txt", "u/f.txt"]
        .iter()
        .map(|f| stamp(&t.path(f)))
        .collect();
    // Read-only and excepted files: every change refused, by path and
    // through a read-only descriptor.
    for f in ["r/f.txt", "w/keep.txt"] {
        assert_eq!(lines(&s, &["meta", &t.path(f)]), META_REFUSED, "{f}");
    }
    // An ungranted file cannot even be opened (Landlock), and no change
    // by path gets through the supervisor.
    assert_eq!(
        lines(&s, &["meta", &t.path("u/f.txt")]),
        [
            "chmod refused 13",
            "chown refused 13",
            "utimensat refused 13",
            "setxattr refused 13",
            "removexattr refused 13",
            "open refused 13",
        ]
    );
    let after: Vec<_> = ["r/f.txt", "w/keep.txt", "u/f.txt"]
        .iter()
        .map(|f| stamp(&t.path(f)))
        .collect();
    assert_eq!(before, after, "refused changes changed nothing");
    let recs = s.records();
    for f in ["r/f.txt", "w/keep.txt", "u/f.txt"] {
        let p = t.path(f);
        for op in [
            "chmod (write)",
            "chown (write)",
            "set times (write)",
            "setxattr (write)",
            "removexattr (write)",
        ] {
            denied(&recs, op, &p);
        }
    }
    // The write-granted twin: every change works and is made.
    let w = t.path("w/f.txt");
    assert_eq!(
        lines(&s, &["meta", &w]),
        [
            "chmod ok",
            "chown ok",
            "utimensat ok",
            "setxattr ok",
            "removexattr ok",
            "open ok",
            "fchmod ok",
            "futimens ok",
            "fsetxattr ok",
        ]
    );
    assert_eq!(stamp(&w), (0o640, 946_684_800));
    // Allows are reported once per grant and object, by the supervisor.
    let recs = s.records();
    let allow = recs
        .iter()
        .find(|r| r["verdict"] == "allow" && r["operation"] == "chmod (write)" && r["object"] == w)
        .unwrap_or_else(|| panic!("no allow record: {recs:#?}"));
    assert_eq!(allow["mechanism"], "supervisor");
    assert!(allow["grant"]["id"].is_u64(), "{allow}");
    let n = recs
        .iter()
        .filter(|r| {
            r["verdict"] == "allow" && r["operation"] == "chmod (write)" && r["object"] == w
        })
        .count();
    assert_eq!(
        n, 1,
        "chmod and fchmod of one file under one grant: one record"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

#[test]
fn inotify_watches_need_read_on_what_they_watch() {
    let t = Tmp::new("sup-watch");
    t.write("r/f.txt", "x\n");
    t.write("hidden/f.txt", "x\n");
    let s = Session::of_spec(
        &t,
        spec(vec![G::Fs(&[Right::Read], vec![t.path("r/**")], vec![])]),
    );
    assert_eq!(lines(&s, &["watch", &t.path("r")]), ["watch ok"]);
    assert_eq!(lines(&s, &["watch", &t.path("r/f.txt")]), ["watch ok"]);
    assert_eq!(
        lines(&s, &["watch", &t.path("hidden")]),
        ["watch refused 13"]
    );
    assert_eq!(
        lines(&s, &["watch", &t.path("hidden/f.txt")]),
        ["watch refused 13"]
    );
    let recs = s.records();
    denied(&recs, "inotify watch (read)", &t.path("hidden"));
    denied(&recs, "inotify watch (read)", &t.path("hidden/f.txt"));
    drop(s);
    assert_no_leftover_cgroups();
}

#[test]
fn listen_without_bind_is_refused_and_reported() {
    let t = Tmp::new("sup-listen");
    let s = Session::of_spec(&t, spec(vec![]));
    assert_eq!(
        lines(&s, &["listen-unbound"]),
        ["listen-unbound4 refused 1", "listen-unbound6 refused 1"]
    );
    let recs = s.records();
    for addr in ["0.0.0.0:0 (tcp)", "[::]:0 (tcp)"] {
        let r = recs
            .iter()
            .find(|r| {
                r["verdict"] == "deny"
                    && r["operation"] == "listen on an unbound socket (implicit bind)"
                    && r["object"] == addr
            })
            .unwrap_or_else(|| panic!("no listen record for {addr}: {recs:#?}"));
        assert_eq!(r["mechanism"], "supervisor", "{r}");
        assert_eq!(r["step"], "work", "{r}");
    }
    drop(s);
    assert_no_leftover_cgroups();
}

#[test]
fn a_path_rewritten_during_the_call_changes_only_what_the_grant_covers() {
    let t = Tmp::new("sup-race-buf");
    t.write("w/g.txt", "good\n");
    t.write("r/b.txt", "bad\n");
    set_mode(&t.path("r/b.txt"), 0o644);
    set_mode(&t.path("w/g.txt"), 0o644);
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(RW, vec![t.path("w/**")], vec![]),
            G::Fs(&[Right::Read], vec![t.path("r/**")], vec![]),
        ]),
    );
    // A few rounds: on a loaded machine one round may see only torn or
    // read-only paths; some call must have changed the granted file, or
    // the race was never run.
    let mut ok = 0u32;
    for _ in 0..5 {
        let out = lines(
            &s,
            &[
                "race-buffer",
                &t.path("w/g.txt"),
                &t.path("r/b.txt"),
                "3000",
            ],
        );
        ok += out[0]
            .strip_prefix("race-buffer ok ")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or_else(|| panic!("{out:?}"));
        if ok > 0 {
            break;
        }
    }
    assert!(ok > 0, "the granted path was changed at least once");
    assert_eq!(
        stamp(&t.path("r/b.txt")).0,
        0o644,
        "the read-only file kept its mode"
    );
    assert_eq!(stamp(&t.path("w/g.txt")).0, 0o600);
    drop(s);
    assert_no_leftover_cgroups();
}

#[test]
fn a_symlink_swapped_into_the_path_changes_only_what_the_grant_covers() {
    let t = Tmp::new("sup-race-swap");
    t.write("s/x/f", "in the granted directory\n");
    t.write("d/f", "read only\n");
    set_mode(&t.path("d/f"), 0o644);
    std::os::unix::fs::symlink(t.path("d"), t.path("s/link")).unwrap();
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(ALL, vec![t.path("s/**")], vec![]),
            G::Fs(&[Right::Read], vec![t.path("d/**")], vec![]),
        ]),
    );
    let out = lines(&s, &["race-swap", &t.path("s"), "3000"]);
    assert!(out[0].starts_with("race-swap ok "), "{out:?}");
    assert_eq!(
        stamp(&t.path("d/f")).0,
        0o644,
        "the read-only file kept its mode"
    );
    drop(s);
    assert_no_leftover_cgroups();
}

/// Runs `git ARGS` outside any session (set-up and checks).
#[track_caller]
fn git_here(dir: &str, args: &[&str]) -> String {
    let o = std::process::Command::new("/usr/bin/git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The new-user case of issue 13: a project whose `.env` at the root may
/// not be read and whose `.git/hooks` and `.git/config` may not be
/// changed. Listing the root, finding files, `git status` (which must show
/// the untracked files), `git add` of several paths and `git commit` all
/// work; `mkdir build` at the root works with create granted on `build`
/// alone, and nothing else can be made at the root or in `.git/hooks`.
#[test]
fn ordinary_work_beside_excepted_files() {
    assert!(
        std::path::Path::new("/usr/bin/git").exists(),
        "git is needed (/usr/bin/git); install it (scripts/setup)"
    );
    let t = Tmp::new("sup-git");
    let p = t.path("proj");
    t.write("proj/app.py", "print(1)\n");
    t.write("proj/.gitignore", "secrets.env\n");
    t.write("proj/secrets.env", "TOKEN=1\n");
    git_here(&p, &["init", "-q", "."]);
    git_here(&p, &["add", "."]);
    git_here(&p, &["commit", "-qm", "init"]);
    t.write("proj/new.py", "x = 2\n");
    t.write("proj/other.py", "y = 3\n");
    let exec_path = git_here(&p, &["--exec-path"]).trim().to_string();
    let pp = |rel: &str| format!("{p}/{rel}");
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Exec(vec![
                "/usr/bin/git".into(),
                "/usr/bin/env".into(),
                "/usr/bin/ls".into(),
                "/usr/bin/find".into(),
                "/usr/bin/mkdir".into(),
                "/usr/bin/cat".into(),
                format!("{exec_path}/*"),
            ]),
            G::Fs(&[Right::Read], vec![pp("**")], vec![pp("secrets.env")]),
            G::Fs(
                ALL,
                vec![pp(".git/**")],
                vec![pp(".git/hooks/**"), pp(".git/config")],
            ),
            G::Fs(ALL, vec![pp("build"), pp("build/**")], vec![]),
            G::Fs(
                &[Right::Read],
                vec![
                    "/etc/**".into(),
                    "/usr/share/**".into(),
                    "/dev/urandom".into(),
                ],
                vec![],
            ),
        ]),
    );
    let run = |cmd: &[&str]| {
        let o = s.exec(cmd);
        let (out, err) = text(&o);
        (o.status.code(), out, err)
    };
    let git = |args: &[&str]| {
        // No user or system configuration: the step need not read them.
        let mut c = vec![
            "/usr/bin/env",
            "GIT_CONFIG_GLOBAL=/dev/null",
            "GIT_CONFIG_NOSYSTEM=1",
            "/usr/bin/git",
            "-C",
            p.as_str(),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
        ];
        c.extend(args);
        run(&c)
    };
    // Listing the root: its names, the excepted file's too.
    let (code, out, err) = run(&["/usr/bin/ls", &p]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "app.py\nnew.py\nother.py\nsecrets.env\n");
    let (code, out, err) = run(&["/usr/bin/find", &p, "-maxdepth", "1", "-name", "*.py"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("/new.py") && out.contains("/other.py"),
        "{out}"
    );
    // git status shows the untracked files (it used to say "clean").
    let (code, out, err) = git(&["status", "--porcelain"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "?? new.py\n?? other.py\n", "{err}");
    let (code, _, err) = git(&["add", "new.py", "other.py"]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = git(&["commit", "-qm", "add"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        git_here(&p, &["ls-files"]),
        ".gitignore\napp.py\nnew.py\nother.py\n"
    );
    assert_eq!(git_here(&p, &["rev-list", "--count", "HEAD"]).trim(), "2");
    let (code, out, err) = git(&["status", "--porcelain"]);
    assert_eq!((code, out.as_str()), (Some(0), ""), "{err}");
    // The excepted file stays unreadable; the hooks unchangeable.
    let (code, _, _) = run(&["/usr/bin/cat", &pp("secrets.env")]);
    assert_eq!(code, Some(1));
    let (code, _, _) = run(&["/usr/bin/mkdir", &pp(".git/hooks/x")]);
    assert_eq!(code, Some(1));
    // mkdir build at the root, granted on build alone.
    let (code, _, err) = run(&["/usr/bin/mkdir", &pp("build")]);
    assert_eq!(code, Some(0), "{err}");
    assert!(std::path::Path::new(&pp("build")).is_dir());
    let (code, _, _) = run(&["/usr/bin/mkdir", &pp("other")]);
    assert_eq!(code, Some(1));
    assert!(!std::path::Path::new(&pp("other")).exists());
    let recs = s.records();
    denied(&recs, "create (mkdir)", &pp("other"));
    let r = recs
        .iter()
        .find(|r| {
            r["verdict"] == "deny"
                && r["operation"] == "create (mkdir)"
                && r["object"] == pp(".git/hooks/x")
        })
        .unwrap_or_else(|| panic!("no refusal of .git/hooks/x: {recs:#?}"));
    assert_eq!(r["mechanism"], "supervisor");
    drop(s);
    assert_no_leftover_cgroups();
}

/// `openat2` with `O_CREAT` (its flags are in memory, which the filter
/// cannot read) is decided like `open`: made where create is granted, the
/// new descriptor works; refused elsewhere. `truncate(2)` under a write
/// grant works; io_uring stays refused (escape_net).
#[test]
fn openat2_creates_only_where_create_is_granted() {
    let t = Tmp::new("sup-openat2");
    t.write("w/keep.txt", "keep\n");
    t.write("r/x.txt", "x\n");
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(ALL, vec![t.path("w/**")], vec![]),
            G::Fs(&[Right::Read], vec![t.path("r/**")], vec![]),
        ]),
    );
    assert_eq!(
        lines(&s, &["openat2-create", &t.path("w/new.txt")]),
        ["openat2-create ok"]
    );
    assert_eq!(
        std::fs::read_to_string(t.path("w/new.txt")).unwrap(),
        "made\n"
    );
    assert_eq!(
        lines(&s, &["openat2-create", &t.path("r/new.txt")]),
        ["openat2-create refused 13"]
    );
    assert!(!std::path::Path::new(&t.path("r/new.txt")).exists());
    denied(&s.records(), "create (open)", &t.path("r/new.txt"));
    assert_eq!(
        lines(&s, &["truncate", &t.path("w/keep.txt")]),
        ["truncate ok"]
    );
    assert_eq!(std::fs::read_to_string(t.path("w/keep.txt")).unwrap(), "");
    drop(s);
    assert_no_leftover_cgroups();
}
