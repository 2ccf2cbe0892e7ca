//! `kaplc diff --format sarif`: each change as a code-scanning result
//! located in NEW, so a pull request's review shows it on the head
//! revision's lines.
//!
//! Input: the diff report and NEW's front end (its levels' name spans).
//! Output: one SARIF 2.1.0 log with one result per change
//! (`KAPL0510` widening, level `warning`; `KAPL0511` narrowing, `note`)
//! and per undecided example (`KAPL0512`, `error`). A change written in
//! NEW is located at its rule there; one written in OLD (a rule taken away
//! or a `never` removed) is located at its level's name in NEW, or at the
//! start of NEW when the level is gone, with the OLD rule as a related
//! location.

use crate::report::{ChangeReport, DiffReport, EffectKind, LevelKind, SideKind};
use crate::sarif::{log, point};
use kapl_check::FrontEnd;
use kapl_syntax::codes;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Where the level `c` is about is named in NEW, as (file, line, column).
fn level_in_new(c: &ChangeReport, new: &FrontEnd) -> Option<(String, u32, u32)> {
    let p = new.policy.as_ref()?;
    let span = match c.level {
        LevelKind::Objective => p.objectives.iter().find(|o| o.name == c.name)?.name_span,
        LevelKind::Intent => p.intents.iter().find(|i| i.name == c.name)?.name_span,
        LevelKind::Plan => p.plans.iter().find(|x| x.name == c.name)?.name_span,
        LevelKind::Step => {
            let plan = p.plans.iter().find(|x| Some(&x.name) == c.plan.as_ref())?;
            plan.steps.iter().find(|s| s.name == c.name)?.name_span
        }
    };
    let f = new.sources.get(span.file)?;
    let (line, column) = f.line_col(span.start);
    Some((f.display_name(), line, column))
}

fn result(c: &ChangeReport, new: &FrontEnd, new_name: &str) -> Value {
    let (rule, level) = match c.effect {
        EffectKind::Widening => (codes::DIFF_WIDENS, "warning"),
        EffectKind::Narrowing => (codes::DIFF_NARROWS, "note"),
    };
    let here = c
        .sites
        .iter()
        .filter(|_| c.side == SideKind::New)
        .map(|s| point(&s.file, s.line, s.column))
        .next()
        .or_else(|| level_in_new(c, new).map(|(f, l, col)| point(&f, l, col)))
        .unwrap_or_else(|| point(new_name, 1, 1));
    let mut r = json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": super::text::line(c)},
        "locations": [here],
    });
    if c.side == SideKind::Old && !c.sites.is_empty() {
        let related: Vec<Value> = c
            .sites
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut loc = point(&s.file, s.line, s.column);
                loc["id"] = json!(i);
                loc["message"] = json!({"text": "in OLD"});
                loc
            })
            .collect();
        r["relatedLocations"] = Value::Array(related);
    }
    r
}

/// The SARIF log of a diff.
pub fn sarif(d: &DiffReport, new: &FrontEnd, new_name: &str) -> String {
    let mut results: Vec<Value> = d.changes.iter().map(|c| result(c, new, new_name)).collect();
    let mut rules: BTreeSet<&'static str> = BTreeSet::new();
    for c in &d.changes {
        rules.insert(match c.effect {
            EffectKind::Widening => codes::DIFF_WIDENS,
            EffectKind::Narrowing => codes::DIFF_NARROWS,
        });
    }
    for u in &d.unknown {
        rules.insert(codes::DIFF_UNDECIDED);
        results.push(json!({
            "ruleId": codes::DIFF_UNDECIDED,
            "level": "error",
            "message": {"text": format!("not decided: {u}")},
            "locations": [point(new_name, 1, 1)],
        }));
    }
    log(results, &rules, !d.widens, true)
}
