//! `kaplc completions SHELL` and `kaplc man [--out DIR]` end to end: the
//! scripts and pages cover every subcommand and option that `kaplc --help`
//! lists (read from the real binary, so a new subcommand is covered without
//! editing this file), and a bad shell is a usage error.
#![allow(clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{NoColor, kaplc_in_root};
use std::process::Output;

fn kaplc(args: &[&str]) -> Output {
    kaplc_in_root(args, NoColor::Set)
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The subcommands `kaplc --help` lists (`help` included).
fn subcommands() -> Vec<String> {
    let help = stdout(&kaplc(&["--help"]));
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    for want in [
        "check",
        "diff",
        "build",
        "inspect",
        "fmt",
        "graph",
        "lsp",
        "completions",
        "man",
    ] {
        assert!(names.iter().any(|n| n == want), "`{want}` not in {names:?}");
    }
    names
}

/// The long options `kaplc SUB --help` lists, e.g. `--format`.
fn long_options(sub: &str) -> Vec<String> {
    let help = stdout(&kaplc(&[sub, "--help"]));
    let mut out: Vec<String> = help
        .lines()
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| l.split([' ', ',']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn bash_completion_names_every_subcommand() {
    let script = stdout(&kaplc(&["completions", "bash"]));
    assert!(script.contains("complete -F _kaplc"), "{script}");
    for sub in subcommands() {
        assert!(
            script.contains(&format!("kaplc,{sub})")),
            "bash completion does not complete `{sub}`"
        );
    }
    // And the options of a subcommand, e.g. `check --format`.
    for opt in long_options("check") {
        assert!(script.contains(&opt), "bash completion lacks `{opt}`");
    }
}

#[test]
fn every_shell_gets_a_script_that_names_the_subcommands() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout(&kaplc(&["completions", shell]));
        for sub in subs.iter().filter(|s| *s != "help") {
            assert!(
                script.contains(sub.as_str()),
                "{shell} script does not mention `{sub}`"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    for bad in [&["completions", "tcsh"][..], &["completions"][..]] {
        let o = kaplc(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(o.stdout.is_empty(), "{bad:?} printed a script");
        let err = String::from_utf8_lossy(&o.stderr);
        // clap's usage error: `error: ...`, then how to get help.
        assert!(err.starts_with("error: "), "{err}");
        assert!(err.contains("--help"), "{err}");
    }
    let err = String::from_utf8_lossy(&kaplc(&["completions", "tcsh"]).stderr).into_owned();
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    assert!(err.contains("bash, zsh, fish, elvish, powershell"), "{err}");
}

/// The page's text with roff's escaped hyphens made plain (`\-\-format`
/// is `--format`).
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
}

/// The first request of a page other than the string definitions
/// clap_mangen puts before the header (`.ie`/`.el` defining `\*(Aq`).
fn header(page: &str) -> &str {
    page.lines()
        .find(|l| !(l.starts_with(".ie ") || l.starts_with(".el ")))
        .unwrap_or("")
}

#[test]
fn man_out_writes_a_page_per_subcommand_with_its_options() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("man/man1");
    let out_s = out.to_string_lossy().into_owned();
    let o = kaplc(&["man", "--out", &out_s]);
    stdout(&o);
    assert!(o.stdout.is_empty(), "--out prints nothing on stdout");
    let read = |name: &str| {
        std::fs::read_to_string(out.join(name))
            .unwrap_or_else(|e| panic!("{name} not written: {e}"))
    };
    let main = read("kaplc.1");
    assert!(header(&main).starts_with(".TH kaplc 1"), "{main}");
    let subs: Vec<String> = subcommands().into_iter().filter(|s| s != "help").collect();
    for sub in &subs {
        assert!(
            plain(&main).contains(&format!("kaplc-{sub}(1)")),
            "kaplc.1 does not list kaplc-{sub}(1)"
        );
        let page = read(&format!("kaplc-{sub}.1"));
        assert!(
            header(&page).starts_with(&format!(".TH kaplc-{sub} 1")),
            "kaplc-{sub}.1 does not start with its .TH header:\n{page}"
        );
        assert!(page.contains("\n.SH NAME\n"), "kaplc-{sub}.1: no NAME");
        assert!(
            page.contains("\n.SH SYNOPSIS\n"),
            "kaplc-{sub}.1: no SYNOPSIS"
        );
        let text = plain(&page);
        assert!(text.contains(&format!("kaplc {sub}")), "kaplc-{sub}.1");
        for opt in long_options(sub) {
            assert!(
                text.contains(&opt),
                "kaplc-{sub}.1 does not mention `{opt}`"
            );
        }
    }
    // One page per subcommand and the main page, nothing else.
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = subs.iter().map(|s| format!("kaplc-{s}.1")).collect();
    want.push("kaplc.1".into());
    want.sort();
    assert_eq!(files, want);
    // Options that must be there, not only those `--help` happens to show.
    assert!(plain(&read("kaplc-check.1")).contains("--format"));
    assert!(plain(&read("kaplc-man.1")).contains("--out"));
    assert!(plain(&read("kaplc-build.1")).contains("--output"));
}

#[test]
fn man_without_out_prints_the_main_page() {
    let page = stdout(&kaplc(&["man"]));
    assert!(header(&page).starts_with(".TH kaplc 1"), "{page}");
    assert!(plain(&page).contains("kaplc-check(1)"));
}

#[test]
fn man_into_an_unwritable_place_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap_or_else(|e| panic!("{e}"));
    let o = kaplc(&["man", "--out", &file.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("KAPL0001"));
}
