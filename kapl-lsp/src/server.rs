//! The server loop: LSP messages in, diagnostics and answers out.
//!
//! Input: a [`Connection`] (stdio for `kaplc lsp`, in memory for tests and
//! the benchmark). Output: `textDocument/publishDiagnostics` notifications
//! and answers to hover, definition, completion and document-symbol
//! requests.
//!
//! Typing stays responsive: a change only marks its document dirty; the
//! analysis starts once the document has been quiet for the debounce
//! delay. The front end (parse, load, resolve, lower) runs on one thread
//! and the proofs on another, so a long proof never holds up the next
//! version's findings; both threads skip queued work that newer changes
//! made stale, and a result for a version that is no longer current is
//! dropped. The front end's findings are published alone when the proofs
//! take longer than a short grace period; the full result follows.

use crate::analysis::{self, Analysis, Job};
use crate::features;
use crate::text::{Encoding, LineIndex, uri_to_path};
use crossbeam_channel::{Receiver, Sender, select};
use lsp_server::{Connection, ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, DidSaveTextDocument,
    Notification as _, PublishDiagnostics,
};
use lsp_types::request::{
    Completion, DocumentSymbolRequest, GotoDefinition, HoverRequest, Request as _,
};
use lsp_types::{
    CompletionOptions, DidChangeTextDocumentParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, HoverProviderCapability, InitializeParams, OneOf,
    PositionEncodingKind, PublishDiagnosticsParams, SaveOptions, ServerCapabilities, ServerInfo,
    TextDocumentSyncCapability, TextDocumentSyncKind, TextDocumentSyncOptions,
    TextDocumentSyncSaveOptions, Uri,
};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// Timing knobs.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// How long a document must be quiet before it is analysed.
    pub debounce: Duration,
    /// How long to wait for the proofs before publishing the front end's
    /// findings alone.
    pub proof_grace: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            debounce: Duration::from_millis(20),
            proof_grace: Duration::from_millis(50),
        }
    }
}

/// Why the server stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The client broke the protocol (e.g. no `initialize` first).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection closed before `exit`.
    #[error("the client disconnected without `exit`")]
    Disconnected,
    /// Reading or writing the transport failed.
    #[error("transport: {0}")]
    Io(#[from] std::io::Error),
}

impl From<lsp_server::ProtocolError> for ServerError {
    fn from(e: lsp_server::ProtocolError) -> ServerError {
        ServerError::Protocol(e.to_string())
    }
}

/// Runs the server on stdin/stdout until the client says `exit`.
pub fn run_stdio() -> Result<(), ServerError> {
    let (conn, io) = Connection::stdio();
    let result = run(&conn, Config::default());
    drop(conn);
    io.join()?;
    result
}

/// One open document.
struct Doc {
    uri: Uri,
    /// The file path (or a name for an unsaved buffer).
    path: String,
    text: String,
    lines: LineIndex,
    version: i32,
    /// Shared with the analysis threads: the newest version, to skip
    /// stale work.
    latest: Arc<AtomicI32>,
    /// When the pending analysis may start (set by changes).
    due: Option<Instant>,
    /// The newest analysis of the current version (front end or full).
    analysis: Option<Arc<Analysis>>,
    /// A front-end result waiting for the proofs, and when to give up
    /// waiting and publish it alone.
    partial: Option<(Instant, Arc<Analysis>)>,
    /// Analysis started at (for the grace period).
    started: Option<Instant>,
}

/// Runs the server on a connection until `exit`.
pub fn run(conn: &Connection, config: Config) -> Result<(), ServerError> {
    let (id, params) = conn.initialize_start()?;
    let params: InitializeParams = serde_json::from_value(params)
        .map_err(|e| ServerError::Protocol(format!("bad initialize params: {e}")))?;
    let utf8 = params
        .capabilities
        .general
        .as_ref()
        .and_then(|g| g.position_encodings.as_ref())
        .is_some_and(|e| e.contains(&PositionEncodingKind::UTF8));
    let enc = if utf8 {
        Encoding::Utf8
    } else {
        Encoding::Utf16
    };
    let caps = ServerCapabilities {
        position_encoding: Some(if utf8 {
            PositionEncodingKind::UTF8
        } else {
            PositionEncodingKind::UTF16
        }),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                save: Some(TextDocumentSyncSaveOptions::SaveOptions(SaveOptions {
                    include_text: Some(false),
                })),
                ..TextDocumentSyncOptions::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        document_symbol_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".to_string(), " ".to_string()]),
            ..CompletionOptions::default()
        }),
        ..ServerCapabilities::default()
    };
    let init = serde_json::json!({
        "capabilities": caps,
        "serverInfo": ServerInfo {
            name: "kaplc lsp".to_string(),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        },
    });
    conn.initialize_finish(id, init)?;

    let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
    let (out_tx, out_rx) = crossbeam_channel::unbounded::<Outcome>();
    let (proof_tx, proof_rx) = crossbeam_channel::unbounded::<Arc<Analysis>>();
    let out_tx2 = out_tx.clone();
    let front_worker = std::thread::Builder::new()
        .name("kapl-front".to_string())
        .spawn(move || front_loop(&job_rx, &out_tx, &proof_tx))?;
    let prove_worker = std::thread::Builder::new()
        .name("kapl-prove".to_string())
        .spawn(move || prove_loop(&proof_rx, &out_tx2))?;
    let mut server = Server {
        conn,
        config,
        enc,
        docs: HashMap::new(),
        jobs: job_tx,
        shut_down: false,
    };
    let result = server.main_loop(&out_rx);
    drop(server);
    drop(out_rx);
    let _ = front_worker.join();
    let _ = prove_worker.join();
    result
}

struct Server<'c> {
    conn: &'c Connection,
    config: Config,
    enc: Encoding,
    docs: HashMap<String, Doc>,
    jobs: Sender<Job>,
    /// `shutdown` was answered: only `exit` is expected now.
    shut_down: bool,
}

/// What the analysis threads send back.
enum Outcome {
    /// Parse, load and resolve are done; proofs follow.
    Front(Arc<Analysis>),
    /// Everything is done.
    Full(Arc<Analysis>),
}

/// The next piece of work for a worker thread: waits while nothing is
/// queued, then drains the channel so that a newer item for a document
/// replaces any older one still queued for it. `None` once the sender is gone.
fn next_coalesced<T>(
    jobs: &Receiver<T>,
    queue: &mut VecDeque<T>,
    same_document: impl Fn(&T, &T) -> bool,
) -> Option<T> {
    if queue.is_empty() {
        queue.push_back(jobs.recv().ok()?);
    }
    while let Ok(j) = jobs.try_recv() {
        queue.retain(|q| !same_document(q, &j));
        queue.push_back(j);
    }
    queue.pop_front()
}

/// The front-end thread: parse, load, resolve, lower. Hands policies that
/// lowered to the proof thread, so a long proof never delays the next
/// version's front-end findings.
fn front_loop(jobs: &Receiver<Job>, out: &Sender<Outcome>, proofs: &Sender<Arc<Analysis>>) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    loop {
        let Some(job) = next_coalesced(jobs, &mut queue, |a, b| a.key == b.key) else {
            return;
        };
        if job.latest.load(Ordering::SeqCst) != job.version {
            continue;
        }
        let Some(front) = analysis::front(&job) else {
            continue;
        };
        let front = Arc::new(front);
        if !front.can_prove() {
            if out.send(Outcome::Full(front)).is_err() {
                return;
            }
            continue;
        }
        if out.send(Outcome::Front(Arc::clone(&front))).is_err() {
            return;
        }
        let _ = proofs.send(front);
    }
}

/// The proof thread: proves the newest front-end result of each document;
/// results that a newer version made stale are skipped before they start.
fn prove_loop(jobs: &Receiver<Arc<Analysis>>, out: &Sender<Outcome>) {
    let mut queue: VecDeque<Arc<Analysis>> = VecDeque::new();
    loop {
        let Some(front) = next_coalesced(jobs, &mut queue, |a, b| a.key == b.key) else {
            return;
        };
        if front.is_stale() {
            continue;
        }
        let full = analysis::prove(&front);
        if out.send(Outcome::Full(Arc::new(full))).is_err() {
            return;
        }
    }
}

impl Server<'_> {
    fn main_loop(&mut self, outcomes: &Receiver<Outcome>) -> Result<(), ServerError> {
        loop {
            let timeout = self.next_deadline().map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            select! {
                recv(self.conn.receiver) -> msg => {
                    // After `shutdown`, the client may close the pipe
                    // instead of sending `exit`: that is a clean end too.
                    let Ok(msg) = msg else {
                        return if self.shut_down { Ok(()) } else { Err(ServerError::Disconnected) };
                    };
                    match msg {
                        Message::Request(req) if req.method == "shutdown" => {
                            self.shut_down = true;
                            let _ = self.conn.sender.send(Response::new_ok(req.id, ()).into());
                        }
                        Message::Request(req) if self.shut_down => {
                            let resp = Response::new_err(
                                req.id,
                                ErrorCode::InvalidRequest as i32,
                                "the server is shutting down".to_string(),
                            );
                            let _ = self.conn.sender.send(resp.into());
                        }
                        Message::Request(req) => self.request(req),
                        Message::Notification(n) => {
                            if n.method == "exit" {
                                return if self.shut_down {
                                    Ok(())
                                } else {
                                    Err(ServerError::Protocol("`exit` before `shutdown`".to_string()))
                                };
                            }
                            self.notification(n);
                        }
                        Message::Response(_) => {}
                    }
                }
                recv(outcomes) -> o => {
                    if let Ok(o) = o {
                        self.outcome(o);
                    }
                }
                default(timeout) => {}
            }
            self.timers();
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.docs
            .values()
            .flat_map(|d| [d.due, d.partial.as_ref().map(|p| p.0)])
            .flatten()
            .min()
    }

    /// Starts due analyses and publishes front-end results whose proofs are
    /// late.
    fn timers(&mut self) {
        let now = Instant::now();
        let mut publish = Vec::new();
        let overlay: Vec<(String, String)> = self
            .docs
            .values()
            .map(|d| (d.path.clone(), d.text.clone()))
            .collect();
        for (key, doc) in &mut self.docs {
            if doc.due.is_some_and(|t| t <= now) {
                doc.due = None;
                doc.started = Some(now);
                let job = Job {
                    key: key.clone(),
                    version: doc.version,
                    path: doc.path.clone(),
                    text: doc.text.clone(),
                    overlay: overlay.clone(),
                    latest: Arc::clone(&doc.latest),
                };
                let _ = self.jobs.send(job);
            }
            if doc.partial.as_ref().is_some_and(|p| p.0 <= now)
                && let Some((_, a)) = doc.partial.take()
            {
                publish.push((key.clone(), a));
            }
        }
        for (key, a) in publish {
            self.publish(&key, &a);
        }
    }

    fn outcome(&mut self, o: Outcome) {
        let (a, full) = match o {
            Outcome::Front(a) => (a, false),
            Outcome::Full(a) => (a, true),
        };
        let grace = self.config.proof_grace;
        let Some(doc) = self.docs.get_mut(&a.key) else {
            return;
        };
        if doc.version != a.version {
            return;
        }
        doc.analysis = Some(Arc::clone(&a));
        if full {
            doc.partial = None;
            let key = a.key.clone();
            self.publish(&key, &a);
        } else {
            let start = doc.started.unwrap_or_else(Instant::now);
            doc.partial = Some((start + grace, a));
        }
    }

    fn publish(&self, key: &str, a: &Analysis) {
        let Some(doc) = self.docs.get(key) else {
            return;
        };
        let diagnostics = features::lsp_diagnostics(a, &doc.uri, self.enc);
        let params = PublishDiagnosticsParams {
            uri: doc.uri.clone(),
            diagnostics,
            version: Some(doc.version),
        };
        self.notify::<PublishDiagnostics>(params);
    }

    fn notify<N: lsp_types::notification::Notification>(&self, params: N::Params) {
        let n = Notification::new(N::METHOD.to_string(), params);
        let _ = self.conn.sender.send(n.into());
    }

    fn notification(&mut self, n: Notification) {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(n.params) {
                    let key = p.text_document.uri.as_str().to_string();
                    let path = uri_to_path(&p.text_document.uri)
                        .unwrap_or_else(|| p.text_document.uri.as_str().to_string());
                    let text = p.text_document.text;
                    let doc = Doc {
                        uri: p.text_document.uri,
                        path,
                        lines: LineIndex::new(&text),
                        text,
                        version: p.text_document.version,
                        latest: Arc::new(AtomicI32::new(p.text_document.version)),
                        due: Some(Instant::now()),
                        analysis: None,
                        partial: None,
                        started: None,
                    };
                    self.docs.insert(key, doc);
                }
            }
            DidChangeTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(n.params) {
                    let key = p.text_document.uri.as_str().to_string();
                    let debounce = self.config.debounce;
                    let enc = self.enc;
                    if let Some(doc) = self.docs.get_mut(&key) {
                        for change in p.content_changes {
                            match change.range {
                                None => doc.text = change.text,
                                Some(r) => {
                                    let a = doc.lines.offset(&doc.text, r.start, enc);
                                    let b = doc.lines.offset(&doc.text, r.end, enc);
                                    let (a, b) = (a.min(b), a.max(b));
                                    doc.text.replace_range(a..b, &change.text);
                                }
                            }
                            doc.lines = LineIndex::new(&doc.text);
                        }
                        doc.version = p.text_document.version;
                        doc.latest.store(doc.version, Ordering::SeqCst);
                        doc.due = Some(Instant::now() + debounce);
                        doc.partial = None;
                    }
                }
            }
            DidSaveTextDocument::METHOD => {
                // Another file may import the saved one: look again at all.
                let now = Instant::now();
                for doc in self.docs.values_mut() {
                    doc.due = Some(now);
                }
            }
            DidCloseTextDocument::METHOD => {
                if let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(n.params) {
                    let key = p.text_document.uri.as_str().to_string();
                    if let Some(doc) = self.docs.remove(&key) {
                        doc.latest.store(i32::MIN, Ordering::SeqCst);
                        self.notify::<PublishDiagnostics>(PublishDiagnosticsParams {
                            uri: doc.uri,
                            diagnostics: Vec::new(),
                            version: None,
                        });
                    }
                }
            }
            // `$/cancelRequest`, `initialized`, `$/setTrace`, ...: requests
            // are answered in order as they come, so there is nothing to do.
            _ => {}
        }
    }

    fn request(&mut self, req: Request) {
        let id = req.id.clone();
        let result = match req.method.as_str() {
            HoverRequest::METHOD => self.with_doc(req, |s, doc, a, p: lsp_types::HoverParams| {
                let pos = p.text_document_position_params.position;
                let off = doc.lines.offset(&doc.text, pos, s.enc);
                serde_json::to_value(features::hover(a, &doc.text, off, s.enc)).ok()
            }),
            GotoDefinition::METHOD => {
                self.with_doc(req, |s, doc, a, p: lsp_types::GotoDefinitionParams| {
                    let pos = p.text_document_position_params.position;
                    let off = doc.lines.offset(&doc.text, pos, s.enc);
                    serde_json::to_value(features::definition(a, off, s.enc)).ok()
                })
            }
            Completion::METHOD => {
                self.with_doc(req, |s, doc, a, p: lsp_types::CompletionParams| {
                    let pos = p.text_document_position.position;
                    let off = doc.lines.offset(&doc.text, pos, s.enc);
                    let before = doc.text.get(..off).unwrap_or("");
                    serde_json::to_value(features::completion(a, before)).ok()
                })
            }
            DocumentSymbolRequest::METHOD => {
                self.with_doc(req, |s, _doc, a, _: lsp_types::DocumentSymbolParams| {
                    serde_json::to_value(features::symbols(a, s.enc)).ok()
                })
            }
            _ => {
                let resp = Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("unsupported request `{}`", req.method),
                );
                let _ = self.conn.sender.send(resp.into());
                return;
            }
        };
        self.respond(id, result);
    }

    fn respond(&self, id: RequestId, result: Result<serde_json::Value, String>) {
        let resp = match result {
            Ok(v) => Response::new_ok(id, v),
            Err(msg) => Response::new_err(id, ErrorCode::InvalidParams as i32, msg),
        };
        let _ = self.conn.sender.send(resp.into());
    }

    /// Runs a request handler on the request's document and an analysis of
    /// its current text (the analysis threads' when it is current, else a fresh
    /// syntax-only one). Unknown documents get `null`.
    fn with_doc<P, F>(&mut self, req: Request, f: F) -> Result<serde_json::Value, String>
    where
        P: serde::de::DeserializeOwned,
        F: FnOnce(&Self, &Doc, &Analysis, P) -> Option<serde_json::Value>,
    {
        let uri = req
            .params
            .get("textDocument")
            .and_then(|t| t.get("uri"))
            .and_then(|u| u.as_str())
            .map(str::to_string);
        let params: Result<P, _> = serde_json::from_value(req.params);
        let params = params.map_err(|e| format!("bad params: {e}"))?;
        let Some(doc) = uri.as_ref().and_then(|u| self.docs.get(u)) else {
            return Ok(serde_json::Value::Null);
        };
        let current = doc
            .analysis
            .as_ref()
            .filter(|a| a.version == doc.version)
            .cloned();
        let a = match current {
            Some(a) => a,
            None => Arc::new(analysis::syntax_only(&doc.path, &doc.text, doc.version)),
        };
        Ok(f(self, doc, &a, params).unwrap_or(serde_json::Value::Null))
    }
}
