//! `kaplc check --format sarif` produces SARIF 2.1.0 that validates against
//! the official OASIS schema (vendored in `tests/data/`, errata01 version),
//! with the prover's findings, their related locations and witnesses.
#![allow(clippy::panic, reason = "tests fail by panicking")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json"),
    )
    .unwrap_or_else(|e| panic!("schema missing: {e}"));
    let schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema is not JSON: {e}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn sarif(files: &[&str]) -> (i32, Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_kaplc"))
        .args(["check", "--format", "sarif"])
        .args(files)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run kaplc: {e}"));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code().unwrap_or(-1), v)
}

fn assert_valid(v: &Value) {
    let validator = schema();
    let errors: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "SARIF does not validate:\n{}",
        errors.join("\n")
    );
}

/// Every rule a result uses has a short and a full description and help
/// (text and markdown) from the registry, and a `helpUri` to the code's
/// anchor on the book's codes page, which the page has.
fn assert_rules_have_help(v: &Value) {
    let driver = &v["runs"][0]["tool"]["driver"];
    let info = driver["informationUri"].as_str().unwrap_or_default();
    assert!(
        info.starts_with("https://") && !info.contains("example.invalid"),
        "informationUri: {info}"
    );
    let page = std::fs::read_to_string(root().join("book/src/codes.md"))
        .unwrap_or_else(|e| panic!("book/src/codes.md: {e}"));
    let rules = driver["rules"].as_array().cloned().unwrap_or_default();
    let results = v["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for r in &results {
        let id = r["ruleId"].as_str().unwrap_or_default();
        let rule = rules
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("no rule for {id}"));
        let doc = kapl_syntax::codes::doc(id).unwrap_or_else(|| panic!("{id} not in the registry"));
        let text = |k: &str, f: &str| rule[k][f].as_str().unwrap_or_default().to_string();
        assert_eq!(text("fullDescription", "markdown"), doc.doc, "{rule}");
        assert_eq!(
            text("shortDescription", "markdown"),
            doc.summary(),
            "{rule}"
        );
        for (k, f) in [
            ("shortDescription", "text"),
            ("fullDescription", "text"),
            ("help", "text"),
            ("help", "markdown"),
        ] {
            assert!(!text(k, f).is_empty(), "{id}: no {k}.{f}: {rule}");
        }
        let anchor = id.to_ascii_lowercase();
        let uri = rule["helpUri"].as_str().unwrap_or_default();
        assert!(
            uri.starts_with(info.trim_end_matches('/'))
                && uri.ends_with(&format!("/codes.html#{anchor}")),
            "{id}: helpUri {uri}"
        );
        assert!(
            page.contains(&format!("<a id=\"{anchor}\"></a>")),
            "book/src/codes.md has no anchor for {id}"
        );
    }
}

#[test]
fn overreach_sarif_validates_and_carries_findings() {
    let (code, v) = sarif(&["tests/examples/overreach.kapl"]);
    assert_eq!(code, 1);
    assert_valid(&v);
    assert_rules_have_help(&v);
    assert_eq!(v["version"], "2.1.0");
    let results = v["runs"][0]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(results.len(), 4);
    for r in &results {
        assert_eq!(r["level"], "error");
        assert!(
            r["ruleId"]
                .as_str()
                .is_some_and(|c| c.starts_with("KAPL04")),
            "{r}"
        );
        assert!(r["properties"]["witness"]["kind"].is_string(), "{r}");
        assert!(
            r["relatedLocations"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "{r}"
        );
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "tests/examples/overreach.kapl"
        );
    }
    let never = results
        .iter()
        .find(|r| r["ruleId"] == "KAPL0403")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        never["properties"]["witness"]["path"],
        "/srv/web/config/.env"
    );
    assert_eq!(
        never["locations"][0]["physicalLocation"]["region"]["startLine"],
        48
    );
}

#[test]
fn clean_and_broken_policies_validate() {
    let (code, v) = sarif(&[
        "tests/examples/deploy.kapl",
        "tests/examples/upgrade-deps.kapl",
    ]);
    assert_eq!(code, 0);
    assert_valid(&v);
    assert_eq!(v["runs"][0]["results"].as_array().map(Vec::len), Some(0));
    let (code, v) = sarif(&[
        "tests/examples/bad-syntax.kapl",
        "tests/examples/names.kapl",
    ]);
    assert_eq!(code, 1);
    assert_valid(&v);
    assert_rules_have_help(&v);
    assert!(
        v["runs"][0]["results"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

#[test]
fn the_schema_rejects_a_broken_log() {
    let (_, mut v) = sarif(&["tests/examples/overreach.kapl"]);
    v["version"] = Value::from("2.0.0");
    assert!(
        schema().iter_errors(&v).next().is_some(),
        "a wrong version must not validate"
    );
    let (_, mut v) = sarif(&["tests/examples/overreach.kapl"]);
    v["runs"][0]["results"][0]["level"] = Value::from("fatal");
    assert!(
        schema().iter_errors(&v).next().is_some(),
        "a wrong level must not validate"
    );
}
