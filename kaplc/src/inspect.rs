//! `kaplc inspect IMAGE [--format json]`: shows an image readably.
//!
//! Input: an image file. Output: its plans, steps (by name, with `after`
//! edges and start steps), grants with provenance, table sizes, Landlock
//! plans and precision notes; as text or JSON. Exit 0, or 2 when the file
//! cannot be read or fails verification (the error names its KAPL07xx code).

use kapl_image::{DfaKind, GrantKind, Image, NetEntry, Plan, PortGrant, access};
use serde_json::{Value, json};
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
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&image, bytes.len()))
                .unwrap_or_else(|_| "{}".into())
        ),
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
        e.ports
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
    )
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

/// The JSON rendering.
pub fn to_json(image: &Image, size: usize) -> Value {
    let grants: Vec<Value> = image
        .grants
        .iter()
        .map(|g| {
            let plan = image.plans.get(g.plan as usize);
            json!({
                "id": g.id,
                "plan": plan.map(|p| p.name.clone()),
                "step": g.step.and_then(|s| plan.and_then(|p| p.steps.get(s as usize)).map(|s| s.name.clone())),
                "kind": rights_text(g.kind),
                "text": g.text,
                "file": image.meta.sources.get(g.source.file as usize),
                "line": g.source.line,
                "column": g.source.column,
            })
        })
        .collect();
    let plans: Vec<Value> = image
        .plans
        .iter()
        .map(|p| {
            let steps: Vec<Value> = p
                .steps
                .iter()
                .enumerate()
                .map(|(si, s)| {
                    let l = &s.landlock;
                    json!({
                        "name": s.name,
                        "about": s.about,
                        "start": s.after.is_empty(),
                        "after": s.after.iter().filter_map(|&a| p.steps.get(a as usize).map(|x| x.name.clone())).collect::<Vec<_>>(),
                        "grants": s.grants,
                        "landlock": {
                            "abi": l.abi,
                            "handled_fs": l.handled_fs,
                            "handled_net": l.handled_net,
                            "walks": l.walks.iter().map(|w| json!({
                                "grant": w.grant,
                                "dfa": match w.dfa { DfaKind::Fs => "fs", DfaKind::Exec => "exec" },
                                "access": access_text(w.access),
                                "prefixes": w.prefixes.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>(),
                            })).collect::<Vec<_>>(),
                            "tcp_connect": ports_text(&l.tcp_connect),
                            "tcp_bind": ports_text(&l.tcp_bind),
                            "precision": l.precision.iter().map(|x| json!({"grant": x.grant, "note": x.note})).collect::<Vec<_>>(),
                        },
                        "net": p.net.iter().filter(|e| e.step == si as u32).map(net_text).collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({
                "name": p.name,
                "about": p.about,
                "objective": image.objectives.get(p.objective as usize).map(|o| o.name.clone()),
                "intent": p.intent.and_then(|i| image.intents.get(i as usize)).map(|i| i.name.clone()),
                "grants": p.grants,
                "steps": steps,
                "tables": {
                    "fs": {"states": p.fs.states(), "classes": p.fs.class_count, "transition_bytes": p.fs.transition_bytes(), "accept_rows": p.fs.row_count()},
                    "exec": {"states": p.exec.states(), "classes": p.exec.class_count, "transition_bytes": p.exec.transition_bytes(), "accept_rows": p.exec.row_count()},
                    "lpm_entries": p.net.len(),
                },
            })
        })
        .collect();
    json!({
        "policy": image.meta.policy,
        "format": kapl_image::FORMAT_VERSION,
        "compiler": image.meta.compiler,
        "size": size,
        "sources": image.meta.sources,
        "objectives": image.objectives.iter().map(|o| json!({"name": o.name, "about": o.about})).collect::<Vec<_>>(),
        "intents": image.intents.iter().map(|i| json!({"name": i.name, "about": i.about, "objective": image.objectives.get(i.objective as usize).map(|o| o.name.clone())})).collect::<Vec<_>>(),
        "plans": plans,
        "grants": grants,
    })
}
