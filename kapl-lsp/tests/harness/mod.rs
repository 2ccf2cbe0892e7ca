//! A JSON-RPC test client for the language server: runs the server on an
//! in-memory connection in a thread, sends requests and notifications as
//! JSON, and collects what comes back.

use kapl_lsp::{Config, ServerError};
use lsp_server::{Connection, Message, Notification, Request, RequestId};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Client {
    conn: Connection,
    server: Option<JoinHandle<Result<(), ServerError>>>,
    next_id: i32,
    /// Notifications received while waiting for something else.
    pub inbox: Vec<Notification>,
    pub dir: tempfile::TempDir,
}

/// How long any wait may take before the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// Starts a server and initializes it.
    pub fn start(config: Config) -> Client {
        let (server_side, client_side) = Connection::memory();
        let server = std::thread::spawn(move || kapl_lsp::run(&server_side, config));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut c = Client {
            conn: client_side,
            server: Some(server),
            next_id: 0,
            inbox: Vec::new(),
            dir,
        };
        let _ = c.request(
            "initialize",
            json!({"processId": null, "rootUri": null, "capabilities": {}}),
        );
        c.notify("initialized", json!({}));
        c
    }

    /// A test configuration: short debounce, and a long grace so that the
    /// full result (proofs included) is the one published.
    pub fn config() -> Config {
        Config {
            debounce: Duration::from_millis(10),
            proof_grace: Duration::from_secs(120),
        }
    }

    pub fn notify(&self, method: &str, params: Value) {
        let n = Notification::new(method.to_string(), params);
        self.conn
            .sender
            .send(n.into())
            .unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Sends a request and waits for its answer: `Ok(result)` or
    /// `Err(error object)`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        let r = Request::new(id.clone(), method.to_string(), params);
        self.conn
            .sender
            .send(r.into())
            .unwrap_or_else(|e| panic!("send: {e}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.receiver.recv_timeout(left) {
                Ok(Message::Response(resp)) if resp.id == id => {
                    return match resp.error {
                        Some(e) => Err(serde_json::to_value(e).unwrap_or(Value::Null)),
                        None => Ok(resp.result.unwrap_or(Value::Null)),
                    };
                }
                Ok(Message::Notification(n)) => self.inbox.push(n),
                Ok(other) => panic!("unexpected message {other:?}"),
                Err(e) => panic!("no answer to {method}: {e}"),
            }
        }
    }

    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    /// Waits for `publishDiagnostics` of `uri` at `version`; returns its
    /// diagnostics. Earlier publications are discarded.
    pub fn diagnostics(&mut self, uri: &str, version: i64) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(i) = self.inbox.iter().position(|n| {
                n.method == "textDocument/publishDiagnostics"
                    && n.params["uri"] == uri
                    && n.params["version"] == version
            }) {
                let n = self.inbox.remove(i);
                self.inbox.retain(|m| {
                    !(m.method == "textDocument/publishDiagnostics" && m.params["uri"] == uri)
                });
                return n.params["diagnostics"].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.conn.receiver.recv_timeout(left) {
                Ok(Message::Notification(n)) => self.inbox.push(n),
                Ok(other) => panic!("unexpected message {other:?}"),
                Err(e) => panic!("no diagnostics for {uri} v{version}: {e}"),
            }
        }
    }

    /// Writes a file into the test directory; returns its path and URI.
    pub fn file(&self, name: &str, text: &str) -> (PathBuf, String) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let uri = format!("file://{}", path.display());
        (path, uri)
    }

    /// Writes `name` into the test directory, opens it at version 1 and
    /// waits for that version's diagnostics; returns the URI and them.
    pub fn open_file(&mut self, name: &str, text: &str) -> (String, Value) {
        let (_, uri) = self.file(name, text);
        self.open(&uri, 1, text);
        let diags = self.diagnostics(&uri, 1);
        (uri, diags)
    }

    pub fn open(&self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "kapl", "version": version, "text": text}}),
        );
    }

    pub fn change_full(&self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        );
    }

    /// Replaces `line:character .. line:character` (UTF-16) with `text`.
    pub fn change_range(
        &self,
        uri: &str,
        version: i64,
        from: (u32, u32),
        to: (u32, u32),
        text: &str,
    ) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{
                "range": {"start": {"line": from.0, "character": from.1}, "end": {"line": to.0, "character": to.1}},
                "text": text
            }]}),
        );
    }

    /// Replaces the test directory's path in a JSON answer, for snapshots.
    pub fn scrub(&self, v: &Value) -> String {
        let text = serde_json::to_string_pretty(v).unwrap_or_default();
        let dir = self.dir.path().display().to_string();
        let home = std::env::var("HOME").unwrap_or_else(|_| "/nonexistent".into());
        text.replace(&dir, "<dir>").replace(&home, "<home>")
    }

    /// Shuts the server down cleanly and checks it stopped without error.
    pub fn shutdown(mut self) {
        let _ = self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        if let Some(h) = self.server.take() {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("server error: {e}"),
                Err(_) => panic!("server thread panicked"),
            }
        }
    }
}

/// The string `key` of every element of a JSON array (elements without
/// it are skipped); fails when `items` is not an array.
pub fn strings<'a>(items: &'a Value, key: &str) -> Vec<&'a str> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("expected an array, got {items}"))
        .iter()
        .filter_map(|d| d[key].as_str())
        .collect()
}

/// A shared example's text.
pub fn example(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The 0-based (line, UTF-16 column) of the first occurrence of `needle`
/// (plus `offset` characters).
pub fn pos_of(text: &str, needle: &str, offset: usize) -> (u32, u32) {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in text"));
    let at = at + offset;
    let line = text[..at].matches('\n').count();
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let col: usize = text[start..at].chars().map(char::len_utf16).sum();
    (line as u32, col as u32)
}

pub fn at(uri: &str, pos: (u32, u32)) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": pos.0, "character": pos.1}})
}
