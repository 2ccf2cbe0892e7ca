//! `kapl-run mcp` driven as an MCP client would drive it, over its stdio:
//! against a real session on the real kernel (root; a missing kernel
//! feature makes these FAIL, never skip), and, for what needs no kernel
//! (protocol errors, the subprocess tools with a stand-in program),
//! without one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use kapl_syntax::ast::Right;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A `kapl-run mcp` process and its stdio; killed when dropped.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

impl Mcp {
    fn start(session: &str, env: &[(&str, &str)]) -> Mcp {
        let mut c = Command::new(kapl_run());
        c.args(["mcp", "--session", session])
            .env("PATH", "/usr/bin:/bin")
            // The commands get the server's environment: no locale files
            // to look up (the test policies do not grant them).
            .env("LC_ALL", "C")
            .env_remove("KAPL_SESSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn kapl-run mcp");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Mcp {
            child,
            stdin,
            stdout,
            next: 0,
        }
    }

    /// Writes one line; reads one response line.
    fn line(&mut self, line: &str) -> Value {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
        let mut r = String::new();
        self.stdout.read_line(&mut r).unwrap();
        serde_json::from_str(&r).unwrap_or_else(|e| panic!("{e}: {r:?}"))
    }

    /// A request; its response (checked to answer it).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let r = self.line(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
        );
        assert_eq!(r["jsonrpc"], "2.0");
        assert_eq!(r["id"], id, "{r}");
        r
    }

    /// `tools/call`: the result (asserted not to be a JSON-RPC error).
    fn call(&mut self, name: &str, arguments: Value) -> Value {
        let r = self.request("tools/call", json!({"name": name, "arguments": arguments}));
        assert!(r.get("error").is_none(), "{name}: {r}");
        let res = r["result"].clone();
        assert_eq!(res["content"][0]["type"], "text", "{res}");
        assert!(res["content"][0]["text"].is_string(), "{res}");
        assert!(res["structuredContent"].is_object(), "{res}");
        res
    }

    fn handshake(&mut self) {
        let r = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}),
        );
        assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
        assert!(r["result"]["capabilities"]["tools"].is_object());
        writeln!(
            self.stdin.as_mut().unwrap(),
            r#"{{"jsonrpc":"2.0","method":"notifications/initialized"}}"#
        )
        .unwrap();
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tools/list schemas, compiled: each tool's `outputSchema` checks
/// its real results.
fn output_validators(m: &mut Mcp) -> std::collections::HashMap<String, jsonschema::Validator> {
    let r = m.request("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap().clone();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["run", "status", "step", "propose_plan", "explain_denials"]
    );
    fn required(v: &Value) -> Vec<&str> {
        v["required"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
            .unwrap_or_default()
    }
    let mut out = std::collections::HashMap::new();
    for t in &tools {
        let name = t["name"].as_str().unwrap();
        for key in ["inputSchema", "outputSchema"] {
            assert_eq!(t[key]["type"], "object", "{name} {key}");
            assert!(t[key]["properties"].is_object(), "{name} {key}");
            jsonschema::validator_for(&t[key]).unwrap_or_else(|e| panic!("{name} {key}: {e}"));
        }
        let want: &[&str] = match name {
            "run" => &["argv"],
            "step" => &["name"],
            "propose_plan" => &["text"],
            _ => &[],
        };
        assert_eq!(required(&t["inputSchema"]), want, "{name}");
        out.insert(
            name.to_string(),
            jsonschema::validator_for(&t["outputSchema"]).unwrap(),
        );
    }
    let run_out = required(&tools[0]["outputSchema"]);
    for k in [
        "exit",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "timed_out",
        "decisions",
    ] {
        assert!(run_out.contains(&k), "{k} in {run_out:?}");
    }
    out
}

#[test]
fn an_agent_runs_commands_in_a_session_over_mcp() {
    let t = Tmp::new("mcp");
    t.write("granted/a.txt", "hello\n");
    t.write("secret/b.txt", "secret\n");
    let exec = G::Exec(
        ["cat", "seq", "sleep", "pwd"]
            .iter()
            .map(|p| format!("/usr/bin/{p}"))
            .collect(),
    );
    let read = G::Fs(
        &[Right::Read],
        vec![format!("{}/granted/**", t.0.display())],
        vec![],
    );
    let read_secret = G::Fs(
        &[Right::Read],
        vec![format!("{}/secret/**", t.0.display())],
        vec![],
    );
    let s = Session::of_spec(
        &t,
        plan_p(
            vec![exec],
            vec![
                step("look", &[], vec![read]),
                step("more", &[0], vec![read_secret]),
            ],
        ),
    );
    let mut m = Mcp::start(&s.id, &[]);
    m.handshake();
    let schemas = output_validators(&mut m);
    let valid = |tool: &str, res: &Value| {
        let errors: Vec<String> = schemas[tool]
            .iter_errors(&res["structuredContent"])
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{tool}: {errors:?}\n{res:#}");
    };

    // An allowed command: its stdout, exit 0, the allows as decisions.
    let a = t.path("granted/a.txt");
    let r = m.call("run", json!({"argv": ["cat", a]}));
    valid("run", &r);
    let o = &r["structuredContent"];
    assert_eq!(r["isError"], false);
    assert_eq!(o["exit"], 0, "{r:#}");
    assert_eq!(o["stdout"], "hello\n");
    assert_eq!(o["stderr"], "");
    assert_eq!(o["timed_out"], false);
    assert!(
        o["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["verdict"] == "allow"),
        "{o:#}"
    );
    assert!(
        o["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["operation"] == "exec" && d["object"] == "/usr/bin/cat"),
        "the exec allow is reported: {o:#}"
    );

    // A read the step does not grant: exit 1, the denial with its chain.
    let b = t.path("secret/b.txt");
    let r = m.call("run", json!({"argv": ["cat", b]}));
    valid("run", &r);
    let o = &r["structuredContent"];
    assert_eq!(r["isError"], false, "a denial is not a tool error");
    assert_eq!(o["exit"], 1, "{r:#}");
    assert!(o["stderr"].as_str().unwrap().contains("Permission denied"));
    let d = o["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["verdict"] == "deny")
        .unwrap_or_else(|| panic!("a deny decision: {o:#}"));
    assert_eq!(d["object"], b.as_str());
    assert_eq!(d["target"]["path"], b.as_str());
    assert_eq!(d["operation"], "read (read_file)");
    assert_eq!(d["comm"], "cat");
    assert_eq!(d["session"], s.id.as_str());
    assert_eq!(
        (&d["step"], &d["plan"], &d["objective"]),
        (&json!("look"), &json!("p"), &json!("o"))
    );
    assert_eq!(
        d["reason"],
        "no grant of step look (plan p, objective o) covers it"
    );
    // The nearest grant is the later step's, which covers the file.
    assert_eq!(
        d["nearest"]["text"],
        format!("fs read \"{}/secret/**\"", t.0.display()),
        "{d:#}"
    );
    assert_eq!(d["nearest"]["step"], "more");
    assert!(d["nearest"]["why"].is_string(), "{d:#}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("exit status 1\n"), "{text}");
    assert!(
        text.contains(&format!("denied: cat read (read_file) {b}")),
        "the denial line is in the text: {text}"
    );
    assert_eq!(o["notices"].as_array().unwrap().len(), 1, "{o:#}");

    // stdin, and cwd.
    let r = m.call(
        "run",
        json!({"argv": ["cat"], "stdin": "line 1\nline 2 'é' $HOME\n"}),
    );
    valid("run", &r);
    assert_eq!(
        r["structuredContent"]["stdout"],
        "line 1\nline 2 'é' $HOME\n"
    );
    let dir = t.path("granted");
    let r = m.call("run", json!({"argv": ["pwd"], "cwd": dir}));
    assert_eq!(r["structuredContent"]["stdout"], format!("{dir}\n"));

    // A large output: head and tail kept, the middle cut, said so; the
    // command never blocks on a full pipe.
    let r = m.call("run", json!({"argv": ["seq", "1", "200000"]}));
    valid("run", &r);
    let o = &r["structuredContent"];
    assert_eq!(o["exit"], 0, "{r:#}");
    assert_eq!(o["stdout_truncated"], true);
    assert_eq!(o["stderr_truncated"], false);
    let out = o["stdout"].as_str().unwrap();
    assert!(out.starts_with("1\n2\n3\n"), "{}", &out[..20]);
    assert!(out.ends_with("199999\n200000\n"));
    assert!(out.contains("bytes cut here"));
    assert!(out.len() < 70 * 1024, "{}", out.len());

    // A timeout: the command is killed, the result says so, quickly.
    let started = std::time::Instant::now();
    let r = m.call("run", json!({"argv": ["sleep", "30"], "timeout_ms": 300}));
    valid("run", &r);
    assert_eq!(r["structuredContent"]["timed_out"], true, "{r:#}");
    assert_eq!(r["structuredContent"]["exit"], 124);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    wait_until(
        "the timed-out command is gone",
        std::time::Duration::from_secs(5),
        || {
            !tree_pids(&s.cgroup()).into_iter().any(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        },
    );

    // A program not found: the result says what kapl-run said.
    let r = m.call("run", json!({"argv": ["no-such-program"]}));
    assert_eq!(r["structuredContent"]["exit"], 127, "{r:#}");
    assert!(
        r["structuredContent"]["stderr"]
            .as_str()
            .unwrap()
            .contains("error[KAPL0810]"),
        "{r:#}"
    );

    // status, then step to the next step, where the secret is readable.
    let r = m.call("status", json!({}));
    valid("status", &r);
    assert_eq!(r["isError"], false);
    let status = r["structuredContent"]["message"].as_str().unwrap();
    assert!(status.contains("look"), "{status}");
    let r = m.call("step", json!({"name": "nosuch"}));
    assert_eq!(r["isError"], true, "{r:#}");
    assert_eq!(r["structuredContent"]["code"], "KAPL0806");
    let r = m.call("step", json!({"name": "more"}));
    valid("step", &r);
    assert_eq!(r["isError"], false, "{r:#}");
    assert!(
        r["structuredContent"]["message"]
            .as_str()
            .unwrap()
            .starts_with("step more"),
        "{r:#}"
    );
    let r = m.call("run", json!({"argv": ["cat", b]}));
    assert_eq!(r["structuredContent"]["stdout"], "secret\n", "{r:#}");

    // Protocol errors on the same connection, which keeps serving.
    assert_eq!(m.line("{oops")["error"]["code"], -32700);
    assert_eq!(
        m.request("nosuch/method", json!({}))["error"]["code"],
        -32601
    );
    let r = m.request("tools/call", json!({"name": "nosuch", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602);
    let r = m.request(
        "tools/call",
        json!({"name": "run", "arguments": {"argv": []}}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert_eq!(m.request("ping", json!({}))["result"], json!({}));
    drop(m);
    s.stop();
}

/// A stand-in for `kapl-run plan propose` / `explain`: records its argv
/// and stdin, answers by what it read.
fn stand_in(t: &Tmp) -> String {
    let dir = t.0.display();
    t.write(
        "self.sh",
        &format!(
            r#"#!/bin/sh
printf '%s\n' "$@" > {dir}/argv
cat > {dir}/stdin
case "$1" in
explain) echo '{{"denials":[{{"object":"/x"}}]}}'; exit 0;;
esac
if grep -q crash {dir}/stdin; then echo 'internal trouble' >&2; exit 3; fi
if grep -q bad {dir}/stdin; then
  echo '{{"accepted":false,"stage":"build","message":"refused","diagnostics":[{{"code":"KAPL0301"}}]}}'; exit 1
fi
echo '{{"accepted":true,"revision":2,"plan":"q","step":"a","message":"loaded"}}'
"#
        ),
    );
    let p = t.path("self.sh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn propose_plan_and_explain_denials_relay_the_subcommands_json() {
    let t = Tmp::new("mcp-self");
    let program = stand_in(&t);
    let mut m = Mcp::start("5e551011", &[("KAPL_RUN_SELF", &program)]);
    m.handshake();
    let schemas = output_validators(&mut m);
    let plan = "plan q under o {\n  step a { grant fs read \"/srv/it's\" }\n}\n";
    let r = m.call("propose_plan", json!({"text": plan}));
    assert_eq!(r["isError"], false, "{r:#}");
    assert!(schemas["propose_plan"].is_valid(&r["structuredContent"]));
    assert_eq!(
        r["structuredContent"],
        json!({"accepted": true, "revision": 2, "plan": "q", "step": "a", "message": "loaded"})
    );
    let argv = std::fs::read_to_string(t.path("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "plan",
            "propose",
            "--session",
            "5e551011",
            "--format",
            "json",
            "-"
        ]
    );
    assert_eq!(std::fs::read_to_string(t.path("stdin")).unwrap(), plan);

    // Refused (exit 1): a result with the diagnostics, not a tool error.
    let r = m.call("propose_plan", json!({"text": "bad plan"}));
    assert_eq!(r["isError"], false, "{r:#}");
    assert!(schemas["propose_plan"].is_valid(&r["structuredContent"]));
    assert_eq!(r["structuredContent"]["accepted"], false);
    assert_eq!(r["structuredContent"]["diagnostics"][0]["code"], "KAPL0301");
    // Anything else is a tool error, with what the program said.
    let r = m.call("propose_plan", json!({"text": "crash"}));
    assert_eq!(r["isError"], true, "{r:#}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("status 3") && text.contains("internal trouble"),
        "{text}"
    );

    let r = m.call("explain_denials", json!({"last": 3}));
    assert_eq!(r["isError"], false, "{r:#}");
    assert!(schemas["explain_denials"].is_valid(&r["structuredContent"]));
    assert_eq!(r["structuredContent"]["denials"][0]["object"], "/x");
    let argv = std::fs::read_to_string(t.path("argv")).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "explain",
            "--session",
            "5e551011",
            "--format",
            "json",
            "--last",
            "3"
        ]
    );
    m.call("explain_denials", json!({}));
    let argv = std::fs::read_to_string(t.path("argv")).unwrap();
    assert!(argv.ends_with("--last\n10\n"), "{argv}");

    // A session that does not run: the session tools fail as results.
    let r = m.call("status", json!({}));
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["code"], "KAPL0808");
    let r = m.call("run", json!({"argv": ["true"]}));
    assert_eq!(r["isError"], true);
    assert_eq!(r["structuredContent"]["code"], "KAPL0808");
}

#[test]
fn malformed_messages_get_json_rpc_errors_and_the_server_goes_on() {
    let mut m = Mcp::start("5e551012", &[]);
    for (line, code) in [
        ("not json at all", -32700),
        ("{\"jsonrpc\":\"2.0\",\"id\":1", -32700),
        (
            "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]",
            -32600,
        ),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/list\"}",
            -32601,
        ),
    ] {
        let r = m.line(line);
        assert_eq!(r["error"]["code"], code, "{line}: {r}");
    }
    m.handshake();
    let r = m.request("tools/call", json!({"name": "rm_rf", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602);
    assert!(r["error"]["message"].as_str().unwrap().contains("rm_rf"));
    // The end of stdin ends the server, with status 0.
    m.stdin = None;
    let status = m.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
