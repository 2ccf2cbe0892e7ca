//! `kaplc diff OLD NEW` end to end on the fixture pairs in `tests/diff/`
//! (`NAME.old.kapl`, `NAME.new.kapl`, each with a header saying what is
//! expected): every level compared, changes as sets, widening exits 1,
//! narrowing exits 0 and lists what was removed, the Markdown comment as a
//! snapshot; and edited copies of `tests/examples/deploy.kapl`.
#![allow(clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{NoColor, kaplc_in_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `kaplc diff [--format FORMAT] tests/diff/NAME.old.kapl
/// tests/diff/NAME.new.kapl`, from the repository root.
fn pair(name: &str, format: Option<&str>) -> Output {
    let old = format!("tests/diff/{name}.old.kapl");
    let new = format!("tests/diff/{name}.new.kapl");
    let mut args = vec!["diff"];
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    args.extend([old.as_str(), new.as_str()]);
    kaplc_in_root(&args, NoColor::Set)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn changes(v: &Value) -> Vec<Value> {
    v["changes"].as_array().cloned().unwrap_or_default()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_wider_objective_bound_and_a_moved_never_exit_1_and_name_the_objective() {
    let o = pair("objective-widens", None);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains(
            "objective `guard` bound: adds read `/**` except `/tmp/x/r/**` (e.g. `/`, `/a`, `/b`)"
        ),
        "{text}"
    );
    assert!(
        text.contains("objective `guard` never: no longer forbids read `/tmp/x/r/secret`"),
        "{text}"
    );
    assert!(
        text.contains("objective `guard` never: now forbids write `/tmp/x/r/secret`"),
        "{text}"
    );
    assert!(
        text.ends_with("NEW widens authority (2 widenings, 1 narrowing)\n"),
        "{text}"
    );

    let v = json_of(&pair("objective-widens", Some("json")));
    assert_eq!(v["widens"], true);
    let c = changes(&v);
    assert_eq!(c.len(), 3, "{v:#}");
    // Widenings first.
    assert_eq!(c[0]["effect"], "widening");
    assert_eq!(c[0]["level"], "objective");
    assert_eq!(c[0]["name"], "guard");
    assert_eq!(c[0]["part"], "bound");
    assert_eq!(c[0]["authority"]["kind"], "fs");
    assert_eq!(c[0]["authority"]["right"], "read");
    let paths = &c[0]["authority"]["paths"];
    assert_eq!(paths["exact"], true);
    assert_eq!(paths["globs"][0]["glob"], "/**");
    assert_eq!(strings(&paths["globs"][0]["except"]), ["/tmp/x/r/**"]);
    assert_eq!(paths["examples"].as_array().map(Vec::len), Some(3));
    assert_eq!(c[0]["side"], "new");
    assert_eq!(c[0]["sites"][0]["line"], 4);
    assert_eq!(c[1]["part"], "never");
    assert_eq!(c[1]["effect"], "widening");
    assert_eq!(c[1]["side"], "old");
    assert_eq!(c[2]["effect"], "narrowing");
}

#[test]
fn a_step_that_gains_four_programs_lists_all_four() {
    let o = pair("four-programs", None);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "plan `p`, step `count`: adds run `/usr/bin/find`, `/usr/bin/head`, `/usr/bin/tail`, \
         `/usr/bin/wc` (at tests/diff/four-programs.new.kapl:9:11, \
         tests/diff/four-programs.new.kapl:10:11)\n\
         NEW widens authority (1 widening, 0 narrowings)\n"
    );
    let v = json_of(&pair("four-programs", Some("json")));
    let c = changes(&v);
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(c[0]["level"], "step");
    assert_eq!(c[0]["plan"], "p");
    assert_eq!(c[0]["name"], "count");
    let programs = &c[0]["authority"]["programs"];
    assert_eq!(programs["listed"], true);
    let globs: Vec<String> = programs["globs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|g| g["glob"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        globs,
        [
            "/usr/bin/find",
            "/usr/bin/head",
            "/usr/bin/tail",
            "/usr/bin/wc"
        ]
    );
}

#[test]
fn a_pure_narrowing_exits_0_and_lists_what_was_removed() {
    let o = pair("narrowing", None);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let text = stdout(&o);
    for line in [
        "objective `o` bound: removes run `/usr/bin/grep`",
        "objective `o` bound: removes connect `10.0.0.0/8` port 22 (tcp, udp)",
        "objective `o` never: now forbids read `/srv/**/.env`",
        "plan `p`, step `a`: removes read `/srv/a/**` matching `/srv/**/.env`",
        "plan `p`, step `a`: removes run `/usr/bin/grep`",
        "plan `p`, step `b`: removes connect `10.1.0.0/16` port 22 (tcp, udp)",
        "plan `p`, step `c` (removed): removes read `/srv/c/**`",
        "NEW does not widen authority (0 widenings, 7 narrowings)",
    ] {
        assert!(text.contains(line), "{line}\n---\n{text}");
    }
    let v = json_of(&pair("narrowing", Some("json")));
    assert_eq!(v["widens"], false);
    assert!(changes(&v).iter().all(|c| c["effect"] == "narrowing"));
    let gone = changes(&v)
        .into_iter()
        .find(|c| c["name"] == "c")
        .unwrap_or_default();
    assert_eq!(gone["presence"], "old");
    assert_eq!(gone["side"], "old");
}

#[test]
fn a_network_widening_lists_the_added_ranges() {
    let o = pair("network", None);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.contains(
            "plan `p`: adds connect `10.1.0.0/16` port 80; `10.2.0.0/15` port 443 (tcp, udp)"
        ),
        "{text}"
    );
    assert!(
        text.contains("plan `p`: adds bind `127.0.0.1/32` port 8080 (tcp, udp)"),
        "{text}"
    );
    let v = json_of(&pair("network", Some("json")));
    let c = changes(&v);
    let ranges = c[0]["authority"]["ranges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(c[0]["authority"]["op"], "connect");
    assert_eq!(ranges.len(), 2, "{v:#}");
    assert_eq!(strings(&ranges[1]["cidrs"]), ["10.2.0.0/15"]);
    assert_eq!(ranges[1]["first"], "10.2.0.0");
    assert_eq!(ranges[1]["last"], "10.3.255.255");
    assert_eq!(
        (ranges[1]["port_lo"].as_u64(), ranges[1]["port_hi"].as_u64()),
        (Some(443), Some(443))
    );
    assert_eq!(strings(&ranges[1]["protocols"]), ["tcp", "udp"]);
}

#[test]
fn markdown_comment() {
    let o = pair("review", Some("markdown"));
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!(stdout(&o));
    let o = pair("narrowing", Some("markdown"));
    assert_eq!(o.status.code(), Some(0));
    insta::assert_snapshot!("markdown_comment_narrowing", stdout(&o));
}

// ------------------------------------------- edited copies of deploy.kapl

fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    p
}

fn kaplc(args: &[&Path], json: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kaplc"));
    c.arg("diff");
    if json {
        c.args(["--format", "json"]);
    }
    c.args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"))
}

#[test]
fn identical_policies_have_no_changes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let old = write(dir.path(), "old.kapl", &example("deploy.kapl"));
    let new = write(dir.path(), "new.kapl", &example("deploy.kapl"));
    let o = kaplc(&[&old, &new], true);
    assert_eq!(o.status.code(), Some(0));
    let v = json_of(&o);
    assert_eq!(v["widens"], false);
    assert_eq!(changes(&v).len(), 0);
    let o = kaplc(&[&old, &new], false);
    assert_eq!(
        stdout(&o),
        "NEW does not widen authority (0 widenings, 0 narrowings)\n"
    );
}

#[test]
fn a_wider_grant_is_a_set_with_its_grant() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let widened = text.replace(
        r#"grant fs read "/var/log/web/deploy-*.log""#,
        r#"grant fs read "/var/log/web/*.log""#,
    );
    assert_ne!(text, widened);
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &widened);
    let o = kaplc(&[&old, &new], false);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(
        text.starts_with(
            "plan `investigate`, step `read_logs`: adds read `/var/log/web/*.log` except \
             `/var/log/web/deploy-*.log` (e.g. "
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn authorities_are_expanded_where_they_are_used() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    // The intent no longer uses the loader: its bound loses what the
    // authority holds, listed per right, placed at the `use`.
    let narrowed = text.replacen(
        "    exec \"/usr/bin/{git,grep,cat,ls,head,tail}\"\n    use runtime.loader\n  }\n}\n\nplan",
        "    exec \"/usr/bin/{git,grep,cat,ls,head,tail}\"\n  }\n}\n\nplan",
        1,
    );
    assert_ne!(text, narrowed);
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &narrowed);
    let v = json_of(&kaplc(&[&old, &new], true));
    let c: Vec<Value> = changes(&v)
        .into_iter()
        .filter(|c| c["level"] == "intent")
        .collect();
    assert!(c.iter().all(|c| c["effect"] == "narrowing"), "{v:#}");
    let mut kinds: Vec<String> = c
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["authority"]["kind"].as_str().unwrap_or(""),
                c["authority"]["right"].as_str().unwrap_or("")
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["exec ", "fs read", "fs write"], "{v:#}");
    let site = &c[0]["sites"][0];
    assert_eq!(site["file"], old.to_string_lossy().as_ref());
    assert_eq!(site["line"], 30, "{v:#}");
}

#[test]
fn new_steps_count_as_widening_and_their_removal_as_narrowing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let more = text.replace(
        "  step restart after patch_config {",
        "  step inspect after patch_config {\n    grant fs read \"/srv/web/config/*.yaml\"\n  }\n  step restart after patch_config {",
    );
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &more);
    let o = kaplc(&[&old, &new], true);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    let c = changes(&v);
    assert_eq!(c.len(), 1, "{v:#}");
    assert_eq!(c[0]["name"], "inspect");
    assert_eq!(c[0]["presence"], "new");
    let o = kaplc(&[&new, &old], true);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(changes(&json_of(&o))[0]["presence"], "old");
}

#[test]
fn a_policy_that_does_not_check_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let old = write(dir.path(), "old.kapl", &example("deploy.kapl"));
    let new = write(dir.path(), "new.kapl", &example("bad-syntax.kapl"));
    let o = kaplc(&[&old, &new], false);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not check"));
    let missing = dir.path().join("missing.kapl");
    assert_eq!(kaplc(&[&old, &missing], false).status.code(), Some(2));
}

// ------------------------------------------------------------------ book

/// The text of `book/src/cli.md` between `start` (exclusive) and the next
/// code fence.
fn book_block(start: &str) -> String {
    let p = common::root().join("book/src/cli.md");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let from = text
        .find(start)
        .map(|i| i + start.len())
        .unwrap_or_else(|| panic!("cli.md has no `{start}`"));
    let rest = &text[from..];
    let to = rest.find("```\n").unwrap_or(rest.len());
    rest[..to].to_string()
}

#[test]
fn the_book_shows_what_kaplc_diff_prints() {
    let human = book_block(
        "```console\n$ kaplc diff tests/diff/review.old.kapl tests/diff/review.new.kapl\n",
    );
    assert_eq!(human, stdout(&pair("review", None)));
    let markdown = book_block("```markdown\n");
    assert_eq!(markdown, stdout(&pair("review", Some("markdown"))));
}

/// The official SARIF 2.1.0 schema (the copy `tests/sarif.rs` uses).
fn sarif_schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json"),
    )
    .unwrap_or_else(|e| panic!("schema missing: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

#[test]
fn sarif_results_are_located_in_new_with_their_rules() {
    let o = pair("review", Some("sarif"));
    assert_eq!(
        o.status.code(),
        Some(1),
        "a widening exits 1 in every format"
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = sarif_schema()
        .iter_errors(&v)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let run = &v["runs"][0];
    let results = run["results"].as_array().unwrap_or_else(|| panic!("{v:#}"));
    let json = json_of(&pair("review", Some("json")));
    let changes = json["changes"].as_array().map_or(0, Vec::len);
    assert_eq!(results.len(), changes, "one result per change");
    for r in results {
        let uri = &r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"];
        assert_eq!(uri, "tests/diff/review.new.kapl", "located in NEW: {r:#}");
        assert!(r["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64() > Some(0));
    }
    let by = |rule: &str| results.iter().filter(|r| r["ruleId"] == rule).count();
    assert_eq!(by("KAPL0510"), 4, "widenings");
    assert_eq!(by("KAPL0511"), 2, "narrowings");
    // A `never` that no longer forbids is written in OLD: located at the
    // objective's name in NEW, with the OLD rule as a related location.
    let never = results
        .iter()
        .find(|r| {
            r["message"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("no longer forbids"))
        })
        .unwrap_or_else(|| panic!("{results:#?}"));
    assert_eq!(
        never["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "tests/diff/review.old.kapl"
    );
    let rules = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:#}"));
    for rule in rules {
        assert!(
            rule["helpUri"]
                .as_str()
                .is_some_and(|u| u.contains("codes.html#kapl051")),
            "{rule:#}"
        );
        assert!(rule["fullDescription"]["text"].is_string(), "{rule:#}");
    }
    // A pure narrowing: exit 0, only notes.
    let o = pair("narrowing", Some("sarif"));
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}"));
    let results = v["runs"][0]["results"]
        .as_array()
        .unwrap_or_else(|| panic!("{v:#}"));
    assert!(
        !results.is_empty() && results.iter().all(|r| r["level"] == "note"),
        "{v:#}"
    );
    assert_eq!(v["runs"][0]["properties"]["ok"], true);
}
