//! The JSON Schemas in `schemas/` against kaplc: (a) each committed file is
//! what `kaplc schema` generates now, and is a valid draft 2020-12 schema;
//! (b) real outputs of the built binary validate against the committed
//! files: `check --format json` on the examples (clean, with errors, with
//! fs, net and exec witnesses, an unreadable file), `build --format json`,
//! `diff --format json` of two versions of a policy, and `inspect --format
//! json` of built images. Every validation is shown able to fail: each
//! value of each real document, given another JSON type or removed, must
//! be rejected, and a key the schema does not declare is caught by a strict
//! copy of the schema.
#![allow(clippy::panic, reason = "tests fail by panicking")]

mod common;

use common::{NoColor, kaplc_in_root, root};
use jsonschema::{Draft, Validator};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Output;

const NAMES: [&str; 3] = ["check", "diff", "inspect"];

const REGENERATE: &str = "cargo run -p kaplc -- schema --all --out schemas";

fn kaplc(args: &[&str]) -> Output {
    kaplc_in_root(args, NoColor::Set)
}

fn committed_text(name: &str) -> String {
    let p = root().join("schemas").join(format!("{name}.schema.json"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\nGenerate the schemas with `{REGENERATE}`",
            p.display()
        )
    })
}

fn committed(name: &str) -> Value {
    serde_json::from_str(&committed_text(name))
        .unwrap_or_else(|e| panic!("schemas/{name}.schema.json is not JSON: {e}"))
}

fn validator(schema: &Value) -> Validator {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

/// The schema with `additionalProperties: false` on every object schema:
/// the published schemas admit unknown keys (consumers must ignore them),
/// but kaplc itself must print only the keys they declare.
fn strict(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.contains_key("properties") {
                    m.insert("additionalProperties".into(), Value::Bool(false));
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

fn errors(v: &Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

/// JSON pointers to every value inside `v` (not `v` itself).
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{}", escape(k));
                out.push(p.clone());
                pointers(x, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, &p, out);
            }
        }
        _ => {}
    }
}

/// A value of another JSON type than `v` (and never null).
fn other_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(7),
        Value::Number(_) | Value::Array(_) | Value::Object(_) => json!("7"),
        Value::Bool(_) => json!("true"),
        Value::Null => json!([]),
    }
}

/// Validates one real document of kind `name`; panics with every error.
/// Then shows the validation can fail: every value retyped, every object
/// member removed, `schema_version` changed, and an undeclared key (strict
/// copy) must each be rejected.
fn validates(name: &str, what: &str, doc: &Value) {
    let schema = committed(name);
    let open = validator(&schema);
    let exact = validator(&strict(schema));
    let errs = errors(&open, doc);
    assert!(
        errs.is_empty(),
        "{what}: does not match schemas/{name}.schema.json:\n{}\n{doc:#}",
        errs.join("\n")
    );
    let errs = errors(&exact, doc);
    assert!(
        errs.is_empty(),
        "{what}: has keys that schemas/{name}.schema.json does not declare:\n{}",
        errs.join("\n")
    );

    let mut ps = Vec::new();
    pointers(doc, "", &mut ps);
    assert!(!ps.is_empty(), "{what}: empty document");
    let mut broken = doc.clone();
    let mut accepted = Vec::new();
    for p in &ps {
        let Some(slot) = broken.pointer_mut(p) else {
            continue;
        };
        let original = std::mem::replace(slot, Value::Null);
        *slot = other_type(&original);
        if open.is_valid(&broken) {
            accepted.push(format!("{p} = {}", other_type(&original)));
        }
        if let Some(slot) = broken.pointer_mut(p) {
            *slot = original;
        }
    }
    // Removing any member of any object.
    for p in &ps {
        let Some((parent, key)) = p.rsplit_once('/') else {
            continue;
        };
        let key = key.replace("~1", "/").replace("~0", "~");
        let Some(Value::Object(m)) = broken.pointer_mut(parent) else {
            continue;
        };
        let Some(original) = m.remove(&key) else {
            continue;
        };
        if open.is_valid(&broken) {
            accepted.push(format!("{p} removed"));
        }
        if let Some(Value::Object(m)) = broken.pointer_mut(parent) {
            m.insert(key, original);
        }
    }
    assert_eq!(&broken, doc, "mutations were undone");
    assert!(
        accepted.is_empty(),
        "{what}: schemas/{name}.schema.json accepts broken documents:\n{}",
        accepted.join("\n")
    );
    let mut next = doc.clone();
    let version = doc["schema_version"].as_u64().unwrap_or(0);
    next["schema_version"] = json!(version + 1);
    assert!(
        !open.is_valid(&next),
        "{what}: schema_version {} accepted",
        version + 1
    );
    let mut extra = doc.clone();
    extra["not_in_the_schema"] = json!(true);
    assert!(
        open.is_valid(&extra),
        "{what}: unknown keys must be allowed"
    );
    assert!(
        !exact.is_valid(&extra),
        "{what}: the strict schema misses an undeclared key"
    );
}

fn json_of(o: &Output, what: &str) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn witness_kinds(doc: &Value, list: &str) -> Vec<String> {
    doc[list]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["witness"]["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    p.to_string_lossy().into_owned()
}

fn example(name: &str) -> String {
    let p = root().join("tests/examples").join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

// ------------------------------------------------------------ (a) files

#[test]
fn committed_schemas_are_what_kaplc_generates() {
    let mut stale = Vec::new();
    for name in NAMES {
        let o = kaplc(&["schema", name]);
        assert_eq!(o.status.code(), Some(0), "kaplc schema {name}");
        if o.stdout != committed_text(name).as_bytes() {
            stale.push(format!("schemas/{name}.schema.json"));
        }
    }
    assert!(
        stale.is_empty(),
        "not what kaplc generates from kaplc/src/report.rs: {}\n\
         Regenerate the schemas with\n  {REGENERATE}\n\
         and commit the result (bump the document's schema_version in \
         report.rs if the change is incompatible: see schemas/README.md).",
        stale.join(", ")
    );
    // `--all --out` writes exactly these files, with the same text.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("s");
    let o = kaplc(&["schema", "--all", "--out", &out.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0));
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "check.schema.json",
            "diff.schema.json",
            "inspect.schema.json"
        ]
    );
    for name in NAMES {
        let text = std::fs::read_to_string(out.join(format!("{name}.schema.json")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, committed_text(name), "--all --out {name}");
    }
}

#[test]
fn committed_schemas_are_valid_draft_2020_12() {
    for name in NAMES {
        let schema = committed(name);
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("schemas/{name}.schema.json is not a valid schema: {e}");
        }
        // `diff` is at 2: its changes became sets at every level.
        let version = if name == "diff" { 2 } else { 1 };
        assert_eq!(
            schema["properties"]["schema_version"]["const"], version,
            "{name}"
        );
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert!(required.contains(&json!("schema_version")), "{name}");
    }
}

#[test]
fn schema_command_usage() {
    // `--all` needs `--out` (stdout gets one document at a time); a name
    // and `--all` conflict; an unknown name is a usage error.
    for bad in [
        &["schema"][..],
        &["schema", "--all"][..],
        &["schema", "check", "--all", "--out", "x"][..],
        &["schema", "sarif"][..],
    ] {
        let o = kaplc(bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(o.stdout.is_empty(), "{bad:?}");
    }
}

// ---------------------------------------------------------- (b) outputs

#[test]
fn check_json_of_the_examples_matches_the_check_schema() {
    let mut kinds = Vec::new();
    let mut severities = Vec::new();
    for (files, code) in [
        (&["tests/examples/deploy.kapl"][..], 0),
        (&["tests/examples/upgrade-deps.kapl"][..], 0),
        (&["tests/examples/names.kapl"][..], 1),
        (&["tests/examples/bad-syntax.kapl"][..], 1),
        (&["tests/examples/overreach.kapl"][..], 1),
        (&["tests/malformed/unused-authority.kapl"][..], 0),
        (
            &[
                "tests/examples/deploy.kapl",
                "tests/examples/overreach.kapl",
            ][..],
            1,
        ),
        (&["no/such/file.kapl", "tests/examples/names.kapl"][..], 2),
    ] {
        let mut args = vec!["check", "--format", "json"];
        args.extend_from_slice(files);
        let o = kaplc(&args);
        let what = format!("kaplc {}", args.join(" "));
        assert_eq!(o.status.code(), Some(code), "{what}");
        let doc = json_of(&o, &what);
        validates("check", &what, &doc);
        kinds.extend(witness_kinds(&doc, "diagnostics"));
        if let Some(a) = doc["diagnostics"].as_array() {
            severities.extend(
                a.iter()
                    .filter_map(|d| d["severity"].as_str().map(String::from)),
            );
        }
    }
    assert!(kinds.iter().any(|k| k == "fs"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "net"), "{kinds:?}");
    assert!(severities.iter().any(|s| s == "error"), "{severities:?}");
    assert!(severities.iter().any(|s| s == "warning"), "{severities:?}");
}

#[test]
fn check_json_with_an_exec_witness_matches_the_check_schema() {
    // deploy.kapl with one step allowed to run anything in /usr/bin: past
    // the intent's exec bound, so the prover shows a program it may run.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let wide = text.replace(r#"grant exec "/usr/bin/git""#, r#"grant exec "/usr/bin/*""#);
    assert_ne!(wide, text);
    let p = write(dir.path(), "wide-exec.kapl", &wide);
    let o = kaplc(&["check", "--format", "json", &p]);
    assert_eq!(o.status.code(), Some(1));
    let doc = json_of(&o, "check wide-exec.kapl");
    assert!(
        witness_kinds(&doc, "diagnostics")
            .iter()
            .any(|k| k == "exec"),
        "{doc:#}"
    );
    validates("check", "check wide-exec.kapl", &doc);
}

#[test]
fn build_json_matches_the_check_schema() {
    // `build` adds the code generator's findings (warnings with witnesses).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("deploy.kapi");
    for (policy, code) in [
        ("tests/examples/deploy.kapl", 0),
        ("tests/examples/overreach.kapl", 1),
    ] {
        let o = kaplc(&[
            "build",
            "--format",
            "json",
            policy,
            "-o",
            &out.to_string_lossy(),
        ]);
        let what = format!("kaplc build --format json {policy}");
        assert_eq!(o.status.code(), Some(code), "{what}");
        let doc = json_of(&o, &what);
        validates("check", &what, &doc);
    }
}

#[test]
fn diff_json_of_two_policy_versions_matches_the_diff_schema() {
    // NEW reads more logs (added, fs), no longer connects to the database
    // (removed, net) and runs only grep (removed, exec).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let text = example("deploy.kapl");
    let changed = text
        .replace(
            r#"grant fs read "/var/log/web/deploy-*.log""#,
            r#"grant fs read "/var/log/web/*.log""#,
        )
        .replace("grant net connect 10.20.5.7 port 5432\n", "")
        .replace(
            r#"grant exec "/usr/bin/{grep,tail}""#,
            r#"grant exec "/usr/bin/grep""#,
        );
    let old = write(dir.path(), "old.kapl", &text);
    let new = write(dir.path(), "new.kapl", &changed);
    for (a, b, code) in [(&old, &new, 1), (&new, &old, 1), (&old, &old, 0)] {
        let o = kaplc(&["diff", "--format", "json", a, b]);
        let what = format!("kaplc diff --format json {a} {b}");
        assert_eq!(o.status.code(), Some(code), "{what}");
        let doc = json_of(&o, &what);
        validates("diff", &what, &doc);
        if a != b {
            let changes = doc["changes"].as_array().cloned().unwrap_or_default();
            let mut kinds: Vec<&str> = changes
                .iter()
                .filter_map(|c| c["authority"]["kind"].as_str())
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            assert_eq!(kinds, ["exec", "fs", "net"], "{doc:#}");
            assert!(changes.iter().any(|c| c["effect"] == "widening"));
            assert!(changes.iter().any(|c| c["effect"] == "narrowing"));
        }
    }
}

#[test]
fn inspect_json_of_built_images_matches_the_inspect_schema() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for policy in ["deploy", "upgrade-deps"] {
        let image = dir.path().join(format!("{policy}.kapi"));
        let image = image.to_string_lossy().into_owned();
        let src = format!("tests/examples/{policy}.kapl");
        let o = kaplc(&["build", &src, "-o", &image]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = kaplc(&["inspect", "--format", "json", &image]);
        let what = format!("kaplc inspect --format json {policy}.kapi");
        assert_eq!(o.status.code(), Some(0), "{what}");
        let doc = json_of(&o, &what);
        let walks = doc["plans"][0]["steps"][0]["landlock"]["walks"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(walks > 0, "{what}: expected Landlock walks to validate");
        validates("inspect", &what, &doc);
    }
}
