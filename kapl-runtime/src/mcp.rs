//! The Model Context Protocol server's pure core (stage: runtime, agents).
//!
//! Input: one JSON-RPC 2.0 message per line, as an MCP client (an agent
//! host) writes them on `kapl-run mcp`'s stdin. Output: the response
//! line, if the message asks for one. [`Server::handle_line`] negotiates
//! the protocol version, lists the tools with their input and output
//! schemas, and checks a `tools/call`'s arguments into a typed
//! [`ToolCall`]; carrying it out (the session, subprocesses) is the
//! kernel crate's, behind the [`Tools`] trait, so everything here is
//! unit-tested without a session.
//!
//! Also here: [`Capture`], which keeps the head and tail of a command's
//! output and cuts its middle past [`OUTPUT_LIMIT`], and [`RunOutput`],
//! the `run` tool's result.

use crate::record::{DecisionRecord, Verdict};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// The protocol versions this server speaks, newest first. A client
/// asking for another gets the newest.
pub const PROTOCOL_VERSIONS: [&str; 3] = ["2025-06-18", "2025-03-26", "2024-11-05"];

/// Bytes of each output stream a `run` result keeps (head and tail).
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Decision records a `run` result keeps; the rest are counted.
pub const DECISION_LIMIT: usize = 200;

/// `run`'s timeout when the call names none, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// The longest timeout a `run` may ask for, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 600_000;

/// `run`'s exit status when the command timed out (as `timeout(1)`).
pub const EXIT_TIMED_OUT: i32 = 124;

/// JSON-RPC: the line is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: JSON, but not a request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: the method's parameters are wrong (also: no such tool).
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error, as the response's `error` member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcError {
    /// One of the codes above.
    pub code: i64,
    /// What was wrong.
    pub message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    fn params(message: impl Into<String>) -> RpcError {
        RpcError::new(INVALID_PARAMS, message)
    }
}

/// `run`: a command in the session, under its current step.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// The program and its arguments (the program is looked up in PATH
    /// unless it contains a `/`). No shell: use `["bash", "-c", "..."]`
    /// for one.
    #[schemars(length(min = 1))]
    pub argv: Vec<String>,
    /// The working directory, an absolute path (default: the server's).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Text for the command's stdin (default: empty).
    #[serde(default)]
    pub stdin: Option<String>,
    /// How long the command may run, in milliseconds; it is killed after.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600_000))]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// `status`: no arguments.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {}

/// `step`: move the session to another step of its plan.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepInput {
    /// The step to move to (the current step's commands end).
    pub name: String,
}

/// `propose_plan`: a new plan for the session, as KAPL source.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposePlanInput {
    /// The KAPL source of the plan (checked, proved inside the session's
    /// objective, then loaded, or refused with diagnostics).
    pub text: String,
}

/// `explain_denials`: the session's recent denials, explained.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainDenialsInput {
    /// How many of the most recent denials.
    #[serde(default = "default_last")]
    #[schemars(range(min = 1, max = 1000))]
    pub last: u32,
}

fn default_last() -> u32 {
    10
}

/// A tool call, its arguments checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolCall {
    /// `run`.
    Run(RunInput),
    /// `status`.
    Status,
    /// `step`.
    Step(StepInput),
    /// `propose_plan`.
    ProposePlan(ProposePlanInput),
    /// `explain_denials`.
    ExplainDenials(ExplainDenialsInput),
}

fn args<T: for<'de> Deserialize<'de>>(tool: &str, a: Value) -> Result<T, RpcError> {
    serde_json::from_value(a).map_err(|e| RpcError::params(format!("tool `{tool}`: {e}")))
}

impl ToolCall {
    /// The call of tool `name` with `arguments` (absent: `{}`); an unknown
    /// tool or bad arguments is [`INVALID_PARAMS`].
    pub fn parse(name: &str, arguments: Option<Value>) -> Result<ToolCall, RpcError> {
        let a = match arguments {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err(RpcError::params("`arguments` must be an object")),
        };
        let call = match name {
            "run" => {
                let r: RunInput = args(name, a)?;
                if r.argv.is_empty() {
                    return Err(RpcError::params("tool `run`: `argv` must not be empty"));
                }
                if r.argv.iter().any(|s| s.contains('\0')) {
                    return Err(RpcError::params(
                        "tool `run`: `argv` must not contain NUL characters",
                    ));
                }
                if let Some(c) = &r.cwd
                    && (!c.starts_with('/') || c.contains('\0'))
                {
                    return Err(RpcError::params(format!(
                        "tool `run`: `cwd` must be an absolute path, not `{c}`"
                    )));
                }
                if !(1..=MAX_TIMEOUT_MS).contains(&r.timeout_ms) {
                    return Err(RpcError::params(format!(
                        "tool `run`: `timeout_ms` must be between 1 and {MAX_TIMEOUT_MS}"
                    )));
                }
                ToolCall::Run(r)
            }
            "status" => {
                let _: StatusInput = args(name, a)?;
                ToolCall::Status
            }
            "step" => ToolCall::Step(args(name, a)?),
            "propose_plan" => ToolCall::ProposePlan(args(name, a)?),
            "explain_denials" => {
                let e: ExplainDenialsInput = args(name, a)?;
                if !(1..=1000).contains(&e.last) {
                    return Err(RpcError::params(
                        "tool `explain_denials`: `last` must be between 1 and 1000",
                    ));
                }
                ToolCall::ExplainDenials(e)
            }
            other => return Err(RpcError::params(format!("unknown tool `{other}`"))),
        };
        Ok(call)
    }
}

/// `run`'s result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RunOutput {
    /// The command's exit status (128+N when killed by signal N; 124 when
    /// it timed out; 126 when it may not run in this step, 127 when its
    /// program was not found, 125 when kapl-run refused to start it).
    pub exit: i32,
    /// Its stdout (UTF-8, invalid bytes replaced).
    pub stdout: String,
    /// Its stderr, then kapl-run's own error line if it refused the
    /// command.
    pub stderr: String,
    /// The middle of stdout was cut (it was longer than 64 KiB).
    pub stdout_truncated: bool,
    /// The middle of stderr was cut.
    pub stderr_truncated: bool,
    /// The command ran out of time and was killed.
    pub timed_out: bool,
    /// The session's decisions for this command, in order: every denial,
    /// and the first allow of each grant and object (audit records, the
    /// schema of `kapl-run schema audit-record`).
    pub decisions: Vec<DecisionRecord>,
    /// Decisions beyond the first 200, not listed.
    pub decisions_omitted: u64,
    /// kapl-run's lines about this command other than allows: the denial
    /// lines `kapl-run exec` prints, lost-event and session notices.
    pub notices: Vec<String>,
}

impl RunOutput {
    /// The result as text for the model: the exit status, both streams,
    /// and kapl-run's notices (denials with their grant chain).
    pub fn text(&self) -> String {
        let mut t = if self.timed_out {
            "timed out: the command was killed\n".to_string()
        } else {
            format!("exit status {}\n", self.exit)
        };
        let stream = |t: &mut String, name: &str, s: &str| {
            if !s.is_empty() {
                t.push_str(&format!("--- {name} ---\n{s}"));
                if !s.ends_with('\n') {
                    t.push('\n');
                }
            }
        };
        stream(&mut t, "stdout", &self.stdout);
        stream(&mut t, "stderr", &self.stderr);
        if !self.notices.is_empty() {
            t.push_str("--- kapl-run ---\n");
            for n in &self.notices {
                t.push_str(n);
                t.push('\n');
            }
        }
        t
    }
}

/// Collects a `run`'s decisions: records up to [`DECISION_LIMIT`], and
/// notice lines other than allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decisions {
    /// The records kept.
    pub records: Vec<DecisionRecord>,
    /// Records beyond the limit.
    pub omitted: u64,
    /// The notice lines kept (all but allows).
    pub notices: Vec<String>,
}

impl Decisions {
    /// One `Notice` reply: its line and its record, if any.
    pub fn push(&mut self, line: String, record: Option<DecisionRecord>) {
        let allow = record.as_ref().is_some_and(|r| r.verdict == Verdict::Allow);
        if !allow && self.notices.len() < DECISION_LIMIT {
            self.notices.push(line);
        }
        if let Some(r) = record {
            if self.records.len() < DECISION_LIMIT {
                self.records.push(r);
            } else {
                self.omitted += 1;
            }
        }
    }
}

/// A message for a tool result whose structured content has this shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MessageOutput {
    /// What the session said.
    pub message: String,
}

/// A tool's result: text for the model, the structured content, and
/// whether the tool failed.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    /// The `text` content.
    pub text: String,
    /// `structuredContent` (an object).
    pub structured: Value,
    /// `isError`.
    pub is_error: bool,
}

impl ToolResult {
    /// A success with `structured` (serialized; not an object: wrapped
    /// as `{"value": ...}`) and `text`.
    pub fn ok(structured: &impl Serialize, text: String) -> ToolResult {
        let structured = match serde_json::to_value(structured) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => json!({ "value": other }),
            Err(e) => return ToolResult::error(None, &format!("result: {e}"), None),
        };
        ToolResult {
            text,
            structured,
            is_error: false,
        }
    }

    /// A failure: `error[CODE]: message` (and its help) as text, and
    /// `{"code", "message", "help"}` as structured content.
    pub fn error(code: Option<&str>, message: &str, help: Option<&str>) -> ToolResult {
        let mut text = match code {
            Some(c) => format!("error[{c}]: {message}"),
            None => format!("error: {message}"),
        };
        if let Some(h) = help {
            text.push_str(&format!("\n  = help: {h}"));
        }
        ToolResult {
            text,
            structured: json!({ "code": code, "message": message, "help": help }),
            is_error: true,
        }
    }

    /// As the `tools/call` result.
    pub fn to_json(&self) -> Value {
        json!({
            "content": [{ "type": "text", "text": self.text }],
            "structuredContent": self.structured,
            "isError": self.is_error,
        })
    }
}

/// What carries out the tools.
pub trait Tools {
    /// Carries out `call`.
    fn call(&mut self, call: ToolCall) -> ToolResult;
}

/// The JSON Schema of `T`, for a tool's `inputSchema` (what it
/// accepts) or `outputSchema` (what it writes: `output`): draft
/// 2020-12, without `$schema` and `title`.
fn schema_of<T: JsonSchema>(output: bool) -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12();
    let settings = if output {
        settings.for_serialize()
    } else {
        settings.for_deserialize()
    };
    let generator = settings.into_generator();
    let mut v = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(m) = &mut v {
        m.remove("$schema");
        m.remove("title");
        // Some clients read `properties` whatever the tool: `{}` for none.
        m.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
    }
    v
}

/// `propose_plan`'s output (the contract of `kapl-run plan propose
/// --format json`).
fn propose_output_schema() -> Value {
    json!({
        "type": "object",
        "required": ["accepted"],
        "properties": {
            "accepted": { "type": "boolean", "description": "The plan was checked, proved and loaded." },
            "revision": { "type": "integer", "description": "The session's plan revision (accepted)." },
            "plan": { "type": "string", "description": "The plan's name (accepted)." },
            "step": { "type": "string", "description": "The step the session is now in (accepted)." },
            "message": { "type": "string" },
            "stage": { "type": "string", "enum": ["build", "load"], "description": "Where it was refused." },
            "diagnostics": { "type": "array", "items": { "type": "object" }, "description": "Why it was refused (kaplc's JSON diagnostics)." }
        }
    })
}

/// `explain_denials`' output (the contract of `kapl-run explain --format
/// json`).
fn explain_output_schema() -> Value {
    json!({
        "type": "object",
        "required": ["denials"],
        "properties": {
            "denials": {
                "type": "array",
                "items": { "type": "object" },
                "description": "The most recent denials, oldest first, each with the grant chain behind it and what would allow it."
            }
        }
    })
}

/// The tools, as `tools/list` lists them.
pub fn tools() -> Vec<Value> {
    let tool = |name: &str, title: &str, description: &str, input, output, annotations| {
        json!({
            "name": name,
            "title": title,
            "description": description,
            "inputSchema": input,
            "outputSchema": output,
            "annotations": annotations,
        })
    };
    vec![
        tool(
            "run",
            "Run a command in the KAPL session",
            "Runs a command inside the KAPL session, confined to the current step of its plan: Landlock, cgroup BPF and seccomp allow only what the step's grants name. Returns the exit status, stdout and stderr (each cut in the middle past 64 KiB), and the session's decisions for the command: every denial names the object, the operation and the grant chain (nearest grant, step, plan, objective) behind it. A denial is not a tool error: read `decisions` and change the command, move to another step, or propose a plan that grants it.",
            schema_of::<RunInput>(false),
            schema_of::<RunOutput>(true),
            json!({ "readOnlyHint": false, "destructiveHint": true, "openWorldHint": true }),
        ),
        tool(
            "status",
            "Describe the KAPL session",
            "The session's plan, current step, denials so far and lost events, in one line.",
            schema_of::<StatusInput>(false),
            schema_of::<MessageOutput>(true),
            json!({ "readOnlyHint": true }),
        ),
        tool(
            "step",
            "Move the KAPL session to another step",
            "Moves the session to another step of its plan (one the plan allows after the current one). The current step's commands end; later commands hold the new step's grants.",
            schema_of::<StepInput>(false),
            schema_of::<MessageOutput>(true),
            json!({ "readOnlyHint": false, "destructiveHint": true, "idempotentHint": false }),
        ),
        tool(
            "propose_plan",
            "Propose a new plan for the KAPL session",
            "Proposes a plan (KAPL source) for the session: it is checked and proved inside the session's objective, then loaded, or refused with diagnostics (`accepted: false`, `stage`, `diagnostics`). A refusal is a normal result: fix the plan and propose again.",
            schema_of::<ProposePlanInput>(false),
            propose_output_schema(),
            json!({ "readOnlyHint": false, "destructiveHint": false }),
        ),
        tool(
            "explain_denials",
            "Explain the KAPL session's recent denials",
            "The session's most recent denials, each with the grant chain behind it and what a plan would need to allow it.",
            schema_of::<ExplainDenialsInput>(false),
            explain_output_schema(),
            json!({ "readOnlyHint": true }),
        ),
    ]
}

/// A parsed message's kind.
enum Message {
    Request {
        id: Value,
        method: String,
        params: Option<Value>,
    },
    Notification,
    Response,
}

fn classify(v: Value) -> Result<Message, (Value, RpcError)> {
    let Value::Object(mut m) = v else {
        let e = if v.is_array() {
            "batches are not supported: send one message per line"
        } else {
            "a message is a JSON object"
        };
        return Err((Value::Null, RpcError::new(INVALID_REQUEST, e)));
    };
    let id = m.remove("id");
    let id_ok = matches!(id, Some(Value::String(_) | Value::Number(_)));
    let err_id = if id_ok {
        id.clone().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if m.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err((
            err_id,
            RpcError::new(INVALID_REQUEST, "`jsonrpc` must be \"2.0\""),
        ));
    }
    match m.remove("method") {
        Some(Value::String(method)) => match id {
            None => Ok(Message::Notification),
            Some(id) if id_ok => Ok(Message::Request {
                id,
                method,
                params: m.remove("params"),
            }),
            Some(_) => Err((
                Value::Null,
                RpcError::new(INVALID_REQUEST, "`id` must be a string or a number"),
            )),
        },
        Some(_) => Err((
            err_id,
            RpcError::new(INVALID_REQUEST, "`method` must be a string"),
        )),
        None if m.contains_key("result") || m.contains_key("error") => Ok(Message::Response),
        None => Err((err_id, RpcError::new(INVALID_REQUEST, "no `method`"))),
    }
}

/// The MCP server: answers one message at a time.
#[derive(Clone, Debug)]
pub struct Server {
    name: String,
    version: String,
    instructions: String,
}

impl Server {
    /// A server that names itself `name` `version` and gives clients
    /// `instructions` (how to use its tools).
    pub fn new(name: &str, version: &str, instructions: &str) -> Server {
        Server {
            name: name.into(),
            version: version.into(),
            instructions: instructions.into(),
        }
    }

    /// Handles one line: the response to send, if any (notifications and
    /// responses get none; a blank line is ignored).
    pub fn handle_line(&mut self, line: &[u8], tools: &mut impl Tools) -> Option<Value> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => {
                return Some(error_response(
                    Value::Null,
                    RpcError::new(PARSE_ERROR, format!("not JSON: {e}")),
                ));
            }
        };
        match classify(v) {
            Err((id, e)) => Some(error_response(id, e)),
            Ok(Message::Notification | Message::Response) => None,
            Ok(Message::Request { id, method, params }) => {
                Some(match self.request(&method, params, tools) {
                    Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
                    Err(e) => error_response(id, e),
                })
            }
        }
    }

    fn request(
        &mut self,
        method: &str,
        params: Option<Value>,
        tools: &mut impl Tools,
    ) -> Result<Value, RpcError> {
        let mut params = match params {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(RpcError::params("`params` must be an object")),
        };
        match method {
            "initialize" => {
                let asked = params.get("protocolVersion").and_then(Value::as_str);
                let version = PROTOCOL_VERSIONS
                    .iter()
                    .find(|v| Some(**v) == asked)
                    .unwrap_or(&PROTOCOL_VERSIONS[0]);
                Ok(json!({
                    "protocolVersion": version,
                    "capabilities": { "tools": { "listChanged": false } },
                    "serverInfo": { "name": self.name, "version": self.version },
                    "instructions": self.instructions,
                }))
            }
            "ping" => Ok(json!({})),
            "tools/list" => Ok(json!({ "tools": self::tools() })),
            "tools/call" => {
                let name = match params.remove("name") {
                    Some(Value::String(n)) => n,
                    _ => return Err(RpcError::params("`name` (a string) is required")),
                };
                let call = ToolCall::parse(&name, params.remove("arguments"))?;
                Ok(tools.call(call).to_json())
            }
            other => Err(RpcError::new(
                METHOD_NOT_FOUND,
                format!("method `{other}` is not supported"),
            )),
        }
    }
}

fn error_response(id: Value, e: RpcError) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": e.code, "message": e.message },
    })
}

/// A stream's bytes, its head and tail kept and its middle cut once it
/// passes the limit; takes any amount without growing past it.
#[derive(Clone, Debug)]
pub struct Capture {
    half: usize,
    head: Vec<u8>,
    /// The last bytes seen; trimmed to `half` when it reaches twice that.
    tail: Vec<u8>,
    total: u64,
}

impl Capture {
    /// Keeps at most `limit` bytes (half from the start, half from the
    /// end).
    pub fn new(limit: usize) -> Capture {
        Capture {
            half: limit / 2,
            head: Vec::new(),
            tail: Vec::new(),
            total: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        let room = self.half.saturating_sub(self.head.len());
        let n = room.min(data.len());
        self.head.extend_from_slice(&data[..n]);
        data = &data[n..];
        self.tail.extend_from_slice(data);
        if self.tail.len() >= 2 * self.half.max(1) {
            let cut = self.tail.len() - self.half;
            self.tail.drain(..cut);
        }
    }

    /// Bytes seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The text kept, and whether its middle was cut (then a line in the
    /// middle says how much).
    pub fn finish(mut self) -> (String, bool) {
        let kept = (self.head.len() + self.tail.len()) as u64;
        if self.total == kept && self.tail.len() <= self.half {
            self.head.extend_from_slice(&self.tail);
            return (String::from_utf8_lossy(&self.head).into_owned(), false);
        }
        if self.tail.len() > self.half {
            let cut = self.tail.len() - self.half;
            self.tail.drain(..cut);
        }
        // Cut on character boundaries: an incomplete character at the
        // head's end, continuation bytes at the tail's start.
        let head_end = match std::str::from_utf8(&self.head) {
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            _ => self.head.len(),
        };
        let tail_start = self
            .tail
            .iter()
            .take(3)
            .take_while(|b| (**b & 0xC0) == 0x80)
            .count();
        let head = &self.head[..head_end];
        let tail = &self.tail[tail_start..];
        let cut = self.total - (head.len() + tail.len()) as u64;
        let mut text = String::from_utf8_lossy(head).into_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!(
            "[kapl-run: {cut} bytes cut here; kept the first {} and the last {} of {} bytes]\n",
            head.len(),
            tail.len(),
            self.total
        ));
        text.push_str(&String::from_utf8_lossy(tail));
        (text, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls, answers each with its name.
    #[derive(Default)]
    struct Fake(Vec<ToolCall>);

    impl Tools for Fake {
        fn call(&mut self, call: ToolCall) -> ToolResult {
            self.0.push(call.clone());
            match call {
                ToolCall::Step(s) if s.name == "nosuch" => {
                    ToolResult::error(Some("KAPL0806"), "plan `p` has no step `nosuch`", None)
                }
                other => ToolResult::ok(
                    &MessageOutput {
                        message: format!("{other:?}"),
                    },
                    "done".into(),
                ),
            }
        }
    }

    fn server() -> Server {
        Server::new("kapl-run", "0.1.0", "use the tools")
    }

    fn ask(s: &mut Server, f: &mut Fake, line: &str) -> Value {
        s.handle_line(line.as_bytes(), f).unwrap_or(Value::Null)
    }

    fn error_code(v: &Value) -> Option<i64> {
        v["error"]["code"].as_i64()
    }

    #[test]
    fn initialize_echoes_a_supported_version_else_the_newest() {
        let (mut s, mut f) = (server(), Fake::default());
        for (asked, got) in [
            ("2025-03-26", "2025-03-26"),
            ("2024-11-05", "2024-11-05"),
            ("2025-06-18", "2025-06-18"),
            ("1999-01-01", "2025-06-18"),
        ] {
            let r = ask(
                &mut s,
                &mut f,
                &format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{asked}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
                ),
            );
            assert_eq!(r["id"], 1);
            assert_eq!(r["result"]["protocolVersion"], got);
            assert!(r["result"]["capabilities"]["tools"].is_object());
            assert_eq!(r["result"]["serverInfo"]["name"], "kapl-run");
        }
        assert_eq!(
            s.handle_line(
                br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
                &mut f
            ),
            None
        );
        let r = ask(
            &mut s,
            &mut f,
            r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
        );
        assert_eq!(r, json!({"jsonrpc": "2.0", "id": "p", "result": {}}));
        assert!(f.0.is_empty());
    }

    #[test]
    fn malformed_messages_get_json_rpc_errors() {
        let (mut s, mut f) = (server(), Fake::default());
        for (line, code) in [
            ("{not json", PARSE_ERROR),
            ("\u{ff}", PARSE_ERROR),
            ("[]", INVALID_REQUEST),
            ("42", INVALID_REQUEST),
            (
                r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":7}"#, INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"nosuch"}"#,
                METHOD_NOT_FOUND,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]}"#,
                INVALID_PARAMS,
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
                INVALID_PARAMS,
            ),
        ] {
            let r = ask(&mut s, &mut f, line);
            assert_eq!(error_code(&r), Some(code), "{line}: {r}");
            assert_eq!(r["jsonrpc"], "2.0");
        }
        // A response or a notification of any method gets nothing back.
        for quiet in [
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            "",
            "  \t",
        ] {
            assert_eq!(s.handle_line(quiet.as_bytes(), &mut f), None, "{quiet}");
        }
        assert!(f.0.is_empty());
    }

    fn call(s: &mut Server, f: &mut Fake, name: &str, arguments: Value) -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}});
        ask(s, f, &msg.to_string())
    }

    #[test]
    fn tool_arguments_are_checked_before_any_tool_runs() {
        let (mut s, mut f) = (server(), Fake::default());
        for (name, arguments) in [
            ("nosuch", json!({})),
            ("run", json!({})),
            ("run", json!({"argv": []})),
            ("run", json!({"argv": "ls"})),
            ("run", json!({"argv": ["ls"], "cwd": "rel/dir"})),
            ("run", json!({"argv": ["ls"], "timeout_ms": 0})),
            ("run", json!({"argv": ["ls"], "timeout_ms": 600_001})),
            ("run", json!({"argv": ["ls"], "timeout_ms": -5})),
            ("run", json!({"argv": ["l\u{0}s"]})),
            ("run", json!({"argv": ["ls"], "extra": 1})),
            ("status", json!({"x": 1})),
            ("step", json!({})),
            ("step", json!({"name": 3})),
            ("propose_plan", json!({})),
            ("explain_denials", json!({"last": 0})),
            ("explain_denials", json!({"last": "ten"})),
        ] {
            let r = call(&mut s, &mut f, name, arguments.clone());
            assert_eq!(
                error_code(&r),
                Some(INVALID_PARAMS),
                "{name} {arguments}: {r}"
            );
        }
        assert!(f.0.is_empty(), "{:?}", f.0);
    }

    #[test]
    fn tool_calls_reach_the_tools_with_their_defaults() {
        let (mut s, mut f) = (server(), Fake::default());
        let r = call(&mut s, &mut f, "run", json!({"argv": ["ls", "-l"]}));
        assert_eq!(r["result"]["isError"], false);
        assert_eq!(r["result"]["content"][0]["type"], "text");
        assert_eq!(r["result"]["content"][0]["text"], "done");
        assert!(r["result"]["structuredContent"].is_object());
        call(&mut s, &mut f, "status", Value::Null);
        call(&mut s, &mut f, "explain_denials", json!({}));
        call(&mut s, &mut f, "propose_plan", json!({"text": "plan x {}"}));
        let r = call(&mut s, &mut f, "step", json!({"name": "nosuch"}));
        assert_eq!(r["result"]["isError"], true);
        assert_eq!(r["result"]["structuredContent"]["code"], "KAPL0806");
        assert!(
            r["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("error[KAPL0806]: "))
        );
        assert_eq!(
            f.0,
            vec![
                ToolCall::Run(RunInput {
                    argv: vec!["ls".into(), "-l".into()],
                    cwd: None,
                    stdin: None,
                    timeout_ms: DEFAULT_TIMEOUT_MS,
                }),
                ToolCall::Status,
                ToolCall::ExplainDenials(ExplainDenialsInput { last: 10 }),
                ToolCall::ProposePlan(ProposePlanInput {
                    text: "plan x {}".into()
                }),
                ToolCall::Step(StepInput {
                    name: "nosuch".into()
                }),
            ]
        );
    }

    #[test]
    fn every_tool_has_object_schemas_naming_its_required_fields() {
        let (mut s, mut f) = (server(), Fake::default());
        let r = ask(
            &mut s,
            &mut f,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        );
        let list = r["result"]["tools"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = list.iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(
            names,
            ["run", "status", "step", "propose_plan", "explain_denials"]
        );
        let required = |v: &Value| -> Vec<String> {
            v["required"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        for t in &list {
            for key in ["inputSchema", "outputSchema"] {
                assert_eq!(t[key]["type"], "object", "{} {key}", t["name"]);
                assert!(t[key].get("$schema").is_none());
            }
            assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
        }
        let run = &list[0];
        assert_eq!(required(&run["inputSchema"]), ["argv"]);
        assert_eq!(run["inputSchema"]["properties"]["argv"]["minItems"], 1);
        assert_eq!(
            run["inputSchema"]["properties"]["timeout_ms"]["maximum"],
            600_000
        );
        assert_eq!(
            run["inputSchema"]["properties"]["timeout_ms"]["default"],
            60_000
        );
        let mut out = required(&run["outputSchema"]);
        out.sort();
        assert_eq!(
            out,
            [
                "decisions",
                "decisions_omitted",
                "exit",
                "notices",
                "stderr",
                "stderr_truncated",
                "stdout",
                "stdout_truncated",
                "timed_out"
            ]
        );
        assert_eq!(required(&list[2]["inputSchema"]), ["name"]);
        assert_eq!(required(&list[3]["inputSchema"]), ["text"]);
        assert_eq!(required(&list[3]["outputSchema"]), ["accepted"]);
        assert_eq!(required(&list[4]["outputSchema"]), ["denials"]);
        assert!(required(&list[1]["inputSchema"]).is_empty());
    }

    #[test]
    fn a_run_output_matches_its_own_schema() {
        let o = RunOutput {
            exit: 1,
            stdout: "a".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            timed_out: false,
            decisions: vec![],
            decisions_omitted: 0,
            notices: vec!["denied: cat read /etc/shadow — no grant".into()],
        };
        let schema = schema_of::<RunOutput>(true);
        let v = jsonschema::validator_for(&schema)
            .map(|s| s.is_valid(&ToolResult::ok(&o, o.text()).structured));
        assert_eq!(v.ok(), Some(true));
        assert_eq!(
            o.text(),
            "exit status 1\n--- stdout ---\na\n--- kapl-run ---\ndenied: cat read /etc/shadow — no grant\n"
        );
    }

    #[test]
    fn a_short_output_is_kept_whole() {
        let mut c = Capture::new(16);
        c.push(b"hello ");
        c.push(b"world!");
        assert_eq!(c.finish(), ("hello world!".to_string(), false));
        let mut c = Capture::new(16);
        c.push(&[b'x'; 16]);
        assert_eq!(c.finish(), ("x".repeat(16), false));
    }

    #[test]
    fn a_long_output_keeps_its_head_and_tail_and_says_what_was_cut() {
        let mut c = Capture::new(16);
        for chunk in (0..1000u32).map(|i| format!("{i:04}")) {
            c.push(chunk.as_bytes());
        }
        assert_eq!(c.total(), 4000);
        let (text, cut) = c.finish();
        assert!(cut);
        assert_eq!(
            text,
            "00000001\n[kapl-run: 3984 bytes cut here; kept the first 8 and the last 8 of 4000 bytes]\n09980999"
        );
        // One big write, characters of several bytes at both cut points.
        let mut c = Capture::new(8);
        c.push("ééééééééé".as_bytes());
        let (text, cut) = c.finish();
        assert!(cut);
        assert!(
            text.starts_with("éé\n[kapl-run: 10 bytes cut here"),
            "{text}"
        );
        assert!(text.ends_with("]\néé"), "{text}");
        // Three bytes each side: both cuts fall inside a character.
        let mut c = Capture::new(6);
        c.push("ééééééééé".as_bytes());
        let (text, _) = c.finish();
        assert!(
            text.starts_with("é\n[kapl-run: 14 bytes cut here"),
            "{text}"
        );
        assert!(text.ends_with("]\né"), "{text}");
        assert!(!text.contains('\u{fffd}'));
    }

    #[test]
    fn decisions_keep_denials_as_lines_and_every_record_up_to_the_limit() {
        let mut d = Decisions::default();
        d.push("kapl-run: 3 events lost".into(), None);
        assert_eq!(d.notices.len(), 1);
        assert!(d.records.is_empty());
        for _ in 0..DECISION_LIMIT + 5 {
            d.push("x".into(), None);
        }
        assert_eq!(d.notices.len(), DECISION_LIMIT);
        assert_eq!(d.omitted, 0);
        let mut d = Decisions::default();
        d.push("allowed: cat read /a".into(), Some(record("allow")));
        d.push("denied: cat read /b".into(), Some(record("deny")));
        assert_eq!(
            d.notices,
            ["denied: cat read /b"],
            "allows are records only"
        );
        assert_eq!(d.records.len(), 2);
        for _ in 0..DECISION_LIMIT {
            d.push("denied: cat read /b".into(), Some(record("deny")));
        }
        assert_eq!((d.records.len(), d.omitted), (DECISION_LIMIT, 2));
    }

    fn record(verdict: &str) -> DecisionRecord {
        let v = json!({
            "schema_version": 1, "time": "2026-01-01T00:00:00.000Z", "session": "s",
            "host": "h", "uid": 0, "pid": 1, "comm": "cat", "exe": null,
            "operation": "read", "object": "/b",
            "target": {"kind": "path", "path": "/b"}, "verdict": verdict,
            "grant": null, "step": "look", "plan": "p", "intent": null,
            "objective": "o", "reason": null, "nearest": null, "mechanism": "landlock"
        });
        match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => unreachable!("the sample record: {e}"),
        }
    }
}
