//! Claude Code's PreToolUse hook, pure part (stage: runtime, agents).
//!
//! Input: the event Claude Code writes on the hook's stdin (one JSON
//! object: `session_id`, `transcript_path`, `cwd`, `hook_event_name`,
//! `tool_name`, `tool_input`), and whether a KAPL session answers. Output:
//! the hook's stdout, `{"hookSpecificOutput": {"hookEventName":
//! "PreToolUse", "permissionDecision", "permissionDecisionReason",
//! "updatedInput"}}`, or nothing.
//!
//! A `Bash` call is allowed with its command rewritten to run through the
//! session (`kapl-run exec --session ID -- bash -c 'COMMAND'`), or denied
//! when no session answers: the command never runs unconfined. Other
//! tools get no decision: Claude Code's own permission rules apply to
//! them (its file tools run inside Claude Code, which no session
//! confines). Input that is not a PreToolUse event is denied, never
//! allowed.

use serde_json::{Map, Value, json};

/// What the hook says about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: Claude Code decides as it would without the hook.
    Pass,
    /// Allow, with the tool's input replaced.
    Allow {
        /// Why (for Claude Code's debug log).
        reason: String,
        /// The tool input to run instead.
        updated_input: Map<String, Value>,
    },
    /// Deny; the reason is shown to the model.
    Deny {
        /// Why, and what to do about it.
        reason: String,
    },
}

impl Decision {
    /// The hook's stdout (with a final newline; empty for
    /// [`Decision::Pass`]).
    pub fn output(&self) -> String {
        let v = match self {
            Decision::Pass => return String::new(),
            Decision::Allow {
                reason,
                updated_input,
            } => json!({ "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "allow",
                "permissionDecisionReason": reason,
                "updatedInput": updated_input,
            }}),
            Decision::Deny { reason } => json!({ "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": reason,
            }}),
        };
        format!("{v}\n")
    }
}

/// A PreToolUse event, as far as the hook reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `tool_name`.
    pub tool_name: String,
    /// `tool_input`.
    pub tool_input: Map<String, Value>,
}

impl Event {
    /// Parses the hook's stdin; the error says what is wrong.
    pub fn parse(input: &[u8]) -> Result<Event, String> {
        let v: Value = serde_json::from_slice(input)
            .map_err(|e| format!("the hook input is not JSON: {e}"))?;
        let Value::Object(mut m) = v else {
            return Err("the hook input is not a JSON object".into());
        };
        match m.get("hook_event_name") {
            None => {}
            Some(Value::String(e)) if e == "PreToolUse" => {}
            Some(other) => {
                return Err(format!(
                    "kapl-run hook claude-code handles PreToolUse events, not {other}"
                ));
            }
        }
        let tool_name = match m.remove("tool_name") {
            Some(Value::String(n)) => n,
            _ => return Err("the hook input has no `tool_name` string".into()),
        };
        let tool_input = match m.remove("tool_input") {
            Some(Value::Object(i)) => i,
            _ => return Err("the hook input has no `tool_input` object".into()),
        };
        Ok(Event {
            tool_name,
            tool_input,
        })
    }

    /// Whether the hook decides this tool (`Bash`); only then is a
    /// session looked for.
    pub fn wants_session(&self) -> bool {
        self.tool_name == "Bash"
    }
}

/// The decision for input `input` (Claude Code's stdin): `session` is
/// the session that answered (its id), or why none did; `kapl_run` the
/// absolute path of the kapl-run to run the command with.
pub fn decide(
    input: &[u8],
    session: impl FnOnce() -> Result<String, String>,
    kapl_run: &str,
) -> Decision {
    let event = match Event::parse(input) {
        Ok(e) => e,
        Err(why) => {
            return Decision::Deny {
                reason: format!("KAPL hook: {why}; the tool call was not run"),
            };
        }
    };
    if !event.wants_session() {
        return Decision::Pass;
    }
    let command = match event.tool_input.get("command") {
        Some(Value::String(c)) => c.clone(),
        _ => {
            return Decision::Deny {
                reason: "KAPL hook: the Bash call has no `command` string; the command was not run"
                    .into(),
            };
        }
    };
    if command.contains('\0') {
        return Decision::Deny {
            reason: "KAPL hook: the command contains a NUL character; it was not run".into(),
        };
    }
    let id = match session() {
        Ok(id) => id,
        Err(why) => {
            return Decision::Deny {
                reason: format!(
                    "no KAPL session is running: ask the user to start one with `kapl-run session start IMAGE --plan PLAN`; the command was not run (kapl-run: {why})"
                ),
            };
        }
    };
    let mut updated_input = event.tool_input;
    updated_input.insert(
        "command".into(),
        Value::String(session_command(kapl_run, &id, &command)),
    );
    Decision::Allow {
        reason: format!("runs confined in KAPL session {id}, under its current step"),
        updated_input,
    }
}

/// The shell command that runs `command` with bash inside session `id`.
pub fn session_command(kapl_run: &str, id: &str, command: &str) -> String {
    format!(
        "{} exec --session {} -- bash -c {}",
        shell_quote(kapl_run),
        shell_quote(id),
        shell_quote(command)
    )
}

/// `s` as one word of a POSIX shell command: in single quotes, each `'`
/// written as `'\''`. Nothing inside single quotes is special (not `$`,
/// `\`, `` ` ``, `!` in a non-interactive shell, nor a newline).
pub fn shell_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/opt/kapl/bin/kapl-run";

    fn bash_event(command: &str) -> String {
        json!({
            "session_id": "abc", "transcript_path": "/tmp/t.jsonl", "cwd": "/srv",
            "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": command, "description": "list", "timeout": 5000}
        })
        .to_string()
    }

    fn parsed(d: &Decision) -> Value {
        serde_json::from_str(&d.output()).unwrap_or(Value::Null)
    }

    #[test]
    fn bash_is_rewritten_to_run_in_the_session_keeping_its_other_fields() {
        let d = decide(
            bash_event("ls -l").as_bytes(),
            || Ok("1234abcd".into()),
            EXE,
        );
        let v = parsed(&d);
        let out = &v["hookSpecificOutput"];
        assert_eq!(out["hookEventName"], "PreToolUse");
        assert_eq!(out["permissionDecision"], "allow");
        assert_eq!(
            out["updatedInput"],
            json!({
                "command": "'/opt/kapl/bin/kapl-run' exec --session '1234abcd' -- bash -c 'ls -l'",
                "description": "list",
                "timeout": 5000
            })
        );
    }

    #[test]
    fn bash_without_a_session_is_denied_with_what_to_do() {
        let d = decide(
            bash_event("ls").as_bytes(),
            || Err("no running session".into()),
            EXE,
        );
        let v = parsed(&d);
        assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "deny");
        let reason = v["hookSpecificOutput"]["permissionDecisionReason"]
            .as_str()
            .unwrap_or_default();
        assert!(reason.starts_with("no KAPL session is running"), "{reason}");
        assert!(reason.contains("kapl-run session start"), "{reason}");
        assert!(reason.contains("the command was not run"), "{reason}");
        assert!(
            reason.ends_with("(kapl-run: no running session)"),
            "{reason}"
        );
        assert!(v["hookSpecificOutput"].get("updatedInput").is_none());
    }

    #[test]
    fn other_tools_get_no_decision_and_no_session_lookup() {
        let e = json!({"hook_event_name": "PreToolUse", "tool_name": "Read",
            "tool_input": {"file_path": "/etc/passwd"}});
        let d = decide(
            e.to_string().as_bytes(),
            || unreachable!("a Read looks for no session"),
            EXE,
        );
        assert_eq!(d, Decision::Pass);
        assert_eq!(d.output(), "");
    }

    #[test]
    fn malformed_input_is_denied_never_allowed() {
        for bad in [
            "",
            "{",
            "[]",
            "\"Bash\"",
            r#"{"tool_input": {"command": "ls"}}"#,
            r#"{"tool_name": "Bash"}"#,
            r#"{"tool_name": "Bash", "tool_input": "ls"}"#,
            r#"{"tool_name": "Bash", "tool_input": {}}"#,
            r#"{"tool_name": "Bash", "tool_input": {"command": 7}}"#,
            r#"{"tool_name": "Bash", "tool_input": {"command": "a\u0000b"}}"#,
            r#"{"hook_event_name": "PostToolUse", "tool_name": "Bash", "tool_input": {"command": "ls"}}"#,
        ] {
            let d = decide(bad.as_bytes(), || Ok("s".into()), EXE);
            let v = parsed(&d);
            assert_eq!(
                v["hookSpecificOutput"]["permissionDecision"], "deny",
                "{bad}"
            );
            assert!(
                v["hookSpecificOutput"]["permissionDecisionReason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not run")),
                "{bad}: {v}"
            );
        }
    }

    #[test]
    fn quoting_is_single_quotes_with_each_quote_closed_and_reopened() {
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME\\n\n`x`"), "'$HOME\\n\n`x`'");
    }

    /// Each word, quoted and read back by a real bash, is itself; the
    /// rewritten command's words are what `kapl-run exec` must receive.
    #[test]
    fn bash_reads_each_quoted_word_back_unchanged() {
        let words = [
            "",
            "plain",
            "it's 'quoted'",
            "'",
            "''\\''",
            "line one\nline two\n",
            "$HOME ${PATH} $(id) `id` $'x' \\ \\\\n \"dq\" !! * ? ~ # ; & | < > ( ) { }",
            "-n",
            "tab\there \u{e9}\u{1f600} \r\u{7}",
        ];
        for w in words {
            let script = format!("printf '%s\\0' {}", shell_quote(w));
            let out = std::process::Command::new("bash")
                .args(["-c", &script])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&out), format!("{w}\0"), "{w:?}");
            // The rewritten command, its program replaced by printf.
            let full = session_command("/k/kapl-run", "ab12cd34", w);
            let rest = full.strip_prefix("'/k/kapl-run' ").unwrap_or_default();
            let out = std::process::Command::new("bash")
                .args(["-c", &format!("printf '%s\\0' {rest}")])
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default();
            let args: Vec<String> = String::from_utf8_lossy(&out)
                .split_terminator('\0')
                .map(str::to_string)
                .collect();
            assert_eq!(
                args,
                ["exec", "--session", "ab12cd34", "--", "bash", "-c", w],
                "{w:?}"
            );
        }
    }
}
