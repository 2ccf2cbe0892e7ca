//! The precision report of a step: where enforcement is narrower than the
//! grants as written, one line per grant and reason.
//!
//! Input: the image, the plan and step, and what the rule builder found
//! ([`Narrowing`]s per grant and counts per [`NarrowingKind`]). Output:
//! lines such as `grant 4 (deploy.kapl:12): only entries that exist now
//! are granted in /srv/web/build`. Standard-library grants are summed up
//! in one line unless the caller asks for every line.

use crate::narrowing::{Narrowing, NarrowingKind};
use crate::report::flat;
use kapl_image::Image;
use std::collections::BTreeMap;

/// What the rule builder found for one step.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    /// Example narrowings per grant (the first few of each kind).
    pub notes: Vec<(u32, Vec<Narrowing>)>,
    /// How many narrowings per grant and kind.
    pub counts: BTreeMap<(u32, NarrowingKind), usize>,
}

/// Whether grant `g` was written in the standard library.
pub fn is_lib(image: &Image, g: u32) -> bool {
    image
        .provenance(g)
        .is_some_and(|p| p.file.starts_with("<stdlib"))
}

fn grant_ref(image: &Image, g: u32) -> String {
    match image.provenance(g) {
        Some(p) => format!("grant {g} ({}:{})", p.file, p.grant.source.line),
        None => format!("grant {g}"),
    }
}

/// Every precision line of `step` of plan `plan`, flagged when it concerns
/// a standard-library grant.
pub fn all(image: &Image, plan: u32, step: u32, found: &Findings) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    if let Some(st) = image
        .plans
        .get(plan as usize)
        .and_then(|p| p.steps.get(step as usize))
    {
        for p in &st.landlock.precision {
            out.push((
                is_lib(image, p.grant),
                format!("{}: {}", grant_ref(image, p.grant), flat(&p.note)),
            ));
        }
    }
    for ((g, kind), n) in &found.counts {
        let examples: Vec<String> = found
            .notes
            .iter()
            .filter(|(x, _)| x == g)
            .flat_map(|(_, ns)| ns.iter())
            .filter(|nn| nn.kind() == *kind)
            .map(Narrowing::example)
            .collect();
        let more = if *n > examples.len() {
            format!(" and {} more", n - examples.len())
        } else {
            String::new()
        };
        out.push((
            is_lib(image, *g),
            format!(
                "{}: {} {}{more}",
                grant_ref(image, *g),
                kind.describe(),
                examples.join(", ")
            ),
        ));
    }
    out
}

/// The lines to show: every line with `verbose`, else the policy's own
/// lines and one line that counts the standard library's.
pub fn lines(image: &Image, plan: u32, step: u32, found: &Findings, verbose: bool) -> Vec<String> {
    let all = all(image, plan, step, found);
    if verbose {
        return all.into_iter().map(|(_, l)| l).collect();
    }
    let lib = all.iter().filter(|(l, _)| *l).count();
    let mut out: Vec<String> = all
        .into_iter()
        .filter(|(l, _)| !l)
        .map(|(_, l)| l)
        .collect();
    if lib > 0 {
        out.push(format!("{lib} narrowings of standard-library grants (symbolic links, files that must exist); KAPL_VERBOSE=1 lists them"));
    }
    out
}
