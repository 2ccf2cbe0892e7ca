//! `--param NAME=VALUE`: parameter values for `check`, `build`, `diff` and
//! `graph`.
//!
//! Input: the flags as given. Output: the checker's [`ParamValues`] (each
//! value checked: an absolute, normalized path, else exit 2 with the
//! value's code), the error for a flag that names no declared parameter
//! (exit 2, `KAPL0011`, with "did you mean"), and the text outputs use to
//! say which values the proofs were made for.

use kapl_check::{Param, ParamValues, ValueSource};
use kapl_syntax::codes::UNKNOWN_PARAM_FLAG;
use kapl_syntax::param::{check_value, is_name};
use std::collections::BTreeSet;

/// The `--param` flags.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ParamArgs {
    /// Give parameter NAME the value VALUE (an absolute, normalized path;
    /// literal: glob characters in it match only themselves). Repeatable;
    /// a declaration's default is used when no value is given.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_pair)]
    pub params: Vec<(String, String)>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let Some((name, value)) = s.split_once('=') else {
        return Err(format!(
            "[{UNKNOWN_PARAM_FLAG}] expected NAME=VALUE, as in `--param proj=/home/dev/proj`"
        ));
    };
    if !is_name(name) {
        return Err(format!(
            "[{UNKNOWN_PARAM_FLAG}] `{name}` is not a parameter name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

impl ParamArgs {
    /// The values, each checked; the error is the lines to print (exit 2).
    pub fn values(&self) -> Result<ParamValues, String> {
        let mut seen = BTreeSet::new();
        for (name, value) in &self.params {
            if !seen.insert(name.as_str()) {
                return Err(format!(
                    "error[{UNKNOWN_PARAM_FLAG}]: `--param {name}` is given twice\n  = help: give each parameter one value"
                ));
            }
            if let Err(e) = check_value(value) {
                return Err(format!(
                    "error[{}]: invalid value for `--param {name}`: {e}\n  = note: a parameter's value is an absolute, normalized path; it is literal\n  = help: {}",
                    e.code(),
                    e.help()
                ));
            }
        }
        Ok(ParamValues::given(self.params.iter().cloned()))
    }

    /// The error for flags that name no parameter declared by any of the
    /// policies checked (`declared`), or `None`.
    pub fn unknown<'a>(&self, declared: impl IntoIterator<Item = &'a [Param]>) -> Option<String> {
        let names: BTreeSet<&str> = declared
            .into_iter()
            .flatten()
            .map(|p| p.name.as_str())
            .collect();
        let mut lines = Vec::new();
        for (name, _) in &self.params {
            if names.contains(name.as_str()) {
                continue;
            }
            let mut line = format!(
                "error[{UNKNOWN_PARAM_FLAG}]: `--param {name}` names no parameter of the policy"
            );
            match kapl_syntax::diag::suggest(name, names.iter().copied()) {
                Some(s) => line.push_str(&format!("\n  = help: did you mean `{s}`?")),
                None if names.is_empty() => {
                    line.push_str("\n  = help: the policy declares no parameters (`param NAME`)");
                }
                None => line.push_str(&format!(
                    "\n  = help: its parameters are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            lines.push(line);
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// `proj=/x, home=/home/dev (default)`: the values in use, for summary
/// lines; empty when the policy has no parameters.
pub fn describe(params: &[Param]) -> String {
    let mut v: Vec<&Param> = params.iter().collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v.iter()
        .map(|p| match (&p.value, p.source) {
            (Some(val), ValueSource::Default) => format!("{}={val} (default)", p.name),
            (Some(val), ValueSource::Placeholder) => format!("{}={val} (placeholder)", p.name),
            (Some(val), _) => format!("{}={val}", p.name),
            (None, _) => format!("{} (no value)", p.name),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `" for proj=/x"`, or nothing when the policy has no parameters.
pub fn for_suffix(params: &[Param]) -> String {
    let d = describe(params);
    if d.is_empty() {
        d
    } else {
        format!(", for {d}")
    }
}
