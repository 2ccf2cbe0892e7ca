//! The tutorial is a test: `book/src/tutorial.md` is run as written, on
//! the real kernel (root), with the `kaplc` and `kapl-run` under test, and
//! the test fails when the book and the tools disagree.
//!
//! The page is read top to bottom; its fenced blocks mean:
//!
//! - ```` ```sh ```` — commands, run in order by **one** bash process, so
//!   `cd`, variables and `export` carry from block to block. It starts in
//!   a fresh temporary directory, which stands for the directory the page
//!   names ([`BOOK_DIR`]), with `PATH` the directory of the binaries under
//!   test (`kaplc`, `kapl-run`) and then Debian's `/usr/sbin:/usr/bin:/sbin:/bin`
//!   (not `/usr/local`: the page is about Debian's programs, and checks
//!   where they are), `NO_COLOR=1`, and stdin from `/dev/null`.
//!   A block passes when none of its commands fails (bash's `ERR` trap
//!   records every failing command with its status; `pipefail` is on).
//! - ```` ```text ```` right after a `sh` block (blank lines between are
//!   allowed) — what that block prints, standard output and standard error
//!   together. Every line must appear in the real output, in order, except
//!   lines that are only `...` (or `…`), which stand for lines left out;
//!   gaps are always allowed. Inside a line, `...` stands for any text (a
//!   duration, a long list). Before comparing, the temporary directory is
//!   written as [`BOOK_DIR`] and every hexadecimal word of 7 to 40 digits
//!   with at least one decimal digit (session ids, commit ids) as `<hex>`,
//!   on both sides. kapl-run's decision lines (`denied: `, `allowed: `)
//!   arrive beside the command's own output, in no fixed order with it, so
//!   they are kept in order among themselves and the other lines among
//!   themselves; one that landed inside a line of the command's (a program
//!   that writes `cat: ` and `.env: Permission denied` apart) is taken out
//!   and the line put back together. The page shows every decision its
//!   commands print: a `denied:` or `allowed:` line that no line of the
//!   block's `text` matches fails the test (`...` lines stand for other
//!   output, never for a decision).
//! - ```` ```kapl ```` — written to a file when the line before its fence
//!   (blank lines between are allowed) is a marker, NAME relative to the
//!   starting directory: `<!-- tutorial: file NAME -->` (written, or
//!   replaced), `<!-- tutorial: append NAME -->` (added at the end), or
//!   `<!-- tutorial: edit NAME -->` (the block replaces the file's lines
//!   from the first one equal to the block's first line through the next
//!   one equal to its last line: a fix the reader makes in place).
//!   Unmarked `kapl` blocks are illustrations. The harness keeps these
//!   files' text itself and writes each version at its place in the page.
//! - Other blocks are not run.
//!
//! Markers, also HTML comments that readers do not see, go on the line
//! before a `sh` block's fence: `<!-- tutorial: exit N -->` says exactly
//! one command of the block fails, with status N (a denial the page
//! shows); `<!-- tutorial: skip (why) -->` leaves the block out.
//!
//! Every session the page starts is stopped at the end even when the test
//! fails: after each block the harness records `$KAPL_SESSION`, and a guard
//! stops the recorded sessions. The page's own `session stop` is checked
//! too: no session cgroup and no session temporary directory may remain.
//! The page carries the same convention in a comment at its top.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "a test fails loudly"
)]

use std::fmt::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directory the page works in; the test's temporary directory is
/// written as this before outputs are compared.
const BOOK_DIR: &str = "/root/kapl-tutorial";

/// How long the whole page may take.
const TIMEOUT: Duration = Duration::from_secs(600);

const MARK: &str = "<!-- tutorial: ";

fn kapl_run() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kapl-run"))
}

/// The compiler beside kapl-run (`scripts/test` builds it).
fn kaplc() -> PathBuf {
    let p = kapl_run().with_file_name("kaplc");
    assert!(
        p.is_file(),
        "kaplc is missing beside kapl-run ({}): build it with `cargo build -p kaplc` (scripts/test does)",
        p.display()
    );
    p
}

/// One fenced block of the page.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    lang: String,
    body: String,
    /// The marker on the line before the fence, without `<!-- tutorial: ` and ` -->`.
    mark: Option<String>,
}

/// Every fenced block of `text`, with its marker.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut mark: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("```") {
            let lang = rest.trim().to_string();
            let mut body = String::new();
            let mut closed = false;
            for (_, l) in lines.by_ref() {
                if l.starts_with("```") {
                    closed = true;
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            assert!(closed, "tutorial.md:{}: unclosed fence", i + 1);
            out.push(Block {
                line: i + 1,
                lang,
                body,
                mark: mark.take(),
            });
        } else if let Some(rest) = line.trim().strip_prefix(MARK) {
            let m = rest
                .strip_suffix("-->")
                .unwrap_or_else(|| panic!("tutorial.md:{}: a marker is one line: {line}", i + 1));
            mark = Some(m.trim().to_string());
        } else if !line.trim().is_empty() {
            mark = None;
        }
    }
    out
}

/// What the page asks of one `sh` block.
#[derive(Debug)]
struct Step {
    line: usize,
    script: String,
    /// The status of the one command expected to fail.
    exit: Option<i32>,
    expected: Option<(usize, String)>,
}

/// The page as a list of files to write and blocks to run, in order.
#[derive(Debug)]
enum Action {
    /// The file's whole text from this point of the page on.
    Write {
        line: usize,
        name: String,
        body: String,
    },
    Run(Step),
}

fn actions(text: &str) -> Vec<Action> {
    let mut out: Vec<Action> = Vec::new();
    let mut files: std::collections::HashMap<String, String> = Default::default();
    let mut last_was_sh = false;
    for b in blocks(text) {
        let mark = b.mark.as_deref();
        match b.lang.as_str() {
            "kapl" => {
                if let Some(m) = mark {
                    let (op, name) = m.split_once(' ').unwrap_or((m, ""));
                    let name = name.trim().to_string();
                    let old = files.get(&name).cloned().unwrap_or_default();
                    let body = match op {
                        "file" => b.body,
                        "append" => old + &b.body,
                        "edit" => edit(&old, &b.body)
                            .unwrap_or_else(|e| panic!("tutorial.md:{}: {e}", b.line)),
                        _ => panic!(
                            "tutorial.md:{}: unknown marker on a kapl block: {m}",
                            b.line
                        ),
                    };
                    files.insert(name.clone(), body.clone());
                    out.push(Action::Write {
                        line: b.line,
                        name,
                        body,
                    });
                }
                last_was_sh = false;
            }
            "sh" => {
                let mut exit = None;
                match mark {
                    Some(m) if m.starts_with("skip") => {
                        last_was_sh = false;
                        continue;
                    }
                    Some(m) => {
                        let n = m.strip_prefix("exit ").and_then(|n| n.trim().parse().ok());
                        exit = Some(n.unwrap_or_else(|| {
                            panic!("tutorial.md:{}: unknown marker on a sh block: {m}", b.line)
                        }));
                    }
                    None => {}
                }
                out.push(Action::Run(Step {
                    line: b.line,
                    script: b.body,
                    exit,
                    expected: None,
                }));
                last_was_sh = true;
            }
            "text" if last_was_sh => {
                if let Some(Action::Run(s)) = out.last_mut() {
                    s.expected = Some((b.line, b.body));
                }
                last_was_sh = false;
            }
            _ => last_was_sh = false,
        }
    }
    out
}

/// `old` with the lines from the first equal to `new`'s first line through
/// the next equal to its last line replaced by `new`.
fn edit(old: &str, new: &str) -> Result<String, String> {
    let lines: Vec<&str> = old.lines().collect();
    let repl: Vec<&str> = new.lines().collect();
    let (Some(first), Some(last)) = (repl.first(), repl.last()) else {
        return Err("an empty edit".into());
    };
    let start = lines
        .iter()
        .position(|l| l == first)
        .ok_or_else(|| format!("the file has no line `{first}` to edit"))?;
    let end = start
        + 1
        + lines[start + 1..]
            .iter()
            .position(|l| l == last)
            .ok_or_else(|| format!("the file has no line `{last}` after `{first}`"))?;
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(&repl);
    out.extend(&lines[end + 1..]);
    Ok(out.join("\n") + "\n")
}

/// Temporary directory and hexadecimal ids written the same way on both
/// sides; trailing blanks dropped.
fn normalise(text: &str, tmp: &str, sessions: &[String]) -> Vec<String> {
    let mut t = text.replace(tmp, BOOK_DIR);
    for s in sessions {
        t = t.replace(s.as_str(), "<hex>");
    }
    untangle(&t)
        .iter()
        .map(|l| hex_words(l.trim_end()))
        .collect()
}

/// The lines of `text`, with kapl-run's decision lines taken out of the
/// command's lines they landed in: the command and `kapl-run exec` write
/// to the same standard error, so a program that writes a line in two
/// pieces (`cat: ` then `.env: Permission denied`) can have a decision
/// line between them. The piece before it is put back in front of the
/// next line.
fn untangle(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut carry = String::new();
    for line in text.lines() {
        let line = format!("{}{line}", std::mem::take(&mut carry));
        let at = ["denied: ", "allowed: "]
            .iter()
            .filter_map(|k| line.find(k))
            .filter(|&i| i > 0 && line[i..].contains(" — "))
            .min();
        match at {
            Some(i) => {
                carry = line[..i].to_string();
                out.push(line[i..].to_string());
            }
            None => out.push(line),
        }
    }
    if !carry.is_empty() {
        out.push(carry);
    }
    out
}

/// Each run of 7 to 40 hexadecimal digits, bounded by non-alphanumerics
/// and holding a decimal digit, as `<hex>`.
fn hex_words(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii_alphanumeric() {
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let w = &line[start..i];
            let hex = (7..=40).contains(&w.len())
                && w.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                && w.bytes().any(|c| c.is_ascii_digit());
            out.push_str(if hex { "<hex>" } else { w });
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `want` matches `got`: equal, or, where `want` has `...`, the parts
/// between appear in order, the first at the start and the last at the end.
fn line_matches(want: &str, got: &str) -> bool {
    let parts: Vec<&str> = want.split("...").collect();
    if parts.len() == 1 {
        return want == got;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !got.starts_with(first) || got.len() < first.len() + last.len() || !got.ends_with(last) {
        return false;
    }
    let mut rest = &got[first.len()..got.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

fn is_decision(l: &str) -> bool {
    l.starts_with("denied: ") || l.starts_with("allowed: ")
}

/// The first expected line that has no match in order in `got`, if any.
fn missing<'a>(want: &'a [String], got: &[String]) -> Option<&'a str> {
    for decisions in [true, false] {
        let mut g = got.iter().filter(|l| is_decision(l) == decisions);
        for w in want.iter().filter(|l| is_decision(l) == decisions) {
            if w == "..." || w == "…" {
                continue;
            }
            if !g.any(|l| line_matches(w, l)) {
                return Some(w);
            }
        }
    }
    None
}

/// The first decision line of `got` that no decision line of `want`
/// matches: the page shows every denial its commands cause.
fn unshown<'a>(want: &[String], got: &'a [String]) -> Option<&'a str> {
    got.iter()
        .filter(|l| is_decision(l))
        .find(|g| !want.iter().any(|w| is_decision(w) && line_matches(w, g)))
        .map(String::as_str)
}

/// Stops the sessions the page started (the page stops them itself; this
/// is for a page that fails half-way) and removes the directory.
struct Guard {
    dir: PathBuf,
}

impl Guard {
    fn sessions(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(self.dir.join(".harness/sessions"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for s in self.sessions() {
            let _ = Command::new(kapl_run())
                .args(["session", "stop", "--session", &s])
                .output();
        }
        if std::env::var_os("KAPL_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The driver script: the page's files written and its blocks run in the
/// page's order, each block in braces (the shell's own state carries on),
/// its output and its failing commands to the harness's directory.
fn driver(actions: &[Action], dir: &Path, harness: &Path) -> String {
    let h = harness.display();
    let mut s = String::new();
    s.push_str("set -o pipefail\n__kapl_b=none\n");
    let _ = writeln!(
        s,
        "trap 'printf \"%s\\t%s\\n\" \"$?\" \"$BASH_COMMAND\" >> \"{h}/fail.$__kapl_b\"' ERR"
    );
    for (i, a) in actions.iter().enumerate() {
        match a {
            Action::Write { line, name, .. } => {
                let to = dir.join(name);
                s.push_str("__kapl_b=setup\n");
                let _ = writeln!(s, "cat \"{h}/kapl.{line}\" > \"{}\"", to.display());
            }
            Action::Run(step) => {
                let _ = writeln!(s, "__kapl_b={i}");
                let _ = writeln!(
                    s,
                    "{{\n{}}} > \"{h}/out.{i}\" 2>&1 < /dev/null",
                    step.script
                );
                let _ = writeln!(
                    s,
                    "if [ -n \"${{KAPL_SESSION:-}}\" ]; then echo \"$KAPL_SESSION\" >> \"{h}/sessions\"; fi"
                );
            }
        }
    }
    s
}

fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn the_tutorial_runs_as_written() {
    assert_eq!(
        euid(),
        Some(0),
        "the tutorial test runs kapl-run sessions on the real kernel: run it as root"
    );
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../book/src/tutorial.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let actions = actions(&text);
    let runs = actions
        .iter()
        .filter(|a| matches!(a, Action::Run(_)))
        .count();
    assert!(runs >= 5, "the tutorial has only {runs} sh blocks");

    let dir = std::env::temp_dir().join(format!("kapl-tutorial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let guard = Guard { dir: dir.clone() };
    let harness = dir.join(".harness");
    std::fs::create_dir_all(&harness).unwrap();
    let tmp = dir.display().to_string();

    for a in &actions {
        if let Action::Write { line, body, .. } = a {
            std::fs::write(harness.join(format!("kapl.{line}")), body).unwrap();
        }
    }
    std::fs::write(harness.join("driver.sh"), driver(&actions, &dir, &harness)).unwrap();

    let bin = kaplc().parent().unwrap().display().to_string();
    let mut child = Command::new("/bin/bash")
        .arg("--noprofile")
        .arg("--norc")
        .arg(harness.join("driver.sh"))
        .current_dir(&dir)
        .env(
            "PATH",
            // The page is about Debian's programs; `/usr/local` is left
            // out, where this machine kind has a git of its own.
            format!("{bin}:/usr/sbin:/usr/bin:/sbin:/bin"),
        )
        .env("NO_COLOR", "1")
        .env_remove("KAPL_SESSION")
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.is_some(),
        "the tutorial did not finish in {TIMEOUT:?}"
    );

    let sessions = guard.sessions();
    for f in ["fail.none", "fail.setup"] {
        let text = std::fs::read_to_string(harness.join(f)).unwrap_or_default();
        assert!(text.is_empty(), "the harness itself failed: {text}");
    }
    for (i, a) in actions.iter().enumerate() {
        let Action::Run(step) = a else { continue };
        let out = std::fs::read_to_string(harness.join(format!("out.{i}"))).unwrap_or_default();
        let fails = std::fs::read_to_string(harness.join(format!("fail.{i}"))).unwrap_or_default();
        let got = normalise(&out, &tmp, &sessions);
        let show = || {
            format!(
                "\n--- commands\n{}--- output\n{}",
                step.script,
                got.join("\n")
            )
        };
        let statuses: Vec<&str> = fails.lines().collect();
        match step.exit {
            None => assert!(
                statuses.is_empty(),
                "tutorial.md:{}: a command failed:\n{}{}",
                step.line,
                fails,
                show()
            ),
            Some(n) => assert!(
                statuses.len() == 1 && statuses[0].split('\t').next() == Some(&n.to_string()),
                "tutorial.md:{}: exactly one command should fail, with status {n}; failures:\n{}{}",
                step.line,
                fails,
                show()
            ),
        }
        let (line, want) = match &step.expected {
            Some((line, want)) => (*line, normalise(want, &tmp, &sessions)),
            None => (step.line, Vec::new()),
        };
        if let Some(w) = missing(&want, &got) {
            panic!(
                "tutorial.md:{line}: the page shows a line the commands of tutorial.md:{} do not print (or not in this order):\n{w}{}",
                step.line,
                show()
            );
        }
        if let Some(d) = unshown(&want, &got) {
            panic!(
                "tutorial.md:{line}: the commands of tutorial.md:{} print a decision the page does not show:\n{d}{}",
                step.line,
                show()
            );
        }
    }
    // The page stops its sessions: nothing of them remains.
    let cgroup = Path::new("/sys/fs/cgroup");
    for s in &sessions {
        assert!(
            !cgroup.join(format!("kapl-{s}")).exists(),
            "session {s} is still running after the page's `session stop`"
        );
        let tmp_left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("kapl-tmp-{s}-"))
            })
            .collect();
        assert!(tmp_left.is_empty(), "session {s} left {tmp_left:?}");
    }
    assert!(!sessions.is_empty(), "the tutorial started no session");
    drop(guard);
}

#[test]
fn the_matcher_is_loose_but_meaningful() {
    let got: Vec<String> = [
        "cat: x: Permission denied",
        "denied: cat read /a",
        "Ran 1 test in 0.001s",
        "",
        "OK",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        missing(
            &v(&["denied: cat read /a", "cat: x: Permission denied"]),
            &got
        ),
        None
    );
    assert_eq!(
        missing(&v(&["Ran 1 test in ...s", "...", "OK"]), &got),
        None
    );
    assert_eq!(
        missing(&v(&["OK", "Ran 1 test in ...s"]), &got),
        Some("Ran 1 test in ...s")
    );
    assert_eq!(
        missing(&v(&["Ran 2 tests in ...s"]), &got),
        Some("Ran 2 tests in ...s")
    );
    assert_eq!(
        missing(&v(&["denied: cat read /b"]), &got),
        Some("denied: cat read /b")
    );
    assert_eq!(
        unshown(&v(&["...", "OK"]), &got),
        Some("denied: cat read /a")
    );
    assert_eq!(unshown(&v(&["denied: cat read ..."]), &got), None);
    assert_eq!(
        untangle("cat: denied: cat read /a — why\n.env: Permission denied\nok\n"),
        v(&[
            "denied: cat read /a — why",
            "cat: .env: Permission denied",
            "ok"
        ])
    );
    assert_eq!(hex_words("[master 1a2b3c4] x"), "[master <hex>] x");
    let file = "a {\n  s {\n    x\n  }\n  t {\n  }\n}\n";
    assert_eq!(
        edit(file, "  s {\n    y\n    z\n  }\n").unwrap(),
        "a {\n  s {\n    y\n    z\n  }\n  t {\n  }\n}\n"
    );
    assert!(edit(file, "  u {\n  }\n").is_err());
    assert_eq!(
        hex_words("session 11a71f93 ended; added deadbeef"),
        "session <hex> ended; added deadbeef"
    );
}
