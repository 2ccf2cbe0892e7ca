//! KAPL checker: from parsed files to a resolved policy and its automata.
//!
//! ```text
//! ast::File ─► load (use std.X / "./f.kapl") ─► resolve ─► lower ─► ir::Policy
//!                                                  compiled::GrantAutomata ◄─┘
//! ```
//!
//! Pure: files come in through the [`load::Loader`] trait; no solver. The
//! proofs (Z3) are in `kapl-prove`, on top of this crate, so that only the
//! binaries that prove (kaplc, kapl-lsp) link Z3; code generation reads the
//! IR and the [`GrantAutomata`] only.

pub mod compiled;
pub mod graph;
pub mod ir;
pub mod load;
pub mod lower;
pub mod params;
pub mod resolve;
pub mod semantics;
pub mod stdlib;

pub use compiled::GrantAutomata;
pub use load::{LoadError, LoadedFile, Loader, MemoryLoader};
pub use params::{Param, ParamValues, ValueSource};

use kapl_syntax::{Diagnostic, SourceMap, ast, codes};

/// What the front end (loading, parsing, resolution, lowering) produced.
#[derive(Debug)]
pub struct FrontEnd {
    /// Every source text, for rendering diagnostics.
    pub sources: SourceMap,
    /// The lowered policy, when there are no front-end errors.
    pub policy: Option<ir::Policy>,
    /// Every problem found, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The root file could not be read at all: an I/O problem, not a
    /// problem of the policy (the CLI exits 2).
    pub root_unreadable: bool,
    /// The prover's per-grant automata, once the prover has run on
    /// `policy` (`kapl_prove::prove_front_end`); code generation reuses them.
    pub automata: Option<GrantAutomata>,
    /// Every declared parameter with the value the check was made for.
    pub params: Vec<Param>,
}

impl FrontEnd {
    /// The parameters that have a value, as `NAME=VALUE` texts sorted by
    /// name (what outputs say the proofs were made for).
    pub fn param_bindings(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .params
            .iter()
            .filter_map(|p| p.value.clone().map(|v| (p.name.clone(), v)))
            .collect();
        v.sort();
        v
    }
}

/// Loads, parses, resolves and lowers the policy rooted at `root`, with a
/// given parse function (tests and tools may substitute one).
pub fn check_front_with(
    loader: &mut dyn Loader,
    root: &str,
    parse: load::ParseFn<'_>,
    values: &ParamValues,
) -> FrontEnd {
    let (sources, loaded, mut diagnostics) = load::load(loader, root, parse);
    let (resolved, mut more) = resolve::resolve(&loaded);
    diagnostics.append(&mut more);
    let (params, mut more) = params::check(&loaded, values);
    diagnostics.append(&mut more);
    diagnostics.append(&mut lower::net_warnings(&loaded));
    if !loaded.root_unreadable
        && loaded.units.first().is_some_and(|u| u.ast.items.is_empty())
        && !resolve::has_errors(&diagnostics)
        && let Some(u) = loaded.units.first()
    {
        diagnostics.push(
            Diagnostic::warning(
                codes::EMPTY_POLICY,
                "the policy is empty",
                kapl_syntax::Span::new(u.id, 0, 0),
                "nothing is defined in this file",
            )
            .with_help("a policy defines at least an objective; see the examples in the README"),
        );
    }
    let mut policy = None;
    if !resolve::has_errors(&diagnostics) && !loaded.root_unreadable {
        match lower::lower(&loaded, &resolved, &params) {
            Ok(p) => policy = Some(p),
            Err(mut errs) => diagnostics.append(&mut errs),
        }
    }
    kapl_syntax::diag::sort(&mut diagnostics);
    FrontEnd {
        sources,
        policy,
        diagnostics,
        root_unreadable: loaded.root_unreadable,
        automata: None,
        params,
    }
}

fn syntax_parse(file: kapl_syntax::FileId, text: &str) -> (ast::File, Vec<Diagnostic>) {
    let parsed = kapl_syntax::parse(file, text);
    (parsed.file, parsed.diagnostics)
}

/// Loads, parses, resolves and lowers the policy rooted at `root`, for
/// its parameters' defaults.
pub fn check_front(loader: &mut dyn Loader, root: &str) -> FrontEnd {
    check_front_with(loader, root, &syntax_parse, &ParamValues::default())
}

/// [`check_front`] for the parameter values given.
pub fn check_front_params(loader: &mut dyn Loader, root: &str, values: &ParamValues) -> FrontEnd {
    check_front_with(loader, root, &syntax_parse, values)
}
