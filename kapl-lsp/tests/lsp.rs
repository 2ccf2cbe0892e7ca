//! The language server over JSON-RPC: requests and answers, with snapshots.

#![allow(clippy::panic, clippy::unwrap_used, reason = "tests fail loudly")]

mod harness;

use harness::{Client, at, example, pos_of, strings};
use serde_json::{Value, json};
use std::time::Duration;

#[test]
fn initialize_announces_the_features() {
    let (server_side, client_side) = lsp_server::Connection::memory();
    let server = std::thread::spawn(move || kapl_lsp::run(&server_side, Client::config()));
    let init = lsp_server::Request::new(
        1.into(),
        "initialize".to_string(),
        json!({"processId": null, "rootUri": null, "capabilities": {
            "general": {"positionEncodings": ["utf-8", "utf-16"]}
        }}),
    );
    client_side.sender.send(init.into()).unwrap();
    let resp = client_side
        .receiver
        .recv_timeout(Duration::from_secs(30))
        .unwrap();
    let lsp_server::Message::Response(resp) = resp else {
        panic!("expected the initialize answer");
    };
    let mut result = resp.result.unwrap();
    result["serverInfo"]["version"] = json!("<version>");
    insta::assert_snapshot!(serde_json::to_string_pretty(&result).unwrap());
    drop(client_side);
    // The client went away without `exit`: the server says so.
    assert!(server.join().unwrap().is_err());
}

#[test]
fn clean_policy_has_no_diagnostics_and_symbols_nest_steps() {
    let mut c = Client::start(Client::config());
    let text = example("deploy.kapl");
    let (uri, diags) = c.open_file("deploy.kapl", &text);
    assert_eq!(diags, json!([]), "{}", c.scrub(&diags));
    let symbols = c.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    insta::assert_snapshot!(c.scrub(&symbols));
    c.shutdown();
}

#[test]
fn front_end_errors_are_published_with_help() {
    let mut c = Client::start(Client::config());
    let text = "objective fix {\n  bound { fs read \"/srv/**\" }\n}\n\nplan p under fxi {\n  step a { grant fs read \"/srv/a\" }\n  step b after c { grant fs read \"srv/x\" }\n}\n";
    let (_, diags) = c.open_file("p.kapl", text);
    insta::assert_snapshot!(c.scrub(&diags));
    c.shutdown();
}

#[test]
fn a_half_typed_file_still_has_symbols_and_a_syntax_error() {
    let mut c = Client::start(Client::config());
    // As typed in an editor that closes braces: the grant is unfinished.
    let text = "objective o {\n  bound { fs read \"/a/**\" }\n}\nplan p under o {\n  step s {\n    grant fs rea\n  }\n}\n";
    let (uri, diags) = c.open_file("half.kapl", text);
    let codes = strings(&diags, "code");
    assert!(
        codes.iter().any(|c| c.starts_with("KAPL01")),
        "expected a syntax error, got {codes:?}"
    );
    let symbols = c.request(
        "textDocument/documentSymbol",
        json!({"textDocument": {"uri": uri}}),
    );
    let names = strings(&symbols, "name");
    assert!(names.contains(&"o") && names.contains(&"p"), "{names:?}");
    c.shutdown();
}

#[test]
fn proof_errors_carry_witnesses() {
    let mut c = Client::start(Client::config());
    let text = example("overreach.kapl");
    let (_, diags) = c.open_file("overreach.kapl", &text);
    let errors: Vec<&Value> = diags
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == 1)
        .collect();
    assert_eq!(errors.len(), 4, "{}", c.scrub(&diags));
    for e in &errors {
        let code = e["code"].as_str().unwrap_or("");
        assert!(code.starts_with("KAPL04"), "{code}");
        assert!(e["data"]["kind"].is_string(), "no witness in {e}");
        assert!(
            e["message"].as_str().unwrap_or("").contains("witness: "),
            "{e}"
        );
    }
    // The errors sit on the four places the example's header names.
    let mut lines: Vec<u64> = errors
        .iter()
        .map(|e| e["range"]["start"]["line"].as_u64().unwrap())
        .collect();
    lines.sort_unstable();
    let expect = [
        pos_of(&text, "fs read, write \"/etc/web/**\"", 0).0,
        pos_of(&text, "grant fs read \"/srv/**\"", 0).0,
        pos_of(&text, "grant fs read \"/srv/web/config/*\"", 0).0,
        pos_of(&text, "grant net connect 10.20.0.0/16 port any", 0).0,
    ];
    assert_eq!(lines, expect.map(u64::from).to_vec());
    c.shutdown();
}

#[test]
fn edits_update_diagnostics_and_only_the_newest_version_is_published() {
    let mut c = Client::start(kapl_lsp::Config {
        debounce: Duration::from_millis(300),
        proof_grace: Duration::from_secs(120),
    });
    let text = example("deploy.kapl");
    let (uri, diags) = c.open_file("deploy.kapl", &text);
    assert_eq!(diags, json!([]));
    // A typo, typed one character at a time (incremental changes).
    let (line, col) = pos_of(&text, "under diagnose", 6);
    for (i, ch) in "xyz".chars().enumerate() {
        let col = col + i as u32;
        c.change_range(
            &uri,
            2 + i as i64,
            (line, col),
            (line, col),
            &ch.to_string(),
        );
    }
    let diags = c.diagnostics(&uri, 4);
    let msgs = strings(&diags, "message");
    assert!(
        msgs.iter().any(|m| m.contains("xyzdiagnose")),
        "expected an unknown-name error: {msgs:?}"
    );
    // Versions 2 and 3 were superseded within the debounce: never published.
    assert!(
        !c.inbox
            .iter()
            .any(|n| n.params["version"] == 2 || n.params["version"] == 3)
    );
    // Undo the typo in one full change.
    c.change_full(&uri, 5, &text);
    assert_eq!(c.diagnostics(&uri, 5), json!([]));
    c.shutdown();
}

#[test]
fn hover_definition_and_completion() {
    let mut c = Client::start(Client::config());
    let text = example("deploy.kapl");
    let (uri, _) = c.open_file("deploy.kapl", &text);

    // Hover on a step: what it is, where, and its effective authority.
    let h = c.request(
        "textDocument/hover",
        at(&uri, pos_of(&text, "step read_logs", 6)),
    );
    let value = h["contents"]["value"].as_str().unwrap_or("");
    assert!(
        value.contains("step read_logs (plan investigate)"),
        "{value}"
    );
    assert!(value.contains("Effective authority"), "{value}");
    assert!(
        value.contains("\ngrant fs read \"/var/log/web/deploy-*.log\"\n"),
        "{value}"
    );
    assert!(
        value.contains("\ngrant exec \"/usr/bin/{grep,tail}\"\n"),
        "{value}"
    );
    assert!(
        value.contains("// plan-wide\ngrant use runtime.loader    // expands to:\n    fs read \"/"),
        "{value}"
    );
    assert!(value.contains("dynamic loader"), "{value}");
    assert!(
        !value.contains("/srv/web/src/**"),
        "another step's grant: {value}"
    );

    // Hover on a reference to an intent.
    let h = c.request(
        "textDocument/hover",
        at(&uri, pos_of(&text, "under diagnose", 7)),
    );
    insta::assert_snapshot!("hover_intent", c.scrub(&h));

    // Definitions: `under diagnose` and `after read_logs`.
    let d = c.request(
        "textDocument/definition",
        at(&uri, pos_of(&text, "under diagnose", 8)),
    );
    insta::assert_snapshot!("definition_intent", c.scrub(&d));
    let d = c.request(
        "textDocument/definition",
        at(&uri, pos_of(&text, "after read_logs", 8)),
    );
    insta::assert_snapshot!("definition_step", c.scrub(&d));

    // Completion after `grant ` in a step, after a rule's `use`, after
    // `under`.
    let (line, _) = pos_of(&text, "grant exec \"/usr/bin/git\"", 0);
    c.change_range(&uri, 2, (line + 1, 0), (line + 1, 0), "    grant \n");
    let _ = c.diagnostics(&uri, 2);
    let items = c.request("textDocument/completion", at(&uri, (line + 1, 10)));
    insta::assert_snapshot!("completion_grant", labels(&items));
    c.change_range(&uri, 3, (line + 1, 10), (line + 1, 10), "use ");
    let _ = c.diagnostics(&uri, 3);
    let items = c.request("textDocument/completion", at(&uri, (line + 1, 14)));
    // Every stdlib authority, qualified (the stdlib grows: computed here).
    let mut want: Vec<String> = Vec::new();
    for (module, text) in kapl_check::stdlib::MODULES {
        let parsed = kapl_syntax::parse(kapl_syntax::FileId(0), text);
        for item in &parsed.file.items {
            if let kapl_syntax::ast::Item::Authority(a) = item {
                want.push(format!("{module}.{} (authority)", a.name.name));
            }
        }
    }
    want.sort();
    assert!(
        want.iter().any(|w| w.starts_with("runtime.loader ")),
        "{want:?}"
    );
    assert_eq!(labels(&items), want.join("\n"));
    c.shutdown();
}

fn labels(items: &Value) -> String {
    let mut v: Vec<String> = items
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} ({})",
                i["label"].as_str().unwrap_or(""),
                i["detail"].as_str().unwrap_or("keyword")
            )
        })
        .collect();
    v.sort();
    v.join("\n")
}

#[test]
fn unknown_requests_get_an_error_and_unknown_documents_null() {
    let mut c = Client::start(Client::config());
    let e = c.call("textDocument/rename", json!({})).unwrap_err();
    assert_eq!(e["code"], -32601, "{e}");
    let r = c.request("textDocument/hover", at("file:///nowhere/x.kapl", (0, 0)));
    assert_eq!(r, Value::Null);
    c.shutdown();
}

#[test]
fn utf16_positions_with_non_ascii_text() {
    let mut c = Client::start(Client::config());
    // The error sits after a 2-byte, a 3-byte... and a 4-byte character
    // (two UTF-16 units) on its line: an edit placed by UTF-16 columns must
    // land exactly before `srv`.
    let text = "objective o {\n  about \"déjà vu 🚀\" bound { fs read \"srv/a\" }\n}\n";
    let (uri, diags) = c.open_file("u.kapl", text);
    let codes = strings(&diags, "code");
    assert_eq!(codes, ["KAPL0201"], "{}", c.scrub(&diags));
    let range = &diags[0]["range"]["start"];
    let (line, col) = pos_of(text, "srv/a", 0);
    assert_eq!(
        (range["line"].clone(), range["character"].clone()),
        (json!(line), json!(col))
    );
    c.change_range(&uri, 2, (line, col), (line, col), "/");
    let diags = c.diagnostics(&uri, 2);
    assert!(
        !diags.as_array().unwrap().iter().any(|d| d["severity"] == 1),
        "{}",
        c.scrub(&diags)
    );
    c.shutdown();
}

#[test]
fn parameters_hover_and_complete() {
    let mut c = Client::start(Client::config());
    let text = "param proj\nparam home = \"/home/dev\"\n\nobjective o {\n  bound { fs read \"${proj}/**\", \"${home}/.cache/**\" }\n}\n";
    let (uri, diags) = c.open_file("p.kapl", text);
    // No `--param` in the editor: defaults, else a placeholder; no error.
    assert_eq!(diags, json!([]), "{}", c.scrub(&diags));
    let h = c.request("textDocument/hover", at(&uri, pos_of(text, "${home}", 3)));
    let value = h["contents"]["value"].as_str().unwrap_or("");
    assert!(value.contains("param home"), "{value}");
    assert!(
        value.contains("value in use: `/home/dev` (the default)"),
        "{value}"
    );
    let h = c.request("textDocument/hover", at(&uri, pos_of(text, "${proj}", 3)));
    let value = h["contents"]["value"].as_str().unwrap_or("");
    assert!(value.contains("placeholder `/${proj}`"), "{value}");
    // Completion inside `${`.
    let (line, col) = pos_of(text, "\"${home}", 3);
    c.change_range(&uri, 2, (line, col), (line, col + 4), "");
    let _ = c.diagnostics(&uri, 2);
    let items = c.request("textDocument/completion", at(&uri, (line, col)));
    let l = labels(&items);
    assert!(l.contains("proj") && l.contains("home"), "{l}");
    c.shutdown();
}
