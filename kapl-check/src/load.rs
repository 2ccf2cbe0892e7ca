//! Loading: from a root file to every source a policy consists of.
//!
//! Input: a root path and a [`Loader`] (the caller's I/O: the CLI reads the
//! disk, the language server its buffers, tests a [`MemoryLoader`]).
//! Output: a [`SourceMap`] holding each text once, the parsed units (policy
//! files and the stdlib modules they `use`), the import edges, and every
//! loading problem as a [`Diagnostic`]: unreadable or missing files, bad
//! encodings, unknown stdlib modules, self-imports and import cycles.
//!
//! `use "./f.kapl"` is resolved lexically against the directory of the using
//! file's path; the loader maps the joined path to a canonical key so that a
//! file reached by two spellings is loaded once.

use crate::graph;
use crate::stdlib;
use kapl_syntax::ast::{self, Item, UseTarget};
use kapl_syntax::diag::suggest;
use kapl_syntax::{Diagnostic, FileId, Origin, SourceMap, Span, codes};
use std::collections::{BTreeMap, HashMap};

/// The largest source file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 64 << 20;

/// Why a file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Nothing at that path.
    #[error("no such file")]
    NotFound,
    /// The path names a directory.
    #[error("it is a directory")]
    IsDirectory,
    /// Any other failure, described by the loader (e.g. permission denied).
    #[error("{0}")]
    Io(String),
}

/// A file as the loader found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedFile {
    /// Canonical identity (e.g. the canonicalized path): two paths with the
    /// same key are the same file.
    pub key: String,
    /// The raw contents; the checker decodes and validates them.
    pub bytes: Vec<u8>,
}

/// The checker's only window on the outside world.
pub trait Loader {
    /// Reads the file at `path` (the root path as given, or an import joined
    /// to the using file's directory and lexically normalized).
    fn read(&mut self, path: &str) -> Result<LoadedFile, LoadError>;

    /// The text of stdlib module `name` when this loader supplies its own
    /// (a plan built against an objective image uses the modules embedded
    /// in the image, whatever the compiler's); `None` (the default) takes
    /// the compiler's built-in module.
    fn stdlib_module(&mut self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// A loader over in-memory texts, keyed by normalized path (tests, the
/// language server's open buffers, benchmarks).
#[derive(Clone, Debug, Default)]
pub struct MemoryLoader {
    files: BTreeMap<String, Vec<u8>>,
}

impl MemoryLoader {
    /// An empty loader.
    pub fn new() -> MemoryLoader {
        MemoryLoader::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: &str, bytes: impl Into<Vec<u8>>) {
        self.files.insert(normalize(path), bytes.into());
    }

    /// Adds a file, builder style.
    #[must_use]
    pub fn with(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> MemoryLoader {
        self.insert(path, bytes);
        self
    }
}

impl Loader for MemoryLoader {
    fn read(&mut self, path: &str) -> Result<LoadedFile, LoadError> {
        let key = normalize(path);
        if self.files.contains_key(&key) {
            return self
                .files
                .get(&key)
                .map(|bytes| LoadedFile {
                    key: key.clone(),
                    bytes: bytes.clone(),
                })
                .ok_or(LoadError::NotFound);
        }
        let dir = format!("{}/", key.trim_end_matches('/'));
        if self.files.keys().any(|k| k.starts_with(&dir)) {
            return Err(LoadError::IsDirectory);
        }
        Err(LoadError::NotFound)
    }
}

/// Lexically normalizes a `/`-separated path: drops `.` segments and empty
/// segments, resolves `..` against earlier segments (keeping leading `..` of
/// a relative path). Absolute paths stay absolute.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// Resolves `rel` (as written in `use "..."`) against the file at `base`.
pub fn join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return normalize(rel);
    }
    match base.rfind('/') {
        Some(i) => normalize(&format!("{}/{rel}", &base[..i.max(1)])),
        None => normalize(rel),
    }
}

/// Which namespace a unit's names live in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The policy's own files: one namespace.
    Policy,
    /// A stdlib module: its own namespace, reached qualified.
    Stdlib(String),
}

/// One parsed source.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Its text in the source map.
    pub id: FileId,
    /// Its namespace.
    pub scope: Scope,
    /// The path it was loaded by (policy files) or the module name.
    pub path: String,
    /// The (possibly partial) syntax tree.
    pub ast: ast::File,
}

/// What an import points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ImportTarget {
    /// A stdlib module, by name (loaded as the unit `unit`).
    Module {
        /// Module name (`runtime`).
        name: String,
        /// The unit holding it.
        unit: usize,
    },
    /// A policy file, as the unit `unit`.
    File(usize),
}

/// One `use` item that loaded something.
#[derive(Clone, Debug)]
pub struct Import {
    /// The using unit.
    pub from: usize,
    /// What it loaded.
    pub target: ImportTarget,
    /// The whole `use` item.
    pub span: Span,
}

/// Everything loading produced.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// Parsed units; unit 0 is the root (when it could be read).
    pub units: Vec<Unit>,
    /// Import edges in discovery order.
    pub imports: Vec<Import>,
    /// The root could not be read at all (an I/O problem, not a policy one).
    pub root_unreadable: bool,
}

/// A parse function: the syntax crate's error-tolerant entry point.
pub type ParseFn<'a> = &'a dyn Fn(FileId, &str) -> (ast::File, Vec<Diagnostic>);

/// Decodes raw bytes into policy text, or says what is wrong with them:
/// (code, message, byte offset of the problem, text to show).
fn decode(bytes: Vec<u8>) -> Result<String, (&'static str, String, usize, String)> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err((
            codes::FILE_TOO_LARGE,
            format!(
                "file is too large ({} bytes; the limit is {} bytes)",
                bytes.len(),
                MAX_FILE_BYTES
            ),
            0,
            String::new(),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return Err((
                codes::NOT_UTF8,
                "file is not valid UTF-8".to_string(),
                at,
                lossy,
            ));
        }
    };
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    };
    Ok(text)
}

struct LoadState<'a> {
    sources: SourceMap,
    loaded: Loaded,
    diags: Vec<Diagnostic>,
    by_key: HashMap<String, Option<usize>>,
    by_module: HashMap<String, usize>,
    parse: ParseFn<'a>,
}

impl LoadState<'_> {
    /// Decodes, registers and parses one file; `None` if it is unusable.
    fn add_unit(
        &mut self,
        origin: Origin,
        scope: Scope,
        path: String,
        bytes: Vec<u8>,
    ) -> Option<usize> {
        match decode(bytes) {
            Ok(text) => {
                let id = self.sources.add(origin, text);
                let text = self.sources.get(id).map(|f| f.text.as_str()).unwrap_or("");
                let (ast, mut diags) = (self.parse)(id, text);
                self.diags.append(&mut diags);
                self.loaded.units.push(Unit {
                    id,
                    scope,
                    path,
                    ast,
                });
                Some(self.loaded.units.len() - 1)
            }
            Err((code, message, at, shown)) => {
                let end = shown[at..].chars().next().map_or(at, |c| at + c.len_utf8());
                let id = self.sources.add(origin, shown);
                let label = match code {
                    codes::NOT_UTF8 => "this byte is not valid UTF-8",
                    _ => "",
                };
                let mut d = Diagnostic::error(code, message, Span::new(id, at, end), label);
                d = match code {
                    codes::NOT_UTF8 => d.with_help("save the policy as UTF-8 text"),
                    _ => d.with_help(
                        "split the policy into smaller files joined with `use \"./file.kapl\"`",
                    ),
                };
                self.diags.push(d);
                None
            }
        }
    }

    fn module_unit(&mut self, name: &str) -> Option<usize> {
        if let Some(&u) = self.by_module.get(name) {
            return Some(u);
        }
        let text = stdlib::module(name)?;
        let u = self.add_unit(
            Origin::Stdlib(name.to_string()),
            Scope::Stdlib(name.to_string()),
            name.to_string(),
            text.as_bytes().to_vec(),
        )?;
        self.by_module.insert(name.to_string(), u);
        Some(u)
    }

    /// Processes the `use` items of unit `u`, loading what they name.
    fn imports_of(&mut self, loader: &mut dyn Loader, u: usize) {
        let Some(unit) = self.loaded.units.get(u) else {
            return;
        };
        let uses: Vec<ast::UseItem> = unit
            .ast
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(x) => Some(x.clone()),
                _ => None,
            })
            .collect();
        let scope = unit.scope.clone();
        let base = unit.path.clone();
        let mut seen: HashMap<ImportTarget, Span> = HashMap::new();
        for item in uses {
            // A module the loader supplies replaces the built-in one.
            if let UseTarget::Module(q) = &item.target
                && let [std, name] = q.parts.as_slice()
                && std.name == "std"
                && !self.by_module.contains_key(&name.name)
                && let Some(text) = loader.stdlib_module(&name.name)
                && let Some(unit) = self.add_unit(
                    Origin::Stdlib(name.name.clone()),
                    Scope::Stdlib(name.name.clone()),
                    name.name.clone(),
                    text.into_bytes(),
                )
            {
                self.by_module.insert(name.name.clone(), unit);
            }
            let target = match &item.target {
                UseTarget::Module(q) => self.module_import(q),
                UseTarget::File(s) => {
                    if scope != Scope::Policy {
                        self.diags.push(Diagnostic::error(
                            codes::BAD_IMPORT_PATH,
                            "stdlib modules cannot import files",
                            s.span,
                            "file import in a stdlib module",
                        ));
                        None
                    } else {
                        self.file_import(loader, &base, s)
                    }
                }
            };
            let Some(target) = target else { continue };
            if let Some(first) = seen.get(&target) {
                self.diags.push(
                    Diagnostic::warning(
                        codes::DUPLICATE_IMPORT,
                        "imported twice",
                        item.span,
                        "imported again here",
                    )
                    .with_label(*first, "first imported here")
                    .with_help("remove one of the `use` items"),
                );
                continue;
            }
            seen.insert(target.clone(), item.span);
            self.loaded.imports.push(Import {
                from: u,
                target,
                span: item.span,
            });
        }
    }

    fn module_import(&mut self, q: &ast::QualName) -> Option<ImportTarget> {
        let parts: Vec<&str> = q.parts.iter().map(|p| p.name.as_str()).collect();
        let name = match parts.as_slice() {
            ["std", name] => *name,
            ["std"] => {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_MODULE_PATH,
                        "`use std` needs a module name",
                        q.span,
                        "which module?",
                    )
                    .with_help(format!("modules: {}", module_list())),
                );
                return None;
            }
            [name] if stdlib::module(name).is_some() => {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_MODULE_PATH,
                        format!("stdlib modules are imported as `std.{name}`"),
                        q.span,
                        "missing `std.`",
                    )
                    .with_help(format!("write `use std.{name}`")),
                );
                return None;
            }
            _ => {
                self.diags.push(
                    Diagnostic::error(
                        codes::BAD_MODULE_PATH,
                        format!("`{}` is not a module path", q.dotted()),
                        q.span,
                        "expected `std.NAME`",
                    )
                    .with_help("import stdlib modules as `use std.NAME` and files as `use \"./file.kapl\"`"),
                );
                return None;
            }
        };
        let Some(unit) = self.module_unit(name) else {
            let span = q.parts.get(1).map_or(q.span, |p| p.span);
            let mut d = Diagnostic::error(
                codes::UNKNOWN_MODULE,
                format!("no stdlib module `{name}`"),
                span,
                "not a stdlib module",
            );
            d = match suggest(name, stdlib::names()) {
                Some(s) => d.with_help(format!("did you mean `std.{s}`?")),
                None => d.with_help(format!("modules: {}", module_list())),
            };
            self.diags.push(d);
            return None;
        };
        Some(ImportTarget::Module {
            name: name.to_string(),
            unit,
        })
    }

    fn file_import(
        &mut self,
        loader: &mut dyn Loader,
        base: &str,
        s: &ast::StrLit,
    ) -> Option<ImportTarget> {
        if s.value.is_empty() || s.value.ends_with('/') {
            self.diags.push(
                Diagnostic::error(
                    codes::BAD_IMPORT_PATH,
                    "`use` needs a file path",
                    s.span,
                    "not a file path",
                )
                .with_help("write the path of a policy file, e.g. `use \"./shared.kapl\"`"),
            );
            return None;
        }
        let path = join(base, &s.value);
        match loader.read(&path) {
            Err(e) => {
                let mut d = Diagnostic::error(
                    codes::FILE_UNREADABLE,
                    format!("cannot read `{path}`: {e}"),
                    s.span,
                    "imported here",
                );
                d = d.with_note(format!(
                    "paths in `use` are relative to the using file `{base}`"
                ));
                self.diags.push(d);
                None
            }
            Ok(file) => match self.by_key.get(&file.key) {
                Some(Some(u)) => Some(ImportTarget::File(*u)),
                Some(None) => None,
                None => {
                    let key = file.key.clone();
                    let u =
                        self.add_unit(Origin::File(path.clone()), Scope::Policy, path, file.bytes);
                    self.by_key.insert(key, u);
                    u.map(ImportTarget::File)
                }
            },
        }
    }

    /// Reports self-imports and import cycles.
    fn check_cycles(&mut self) {
        let n = self.loaded.units.len();
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for imp in &self.loaded.imports {
            let to = match imp.target {
                ImportTarget::Module { unit, .. } | ImportTarget::File(unit) => unit,
            };
            adj[imp.from].push(to);
        }
        for cycle in graph::cycles(&adj) {
            let edges: Vec<&Import> = self
                .loaded
                .imports
                .iter()
                .filter(|i| {
                    let to = match i.target {
                        ImportTarget::Module { unit, .. } | ImportTarget::File(unit) => unit,
                    };
                    cycle.contains(&i.from) && cycle.contains(&to)
                })
                .collect();
            if let [only] = edges.as_slice()
                && cycle.len() == 1
            {
                self.diags.push(
                    Diagnostic::error(
                        codes::SELF_IMPORT,
                        "a file imports itself",
                        only.span,
                        "this imports the file it is in",
                    )
                    .with_help("remove this `use`"),
                );
                continue;
            }
            let Some((first, rest)) = edges.split_first() else {
                continue;
            };
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|&u| self.loaded.units.get(u))
                .map(|u| format!("`{}`", u.path))
                .collect();
            let mut d = Diagnostic::error(
                codes::IMPORT_CYCLE,
                format!("files import each other in a cycle: {}", names.join(", ")),
                first.span,
                "this import starts the cycle",
            );
            for e in rest {
                d = d.with_label(e.span, "and this import closes it");
            }
            d = d.with_help("move the shared definitions into a file that both import");
            self.diags.push(d);
        }
    }
}

fn module_list() -> String {
    stdlib::names()
        .map(|n| format!("`std.{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads the root file at `root` and everything it imports, transitively.
pub fn load(
    loader: &mut dyn Loader,
    root: &str,
    parse: ParseFn<'_>,
) -> (SourceMap, Loaded, Vec<Diagnostic>) {
    let mut st = LoadState {
        sources: SourceMap::new(),
        loaded: Loaded::default(),
        diags: Vec::new(),
        by_key: HashMap::new(),
        by_module: HashMap::new(),
        parse,
    };
    match loader.read(root) {
        Err(e) => {
            let id = st
                .sources
                .add(Origin::File(root.to_string()), String::new());
            st.diags.push(Diagnostic::error(
                codes::FILE_UNREADABLE,
                format!("cannot read `{root}`: {e}"),
                Span::new(id, 0, 0),
                "",
            ));
            st.loaded.root_unreadable = true;
        }
        Ok(file) => {
            let key = file.key.clone();
            let u = st.add_unit(
                Origin::File(root.to_string()),
                Scope::Policy,
                root.to_string(),
                file.bytes,
            );
            st.by_key.insert(key, u);
        }
    }
    // Breadth-first over units as they are discovered.
    let mut next = 0;
    while next < st.loaded.units.len() {
        st.imports_of(loader, next);
        next += 1;
    }
    st.check_cycles();
    (st.sources, st.loaded, st.diags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_join() {
        assert_eq!(normalize("a/./b/../c.kapl"), "a/c.kapl");
        assert_eq!(normalize("../x.kapl"), "../x.kapl");
        assert_eq!(normalize("/a/../../x"), "/x");
        assert_eq!(join("dir/main.kapl", "./shared.kapl"), "dir/shared.kapl");
        assert_eq!(join("main.kapl", "./shared.kapl"), "shared.kapl");
        assert_eq!(join("/p/main.kapl", "../q/s.kapl"), "/q/s.kapl");
        assert_eq!(join("/main.kapl", "s.kapl"), "/s.kapl");
        assert_eq!(join("dir/main.kapl", "/abs/s.kapl"), "/abs/s.kapl");
    }

    #[test]
    fn decode_rejects_bad_bytes_and_strips_bom() {
        assert_eq!(
            decode(b"\xef\xbb\xbfobjective".to_vec()),
            Ok("objective".to_string())
        );
        let e = decode(b"ab\xffcd".to_vec()).err().map(|e| (e.0, e.2));
        assert_eq!(e, Some((codes::NOT_UTF8, 2)));
        let e = decode(vec![b' '; MAX_FILE_BYTES + 1]).err().map(|e| e.0);
        assert_eq!(e, Some(codes::FILE_TOO_LARGE));
    }

    #[test]
    fn memory_loader_reports_directories() {
        let mut l = MemoryLoader::new().with("d/a.kapl", "");
        assert_eq!(l.read("d"), Err(LoadError::IsDirectory));
        assert_eq!(
            l.read("./d/a.kapl").map(|f| f.key),
            Ok("d/a.kapl".to_string())
        );
        assert_eq!(l.read("e"), Err(LoadError::NotFound));
    }
}
