//! `kaplc inspect IMAGE [--format json]`: shows an image readably.
//!
//! Input: an image file. Output: its plans, steps (by name, with `after`
//! edges and start steps), grants with provenance, table sizes, Landlock
//! plans and precision notes; as text or JSON (an [`InspectReport`], typed
//! in `report.rs`, schema `schemas/inspect.schema.json`). Exit 0, or 2 when
//! the file cannot be read or fails verification (the error names its
//! KAPL07xx code).

use crate::report::{
    self, AgainstReport, DfaReport, DfaSizeReport, GrantReport, InspectReport, IntentReport,
    LandlockReport, ObjectiveReport, PlanReport, PrecisionReport, StepReport, TablesReport,
    Version, WalkReport,
};
use kapl_image::{DfaKind, GrantKind, Image, NetEntry, Plan, PortGrant, access};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `kaplc inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The image (`.kapi`) to show.
    pub image: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// JSON (one object).
    Json,
}

/// Runs `kaplc inspect`.
pub fn run(args: &Args) -> ExitCode {
    let bytes = match std::fs::read(&args.image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!(
                "error[KAPL0001]: cannot read `{}`: {e}",
                args.image.display()
            );
            return ExitCode::from(2);
        }
    };
    let image = match kapl_image::read(&bytes) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error[{}]: `{}`: {e}", e.code(), args.image.display());
            return ExitCode::from(2);
        }
    };
    match args.format {
        Format::Text => print!(
            "{}",
            text(&image, &args.image.display().to_string(), bytes.len())
        ),
        Format::Json => println!("{}", report::to_text(&to_json(&image, bytes.len()))),
    }
    ExitCode::SUCCESS
}

fn rights_text(kind: GrantKind) -> String {
    match kind {
        GrantKind::Fs(r) => format!("fs {}", r.to_text()),
        GrantKind::Exec => "exec".into(),
        GrantKind::Net(op) => format!("net {}", op.as_str()),
    }
}

fn where_(image: &Image, g: u32) -> String {
    match image.grants.get(g as usize) {
        Some(x) => format!(
            "{}:{}:{}",
            image
                .meta
                .sources
                .get(x.source.file as usize)
                .map_or("?", String::as_str),
            x.source.line,
            x.source.column
        ),
        None => "?".into(),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn ports_text(p: &[PortGrant]) -> String {
    if p.is_empty() {
        return "none".into();
    }
    p.iter()
        .map(|r| {
            if r.lo == r.hi {
                r.lo.to_string()
            } else {
                format!("{}-{}", r.lo, r.hi)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn access_text(a: u64) -> String {
    let names = [
        (access::EXECUTE, "execute"),
        (access::WRITE_FILE, "write_file"),
        (access::READ_FILE, "read_file"),
        (access::READ_DIR, "read_dir"),
        (access::REMOVE_DIR, "remove_dir"),
        (access::REMOVE_FILE, "remove_file"),
        (access::MAKE_DIR, "make_dir"),
        (access::MAKE_REG, "make_reg"),
        (access::MAKE_SYM, "make_sym"),
        (access::REFER, "refer"),
        (access::TRUNCATE, "truncate"),
    ];
    names
        .iter()
        .filter(|(b, _)| a & b != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join("|")
}

fn net_text(e: &NetEntry) -> String {
    format!(
        "{} {} {}/{} port {}",
        e.op.as_str(),
        e.proto.as_str(),
        e.addr,
        e.prefix,
        granted_ports(&e.ports)
    )
}

/// Port ranges with their grants: `443 (#3), 8000-8099 (#4)`.
fn granted_ports(ports: &[PortGrant]) -> String {
    ports
        .iter()
        .map(|p| {
            let r = if p.lo == p.hi {
                p.lo.to_string()
            } else {
                format!("{}-{}", p.lo, p.hi)
            };
            format!("{r} (#{})", p.grant)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn chain(image: &Image, p: &Plan) -> String {
    let obj = image
        .objectives
        .get(p.objective as usize)
        .map_or("?", |o| o.name.as_str());
    match p.intent.and_then(|i| image.intents.get(i as usize)) {
        Some(i) => format!("intent {}, objective {obj}", i.name),
        None => format!("objective {obj}"),
    }
}

/// The objective tables of an objective image, as text.
fn objective_text(o: &mut String, image: &Image, t: &kapl_image::ObjectiveTables) {
    use std::fmt::Write;
    let _ = writeln!(
        o,
        "objective image: identity {}",
        kapl_image::hex(&t.identity)
    );
    let embedded: Vec<&str> = t.sources.iter().map(|f| f.name.as_str()).collect();
    let _ = writeln!(o, "embedded sources: {}", embedded.join(", "));
    for (li, l) in t.levels.iter().enumerate() {
        let title = match l.level {
            kapl_image::Level::Objective(i) => image
                .objectives
                .get(i as usize)
                .map(|x| format!("objective {}", x.name)),
            kapl_image::Level::Intent(i) => image.intents.get(i as usize).map(|x| {
                let obj = image
                    .objectives
                    .get(x.objective as usize)
                    .map_or("?", |o| o.name.as_str());
                format!("intent {} under {obj}", x.name)
            }),
        };
        let _ = writeln!(
            o,
            "\n{} (tables: fs DFA {} states, exec DFA {} states, {} LPM entries)",
            title.unwrap_or_default(),
            l.fs.states(),
            l.exec.states(),
            l.net.len()
        );
        for never in [false, true] {
            let rules: Vec<&kapl_image::BoundRule> = t
                .rules
                .iter()
                .filter(|r| r.level as usize == li && r.never == never)
                .collect();
            if rules.is_empty() {
                continue;
            }
            let _ = writeln!(o, "  {}:", if never { "never" } else { "bound" });
            for r in rules {
                let file = t
                    .sources
                    .get(r.source.file as usize)
                    .map_or("?", |f| f.name.as_str());
                let _ = writeln!(
                    o,
                    "    {}  ({file}:{}:{})",
                    one_line(&r.text),
                    r.source.line,
                    r.source.column
                );
            }
        }
    }
}

/// The text rendering.
pub fn text(image: &Image, path: &str, size: usize) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "image {path}: policy `{}`, format {}, written by {}, {size} bytes",
        image.meta.policy,
        kapl_image::FORMAT_VERSION,
        image.meta.compiler
    );
    let _ = writeln!(o, "sources: {}", image.meta.sources.join(", "));
    if !image.meta.params.is_empty() {
        let p: Vec<String> = image
            .meta
            .params
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let _ = writeln!(o, "parameters: {}", p.join(", "));
    }
    if let Some(a) = &image.against {
        let _ = writeln!(
            o,
            "built against {} (objective identity {})",
            a.file,
            kapl_image::hex(&a.identity)
        );
    }
    if let Some(t) = &image.objective {
        objective_text(&mut o, image, t);
    }
    let _ = writeln!(
        o,
        "{} plans, {} grants",
        image.plans.len(),
        image.grants.len()
    );
    for p in &image.plans {
        let _ = writeln!(o, "\nplan {} ({})", p.name, chain(image, p));
        if let Some(a) = &p.about {
            let _ = writeln!(o, "  about: {a}");
        }
        if !p.grants.is_empty() {
            let _ = writeln!(o, "  plan-wide grants (hold in every step):");
            for &g in &p.grants {
                grant_line(&mut o, image, g, "    ");
            }
        }
        for (si, s) in p.steps.iter().enumerate() {
            let after = if s.after.is_empty() {
                "start step".to_string()
            } else {
                format!(
                    "after {}",
                    s.after
                        .iter()
                        .map(|&a| p.steps.get(a as usize).map_or("?", |x| x.name.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let _ = writeln!(o, "  step {} ({after})", s.name);
            if let Some(a) = &s.about {
                let _ = writeln!(o, "    about: {a}");
            }
            for &g in &s.grants {
                grant_line(&mut o, image, g, "    ");
            }
            let l = &s.landlock;
            let _ = writeln!(
                o,
                "    landlock (ABI {}): {} walks; TCP connect ports {}; TCP bind ports {}",
                l.abi,
                l.walks.len(),
                if l.handled_net & access::NET_CONNECT_TCP != 0 {
                    ports_text(&l.tcp_connect)
                } else {
                    "(not handled)".into()
                },
                if l.handled_net & access::NET_BIND_TCP != 0 {
                    ports_text(&l.tcp_bind)
                } else {
                    "(not handled)".into()
                },
            );
            for w in &l.walks {
                let _ = writeln!(
                    o,
                    "      #{} {} [{}] from {}",
                    w.grant,
                    match w.dfa {
                        DfaKind::Fs => "fs",
                        DfaKind::Exec => "exec",
                    },
                    access_text(w.access),
                    w.prefixes
                        .iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for x in &l.precision {
                let _ = writeln!(o, "      narrower: #{}: {}", x.grant, x.note);
            }
            for e in p.net.iter().filter(|e| e.step == si as u32) {
                let _ = writeln!(o, "    net: {}", net_text(e));
            }
            for e in p.names.iter().filter(|e| e.step == si as u32) {
                let _ = writeln!(
                    o,
                    "    name: connect {} \"{}\" port {}",
                    e.proto.as_str(),
                    e.pattern,
                    granted_ports(&e.ports)
                );
            }
        }
        for x in &p.name_excluded {
            let _ = writeln!(
                o,
                "  names never admit: {} {}/{} ({} port ranges)",
                x.proto.as_str(),
                x.addr,
                x.prefix,
                x.ports.len()
            );
        }
        for x in &p.never_names {
            let _ = writeln!(o, "  never names: {} \"{}\"", x.proto.as_str(), x.pattern);
        }
        let _ = writeln!(
            o,
            "  tables: path DFA {} states x {} classes ({} transition bytes, {} accept rows); exec DFA {} states x {} classes ({} transition bytes, {} accept rows); {} LPM entries",
            p.fs.states(),
            p.fs.class_count,
            p.fs.transition_bytes(),
            p.fs.row_count(),
            p.exec.states(),
            p.exec.class_count,
            p.exec.transition_bytes(),
            p.exec.row_count(),
            p.net.len()
        );
    }
    o
}

fn grant_line(o: &mut String, image: &Image, g: u32, indent: &str) {
    use std::fmt::Write;
    if let Some(x) = image.grants.get(g as usize) {
        let _ = writeln!(
            o,
            "{indent}#{g} {}  ({}, {})",
            one_line(&x.text),
            rights_text(x.kind),
            where_(image, g)
        );
    }
}

fn dfa_report(d: &kapl_image::Dfa) -> DfaSizeReport {
    DfaSizeReport {
        accept_rows: d.row_count(),
        classes: d.class_count,
        states: d.states(),
        transition_bytes: d.transition_bytes(),
    }
}

fn step_report(p: &Plan, si: usize) -> Option<StepReport> {
    let s = p.steps.get(si)?;
    let l = &s.landlock;
    Some(StepReport {
        about: s.about.clone(),
        after: s
            .after
            .iter()
            .filter_map(|&a| p.steps.get(a as usize).map(|x| x.name.clone()))
            .collect(),
        grants: s.grants.clone(),
        landlock: LandlockReport {
            abi: l.abi,
            handled_fs: l.handled_fs,
            handled_net: l.handled_net,
            precision: l
                .precision
                .iter()
                .map(|x| PrecisionReport {
                    grant: x.grant,
                    note: x.note.clone(),
                })
                .collect(),
            tcp_bind: ports_text(&l.tcp_bind),
            tcp_connect: ports_text(&l.tcp_connect),
            walks: l
                .walks
                .iter()
                .map(|w| WalkReport {
                    access: access_text(w.access),
                    dfa: match w.dfa {
                        DfaKind::Fs => DfaReport::Fs,
                        DfaKind::Exec => DfaReport::Exec,
                    },
                    grant: w.grant,
                    prefixes: w
                        .prefixes
                        .iter()
                        .map(|x| String::from_utf8_lossy(x).into_owned())
                        .collect(),
                })
                .collect(),
        },
        name: s.name.clone(),
        net: p
            .net
            .iter()
            .filter(|e| e.step as usize == si)
            .map(net_text)
            .collect(),
        start: s.after.is_empty(),
    })
}

/// The JSON rendering: an [`InspectReport`] (shape and schema in
/// `report.rs`).
pub fn to_json(image: &Image, size: usize) -> InspectReport {
    let objective_name = |o: u32| image.objectives.get(o as usize).map(|o| o.name.clone());
    let grants = image
        .grants
        .iter()
        .map(|g| {
            let plan = image.plans.get(g.plan as usize);
            GrantReport {
                column: g.source.column,
                file: image.meta.sources.get(g.source.file as usize).cloned(),
                id: g.id,
                kind: rights_text(g.kind),
                line: g.source.line,
                plan: plan.map(|p| p.name.clone()),
                step: g.step.and_then(|s| {
                    plan.and_then(|p| p.steps.get(s as usize))
                        .map(|s| s.name.clone())
                }),
                text: g.text.clone(),
            }
        })
        .collect();
    let plans = image
        .plans
        .iter()
        .map(|p| PlanReport {
            about: p.about.clone(),
            grants: p.grants.clone(),
            intent: p
                .intent
                .and_then(|i| image.intents.get(i as usize))
                .map(|i| i.name.clone()),
            name: p.name.clone(),
            objective: objective_name(p.objective),
            steps: (0..p.steps.len())
                .filter_map(|si| step_report(p, si))
                .collect(),
            tables: TablesReport {
                exec: dfa_report(&p.exec),
                fs: dfa_report(&p.fs),
                lpm_entries: p.net.len(),
            },
        })
        .collect();
    InspectReport {
        schema_version: Version,
        against: image.against.as_ref().map(|a| AgainstReport {
            file: a.file.clone(),
            identity: kapl_image::hex(&a.identity),
        }),
        compiler: image.meta.compiler.clone(),
        format: kapl_image::FORMAT_VERSION,
        grants,
        identity: image.identity_hex(),
        params: image
            .meta
            .params
            .iter()
            .map(|(name, value)| report::ImageParamReport {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        intents: image
            .intents
            .iter()
            .map(|i| IntentReport {
                about: i.about.clone(),
                name: i.name.clone(),
                objective: objective_name(i.objective),
            })
            .collect(),
        objectives: image
            .objectives
            .iter()
            .map(|o| ObjectiveReport {
                about: o.about.clone(),
                name: o.name.clone(),
            })
            .collect(),
        plans,
        policy: image.meta.policy.clone(),
        size,
        sources: image.meta.sources.clone(),
    }
}
