//! One analysis of one open document: the checker's front end, then the
//! proofs, plus the name index the editor features read.
//!
//! Input: a [`Job`] (the document's text and path, the other open buffers).
//! Output: an [`Analysis`]: sources, the lowered policy (when the front end
//! found no errors), every diagnostic, and a [`NameIndex`] over every unit
//! (built from the error-tolerant parser's partial trees, so a half-typed
//! file still has names). Imports are read from the open buffers first,
//! then from disk.

use crate::index::NameIndex;
use kapl_check::ir::Policy;
use kapl_check::load::{LoadError, LoadedFile, Loader};
use kapl_syntax::ast;
use kapl_syntax::{Diagnostic, FileId, Origin, SourceMap};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

/// Work for the analysis thread.
#[derive(Clone, Debug)]
pub struct Job {
    /// The document's key (its URI).
    pub key: String,
    /// The version analysed.
    pub version: i32,
    /// The document's path (imports are relative to it).
    pub path: String,
    /// The document's text.
    pub text: String,
    /// Every open buffer by path (they win over the disk).
    pub overlay: Vec<(String, String)>,
    /// The document's newest version; the job is stale when it differs.
    pub latest: Arc<AtomicI32>,
}

/// Everything known about one version of a document.
#[derive(Debug)]
pub struct Analysis {
    /// The document's key.
    pub key: String,
    /// The version analysed.
    pub version: i32,
    /// Every source text (the document is `root`).
    pub sources: SourceMap,
    /// The document's file id, when it could be loaded.
    pub root: Option<FileId>,
    /// The lowered policy, when the front end found no errors.
    pub policy: Option<Policy>,
    /// Every finding so far.
    pub diagnostics: Vec<Diagnostic>,
    /// Names of every unit.
    pub index: NameIndex,
    /// Whether the proofs ran.
    pub proved: bool,
    /// The document's newest version (shared with the server).
    pub latest: Arc<AtomicI32>,
}

impl Analysis {
    /// Whether proofs can run (the front end lowered a policy).
    pub fn can_prove(&self) -> bool {
        self.policy.is_some() && !self.proved
    }

    /// Whether the document moved on since this version.
    pub fn is_stale(&self) -> bool {
        self.latest.load(Ordering::SeqCst) != self.version
    }
}

/// Reads open buffers first, then the disk.
struct EditorLoader {
    overlay: HashMap<String, String>,
}

impl Loader for EditorLoader {
    fn read(&mut self, path: &str) -> Result<LoadedFile, LoadError> {
        if let Some(text) = self.overlay.get(path) {
            let key = std::fs::canonicalize(path)
                .map_or_else(|_| path.to_string(), |p| p.display().to_string());
            return Ok(LoadedFile {
                key,
                bytes: text.clone().into_bytes(),
            });
        }
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound,
            _ => LoadError::Io(e.to_string()),
        })?;
        if meta.is_dir() {
            return Err(LoadError::IsDirectory);
        }
        let bytes = std::fs::read(path).map_err(|e| LoadError::Io(e.to_string()))?;
        let key = std::fs::canonicalize(path)
            .map_or_else(|_| path.to_string(), |p| p.display().to_string());
        Ok(LoadedFile { key, bytes })
    }
}

/// The front end: load (open buffers first), parse, resolve, lower.
pub fn front(job: &Job) -> Option<Analysis> {
    let mut overlay: HashMap<String, String> = job.overlay.iter().cloned().collect();
    overlay.insert(job.path.clone(), job.text.clone());
    let mut loader = EditorLoader { overlay };
    let trees: RefCell<Vec<(FileId, ast::File)>> = RefCell::new(Vec::new());
    let parse = |id: FileId, text: &str| {
        let p = kapl_syntax::parse(id, text);
        trees.borrow_mut().push((id, p.file.clone()));
        (p.file, p.diagnostics)
    };
    // No `--param` in an editor: defaults, else a placeholder value.
    let values = kapl_check::ParamValues {
        placeholders: true,
        ..kapl_check::ParamValues::default()
    };
    let fe = kapl_check::check_front_with(&mut loader, &job.path, &parse, &values);
    let trees = trees.into_inner();
    let mut index = index_of(&fe.sources, &trees);
    // A parameter's hover says the value the editor checks with.
    for d in &mut index.defs {
        if d.kind != crate::index::DefKind::Param {
            continue;
        }
        if let Some(p) = fe.params.iter().find(|p| p.name == d.name) {
            d.about = Some(match (&p.value, p.source) {
                (Some(v), kapl_check::ValueSource::Default) => {
                    format!("value in use: `{v}` (the default)")
                }
                (Some(v), kapl_check::ValueSource::Placeholder) => format!(
                    "no default: the editor checks with the placeholder `{v}`; give a value with `kaplc check --param {}=/path`",
                    p.name
                ),
                (Some(v), _) => format!("value in use: `{v}`"),
                (None, _) => "no value".to_string(),
            });
        }
    }
    let root = root_of(&fe.sources, &job.path);
    Some(Analysis {
        key: job.key.clone(),
        version: job.version,
        sources: fe.sources,
        root,
        policy: fe.policy,
        diagnostics: fe.diagnostics,
        index,
        proved: false,
        latest: Arc::clone(&job.latest),
    })
}

/// Adds the proofs' findings to a front-end analysis.
pub fn prove(front: &Analysis) -> Analysis {
    let mut diagnostics = front.diagnostics.clone();
    if let Some(policy) = &front.policy {
        diagnostics.extend(kapl_prove::prove(policy, &front.sources));
        kapl_syntax::diag::sort(&mut diagnostics);
    }
    Analysis {
        key: front.key.clone(),
        version: front.version,
        sources: front.sources.clone(),
        root: front.root,
        policy: front.policy.clone(),
        diagnostics,
        index: front.index.clone(),
        proved: true,
        latest: Arc::clone(&front.latest),
    }
}

/// A quick analysis from the document's own text alone (no imports, no
/// checks), for requests that arrive before the worker caught up.
pub fn syntax_only(path: &str, text: &str, version: i32) -> Analysis {
    let mut sources = SourceMap::new();
    let id = sources.add(Origin::File(path.to_string()), text.to_string());
    let parsed = kapl_syntax::parse(id, text);
    let mut index = NameIndex::default();
    index.add_file(&parsed.file, None);
    add_stdlib(&mut sources, &mut index, &parsed.file);
    Analysis {
        key: String::new(),
        version,
        sources,
        root: Some(id),
        policy: None,
        diagnostics: parsed.diagnostics,
        index,
        proved: false,
        latest: Arc::new(AtomicI32::new(version)),
    }
}

/// Indexes the stdlib modules a file uses (for the syntax-only analysis).
fn add_stdlib(sources: &mut SourceMap, index: &mut NameIndex, file: &ast::File) {
    for item in &file.items {
        if let ast::Item::Use(u) = item
            && let ast::UseTarget::Module(q) = &u.target
        {
            let dotted = q.dotted();
            let name = dotted.strip_prefix("std.").unwrap_or(&dotted);
            if let Some(text) = kapl_check::stdlib::module(name) {
                let id = sources.add(Origin::Stdlib(name.to_string()), text.to_string());
                let parsed = kapl_syntax::parse(id, text);
                index.add_file(&parsed.file, Some(name));
            }
        }
    }
}

fn index_of(sources: &SourceMap, trees: &[(FileId, ast::File)]) -> NameIndex {
    let mut index = NameIndex::default();
    for (id, tree) in trees {
        let module = match sources.get(*id).map(|f| &f.origin) {
            Some(Origin::Stdlib(m)) => Some(m.as_str()),
            _ => None,
        };
        index.add_file(tree, module);
    }
    index
}

/// The document's file id: the first policy file loaded (the root).
fn root_of(sources: &SourceMap, path: &str) -> Option<FileId> {
    sources
        .iter()
        .find(|(_, f)| matches!(&f.origin, Origin::File(p) if p == path))
        .or_else(|| {
            sources
                .iter()
                .find(|(_, f)| matches!(f.origin, Origin::File(_)))
        })
        .map(|(id, _)| id)
}
