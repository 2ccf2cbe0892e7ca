//! Escape suite, file-system and exec half (issue 6 part A): each side door
//! of path-based confinement is tried by `kapl-probe` from inside a real
//! `kapl-run` session, and each attempt is asserted refused (with the errno)
//! and reported in the audit JSON with its authority chain, next to the
//! legitimate twin of the same action, which must still work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::Right;
use std::process::Command;

const PROBE: &str = env!("CARGO_BIN_EXE_kapl-probe");

/// A running session over one policy, stopped when dropped.
struct Sess {
    id: String,
    audit: String,
    _guard: SessionGuard,
}

fn kr(args: &[&str]) -> std::process::Output {
    Command::new(kapl_run())
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .output()
        .unwrap()
}

impl Sess {
    fn start(t: &Tmp, spec: PolicySpec) -> Sess {
        Sess::start_with_report(t, spec).0
    }
    /// Starts a session; also returns the precision report (stderr).
    fn start_with_report(t: &Tmp, spec: PolicySpec) -> (Sess, String) {
        let img = t.path("p.kapi");
        std::fs::write(&img, image(spec)).unwrap();
        let audit = t.path("audit.jsonl");
        let o = kr(&["session", "start", &img, "--plan", "p", "--audit", &audit]);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(0), "session start: {err}");
        let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
        (
            Sess {
                _guard: SessionGuard(id.clone()),
                id,
                audit,
            },
            err,
        )
    }
    /// Runs `kapl-probe ARGS` in the session: (stdout, stderr).
    fn probe(&self, args: &[&str]) -> (String, String) {
        let mut a = vec!["exec", "--session", &self.id, "--", PROBE];
        a.extend_from_slice(args);
        let o = kr(&a);
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
    fn records(&self) -> Vec<serde_json::Value> {
        records(self.audit.as_ref())
    }
}

fn spec(grants: Vec<G>) -> PolicySpec {
    let mut g = vec![G::Exec(vec![PROBE.into()])];
    g.extend(grants);
    PolicySpec {
        plan: "p",
        plan_grants: vec![],
        steps: vec![StepSpec {
            name: "work",
            after: vec![],
            grants: g,
        }],
    }
}

/// The probe printed exactly `lines` (one attempt per line).
#[track_caller]
fn expect(got: &(String, String), lines: &[&str]) {
    let want: String = lines.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(got.0, want, "probe stderr: {}", got.1);
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
    assert_eq!(
        r["reason"],
        "no grant of step work (plan p, objective o) covers it"
    );
    assert!(r["nearest"]["id"].is_u64(), "nearest grant: {r}");
    let src = r["nearest"]["source"].as_str().unwrap_or("");
    assert!(src.starts_with("test.kapl:"), "{r}");
    assert_eq!(r["mechanism"], mechanism, "{r}");
}

impl Sess {
    /// Runs the probe: it must print `lines`, and every `(operation,
    /// object)` of `reports` must appear as a Landlock deny record with its
    /// authority chain. Under heavy host load the kernel's audit backlog can
    /// drop records of every process on the host (the runtime then reports
    /// the loss); so an attempt whose record is missing is made again, up
    /// to three times, and its outcome asserted each time.
    #[track_caller]
    fn refused(&self, args: &[&str], lines: &[&str], reports: &[(&str, &str)]) {
        let mut missing = Vec::new();
        for _ in 0..3 {
            expect(&self.probe(args), lines);
            let recs = self.records();
            missing = reports
                .iter()
                .filter(|(op, obj)| match find(&recs, op, obj) {
                    Some(r) => {
                        check_chain(r, "landlock");
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

fn copy_true(to: &str) {
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
    let (s, report) = Sess::start_with_report(&t, policy);
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
    let s = Sess::start(&t, policy);
    let (secret, secret2, prog) = (
        t.path("denied/secret.txt"),
        t.path("denied/secret2.txt"),
        t.path("denied/prog"),
    );
    // From inside the session: a symbolic link may be made (the directory
    // grants creation) but leads nowhere the step may not go; a hard link
    // to a denied file is refused by Landlock's refer check (EXDEV).
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
    for (target, link, line, op) in [
        (&secret, "w/h", "hardlink refused 18", "delete (refer)"),
        (&prog, "w/h.bin", "hardlink refused 18", "delete (refer)"),
        (
            &secret,
            "shared/h.txt",
            "hardlink refused 13",
            "create (make_reg)",
        ),
    ] {
        let dir = if op == "delete (refer)" {
            t.path("denied")
        } else {
            t.path("shared")
        };
        s.refused(&["hardlink", target, &t.path(link)], &[line], &[(op, &dir)]);
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
    let s = Sess::start(&t, policy);
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
    let s = Sess::start(&t, policy);
    let d = t.path("denied/secret.txt");
    let den = t.path("denied");
    let ok = t.path("w/ok.txt");
    // A denied file moved under a granted name.
    s.refused(
        &["rename", &d, &t.path("w/moved")],
        &["rename refused 13"],
        &[("delete (remove_file)", &den)],
    );
    s.refused(
        &["exchange", &d, &ok],
        &["exchange refused 13"],
        &[("delete (remove_file)", &den), ("create (make_reg)", &den)],
    );
    s.refused(
        &["hardlink", &d, &t.path("w/linked")],
        &["hardlink refused 18"],
        &[("delete (refer)", &den)],
    );
    // A granted name moved over a denied place.
    s.refused(
        &["rename", &ok, &t.path("denied/planted")],
        &["rename refused 13"],
        &[("create (make_reg)", &den)],
    );
    s.refused(
        &["rename", &ok, &d],
        &["rename refused 13"],
        &[("create (make_reg)", &den)],
    );
    s.refused(
        &["exchange", &ok, &t.path("denied/prog")],
        &["exchange refused 13"],
        &[("create (make_reg)", &den)],
    );
    // Per-entry directory: renaming within it cannot be granted either.
    s.refused(
        &["rename", &t.path("shared/a.txt"), &t.path("shared/b.txt")],
        &["rename refused 13"],
        &[("delete (remove_file)", &t.path("shared"))],
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
