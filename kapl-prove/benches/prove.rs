//! Prover benchmark: generated policies with 10, 100, 1,000 and 10,000
//! grants at realistic path depths; prints total check time, median and p95
//! time per obligation, and the number of unknowns.
//!
//! Run: `cargo bench -p kapl-prove --bench prove` (add `-- --quick` to skip
//! the 10,000-grant policy). Targets: median ≤ 5 ms per obligation,
//! 1,000 grants in ≤ 2 s, 0 unknowns.

use kapl_check::ir::*;
use kapl_prove::{Options, Verdict, prove_with};
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::parse_glob;
use kapl_syntax::{FileId, SourceMap, Span};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Instant;

fn clock() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn span() -> Span {
    Span::new(FileId(0), 0, 0)
}

fn pats(list: &[String]) -> Vec<PatternRef> {
    list.iter()
        .filter_map(|t| {
            parse_glob(t, span()).ok().map(|glob| PatternRef {
                source: t.as_str().into(),
                glob: glob.into(),
                span: span(),
            })
        })
        .collect()
}

fn rights(rs: &[Right]) -> Rights {
    rs.iter().fold(Rights(0), |acc, r| acc.with(*r))
}

fn fs(rs: &[Right], p: &[String], e: &[String]) -> Rule {
    Rule {
        kind: RuleKind::Fs {
            rights: rights(rs),
            patterns: pats(p),
            except: pats(e),
        },
        span: span(),
        via: Vec::new(),
    }
}

fn exec(p: &[String]) -> Rule {
    Rule {
        kind: RuleKind::Exec { patterns: pats(p) },
        span: span(),
        via: Vec::new(),
    }
}

fn net(addr: &str, prefix: u8, lo: u16, hi: u16) -> Rule {
    Rule {
        kind: RuleKind::Net {
            names: Vec::new(),
            op: NetOp::Connect,
            addrs: vec![Cidr {
                addr: addr.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
                prefix,
            }],
            ports: vec![PortRange { lo, hi }],
        },
        span: span(),
        via: Vec::new(),
    }
}

fn s(x: &str) -> String {
    x.to_string()
}

/// A policy with about `grants` grants: one objective per 200 grants, two
/// intents each, plans of 5 steps with 4 grants each; 1 grant in 50
/// oversteps its bound (so witnesses are part of the measurement).
fn generate(grants: usize) -> Policy {
    use Right::*;
    let mut p = Policy::default();
    let objectives = grants.div_ceil(200).max(1);
    for o in 0..objectives {
        let svc = format!("/srv/svc{o}");
        p.objectives.push(Objective {
            name: format!("obj{o}"),
            name_span: span(),
            span: span(),
            about: None,
            bound: vec![
                fs(
                    &[Read],
                    &[
                        format!("{svc}/**"),
                        format!("/var/log/svc{o}/**"),
                        s("/etc/ssl/**"),
                    ],
                    &[],
                ),
                fs(
                    &[Write, Create],
                    &[format!("{svc}/data/**"), format!("/tmp/svc{o}/**")],
                    &[],
                ),
                exec(&[
                    s("/usr/bin/{git,grep,cat,ls,head,tail}"),
                    format!("{svc}/bin/*"),
                ]),
                net(&format!("10.{}.0.0", o % 256), 16, 443, 443),
                net(&format!("10.{}.5.7", o % 256), 32, 5432, 5432),
            ],
            never: vec![
                fs(
                    &[Read, Write],
                    &[format!("{svc}/**/.env"), format!("{svc}/secrets/**")],
                    &[],
                ),
                Rule {
                    kind: RuleKind::Net {
                        names: Vec::new(),
                        op: NetOp::Connect,
                        addrs: vec![
                            Cidr {
                                addr: IpAddr::from([0, 0, 0, 0]),
                                prefix: 0,
                            },
                            Cidr {
                                addr: IpAddr::from([0u16; 8]),
                                prefix: 0,
                            },
                        ],
                        ports: vec![PortRange { lo: 22, hi: 22 }],
                    },
                    span: span(),
                    via: Vec::new(),
                },
            ],
        });
        for k in 0..2 {
            p.intents.push(Intent {
                name: format!("int{o}_{k}"),
                name_span: span(),
                span: span(),
                objective: ObjectiveId(o as u32),
                about: None,
                bound: vec![
                    fs(
                        &[Read],
                        &[format!("{svc}/**"), format!("/var/log/svc{o}/**")],
                        &[],
                    ),
                    exec(&[s("/usr/bin/{git,grep,cat,ls,head,tail}")]),
                    net(&format!("10.{}.0.0", o % 256), 16, 443, 443),
                ],
                never: vec![fs(&[Read], &[format!("{svc}/private/**")], &[])],
            });
        }
    }
    let mut g = 0usize;
    let mut plan_no = 0usize;
    while g < grants {
        let o = (g / 200) % objectives;
        let svc = format!("/srv/svc{o}");
        let under_intent = plan_no.is_multiple_of(2);
        let parent = if under_intent {
            Parent::Intent(IntentId((o * 2 + plan_no % 4 / 2) as u32))
        } else {
            Parent::Objective(ObjectiveId(o as u32))
        };
        let pid = PlanId(p.plans.len() as u32);
        let mut plan = Plan {
            name: format!("plan{plan_no}"),
            name_span: span(),
            span: span(),
            parent,
            about: None,
            grants: Vec::new(),
            steps: Vec::new(),
        };
        for st in 0..5 {
            let mut step = Step {
                name: format!("step{st}"),
                name_span: span(),
                span: span(),
                after: if st == 0 {
                    Vec::new()
                } else {
                    vec![StepId(st - 1)]
                },
                about: None,
                grants: Vec::new(),
            };
            for k in 0..4 {
                if g >= grants {
                    break;
                }
                let m = g % 97;
                let rule = match (k + st) % 4 {
                    _ if g % 50 == 49 => fs(&[Read], &[format!("/srv/**/mod{m}/*.rs")], &[]),
                    0 => fs(
                        &[Read],
                        &[
                            format!("{svc}/src/mod{m}/**/*.rs"),
                            format!("{svc}/config/app-{m}/*.yaml"),
                        ],
                        &[format!("{svc}/**/.env")],
                    ),
                    1 => fs(&[Read], &[format!("/var/log/svc{o}/deploy-{m}-*.log")], &[]),
                    2 if !under_intent => fs(
                        &[Write, Create],
                        &[format!("{svc}/data/cache{m}/*.json")],
                        &[],
                    ),
                    2 => exec(&[s("/usr/bin/{grep,tail}")]),
                    _ => net(&format!("10.{}.{}.0", o % 256, m), 24, 443, 443),
                };
                let id = GrantId(p.grants.len() as u32);
                p.grants.push(Grant {
                    id,
                    plan: pid,
                    step: Some(StepId(st)),
                    site: span(),
                    rule,
                });
                step.grants.push(id);
                g += 1;
            }
            plan.steps.push(step);
        }
        p.plans.push(plan);
        plan_no += 1;
    }
    p
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1e6
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[10, 100, 1000]
    } else {
        &[10, 100, 1000, 10_000]
    };
    let sources = SourceMap::new();
    let opts = Options {
        clock: Some(clock),
        ..Options::default()
    };
    println!("prover benchmark ({} threads)", opts.threads);
    println!(
        "{:>7} | {:>11} | {:>8} | {:>10} | {:>10} | {:>9} | {:>8} | {:>8}",
        "grants", "obligations", "errors", "total (s)", "median ms", "p95 ms", "max ms", "unknowns"
    );
    for &n in sizes {
        let policy = generate(n);
        let t0 = Instant::now();
        let report = prove_with(&policy, &sources, &opts);
        let total = t0.elapsed().as_secs_f64();
        let mut times: Vec<u64> = report.outcomes.iter().filter_map(|o| o.nanos).collect();
        times.sort_unstable();
        let unknowns = report
            .outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Unknown(_)))
            .count();
        let internal = report
            .outcomes
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Internal(_)))
            .count();
        let errors = report.diagnostics.iter().filter(|d| d.is_error()).count();
        println!(
            "{:>7} | {:>11} | {:>8} | {:>10.3} | {:>10.3} | {:>9.3} | {:>8.3} | {:>8}",
            n,
            report.outcomes.len(),
            errors,
            total,
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 1.0),
            unknowns + internal
        );
    }
}
