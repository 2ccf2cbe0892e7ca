//! Escape suite, file-system and exec half (issue 6 part A): each side door
//! of path-based confinement is tried by `kapl-probe` from inside a real
//! `kapl-run` session, and each attempt is asserted refused (with the errno)
//! and reported in the audit JSON with its authority chain, next to the
//! legitimate twin of the same action, which must still work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::Right;
use std::process::{Command, Output};

fn spec(grants: Vec<G>) -> PolicySpec {
    let mut g = vec![probe_exec()];
    g.extend(grants);
    one_step(vec![], "work", g)
}

/// The probe printed exactly `lines` (one attempt per line).
#[track_caller]
fn expect(got: &Output, lines: &[&str]) {
    let (out, err) = text(got);
    let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(out, want, "probe stderr: {err}");
}

/// The deny record of `op` on `object`, if any.
fn find<'a>(
    recs: &'a [serde_json::Value],
    op: &str,
    object: &str,
) -> Option<&'a serde_json::Value> {
    recs.iter()
        .find(|r| r["verdict"] == "deny" && r["operation"] == op && r["object"] == object)
}

/// A deny record carries the whole authority chain of step `work` and a
/// nearest grant, decided by `mechanism`.
#[track_caller]
fn check_chain(r: &serde_json::Value, mechanism: &str) {
    assert_eq!(r["step"], "work", "{r}");
    assert_eq!(r["plan"], "p");
    assert_eq!(r["objective"], "o");
    // The reason tells the truth: no grant of the step covers the object,
    // or one does (`covering`) and enforcement is narrower there, and why.
    let reason = r["reason"].as_str().unwrap_or("");
    if r["covering"].is_object() {
        assert!(r["covering"]["id"].is_u64(), "{r}");
        assert!(
            reason.contains(" covers it; narrowed when step work started: "),
            "{r}"
        );
        assert!(
            r["nearest"].is_null(),
            "the covering grant, not a nearest one: {r}"
        );
        assert_eq!(r["mechanism"], mechanism, "{r}");
        return;
    }
    // A process or an abstract socket outside the domain: Landlock's
    // scopes, which no grant kind can open.
    if r["operation"]
        .as_str()
        .is_some_and(|o| o.ends_with("(scope)"))
    {
        assert!(reason.ends_with("no grant can allow it"), "{r}");
        assert!(r["nearest"].is_null(), "{r}");
        assert_eq!(r["mechanism"], mechanism, "{r}");
        return;
    }
    // A move or link the supervisor refused although grants cover each
    // part: the reason says what the plan's authority would become.
    if reason.contains(" would change what the plan may do ") {
        assert!(r["nearest"].is_null(), "{r}");
        assert_eq!(r["mechanism"], mechanism, "{r}");
        return;
    }
    assert_eq!(
        reason,
        "no grant of step work (plan p, objective o) covers it"
    );
    // A nearest grant wherever a grant could cover the object: not for
    // process scopes and refused system calls (no grant kind names them),
    // nor for a path the kernel did not log (longer than its buffer).
    let op = r["operation"].as_str().unwrap_or("");
    let obj = r["object"].as_str().unwrap_or("");
    if op.ends_with("(scope)") || op.ends_with("(seccomp)") || obj.starts_with("<too_long>") {
        assert!(r["nearest"].is_null(), "{r}");
    } else {
        assert!(r["nearest"]["id"].is_u64(), "nearest grant: {r}");
        let src = r["nearest"]["source"].as_str().unwrap_or("");
        assert!(src.starts_with("test.kapl:"), "{r}");
    }
    assert_eq!(r["mechanism"], mechanism, "{r}");
}

impl Session {
    /// Runs the probe: it must print `lines`, and every `(operation,
    /// object)` of `reports` must appear as a Landlock deny record with its
    /// authority chain. Under heavy host load the kernel's audit backlog can
    /// drop records of every process on the host (the runtime then reports
    /// the loss); so an attempt whose record is missing is made again, up
    /// to three times, and its outcome asserted each time.
    #[track_caller]
    fn refused(&self, args: &[&str], lines: &[&str], reports: &[(&str, &str)]) {
        self.refused_by("landlock", args, lines, reports);
    }
    /// [`Session::refused`] for what the supervised layer decides
    /// (making, removing and moving names).
    #[track_caller]
    fn sup_refused(&self, args: &[&str], lines: &[&str], reports: &[(&str, &str)]) {
        self.refused_by("supervisor", args, lines, reports);
    }
    #[track_caller]
    fn refused_by(&self, mechanism: &str, args: &[&str], lines: &[&str], reports: &[(&str, &str)]) {
        let mut missing = Vec::new();
        for _ in 0..3 {
            expect(&self.probe(args), lines);
            let recs = self.records();
            missing = reports
                .iter()
                .filter(|(op, obj)| match find(&recs, op, obj) {
                    Some(r) => {
                        check_chain(r, mechanism);
                        false
                    }
                    None => true,
                })
                .collect();
            if missing.is_empty() {
                return;
            }
        }
        let denies: Vec<String> = self
            .records()
            .iter()
            .filter(|r| r["verdict"] != "allow")
            .map(|r| format!("{} {} {}", r["verdict"], r["operation"], r["object"]))
            .collect();
        panic!("{args:?}: no deny record of {missing:?}; records: {denies:#?}");
    }
    /// The probe prints `lines` (a twin that must work, or an outcome with
    /// no record to check).
    #[track_caller]
    fn ok(&self, args: &[&str], lines: &[&str]) {
        expect(&self.probe(args), lines);
    }
}

/// A child process outside the session, killed when dropped.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails (never skips) when a program a scenario needs is missing.
#[track_caller]
fn need(path: &str, why: &str) {
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is needed ({why}); install it (scripts/setup)"
    );
}

fn copy_true(to: &str) {
    let parent = std::path::Path::new(to).parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    std::fs::copy("/usr/bin/true", to).unwrap();
}

fn chmod(p: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

const ALL: &[Right] = &[Right::Read, Right::Write, Right::Create, Right::Delete];
const RW: &[Right] = &[Right::Read, Right::Write];

/// The layout shared by the link tests: `w/` wholly granted (read, write,
/// create, delete, exec), `shared/` a world-writable directory granted per
/// entry (`*.txt` read+write, `*.bin` exec), `denied/` not granted.
fn link_layout(t: &Tmp) -> PolicySpec {
    t.write("w/ok.txt", "ok\n");
    t.write("shared/a.txt", "a\n");
    t.write("denied/secret.txt", "secret\n");
    t.write("denied/secret2.txt", "secret2\n");
    copy_true(&t.path("denied/prog"));
    copy_true(&t.path("w/ok.bin"));
    copy_true(&t.path("shared/ok.bin"));
    chmod(&t.path("shared"), 0o777);
    spec(vec![
        G::Fs(ALL, vec![t.path("w/**")], vec![]),
        G::Exec(vec![t.path("w/**"), t.path("shared/*.bin")]),
        G::Fs(RW, vec![t.path("shared/*.txt")], vec![]),
    ])
}

#[test]
fn links_planted_before_the_step_starts_are_refused() {
    let t = Tmp::new("esc-links-before");
    let policy = link_layout(&t);
    let sym = |target: &str, link: &str| {
        std::os::unix::fs::symlink(t.path(target), t.path(link)).unwrap()
    };
    sym("denied/secret.txt", "w/sym-read");
    sym("denied/secret2.txt", "w/sym-write");
    sym("denied/prog", "w/sym-exec");
    sym("denied/secret.txt", "shared/sym.txt");
    // Hard links in a directory others may write in (per-entry rules): a
    // rule on the link would attach to the denied file's inode.
    std::fs::hard_link(t.path("denied/secret.txt"), t.path("shared/hl.txt")).unwrap();
    std::fs::hard_link(t.path("denied/prog"), t.path("shared/hl.bin")).unwrap();
    let (s, report) = Session::of_spec_with_report(&t, policy);
    assert!(
        report.contains("hard-linked files get no rule")
            && report.contains(&t.path("shared/hl.txt"))
            && report.contains(&t.path("shared/hl.bin")),
        "precision report: {report}"
    );
    assert!(
        report.contains("symbolic links are not followed")
            && report.contains(&t.path("shared/sym.txt")),
        "precision report: {report}"
    );
    // Twins: the granted names work.
    s.ok(&["read", &t.path("w/ok.txt")], &["read ok"]);
    s.ok(&["write", &t.path("w/ok.txt")], &["write ok"]);
    s.ok(&["exec", &t.path("w/ok.bin")], &["exec ok"]);
    s.ok(&["read", &t.path("shared/a.txt")], &["read ok"]);
    s.ok(&["write", &t.path("shared/a.txt")], &["write ok"]);
    s.ok(&["exec", &t.path("shared/ok.bin")], &["exec ok"]);
    let (secret, secret2, prog) = (
        t.path("denied/secret.txt"),
        t.path("denied/secret2.txt"),
        t.path("denied/prog"),
    );
    // Symbolic links: the kernel decides on the target.
    s.refused(
        &["read", &t.path("w/sym-read")],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    s.refused(
        &["write", &t.path("w/sym-write")],
        &["write refused 13"],
        &[("write (write_file)", &secret2)],
    );
    s.refused(
        &["exec", &t.path("w/sym-exec")],
        &["exec refused 13"],
        &[("exec (execute)", &prog)],
    );
    s.refused(
        &["read", &t.path("shared/sym.txt")],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    // Hard links in the shared directory: no rule, so neither name opens.
    let hl = t.path("shared/hl.txt");
    s.refused(
        &["read", &hl],
        &["read refused 13"],
        &[("read (read_file)", &hl)],
    );
    s.refused(
        &["write", &hl],
        &["write refused 13"],
        &[("write (write_file)", &hl)],
    );
    s.refused(
        &["read", &secret],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    let hlb = t.path("shared/hl.bin");
    s.refused(
        &["exec", &hlb],
        &["exec refused 13"],
        &[("exec (execute)", &hlb)],
    );
    s.refused(
        &["exec", &prog],
        &["exec refused 13"],
        &[("exec (execute)", &prog)],
    );
    assert_no_leftover_cgroups();
}

#[test]
fn links_planted_after_the_step_started_are_refused() {
    let t = Tmp::new("esc-links-after");
    let policy = link_layout(&t);
    let s = Session::of_spec(&t, policy);
    let (secret, secret2, prog) = (
        t.path("denied/secret.txt"),
        t.path("denied/secret2.txt"),
        t.path("denied/prog"),
    );
    // From inside the session: a symbolic link may be made (the directory
    // grants creation) but leads nowhere the step may not go; a hard link
    // to a denied file is refused by the supervisor (EXDEV, as Landlock
    // refuses a move): its new name would carry rights its old one has not.
    s.ok(&["symlink", &secret, &t.path("w/s")], &["symlink ok"]);
    s.refused(
        &["read", &t.path("w/s")],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    s.refused(
        &["write", &t.path("w/s")],
        &["write refused 13"],
        &[("write (write_file)", &secret)],
    );
    s.ok(&["symlink", &prog, &t.path("w/s-exec")], &["symlink ok"]);
    s.refused(
        &["exec", &t.path("w/s-exec")],
        &["exec refused 13"],
        &[("exec (execute)", &prog)],
    );
    // (EACCES where the target directory does not even grant creation.)
    for (target, link, line) in [
        (&secret, "w/h", "hardlink refused 18"),
        (&prog, "w/h.bin", "hardlink refused 18"),
        (&secret, "shared/h.txt", "hardlink refused 13"),
    ] {
        let op = format!("link (to {target})");
        s.sup_refused(
            &["hardlink", target, &t.path(link)],
            &[line],
            &[(&op, &t.path(link))],
        );
        assert!(!std::path::Path::new(&t.path(link)).exists());
    }
    // Twin: a hard link between granted names works.
    s.ok(
        &["hardlink", &t.path("w/ok.txt"), &t.path("w/ok2.txt")],
        &["hardlink ok"],
    );
    // From outside, after the step started: per-entry rules were made for
    // the entries that existed, so a planted name gets nothing.
    std::fs::hard_link(&secret2, t.path("shared/late.txt")).unwrap();
    std::os::unix::fs::symlink(&secret2, t.path("shared/late2.txt")).unwrap();
    std::os::unix::fs::symlink(&prog, t.path("w/late.bin")).unwrap();
    let late = t.path("shared/late.txt");
    s.refused(
        &["read", &late],
        &["read refused 13"],
        &[("read (read_file)", &late)],
    );
    s.refused(
        &["write", &t.path("shared/late2.txt")],
        &["write refused 13"],
        &[("write (write_file)", &secret2)],
    );
    s.refused(
        &["exec", &t.path("w/late.bin")],
        &["exec refused 13"],
        &[("exec (execute)", &prog)],
    );
    s.ok(&["read", &t.path("w/ok.txt")], &["read ok"]);
    assert_no_leftover_cgroups();
}

/// Documented limit (threat model, "Escape suite"): Landlock decides by
/// name, so a hard link that already exists under a wholly granted
/// directory is a granted name of its file. The runtime cannot take one
/// file out of a subtree rule; the denied name stays denied, and no step
/// can make such a link (refused above).
#[test]
fn hard_link_existing_in_a_wholly_granted_directory_is_a_granted_name() {
    let t = Tmp::new("esc-links-whole");
    let policy = link_layout(&t);
    std::fs::hard_link(t.path("denied/secret.txt"), t.path("w/hl.txt")).unwrap();
    let s = Session::of_spec(&t, policy);
    s.ok(&["read", &t.path("w/hl.txt")], &["read ok"]);
    let secret = t.path("denied/secret.txt");
    s.refused(
        &["read", &secret],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
}

#[test]
fn rename_link_and_exchange_cannot_alias_a_denied_file() {
    let t = Tmp::new("esc-rename");
    let policy = link_layout(&t);
    t.write("w/b.txt", "b\n");
    let s = Session::of_spec(&t, policy);
    let d = t.path("denied/secret.txt");
    let ok = t.path("w/ok.txt");
    // A denied file moved under a granted name (the step may not remove
    // it from where it is).
    let to = |p: &str| format!("rename (to {p})");
    s.sup_refused(
        &["rename", &d, &t.path("w/moved")],
        &["rename refused 13"],
        &[(&to(&t.path("w/moved")), &d)],
    );
    s.sup_refused(
        &["exchange", &d, &ok],
        &["exchange refused 13"],
        &[(&to(&ok), &d)],
    );
    s.sup_refused(
        &["hardlink", &d, &t.path("w/linked")],
        &["hardlink refused 18"],
        &[(&format!("link (to {d})"), &t.path("w/linked"))],
    );
    // A granted name moved over a denied place.
    s.sup_refused(
        &["rename", &ok, &t.path("denied/planted")],
        &["rename refused 13"],
        &[(&to(&t.path("denied/planted")), &ok)],
    );
    s.sup_refused(
        &["rename", &ok, &d],
        &["rename refused 13"],
        &[(&to(&d), &ok)],
    );
    s.sup_refused(
        &["exchange", &ok, &t.path("denied/prog")],
        &["exchange refused 13"],
        &[(&to(&t.path("denied/prog")), &ok)],
    );
    // Renaming needs delete and create, which the read-write grant of the
    // per-entry directory does not give.
    s.sup_refused(
        &["rename", &t.path("shared/a.txt"), &t.path("shared/b.txt")],
        &["rename refused 13"],
        &[(&to(&t.path("shared/b.txt")), &t.path("shared/a.txt"))],
    );
    assert_eq!(std::fs::read_to_string(&d).unwrap(), "secret\n");
    assert_eq!(std::fs::read_to_string(&ok).unwrap(), "ok\n");
    // Twins inside the granted directory.
    s.ok(
        &["rename", &t.path("w/b.txt"), &t.path("w/c.txt")],
        &["rename ok"],
    );
    s.ok(&["exchange", &ok, &t.path("w/c.txt")], &["exchange ok"]);
    assert_no_leftover_cgroups();
}

#[test]
fn reopening_through_proc_is_decided_on_the_real_file() {
    let t = Tmp::new("esc-proc");
    t.write("ro/a.txt", "a\n");
    t.write("rd/b.txt", "b\n");
    t.write("denied/secret.txt", "secret\n");
    // A process outside the session with no capabilities (so only Landlock
    // stands between) working in the denied directory.
    need(
        "/usr/bin/setpriv",
        "a process outside the session without capabilities",
    );
    let outside = Command::new("setpriv")
        .args([
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--securebits=+noroot,+noroot_locked",
            "sleep",
            "60",
        ])
        .current_dir(t.path("denied"))
        .spawn()
        .expect("setpriv (util-linux)");
    // Killed even when an assertion fails first.
    let mut outside = KillOnDrop(outside);
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(&[Right::Read], vec![t.path("ro/**")], vec![]),
            G::Fs(&[Right::Read, Right::Delete], vec![t.path("rd/**")], vec![]),
        ]),
    );
    let (a, secret) = (t.path("ro/a.txt"), t.path("denied/secret.txt"));
    // /proc/self/fd/N of a descriptor opened for reading: reading again
    // works (twin), writing is decided on the file itself.
    s.refused(
        &["fd-reopen", &a],
        &["open ok", "reopen-read ok", "reopen-write refused 13"],
        &[("write (write_file)", &a)],
    );
    // O_PATH needs no right, but re-opening it through /proc does.
    s.refused(
        &["opath-reopen", &secret],
        &[
            "opath ok",
            "opath-read refused 13",
            "opath-write refused 13",
        ],
        &[
            ("read (read_file)", &secret),
            ("write (write_file)", &secret),
        ],
    );
    s.ok(
        &["opath-reopen", &a],
        &["opath ok", "opath-read ok", "opath-write refused 13"],
    );
    // /proc/self/root/...: the real path decides.
    s.refused(
        &["read", &format!("/proc/self/root{secret}")],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    s.ok(&["read", &format!("/proc/self/root{a}")], &["read ok"]);
    // /proc/PID/cwd/... and /proc/PID/root/... of a process outside the
    // session: Landlock refuses access to a process outside the domain
    // (reported as ptrace with the target), whatever the file.
    let pid = outside.0.id();
    let target = format!("pid {pid} (sleep)");
    s.refused(
        &["read", &format!("/proc/{pid}/cwd/secret.txt")],
        &["read refused 13"],
        &[("ptrace (scope)", &target)],
    );
    s.refused(
        &["read", &format!("/proc/{pid}/root{a}")],
        &["read refused 13"],
        &[("ptrace (scope)", &target)],
    );
    outside.0.kill().unwrap();
    outside.0.wait().unwrap();
    // The test process itself (root, every capability): the kernel's own
    // ptrace check refuses first (the command has no capabilities), before
    // Landlock is asked, so there is no Landlock record to report.
    let me = std::process::id();
    s.ok(
        &["read", &format!("/proc/{me}/cwd/Cargo.toml")],
        &["read refused 13"],
    );
    s.ok(
        &["read", &format!("/proc/{me}/root{secret}")],
        &["read refused 13"],
    );
    // A file unlinked while open: the open descriptor keeps working (twin),
    // re-opening the deleted file through /proc is decided on where it was.
    let b = t.path("rd/b.txt");
    s.refused(
        &["unlinked", &b],
        &[
            "open ok",
            "unlink ok",
            "read-fd ok",
            "reopen-write refused 13",
        ],
        &[("write (write_file)", &format!("{b} (deleted)"))],
    );
    assert!(!std::path::Path::new(&b).exists());
    assert_no_leftover_cgroups();
}

impl Session {
    /// Like [`Sess::refused`] for a system call the seccomp filter refuses:
    /// the record names the call.
    #[track_caller]
    fn refused_call(&self, args: &[&str], lines: &[&str], call: &str) {
        for _ in 0..3 {
            expect(&self.probe(args), lines);
            if let Some(r) = find(&self.records(), "syscall (seccomp)", call) {
                check_chain(r, "seccomp");
                return;
            }
        }
        panic!("{args:?}: no seccomp record of {call}");
    }
}

#[test]
fn namespaces_mounts_chroot_and_pivot_root_are_refused() {
    let t = Tmp::new("esc-ns");
    t.write("w/ok.txt", "ok\n");
    t.write("denied/secret.txt", "secret\n");
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(ALL, vec![t.path("w/**")], vec![]),
            G::Exec(vec!["/usr/bin/sh".into(), "/usr/bin/dash".into()]),
        ]),
    );
    let (w, den) = (t.path("w"), t.path("denied"));
    s.refused_call(&["unshare-user"], &["unshare-user refused 1"], "unshare");
    s.refused_call(&["unshare-mount"], &["unshare-mount refused 1"], "unshare");
    s.refused_call(
        &["clone-newuser"],
        &["clone-newuser refused 1"],
        "clone (new namespaces)",
    );
    s.refused_call(&["bind", &den, &w], &["bind refused 1"], "mount");
    s.refused_call(
        &["open-tree", &den, &w],
        &["open-tree refused 1"],
        "open_tree",
    );
    s.refused_call(&["chroot", &w], &["chroot refused 1"], "chroot");
    s.refused_call(
        &["pivot-root", &w, &w],
        &["pivot-root refused 1"],
        "pivot_root",
    );
    // From a child of the command (a shell runs the probe): the record is
    // attributed to the command through the child's exec.
    let before = s
        .records()
        .iter()
        .filter(|r| r["object"] == "chroot")
        .count();
    let mut attributed = false;
    for _ in 0..3 {
        let o = s.exec(&[
            "/usr/bin/sh",
            "-c",
            &format!("{} chroot {w}; true", probe_bin()),
        ]);
        assert_eq!(String::from_utf8_lossy(&o.stdout), "chroot refused 1\n");
        let recs = s.records();
        let now: Vec<_> = recs.iter().filter(|r| r["object"] == "chroot").collect();
        if now.len() > before {
            check_chain(now[now.len() - 1], "seccomp");
            attributed = true;
            break;
        }
    }
    assert!(attributed, "no seccomp record of the child's chroot");
    // Nothing was aliased: the granted directory still holds its own file
    // and the denied one stays denied.
    s.ok(&["read", &t.path("w/ok.txt")], &["read ok"]);
    let secret = t.path("denied/secret.txt");
    s.refused(
        &["read", &secret],
        &["read refused 13"],
        &[("read (read_file)", &secret)],
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&t.path("")), "no mount left behind");
    assert_no_leftover_cgroups();
}

const LDSO: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";

#[test]
fn exec_side_doors_are_refused() {
    let t = Tmp::new("esc-exec");
    copy_true(&t.path("denied/prog"));
    copy_true(&t.path("ro/prog"));
    chmod(&t.path("ro/prog"), 0o755);
    std::fs::create_dir_all(t.path("w")).unwrap();
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(&[Right::Read], vec![t.path("ro/**")], vec![]),
            G::Fs(ALL, vec![t.path("w/**")], vec![]),
            G::Exec(vec!["/usr/bin/true".into()]),
        ]),
    );
    let prog = t.path("denied/prog");
    // execveat(fd, "", AT_EMPTY_PATH): decided on the file behind fd.
    s.ok(&["execveat-empty", "/usr/bin/true"], &["execveat-empty ok"]);
    s.refused(
        &["execveat-empty", &prog],
        &["execveat-empty refused 13"],
        &[("exec (execute)", &prog)],
    );
    // A readable file the step may not execute, through execveat too.
    let ro = t.path("ro/prog");
    s.refused(
        &["execveat-empty", &ro],
        &["execveat-empty refused 13"],
        &[("exec (execute)", &ro)],
    );
    // memfd_create + fexecve: Landlock does not check execution of a memfd,
    // so the seccomp filter refuses executable memfds; a sealed
    // non-executable one (the twin) is created and cannot be run.
    s.refused_call(
        &["memfd-exec", "/usr/bin/true"],
        &["memfd refused 1"],
        "memfd_create (executable)",
    );
    s.ok(
        &["memfd-exec", "/usr/bin/true", "noexec"],
        &["memfd ok", "memfd-exec refused 13"],
    );
    // A granted program copied into a writable directory: the copy is a
    // file under a directory without exec.
    let copy = t.path("w/true");
    s.refused(
        &["copy-run", "/usr/bin/true", &copy],
        &["copy ok", "run-copy refused 13"],
        &[("exec (execute)", &copy)],
    );
    s.ok(&["exec", "/usr/bin/true"], &["exec ok"]);
    assert_no_leftover_cgroups();
}

/// Interpreters: `sh FILE` and `python3 FILE` need only read access to FILE
/// (the kernel executes the interpreter). A granted interpreter runs any
/// script the step may read — the threat model names this ("Authority the
/// policy grants", escape suite); a script it may not read is refused.
#[test]
fn interpreters_run_readable_scripts_and_not_unreadable_ones() {
    need("/usr/bin/python3.11", "the python3 interpreter scenario");
    need("/usr/bin/dash", "the sh interpreter scenario");
    let t = Tmp::new("esc-interp");
    t.write("ro/s.sh", "echo script-ran\n");
    t.write("ro/s.py", "print('py-ran')\n");
    t.write("denied/d.sh", "echo denied-ran\n");
    t.write("denied/d.py", "print('denied-py')\n");
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(
                &[Right::Read],
                vec![t.path("ro/**"), "/usr/lib/python3.11/**".into()],
                vec![],
            ),
            G::Exec(vec![
                "/usr/bin/sh".into(),
                "/usr/bin/dash".into(),
                "/usr/bin/python3".into(),
                "/usr/bin/python3.11".into(),
            ]),
        ]),
    );
    let (o, e) = text(&s.probe(&["exec", "/usr/bin/sh", &t.path("ro/s.sh")]));
    assert_eq!(o, "script-ran\nexec ok\n", "{e}");
    let (o, e) = text(&s.probe(&["exec", "/usr/bin/python3", &t.path("ro/s.py")]));
    assert_eq!(o, "py-ran\nexec ok\n", "{e}");
    // The interpreter itself is reported as the exec, under its grant.
    let recs = s.records();
    assert!(
        recs.iter().any(|r| r["verdict"] == "allow"
            && r["operation"] == "exec"
            && r["object"] == "/usr/bin/sh"
            && r["grant"]["text"]
                .as_str()
                .unwrap_or("")
                .contains("/usr/bin/sh")),
        "{recs:#?}"
    );
    // The interpreter's child fails, so the probe reports `refused -1`
    // (a non-zero exit status, not an errno).
    for (interp, script) in [
        ("/usr/bin/sh", "denied/d.sh"),
        ("/usr/bin/python3", "denied/d.py"),
    ] {
        let d = t.path(script);
        s.refused(
            &["exec", interp, &d],
            &["exec refused -1"],
            &[("read (read_file)", &d)],
        );
    }
    assert_no_leftover_cgroups();
}

/// The dynamic loader maps a readable ELF file without the kernel's exec
/// check: Landlock cannot stop `ld.so FILE`. The documented fallback is the
/// prover's effective-authority warning KAPL0603 and the threat model.
#[test]
fn loader_runs_readable_elf_and_kapl0603_warns() {
    need(LDSO, "the dynamic loader scenario");
    let t = Tmp::new("esc-ldso");
    copy_true(&t.path("ro/prog"));
    chmod(&t.path("ro/prog"), 0o644);
    let s = Session::of_spec(
        &t,
        spec(vec![G::Fs(&[Right::Read], vec![t.path("ro/**")], vec![])]),
    );
    let ro = t.path("ro/prog");
    // Not executable: the kernel refuses it (the file's mode and Landlock).
    s.ok(&["exec", &ro], &["exec refused 13"]);
    // Through the loader: runs. The kernel cannot mediate this.
    s.ok(&["exec", LDSO, &ro], &["exec ok"]);
    // The warning fires for such a policy.
    let text = format!(
        "objective o {{\n  bound {{\n    fs read \"{root}/**\"\n    exec \"{LDSO}\"\n  }}\n}}\nplan p under o {{\n  step work {{\n    grant fs read \"{root}/ro/**\"\n    grant exec \"{LDSO}\"\n  }}\n}}\n",
        root = t.0.display()
    );
    let mut loader = kapl_check::MemoryLoader::new().with("/ldso.kapl", text.as_str());
    let fe = kapl_check::check_front(&mut loader, "/ldso.kapl");
    let policy = fe.policy.expect("policy");
    let out = kapl_codegen::compile(
        &policy,
        &fe.sources,
        &kapl_codegen::Options {
            policy: "ldso".into(),
            compiler: "test".into(),
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"));
    let w: Vec<_> = out
        .warnings
        .iter()
        .filter(|d| d.code == kapl_syntax::codes::LOADER_EXEC_AUTHORITY)
        .collect();
    assert_eq!(w.len(), 1, "{:#?}", out.warnings);
    match &w[0].witness {
        Some(kapl_syntax::Witness::Exec { path }) => {
            assert!(path.starts_with(&t.path("ro/")), "{path}")
        }
        other => panic!("expected an exec witness, got {other:?}"),
    }
    // And the threat model names it.
    let tm = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../book/src/threat-model.md"
    ))
    .unwrap();
    assert!(tm.contains("dynamic loader") && tm.contains("KAPL0603"));
    assert!(tm.contains("loader_runs_readable_elf_and_kapl0603_warns"));
    assert_no_leftover_cgroups();
}

/// Makes `depth` nested directories named `comp` under `base` with openat
/// (the whole path may be longer than PATH_MAX) and a file `f.txt` at the
/// bottom.
fn deep_tree(base: &str, comp: &str, depth: usize) {
    use std::os::fd::{AsRawFd, FromRawFd};
    std::fs::create_dir_all(base).unwrap();
    let mut dir = std::fs::File::open(base).unwrap();
    let c = std::ffi::CString::new(comp).unwrap();
    for _ in 0..depth {
        // SAFETY: a directory fd we own and a valid C string.
        unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) };
        // SAFETY: as above.
        let fd = unsafe {
            libc::openat(
                dir.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        assert!(
            fd >= 0,
            "openat {comp}: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a descriptor just returned to us.
        dir = unsafe { std::fs::File::from_raw_fd(fd) };
    }
    let f = std::ffi::CString::new("f.txt").unwrap();
    // SAFETY: as above.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            f.as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    assert!(fd >= 0);
    // SAFETY: closing our descriptor.
    unsafe { libc::close(fd) };
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn long_deep_and_non_utf8_paths() {
    let t = Tmp::new("esc-paths");
    // 200 components of 30 bytes: a 6,200-byte path, beyond PATH_MAX.
    let comp = "c".repeat(30);
    deep_tree(&t.path("w"), &comp, 200);
    deep_tree(&t.path("denied"), &comp, 200);
    let rel: String = (0..200).map(|_| format!("{comp}/")).collect::<String>() + "f.txt";
    // Deeper than the rule builder's walk bound (64 levels) under a grant
    // that needs per-entry rules (an except that can match at every depth).
    let limit = kapl_runtime_bpf::domain::WalkLimits::default().max_depth;
    let mut deep = t.path("deep");
    for i in 0..limit + 6 {
        deep.push_str(&format!("/d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(format!("{deep}/f.txt"), "deep\n").unwrap();
    std::fs::write(t.path("deep/d0/f.txt"), "shallow\n").unwrap();
    // Non-UTF-8 names.
    use std::os::unix::ffi::OsStrExt;
    let good = [t.path("ro").as_bytes(), b"/g\xff.txt"].concat();
    let bad = [t.path("denied").as_bytes(), b"/d\xfe\xff.txt"].concat();
    std::fs::create_dir_all(t.path("ro")).unwrap();
    std::fs::write(std::ffi::OsStr::from_bytes(&good), "g").unwrap();
    std::fs::write(std::ffi::OsStr::from_bytes(&bad), "d").unwrap();
    let prog_ok = [t.path("bin").as_bytes(), b"/p\xff"].concat();
    let prog_no = [t.path("denied").as_bytes(), b"/p\xfe"].concat();
    std::fs::create_dir_all(t.path("bin")).unwrap();
    for p in [&prog_ok, &prog_no] {
        std::fs::copy("/usr/bin/true", std::ffi::OsStr::from_bytes(p)).unwrap();
    }
    let (s, report) = Session::of_spec_with_report(
        &t,
        spec(vec![
            G::Fs(&[Right::Read], vec![t.path("ro/**")], vec![]),
            G::Exec(vec![t.path("bin/**")]),
            G::Fs(
                &[Right::Read],
                vec![t.path("deep/**")],
                vec!["/**/.env".into()],
            ),
            G::Fs(ALL, vec![t.path("w/**")], vec![]),
        ]),
    );
    // Longer than PATH_MAX, through openat chains: the granted tree works,
    // the denied one is refused; the kernel does not log a path that long,
    // so the record names the object by device and inode.
    s.ok(&["chain-read", &t.path("w"), &rel], &["chain-read ok"]);
    s.ok(&["chain-write", &t.path("w"), &rel], &["chain-write ok"]);
    s.ok(
        &["read", &format!("{}/{rel}", t.path("w"))],
        &["read refused 36"],
    );
    let mut found = None;
    for _ in 0..3 {
        s.ok(
            &["chain-read", &t.path("denied"), &rel],
            &["chain-read refused 13"],
        );
        found = s.records().into_iter().find(|r| {
            r["verdict"] == "deny"
                && r["object"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("<too_long> dev=")
        });
        if found.is_some() {
            break;
        }
    }
    let r = found.expect("a deny record of the too-long path");
    check_chain(&r, "landlock");
    assert_eq!(r["operation"], "read (read_file)");
    // Beyond the walk bound: nothing is granted (fail closed), and the
    // precision report says so; above it, the per-entry rules work.
    assert!(
        report.contains("deeper than the rule builder's walk bound"),
        "precision report: {report}"
    );
    s.ok(&["read", &t.path("deep/d0/f.txt")], &["read ok"]);
    let f = format!("{deep}/f.txt");
    s.refused(
        &["read", &f],
        &["read refused 13"],
        &[("read (read_file)", &f)],
    );
    // Non-UTF-8: the granted name opens; the denied one is refused and
    // reported byte for byte (`\xNN` for each byte that is not UTF-8).
    s.ok(&["readb", &hex(&good)], &["readb ok"]);
    let shown = format!("{}/d\\xfe\\xff.txt", t.path("denied"));
    s.refused(
        &["readb", &hex(&bad)],
        &["readb refused 13"],
        &[("read (read_file)", &shown)],
    );
    // Programs with non-UTF-8 names: the granted one runs and its exec is
    // reported under its grant, the other is refused, both byte for byte.
    s.ok(&["execb", &hex(&prog_ok)], &["execb ok"]);
    let ok_shown = format!("{}/p\\xff", t.path("bin"));
    let recs = s.records();
    let allow = recs
        .iter()
        .find(|r| {
            r["verdict"] == "allow" && r["operation"] == "exec" && r["object"] == ok_shown.as_str()
        })
        .unwrap_or_else(|| panic!("no exec allow of {ok_shown}: {recs:#?}"));
    assert_eq!(
        allow["grant"]["text"],
        format!("exec \"{}\"", t.path("bin/**"))
    );
    let no_shown = format!("{}/p\\xfe", t.path("denied"));
    s.refused(
        &["execb", &hex(&prog_no)],
        &["execb refused 13"],
        &[("exec (execute)", &no_shown)],
    );
    assert_no_leftover_cgroups();
}

/// A link swapped in while the runtime walks the tree and builds the
/// rules: each rule's object is re-opened without following links and
/// re-checked (type, link count, inode), so however the swap interleaves
/// with the walk, the denied name is never granted.
#[test]
fn links_swapped_while_the_rules_are_built_are_refused() {
    let t = Tmp::new("esc-links-race");
    t.write("shared/a.txt", "a\n");
    t.write("denied/secret.txt", "secret\n");
    // A root-owned directory (not writable by others) where another step
    // of the plan may create files: the swapper stands for that step's
    // processes, still running while the next step's rules are built.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, a, tmp, secret) = (
            stop.clone(),
            t.path("shared/a.txt"),
            t.path("shared/.swap"),
            t.path("denied/secret.txt"),
        );
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp);
                let _ = if n.is_multiple_of(3) {
                    std::os::unix::fs::symlink(&secret, &tmp)
                } else if n % 3 == 1 {
                    std::fs::hard_link(&secret, &tmp)
                } else {
                    std::fs::write(&tmp, "a\n")
                };
                let _ = std::fs::rename(&tmp, &a);
                n += 1;
            }
            n
        })
    };
    let secret = t.path("denied/secret.txt");
    for _ in 0..5 {
        let mut policy = spec(vec![G::Fs(RW, vec![t.path("shared/*.txt")], vec![])]);
        policy.steps.push(step(
            "tidy",
            &[0],
            vec![G::Fs(
                &[Right::Create, Right::Delete],
                vec![t.path("shared/**")],
                vec![],
            )],
        ));
        let s = Session::of_spec(&t, policy);
        s.refused(
            &["read", &secret],
            &["read refused 13"],
            &[("read (read_file)", &secret)],
        );
        s.refused(
            &["write", &secret],
            &["write refused 13"],
            &[("write (write_file)", &secret)],
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(swaps > 5, "the swapper ran ({swaps} swaps)");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n");
    assert_no_leftover_cgroups();
}

/// A step that may create and delete but not read could move or hard-link
/// a file it cannot read to where a later step reads it (Landlock's refer
/// right checks only that the file gains no right *in that step*). The
/// runtime grants refer only where the step may also read everything
/// beneath, so both are refused (EXDEV); and a hard link already there
/// (made before the session, by an earlier session of the plan) gets no
/// per-entry rule where the plan may create files, so neither of its names
/// opens. Under a directory a later step reads wholly, such a pre-existing
/// link is a granted name (documented).
#[test]
fn an_earlier_step_cannot_move_or_link_unreadable_files_to_a_later_step() {
    let t = Tmp::new("esc-links-steps");
    t.write("pub/a.txt", "a\n");
    t.write("pub/b.txt", "b\n");
    t.write("secret/s.txt", "secret\n");
    let (secret, x) = (t.path("secret/s.txt"), t.path("pub/x.txt"));
    std::fs::hard_link(&secret, &x).unwrap();
    let img = write_image(
        &t,
        "p.kapi",
        plan_p(
            vec![probe_exec()],
            vec![
                step(
                    "tidy",
                    &[],
                    vec![G::Fs(
                        &[Right::Create, Right::Delete],
                        vec![t.path("**")],
                        vec![],
                    )],
                ),
                step(
                    "work",
                    &[0],
                    vec![G::Fs(&[Right::Read], vec![t.path("pub/*.txt")], vec![])],
                ),
                step(
                    "whole",
                    &[1],
                    vec![G::Fs(&[Right::Read], vec![t.path("pub/**")], vec![])],
                ),
            ],
        ),
    );
    let (s, _) = Session::start_with_report(&img, Some(&t.path("audit.jsonl")));
    // Step tidy: may not read the secret, nor move or link it where a
    // later step reads it (the supervisor compares the authority of both
    // names in every step of the plan).
    let in_step = |step: &'static str| {
        move |r: &serde_json::Value| r["step"] == step && r["verdict"] == "deny"
    };
    let (y, z) = (t.path("pub/y.txt"), t.path("pub/z.txt"));
    for (args, line, op, object) in [
        (
            vec!["hardlink", secret.as_str(), &y],
            "hardlink refused 18",
            format!("link (to {secret})"),
            y.clone(),
        ),
        (
            vec!["rename", secret.as_str(), &z],
            "rename refused 18",
            format!("rename (to {z})"),
            secret.clone(),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        expect(&s.probe(&args), &[line]);
        let recs = s.records();
        let r = recs
            .iter()
            .find(|r| {
                in_step("tidy")(r)
                    && r["operation"] == op.as_str()
                    && r["object"] == object.as_str()
            })
            .unwrap_or_else(|| panic!("{args:?}: no denial of {op} on {object}: {recs:#?}"));
        assert_eq!(r["mechanism"], "supervisor", "{r}");
        let reason = r["reason"].as_str().unwrap_or("");
        assert!(reason.contains("gains read in step work"), "{r}");
    }
    assert!(std::path::Path::new(&secret).exists());
    // Twin: moving a file within one directory keeps its authority.
    s.ok(
        &["rename", &t.path("pub/b.txt"), &t.path("pub/c.txt")],
        &["rename ok"],
    );
    let o = s.step("work");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Step work: per-entry rules; the linked file gets none.
    s.ok(&["read", &t.path("pub/a.txt")], &["read ok"]);
    let refused_in_work = |path: &str| {
        for _ in 0..3 {
            expect(&s.probe(&["read", path]), &["read refused 13"]);
            if s.records().iter().any(|r| {
                in_step("work")(r)
                    && r["operation"] == "read (read_file)"
                    && r["object"] == path
                    && r["mechanism"] == "landlock"
            }) {
                return;
            }
        }
        panic!("no deny record of {path} in step work");
    };
    refused_in_work(&x);
    refused_in_work(&secret);
    // Step whole: the pre-existing link is a name under a wholly granted
    // directory.
    let o = s.step("whole");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    s.ok(&["read", &x], &["read ok"]);
    expect(&s.probe(&["read", &secret]), &["read refused 13"]);
    assert_no_leftover_cgroups();
}

/// The exec tracepoint copies a bounded prefix of the program's path
/// (`bpf::EXEC_PATH_MAX`): a longer path is never attributed by its prefix;
/// the runtime reads the whole path from the process (`/proc/PID/exe`) or
/// reports it as truncated without a grant.
#[test]
fn a_program_path_longer_than_the_exec_buffer_is_attributed_whole() {
    let t = Tmp::new("esc-exec-long");
    let comp = "e".repeat(40);
    let mut dir = t.path("bin");
    for _ in 0..8 {
        dir.push('/');
        dir.push_str(&comp);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let prog = format!("{dir}/sleep");
    assert!(prog.len() > kapl_runtime_bpf::bpf::EXEC_PATH_MAX);
    std::fs::copy("/usr/bin/sleep", &prog).unwrap();
    let s = Session::of_spec(&t, spec(vec![G::Exec(vec![t.path("bin/**")])]));
    // `sleep` stays long enough for its /proc entry to be read.
    let mut found = None;
    for _ in 0..3 {
        s.ok(&["exec", &prog, "0.5"], &["exec ok"]);
        found = s.records().into_iter().find(|r| {
            r["verdict"] == "allow" && r["operation"] == "exec" && r["object"] == prog.as_str()
        });
        if found.is_some() {
            break;
        }
    }
    let r = found.unwrap_or_else(|| panic!("no exec allow of the whole path: {:#?}", s.records()));
    assert_eq!(r["grant"]["text"], format!("exec \"{}\"", t.path("bin/**")));
    assert_eq!(r["mechanism"], "tracepoint");
    // No record names a prefix of it as the program.
    assert!(
        !s.records().iter().any(|r| r["operation"] == "exec"
            && r["object"]
                .as_str()
                .is_some_and(|o| o != prog && prog.starts_with(o))),
        "{:#?}",
        s.records()
    );
    assert_no_leftover_cgroups();
}

/// Truncating a file the step may only read, every way Linux offers:
/// `truncate(2)`, `open(O_RDONLY | O_TRUNC)` (Linux truncates then, if the
/// file's mode allows writing), `ftruncate` of a read-only descriptor, and
/// a write open. Landlock's `truncate` right comes only with a write grant,
/// so each is refused and nothing is truncated; the twin, a write grant,
/// truncates by path and through its descriptor.
#[test]
fn a_read_grant_cannot_truncate_and_a_write_grant_can() {
    let t = Tmp::new("esc-trunc");
    t.write("r/f.txt", "keep me\n");
    t.write("w/f.txt", "replace me\n");
    t.write("w/g.txt", "replace me too\n");
    chmod(&t.path("r/f.txt"), 0o666);
    let s = Session::of_spec(
        &t,
        spec(vec![
            G::Fs(&[Right::Read], vec![t.path("r/**")], vec![]),
            G::Fs(RW, vec![t.path("w/**")], vec![]),
        ]),
    );
    let r = t.path("r/f.txt");
    // Truncation without a descriptor open for writing is the supervised
    // layer's (the rules give `truncate` with `read`, so Landlock's walk
    // stops at them), which needs `write`.
    s.sup_refused(
        &["truncate", &r],
        &["truncate refused 13"],
        &[("write (truncate)", &r)],
    );
    for mode in ["ro", "3", "ro-creat"] {
        s.sup_refused(
            &["open-trunc", &r, mode],
            &[&format!("open-trunc-{mode} refused 13")],
            &[("write (truncate)", &r)],
        );
    }
    s.refused(
        &["open-trunc", &r, "wo"],
        &["open-trunc-wo refused 13"],
        &[("write (write_file)", &r)],
    );
    s.ok(
        &["ftruncate-ro", &r],
        &["open ok", "ftruncate-ro refused 22"],
    );
    s.ok(&["openat2", &r], &["openat2 ok"]);
    assert_eq!(std::fs::read_to_string(&r).unwrap(), "keep me\n");
    // The twin: a write grant truncates, by path and through a descriptor.
    s.ok(&["truncate", &t.path("w/f.txt")], &["truncate ok"]);
    s.ok(
        &["open-trunc", &t.path("w/g.txt"), "wo"],
        &["open-trunc-wo ok"],
    );
    assert_eq!(std::fs::read_to_string(t.path("w/f.txt")).unwrap(), "");
    assert_eq!(std::fs::read_to_string(t.path("w/g.txt")).unwrap(), "");
    assert_no_leftover_cgroups();
}

/// An unprivileged fanotify group that reports names (`FAN_REPORT_DFID_NAME`,
/// no capability needed since Linux 5.13) with a mark on a directory the
/// step may not read would report every name created there: the seccomp
/// filter refuses `fanotify_init` (and `fanotify_mark`), and the refusal is
/// recorded with the chain. Outside the session the same probe works, so
/// the refusal is the sandbox's.
#[test]
fn fanotify_cannot_watch_a_directory_the_step_may_not_read() {
    let t = Tmp::new("esc-fanotify");
    t.write("w/ok.txt", "ok\n");
    t.write("denied/secret.txt", "secret\n");
    let s = Session::of_spec(
        &t,
        spec(vec![G::Fs(&[Right::Read], vec![t.path("w/**")], vec![])]),
    );
    let den = t.path("denied");
    let o = Command::new(probe_bin())
        .args(["fanotify", &den])
        .output()
        .unwrap();
    expect(&o, &["fanotify ok"]);
    s.refused_call(
        &["fanotify", &den],
        &["fanotify refused 1"],
        "fanotify_init",
    );
    s.refused_call(
        &["fanotify", &t.path("w")],
        &["fanotify refused 1"],
        "fanotify_init",
    );
    assert_no_leftover_cgroups();
}
