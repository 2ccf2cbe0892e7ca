//! The book's terminal transcripts are what kaplc prints today: every
//! ```` ```console ```` block of `book/src/cli.md` and `book/src/ci.md` is
//! run, command by command, and its output compared with the page.
//!
//! A block is a terminal session: a line starting `$ ` is a command, the
//! lines after it (up to the next `$ `) are what the terminal shows —
//! standard output and standard error through one pipe, in the order kaplc
//! writes them. A line that is only `…` or `...` stands for any number of
//! lines (none included). Trailing blanks are ignored.
//!
//! Commands run with `NO_COLOR=1` in a fresh copy of the fixtures, a stand-in
//! for a checkout of the repository: `book/transcripts/` (the files the
//! transcripts name, see its README) with `tests/examples/`, `tests/diff/` and `schemas/`
//! of the repository beside them. The harness understands exactly this much
//! shell: `kaplc ARGS` (the kaplc under test), words quoted with `'` or `"`,
//! `*` and `?` in a path's last part, `> FILE`, a `# comment`, and
//! `echo $?` (the exit status of the previous command). Anything else —
//! another program, a pipe, `~` — cannot run in a test; such a block must be
//! marked, on the line before its fence:
//!
//! ```text
//! <!-- transcript: not checked (why) -->
//! ```
//!
//! An unmarked block that cannot run fails the test, and each page must have
//! at least one checked block.

#![allow(clippy::panic, reason = "tests fail loudly")]

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The marker that exempts the next block; the reason follows it in brackets.
const NOT_CHECKED: &str = "<!-- transcript: not checked (";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One ```` ```console ```` block of a page.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    /// Why it is not run, when it is marked.
    not_checked: Option<String>,
    commands: Vec<Transcript>,
}

/// One `$ ` line and the output the page shows for it.
#[derive(Debug)]
struct Transcript {
    /// 1-based line of the `$ ` line.
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The console blocks of a markdown text, or what is malformed about one.
fn console_blocks(text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() != "```console" {
            i += 1;
            continue;
        }
        let fence = i + 1;
        let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        let not_checked = match before.map(|l| l.trim()) {
            Some(l) if l.starts_with(NOT_CHECKED) => Some(
                l.strip_prefix(NOT_CHECKED)
                    .and_then(|r| r.strip_suffix(") -->"))
                    .filter(|why| !why.trim().is_empty())
                    .ok_or_else(|| {
                        format!(
                            "line {fence}: write the marker before it as `{NOT_CHECKED}why) -->`"
                        )
                    })?
                    .to_string(),
            ),
            Some(l) if l.starts_with("<!-- transcript") => {
                return Err(format!(
                    "line {fence}: unknown transcript marker `{l}` before it; the one marker is `{NOT_CHECKED}why) -->`"
                ));
            }
            _ => None,
        };
        let mut commands: Vec<Transcript> = Vec::new();
        i += 1;
        loop {
            let Some(line) = lines.get(i) else {
                return Err(format!("line {fence}: the block is not closed"));
            };
            if line.starts_with("```") {
                break;
            }
            if let Some(cmd) = line.strip_prefix("$ ") {
                commands.push(Transcript {
                    line: i + 1,
                    command: cmd.to_string(),
                    expected: Vec::new(),
                });
            } else if let Some(last) = commands.last_mut() {
                last.expected.push(line.trim_end().to_string());
            } else {
                return Err(format!(
                    "line {}: output before the first `$ ` command",
                    i + 1
                ));
            }
            i += 1;
        }
        if commands.is_empty() {
            return Err(format!("line {fence}: a console block without a command"));
        }
        out.push(Block {
            line: fence,
            not_checked,
            commands,
        });
        i += 1;
    }
    Ok(out)
}

/// A command the harness can run.
#[derive(Debug, PartialEq, Eq)]
enum Cmd {
    /// `kaplc ARGS [> FILE]`, globs not yet expanded.
    Kaplc {
        args: Vec<String>,
        stdout_to: Option<String>,
    },
    /// `echo $?`.
    Status,
}

/// Parses the shell subset of the module comment; `Err` says why a command
/// cannot run in a test.
fn parse_command(text: &str) -> Result<Cmd, String> {
    let mut words: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    let mut redirect = false;
    let mut stdout_to = None;
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            break;
        }
        if c == '>' {
            chars.next();
            if redirect || stdout_to.is_some() {
                return Err("more than one `>`".into());
            }
            redirect = true;
            continue;
        }
        let mut word = String::new();
        while let Some(&c) = chars.peek() {
            match c {
                '\'' | '"' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            Some(q) if q == c => break,
                            Some(x) => word.push(x),
                            None => return Err(format!("unclosed {c}")),
                        }
                    }
                }
                c if c.is_whitespace() => break,
                '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' | '~' => {
                    return Err(format!("shell syntax `{c}`"));
                }
                '$' if words.first().is_none_or(|w| w != "echo") => {
                    return Err("a shell variable".into());
                }
                _ => {
                    word.push(c);
                    chars.next();
                }
            }
        }
        if redirect {
            stdout_to = Some(word);
            redirect = false;
        } else {
            words.push(word);
        }
    }
    if redirect {
        return Err("`>` without a file".into());
    }
    match words.split_first() {
        Some((p, args)) if p == "kaplc" => Ok(Cmd::Kaplc {
            args: args.to_vec(),
            stdout_to,
        }),
        Some((p, args)) if p == "echo" && args == ["$?"] && stdout_to.is_none() => Ok(Cmd::Status),
        Some((p, _)) => Err(format!("`{p}` is not `kaplc` (or `echo $?`)")),
        None => Err("an empty command".into()),
    }
}

/// `*` and `?` matching of one path part (no `/`).
fn wildcard(pat: &[u8], name: &[u8]) -> bool {
    match pat.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|k| wildcard(rest, &name[k..])),
        Some((b'?', rest)) => !name.is_empty() && wildcard(rest, &name[1..]),
        Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
    }
}

/// Expands a word as a shell would in `cwd`, when its last part has a
/// wildcard (sorted; kept as it is when nothing matches, as bash does).
fn expand(word: &str, cwd: &Path) -> Vec<String> {
    let (dir, pat) = match word.rsplit_once('/') {
        Some((d, p)) => (Some(d), p),
        None => (None, word),
    };
    if !pat.contains(['*', '?']) || dir.is_some_and(|d| d.contains(['*', '?'])) {
        return vec![word.to_string()];
    }
    let listing = cwd.join(dir.unwrap_or("."));
    let mut names: Vec<String> = std::fs::read_dir(&listing)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && wildcard(pat.as_bytes(), n.as_bytes()))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return vec![word.to_string()];
    }
    names.sort();
    names
        .into_iter()
        .map(|n| match dir {
            Some(d) => format!("{d}/{n}"),
            None => n,
        })
        .collect()
}

/// Runs kaplc in `cwd` with standard output and standard error on one pipe
/// (as a terminal shows them); returns that text and the exit status.
fn run_kaplc(args: &[String], stdout_to: Option<&str>, cwd: &Path) -> (String, Option<i32>) {
    let (mut reader, writer) = std::io::pipe().unwrap_or_else(|e| panic!("pipe: {e}"));
    let stdout: Stdio = match stdout_to {
        Some(f) => std::fs::File::create(cwd.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .into(),
        None => writer
            .try_clone()
            .unwrap_or_else(|e| panic!("pipe: {e}"))
            .into(),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaplc"));
    cmd.args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .env("HOME", cwd)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(writer);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run kaplc: {e}"));
    drop(cmd); // the parent's ends of the pipe: EOF once kaplc exits
    let mut text = String::new();
    reader
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("kaplc output: {e}"));
    let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
    (text, status.code())
}

fn is_wildcard(line: &str) -> bool {
    matches!(line.trim(), "…" | "...")
}

/// One step of the alignment of expected and actual lines.
enum Op<'a> {
    Same(&'a str),
    /// A wildcard line and how many actual lines it stands for.
    Any(usize),
    Missing(&'a str),
    Extra(&'a str),
}

/// Aligns the page's lines with kaplc's, wildcards taking any run of lines;
/// the output matches when no line is missing or extra.
fn align<'a>(expected: &'a [String], actual: &'a [String]) -> Vec<Op<'a>> {
    let (e, a) = (expected.len(), actual.len());
    // cost[i][j]: lines missing or extra to align expected[i..] with actual[j..].
    let mut cost = vec![vec![usize::MAX; a + 1]; e + 1];
    for i in (0..=e).rev() {
        for j in (0..=a).rev() {
            cost[i][j] = if i == e {
                a - j
            } else if is_wildcard(&expected[i]) {
                let stay = if j < a { cost[i][j + 1] } else { usize::MAX };
                stay.min(cost[i + 1][j])
            } else {
                let mut c = 1 + cost[i + 1][j];
                if j < a {
                    c = c.min(1 + cost[i][j + 1]);
                    if expected[i] == actual[j] {
                        c = c.min(cost[i + 1][j + 1]);
                    }
                }
                c
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < e || j < a {
        if i < e && is_wildcard(&expected[i]) {
            let mut n = 0;
            while j < a && cost[i][j + 1] == cost[i][j] {
                n += 1;
                j += 1;
            }
            ops.push(Op::Any(n));
            i += 1;
        } else if i < e && j < a && expected[i] == actual[j] && cost[i][j] == cost[i + 1][j + 1] {
            ops.push(Op::Same(&actual[j]));
            i += 1;
            j += 1;
        } else if i < e && cost[i][j] == 1 + cost[i + 1][j] {
            ops.push(Op::Missing(&expected[i]));
            i += 1;
        } else {
            ops.push(Op::Extra(&actual[j]));
            j += 1;
        }
    }
    ops
}

/// `None` when `actual` matches the page, else a diff: `-` what the page
/// says and kaplc did not print, `+` what kaplc printed and the page does
/// not say.
fn mismatch(expected: &[String], actual: &[String]) -> Option<String> {
    let ops = align(expected, actual);
    if !ops
        .iter()
        .any(|op| matches!(op, Op::Missing(_) | Op::Extra(_)))
    {
        return None;
    }
    let mut out = String::new();
    for op in ops {
        let _ = match op {
            Op::Same(l) => writeln!(out, "  {l}"),
            Op::Any(n) => writeln!(out, "  … ({n} lines)"),
            Op::Missing(l) => writeln!(out, "- {l}"),
            Op::Extra(l) => writeln!(out, "+ {l}"),
        };
    }
    Some(out)
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
    }
}

/// A fresh fixture directory: what a block's commands see as the current
/// directory.
fn fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let root = root();
    copy_tree(&root.join("book/transcripts"), dir.path());
    copy_tree(
        &root.join("tests/examples"),
        &dir.path().join("tests/examples"),
    );
    copy_tree(&root.join("tests/diff"), &dir.path().join("tests/diff"));
    copy_tree(&root.join("schemas"), &dir.path().join("schemas"));
    dir
}

/// Runs one block; returns each failure with its line in the page.
fn run_block(page: &str, block: &Block) -> Vec<String> {
    let dir = fixtures();
    let mut failures = Vec::new();
    let mut status: Option<Option<i32>> = None;
    for t in &block.commands {
        let at = format!("{page}:{}: `$ {}`", t.line, t.command);
        let actual = match parse_command(&t.command) {
            Ok(Cmd::Kaplc { args, stdout_to }) => {
                let args: Vec<String> = args.iter().flat_map(|a| expand(a, dir.path())).collect();
                let (text, code) = run_kaplc(&args, stdout_to.as_deref(), dir.path());
                status = Some(code);
                text
            }
            Ok(Cmd::Status) => match status {
                Some(Some(code)) => format!("{code}\n"),
                Some(None) => format!("{at}: the previous command was killed by a signal\n"),
                None => {
                    failures.push(format!("{at}: `echo $?` before any command"));
                    continue;
                }
            },
            Err(why) => {
                failures.push(format!(
                    "{at}: cannot run in a test ({why}); change the command, or mark the block \
                     (line {}) with `{NOT_CHECKED}why) -->` on the line before it",
                    block.line
                ));
                break;
            }
        };
        let actual: Vec<String> = actual.lines().map(|l| l.trim_end().to_string()).collect();
        if let Some(diff) = mismatch(&t.expected, &actual) {
            failures.push(format!(
                "{at} printed something else (- the page, + kaplc):\n{diff}"
            ));
        }
    }
    failures
}

/// Checks every console block of a page; returns (blocks run, commands run).
fn check_page(rel: &str) -> (usize, usize) {
    let path = root().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let blocks = console_blocks(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut failures = Vec::new();
    let (mut checked, mut commands) = (0, 0);
    for block in &blocks {
        if block.not_checked.is_some() {
            continue;
        }
        checked += 1;
        commands += block.commands.len();
        failures.extend(run_block(rel, block));
    }
    assert!(
        failures.is_empty(),
        "{} transcript failure(s):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "{rel}: no console block is checked");
    eprintln!(
        "{rel}: {checked} of {} console blocks checked, {commands} commands",
        blocks.len()
    );
    (checked, commands)
}

#[test]
fn cli_page_transcripts_are_what_kaplc_prints() {
    check_page("book/src/cli.md");
}

#[test]
fn ci_page_transcripts_are_what_kaplc_prints() {
    check_page("book/src/ci.md");
}

// The harness itself.

fn strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[test]
fn wildcard_lines_take_any_run_of_lines() {
    let page = strings(&["a", "…", "z"]);
    assert!(mismatch(&page, &strings(&["a", "z"])).is_none());
    assert!(mismatch(&page, &strings(&["a", "b", "c", "z"])).is_none());
    assert!(mismatch(&strings(&["..."]), &[]).is_none());
    let diff = mismatch(&page, &strings(&["a", "b", "y"])).unwrap_or_default();
    assert_eq!(diff, "  a\n  … (2 lines)\n- z\n");
    let diff = mismatch(&strings(&["a", "b"]), &strings(&["a", "c"])).unwrap_or_default();
    assert_eq!(diff, "  a\n- b\n+ c\n");
}

#[test]
fn blocks_are_found_with_their_lines_and_markers() {
    let md = "text\n\n```console\n$ kaplc check a.kapl\na.kapl: ok\n```\n\n\
              <!-- transcript: not checked (writes into $HOME) -->\n```console\n\
              $ man kaplc-check\n```\n";
    let blocks = console_blocks(md).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].line, blocks[0].commands[0].line), (3, 4));
    assert_eq!(blocks[0].commands[0].expected, ["a.kapl: ok"]);
    assert_eq!(blocks[0].not_checked, None);
    assert_eq!(blocks[1].not_checked.as_deref(), Some("writes into $HOME"));
    assert!(console_blocks("```console\nout\n```\n").is_err());
    assert!(console_blocks("<!-- transcript: skip -->\n```console\n$ x\n```\n").is_err());
}

#[test]
fn only_kaplc_and_echo_status_run() {
    assert_eq!(
        parse_command("kaplc schema check > 'a b.json'  # note"),
        Ok(Cmd::Kaplc {
            args: strings(&["schema", "check"]),
            stdout_to: Some("a b.json".into()),
        })
    );
    assert_eq!(parse_command("echo $?"), Ok(Cmd::Status));
    for cannot in [
        "man kaplc-check",
        "kaplc man | man -l -",
        "kaplc completions zsh > ~/.zfunc/_kaplc",
        "kaplc check $FILE",
        "kaplc check a.kapl && kaplc build a.kapl",
    ] {
        assert!(parse_command(cannot).is_err(), "{cannot}");
    }
    // An unmarked block that cannot run is a failure, not a pass.
    let blocks = console_blocks("```console\n$ man kaplc\n```\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run_block("t.md", &blocks[0]).len(), 1);
}
