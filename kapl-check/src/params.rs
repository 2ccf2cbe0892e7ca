//! Parameters: declarations, references and the values proofs are made for.
//!
//! Input: the loaded units and the values given (`--param NAME=VALUE`).
//! Output: every declared parameter with the value in use ([`Param`]), and
//! diagnostics: duplicate declarations, invalid defaults or given values
//! (`KAPL0214`–`KAPL0218`), `${NAME}` naming no parameter (`KAPL0315`, with
//! "did you mean"), a used parameter without a value (`KAPL0316`, naming
//! the flag to pass) and unused ones (`KAPL0317`, a warning).
//!
//! Parameters live in one namespace: the policy's files and the stdlib
//! modules they use. Lowering substitutes the values ([`substitute`]), so
//! the prover and code generation see concrete patterns.

use crate::load::{Loaded, Scope};
use crate::lower::for_each_rule;
use kapl_syntax::ast::{self, Item, RuleKind};
use kapl_syntax::diag::suggest;
use kapl_syntax::param::{self, check_value};
use kapl_syntax::{Diagnostic, Span, codes};
use std::collections::{BTreeMap, HashMap};

/// The values a check is made for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamValues {
    /// Values given by name (`--param NAME=VALUE`).
    pub given: BTreeMap<String, String>,
    /// Give a parameter without a value the placeholder `/${NAME}` (a
    /// literal path) instead of reporting it (the language server, which
    /// has no `--param`).
    pub placeholders: bool,
}

impl ParamValues {
    /// Values from `NAME=VALUE` pairs.
    pub fn given(pairs: impl IntoIterator<Item = (String, String)>) -> ParamValues {
        ParamValues {
            given: pairs.into_iter().collect(),
            placeholders: false,
        }
    }
}

/// Where a parameter's value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueSource {
    /// `--param NAME=VALUE`.
    Given,
    /// The declaration's default.
    Default,
    /// The editor's placeholder `/${NAME}` (no value, no default).
    Placeholder,
    /// No value at all (reported when the parameter is used).
    Missing,
}

/// A declared parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Where the name is declared.
    pub name_span: Span,
    /// Its default, when it has a valid one.
    pub default: Option<String>,
    /// The value in use.
    pub value: Option<String>,
    /// Where `value` comes from.
    pub source: ValueSource,
    /// Whether some pattern uses it.
    pub used: bool,
}

fn value_diag(e: &param::ValueError, span: Span, label: &str) -> Diagnostic {
    Diagnostic::error(e.code(), format!("invalid parameter value: {e}"), span, label)
        .with_note("a parameter's value is an absolute, normalized path; it is literal (glob characters in it match only themselves)")
        .with_help(e.help())
}

fn each_pattern<'a>(file: &'a ast::File, f: &mut impl FnMut(&'a ast::Pattern)) {
    for_each_rule(file, &mut |r| match &r.kind {
        RuleKind::Fs {
            patterns, except, ..
        } => patterns.iter().chain(except).for_each(&mut *f),
        RuleKind::Exec { patterns } => patterns.iter().for_each(&mut *f),
        RuleKind::Net { .. } | RuleKind::Use { .. } => {}
    });
}

/// Collects the declared parameters, decides their values and checks every
/// reference. Returns the parameters in declaration order.
pub fn check(loaded: &Loaded, values: &ParamValues) -> (Vec<Param>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for u in &loaded.units {
        for item in &u.ast.items {
            let Item::Param(d) = item else { continue };
            if let Some(&first) = by_name.get(&d.name.name) {
                let fspan = params.get(first).map_or(d.name.span, |p| p.name_span);
                diags.push(
                    Diagnostic::error(
                        codes::DUPLICATE_DEFINITION,
                        format!("param `{}` is declared twice", d.name.name),
                        d.name.span,
                        "declared again here",
                    )
                    .with_label(fspan, "first declared here")
                    .with_note("parameters share one namespace: the policy's files and the stdlib modules they use")
                    .with_help("remove one of the declarations"),
                );
                continue;
            }
            let mut source = ValueSource::Missing;
            let default = d
                .default
                .as_ref()
                .and_then(|s| match check_value(&s.value) {
                    Ok(()) => Some(s.value.clone()),
                    Err(e) => {
                        diags.push(value_diag(&e, s.span, "not a valid default"));
                        // Reported here; not "missing" as well.
                        source = ValueSource::Default;
                        None
                    }
                });
            by_name.insert(d.name.name.clone(), params.len());
            params.push(Param {
                name: d.name.name.clone(),
                name_span: d.name.span,
                default,
                value: None,
                source,
                used: false,
            });
        }
    }
    for p in &mut params {
        if let Some(v) = values.given.get(&p.name) {
            match check_value(v) {
                Ok(()) => {
                    p.value = Some(v.clone());
                    p.source = ValueSource::Given;
                }
                Err(e) => {
                    // Reported here; not "missing" as well.
                    p.source = ValueSource::Given;
                    diags.push(value_diag(
                        &e,
                        p.name_span,
                        &format!("`--param {}` gives an invalid value", p.name),
                    ));
                }
            }
        } else if let Some(d) = &p.default {
            p.value = Some(d.clone());
            p.source = ValueSource::Default;
        } else if values.placeholders {
            p.value = Some(format!("/${{{}}}", p.name));
            p.source = ValueSource::Placeholder;
        }
    }
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    // First use of each parameter without a value: (span, more uses).
    let mut missing: BTreeMap<usize, (Span, usize)> = BTreeMap::new();
    for u in &loaded.units {
        each_pattern(&u.ast, &mut |pat| {
            for r in &pat.params {
                match by_name.get(&r.name) {
                    Some(&i) => {
                        if let Some(p) = params.get_mut(i) {
                            p.used = true;
                            if p.value.is_none() && p.source == ValueSource::Missing {
                                missing
                                    .entry(i)
                                    .and_modify(|e| e.1 += 1)
                                    .or_insert((r.span, 0));
                            }
                        }
                    }
                    None => {
                        let mut d = Diagnostic::error(
                            codes::UNKNOWN_PARAM,
                            format!("unknown parameter `{}`", r.name),
                            r.span,
                            "no `param` of this name is declared",
                        );
                        let close =
                            suggest(&r.name, names.iter().map(String::as_str)).or_else(|| {
                                names
                                    .iter()
                                    .find(|n| n.eq_ignore_ascii_case(&r.name))
                                    .map(String::as_str)
                            });
                        d = match close {
                            Some(s) => d.with_help(format!("did you mean `{s}`?")),
                            None => d.with_help(format!(
                                "declare it: `param {0}` (then give its value with `--param {0}=/path`), or `param {0} = \"/default/path\"`",
                                r.name
                            )),
                        };
                        diags.push(d);
                    }
                }
            }
        });
    }
    for (i, (span, more)) in missing {
        let Some(p) = params.get(i) else { continue };
        let mut d = Diagnostic::error(
            codes::PARAM_WITHOUT_VALUE,
            format!("parameter `{}` has no value", p.name),
            span,
            "used here",
        )
        .with_label(p.name_span, "declared here without a default");
        if more > 0 {
            d = d.with_note(format!(
                "it is used {} more time{}",
                more,
                if more == 1 { "" } else { "s" }
            ));
        }
        diags.push(d.with_help(format!(
            "pass `--param {}=/path`, or give it a default: `param {} = \"/path\"`",
            p.name, p.name
        )));
    }
    for (u, p) in params.iter().map(|p| (unit_scope(loaded, p.name_span), p)) {
        if !p.used && u == Some(&Scope::Policy) {
            diags.push(
                Diagnostic::warning(
                    codes::UNUSED_PARAM,
                    format!("parameter `{}` is never used", p.name),
                    p.name_span,
                    "declared here, used in no pattern",
                )
                .with_help(format!(
                    "use it at the start of a pattern, as in `\"${{{}}}/**\"`, or remove it",
                    p.name
                )),
            );
        }
    }
    (params, diags)
}

fn unit_scope(loaded: &Loaded, span: Span) -> Option<&Scope> {
    loaded
        .units
        .iter()
        .find(|u| u.id == span.file)
        .map(|u| &u.scope)
}

/// The concrete pattern for `p`: `p` itself when it uses no parameter,
/// otherwise its text with the values substituted (escaped: literal) and
/// parsed again. `Err` with a diagnostic when a value is missing or the
/// result is too large.
pub fn substitute(
    p: &ast::Pattern,
    values: &HashMap<String, String>,
) -> Result<(std::sync::Arc<str>, std::sync::Arc<kapl_syntax::glob::Glob>), Box<Diagnostic>> {
    if p.params.is_empty() {
        return Ok((p.source.clone(), p.glob.clone()));
    }
    let Some(text) = param::substitute(&p.source, &p.params, |n| values.get(n).map(String::as_str))
    else {
        return Err(Box::new(Diagnostic::error(
            codes::INTERNAL,
            "internal checker error: a parameter without a value reached lowering",
            p.span,
            "while substituting parameters here",
        )));
    };
    match kapl_syntax::glob::parse_glob(&text, p.span) {
        Ok(g) => Ok((text.into(), g.into())),
        Err(mut errs) => {
            let mut d = errs.remove(0);
            d.notes.push(format!(
                "with the parameters' values this pattern is `{}`",
                kapl_syntax::lexer::shorten(&text)
            ));
            Err(Box::new(d))
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic, reason = "tests fail by panicking")]
mod tests {
    use super::*;
    use crate::{MemoryLoader, check_front_params};

    fn front(text: &str, given: &[(&str, &str)]) -> (crate::FrontEnd, Vec<(&'static str, String)>) {
        let mut l = MemoryLoader::new().with("/p.kapl", text);
        let values = ParamValues::given(
            given
                .iter()
                .map(|(a, b)| ((*a).to_string(), (*b).to_string())),
        );
        let fe = check_front_params(&mut l, "/p.kapl", &values);
        let d = fe
            .diagnostics
            .iter()
            .map(|d| {
                let s = d
                    .primary_span()
                    .unwrap_or(Span::new(kapl_syntax::FileId(0), 0, 0));
                (d.code, text.get(s.range()).unwrap_or_default().to_string())
            })
            .collect();
        (fe, d)
    }

    const POLICY: &str = "param proj\nparam home = \"/home/dev\"\n\
        objective o { bound { fs read \"${proj}/**\", \"${home}/.cargo/**\" } }\n\
        plan p under o { step s { grant fs read \"${proj}/src/**\" except \"${proj}/src/*.key\" } }\n";

    #[test]
    fn values_are_substituted_in_lowering() {
        let (fe, d) = front(POLICY, &[("proj", "/x/a*b")]);
        assert!(d.is_empty(), "{d:?}");
        let policy = fe.policy.expect("lowered");
        assert_eq!(
            policy.params,
            [
                ("home".to_string(), "/home/dev".to_string()),
                ("proj".to_string(), "/x/a*b".to_string())
            ]
        );
        let g = &policy.grants[0];
        let ir::RuleKind::Fs {
            patterns, except, ..
        } = &g.rule.kind
        else {
            panic!("not fs")
        };
        assert_eq!(&*patterns[0].source, "/x/a\\*b/src/**");
        assert!(patterns[0].glob.matches(b"/x/a*b/src/f"));
        assert!(!patterns[0].glob.matches(b"/x/aXb/src/f"));
        assert_eq!(&*except[0].source, "/x/a\\*b/src/*.key");
        // The span still points at the source text.
        assert_eq!(
            POLICY.get(patterns[0].span.range()),
            Some("\"${proj}/src/**\"")
        );
    }

    use crate::ir;

    #[test]
    fn missing_unknown_and_unused_parameters() {
        let (fe, d) = front(POLICY, &[]);
        assert!(fe.policy.is_none());
        assert_eq!(d, [(codes::PARAM_WITHOUT_VALUE, "${proj}".to_string())]);
        let help = fe.diagnostics[0].help.clone().unwrap_or_default();
        assert!(help.contains("--param proj=/path"), "{help}");
        let (fe, d) = front(
            "param proj\nparam spare\nobjective o { bound { fs read \"${prj}/**\" } }",
            &[("proj", "/x")],
        );
        assert_eq!(
            d,
            [
                (codes::UNUSED_PARAM, "proj".to_string()),
                (codes::UNUSED_PARAM, "spare".to_string()),
                (codes::UNKNOWN_PARAM, "${prj}".to_string())
            ]
        );
        let help = fe
            .diagnostics
            .iter()
            .find(|d| d.code == codes::UNKNOWN_PARAM)
            .and_then(|d| d.help.clone());
        assert_eq!(help.as_deref(), Some("did you mean `proj`?"));
    }

    #[test]
    fn invalid_values_are_reported_with_their_codes() {
        let (_, d) = front(
            "param a = \"rel\"\nparam b = \"/x/../y\"\nobjective o { bound { fs read \"${a}/**\", \"${b}\" } }",
            &[],
        );
        assert_eq!(
            d[0],
            (codes::PARAM_VALUE_NOT_ABSOLUTE, "\"rel\"".to_string())
        );
        assert_eq!(
            d[1],
            (codes::PARAM_VALUE_NOT_NORMALIZED, "\"/x/../y\"".to_string())
        );
        let (_, d) = front(POLICY, &[("proj", "/a/")]);
        assert_eq!(
            d[0],
            (codes::PARAM_VALUE_TRAILING_SLASH, "proj".to_string())
        );
    }

    #[test]
    fn duplicates_and_placeholders() {
        let (_, d) = front(
            "param a\nparam a\nobjective o { bound { fs read \"${a}\" } }",
            &[("a", "/")],
        );
        assert_eq!(d, [(codes::DUPLICATE_DEFINITION, "a".to_string())]);
        let mut l = MemoryLoader::new().with("/p.kapl", POLICY);
        let values = ParamValues {
            placeholders: true,
            ..ParamValues::default()
        };
        let fe = check_front_params(&mut l, "/p.kapl", &values);
        assert!(fe.diagnostics.is_empty(), "{:?}", fe.diagnostics);
        let p = fe.params.iter().find(|p| p.name == "proj").expect("proj");
        assert_eq!(p.value.as_deref(), Some("/${proj}"));
        assert_eq!(p.source, ValueSource::Placeholder);
    }

    #[test]
    fn root_value_joins_without_a_double_slash() {
        let (fe, d) = front(POLICY, &[("proj", "/")]);
        assert!(d.is_empty(), "{d:?}");
        let policy = fe.policy.expect("lowered");
        let ir::RuleKind::Fs { patterns, .. } = &policy.objectives[0].bound[0].kind else {
            panic!("not fs")
        };
        assert_eq!(&*patterns[0].source, "/**");
    }
}
