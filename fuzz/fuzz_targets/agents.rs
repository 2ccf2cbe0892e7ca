//! Fuzz target: what an agent host sends kapl-run. Lines on `kapl-run
//! mcp`'s stdin go through the MCP server (tools faked: nothing runs),
//! and the same bytes are a Claude Code hook event: any bytes get a
//! well-formed JSON-RPC response or none, and the hook allows only a Bash
//! call, rewritten to run through the session.
#![no_main]

use kapl_runtime::hook::{self, Decision, Event};
use kapl_runtime::mcp::{Server, ToolCall, ToolResult, Tools};
use libfuzzer_sys::fuzz_target;

struct Fake;

impl Tools for Fake {
    fn call(&mut self, call: ToolCall) -> ToolResult {
        ToolResult::ok(&serde_json::json!({}), format!("{call:?}"))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut server = Server::new("kapl-run", "0", "");
    for line in data.split(|b| *b == b'\n') {
        if let Some(v) = server.handle_line(line, &mut Fake) {
            assert_eq!(v["jsonrpc"], "2.0");
            assert!(v.get("result").is_some() != v.get("error").is_some(), "{v}");
        }
    }
    let d = hook::decide(data, || Ok("ab12cd34".into()), "/k/kapl-run");
    if let Decision::Allow { updated_input, .. } = &d {
        assert!(Event::parse(data).is_ok_and(|e| e.tool_name == "Bash"));
        let command = updated_input["command"].as_str().unwrap_or_default();
        assert!(command.starts_with("'/k/kapl-run' exec --session 'ab12cd34' -- bash -c '"));
    }
    let out = d.output();
    assert!(out.is_empty() || serde_json::from_str::<serde_json::Value>(&out).is_ok());
});
