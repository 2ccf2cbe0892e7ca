//! Test helpers: build real images (kapl-check IR → kapl-codegen → kapl-image
//! bytes) for policies rooted in a temporary directory, run `kapl-run`, read
//! its audit file. The IR is built by hand over a generated policy text so
//! each grant's provenance points at a real line of that text.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use kapl_check::ir::*;
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::parse_glob;
use kapl_syntax::{Origin, SourceMap, Span};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub enum G {
    Fs(&'static [Right], Vec<String>, Vec<String>),
    Exec(Vec<String>),
    Net(NetOp, Vec<(String, u8)>, Vec<(u16, u16)>),
}

pub struct StepSpec {
    pub name: &'static str,
    pub after: Vec<u32>,
    pub grants: Vec<G>,
}

pub struct PolicySpec {
    pub plan: &'static str,
    /// Plan-wide grants (the loader is always added).
    pub plan_grants: Vec<G>,
    pub steps: Vec<StepSpec>,
}

fn quote_list(v: &[String]) -> String {
    v.iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_of(g: &G) -> String {
    match g {
        G::Fs(r, p, e) => {
            let rights: Vec<&str> = r
                .iter()
                .map(|x| match x {
                    Right::Read => "read",
                    Right::Write => "write",
                    Right::Create => "create",
                    Right::Delete => "delete",
                })
                .collect();
            let mut t = format!("fs {} {}", rights.join(", "), quote_list(p));
            if !e.is_empty() {
                t.push_str(&format!(" except {}", quote_list(e)));
            }
            t
        }
        G::Exec(p) => format!("exec {}", quote_list(p)),
        G::Net(op, a, ports) => {
            let addrs: Vec<String> = a.iter().map(|(x, p)| format!("{x}/{p}")).collect();
            let ps: Vec<String> = ports
                .iter()
                .map(|(l, h)| {
                    if l == h {
                        l.to_string()
                    } else {
                        format!("{l}-{h}")
                    }
                })
                .collect();
            format!(
                "net {} {} port {}",
                if *op == NetOp::Connect {
                    "connect"
                } else {
                    "bind"
                },
                addrs.join(", "),
                ps.join(", ")
            )
        }
    }
}

fn pat(text: &str, span: Span) -> PatternRef {
    PatternRef {
        source: text.into(),
        glob: parse_glob(text, span).expect("glob").into(),
        span,
    }
}

fn kind_of(g: &G, span: Span) -> RuleKind {
    match g {
        G::Fs(r, p, e) => {
            let mut rights = Rights::default();
            for x in r.iter() {
                rights = rights.with(*x);
            }
            RuleKind::Fs {
                rights,
                patterns: p.iter().map(|x| pat(x, span)).collect(),
                except: e.iter().map(|x| pat(x, span)).collect(),
            }
        }
        G::Exec(p) => RuleKind::Exec {
            patterns: p.iter().map(|x| pat(x, span)).collect(),
        },
        G::Net(op, a, ports) => RuleKind::Net {
            op: *op,
            addrs: a
                .iter()
                .map(|(x, p)| {
                    let addr: IpAddr = x.parse().expect("address");
                    match addr {
                        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() && *p >= 96 => Cidr {
                            addr: IpAddr::V4(v6.to_ipv4_mapped().expect("v4")),
                            prefix: p - 96,
                        },
                        _ => Cidr { addr, prefix: *p },
                    }
                })
                .collect(),
            ports: ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect(),
        },
    }
}

/// What every dynamically linked program needs (as std.runtime's loader).
pub fn loader() -> Vec<G> {
    vec![
        G::Fs(
            &[Right::Read],
            vec![
                "/usr/lib/x86_64-linux-gnu/**".into(),
                "/etc/ld.so.cache".into(),
                "/usr/lib/locale/**".into(),
                "/etc/localtime".into(),
            ],
            vec![],
        ),
        G::Fs(
            &[Right::Read, Right::Write],
            vec!["/dev/null".into()],
            vec![],
        ),
        G::Exec(vec![
            "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2".into(),
        ]),
    ]
}

/// Compiles `spec` into image bytes.
pub fn image(spec: PolicySpec) -> Vec<u8> {
    let mut text = String::from(
        "objective o {\n  bound { fs read, write, create, delete \"/**\" exec \"/**\" net connect any port any net bind any port any }\n}\n",
    );
    let mut lines: Vec<(Option<u32>, G, usize, usize)> = Vec::new();
    text.push_str(&format!("plan {} under o {{\n", spec.plan));
    let mut plan_grants = loader();
    plan_grants.extend(spec.plan_grants);
    for g in plan_grants {
        let t = text_of(&g);
        text.push_str("  grant ");
        let start = text.len();
        text.push_str(&t);
        lines.push((None, g, start, text.len()));
        text.push('\n');
    }
    let mut steps = Vec::new();
    for (i, s) in spec.steps.into_iter().enumerate() {
        text.push_str(&format!("  step {} {{\n", s.name));
        for g in s.grants {
            let t = text_of(&g);
            text.push_str("    grant ");
            let start = text.len();
            text.push_str(&t);
            lines.push((Some(i as u32), g, start, text.len()));
            text.push('\n');
        }
        text.push_str("  }\n");
        steps.push((s.name, s.after));
    }
    text.push_str("}\n");
    let mut sources = SourceMap::new();
    let file = sources.add(Origin::File("test.kapl".into()), text.clone());
    let sp = |a: usize, b: usize| Span::new(file, a, b);
    let whole = sp(0, text.len());
    let all = |k: RuleKind| Rule {
        kind: k,
        span: whole,
        via: vec![],
    };
    let any4: Vec<Cidr> = vec![
        Cidr {
            addr: "0.0.0.0".parse().expect("a"),
            prefix: 0,
        },
        Cidr {
            addr: "::".parse().expect("a"),
            prefix: 0,
        },
    ];
    let mut policy = Policy {
        objectives: vec![Objective {
            name: "o".into(),
            name_span: whole,
            span: whole,
            about: Some("test objective".into()),
            bound: vec![
                all(RuleKind::Fs {
                    rights: Rights(15),
                    patterns: vec![pat("/**", whole)],
                    except: vec![],
                }),
                all(RuleKind::Exec {
                    patterns: vec![pat("/**", whole)],
                }),
                all(RuleKind::Net {
                    op: NetOp::Connect,
                    addrs: any4.clone(),
                    ports: vec![PortRange { lo: 0, hi: 65535 }],
                }),
                all(RuleKind::Net {
                    op: NetOp::Bind,
                    addrs: any4,
                    ports: vec![PortRange { lo: 0, hi: 65535 }],
                }),
            ],
            never: vec![],
        }],
        ..Policy::default()
    };
    policy.plans.push(Plan {
        name: spec.plan.into(),
        name_span: whole,
        span: whole,
        parent: Parent::Objective(ObjectiveId(0)),
        about: None,
        grants: vec![],
        steps: steps
            .iter()
            .map(|(n, after)| Step {
                name: (*n).into(),
                name_span: whole,
                span: whole,
                after: after.iter().map(|a| StepId(*a)).collect(),
                about: None,
                grants: vec![],
            })
            .collect(),
    });
    for (step, g, a, b) in lines {
        let id = policy.grants.len() as u32;
        let span = sp(a, b);
        policy.grants.push(Grant {
            id: GrantId(id),
            plan: PlanId(0),
            step: step.map(StepId),
            rule: Rule {
                kind: kind_of(&g, span),
                span,
                via: vec![],
            },
            site: span,
        });
        match step {
            None => policy.plans[0].grants.push(GrantId(id)),
            Some(s) => policy.plans[0].steps[s as usize].grants.push(GrantId(id)),
        }
    }
    let out = kapl_codegen::compile(
        &policy,
        &sources,
        &kapl_codegen::Options {
            policy: "test".into(),
            compiler: "test".into(),
        },
    )
    .unwrap_or_else(|d| panic!("compile: {d:?}"));
    kapl_image::write(&out.image).expect("write image")
}

pub fn kapl_run() -> &'static str {
    env!("CARGO_BIN_EXE_kapl-run")
}

/// Runs the one-shot form.
pub fn one_shot(img: &Path, plan: &str, step: Option<&str>, audit: &Path, cmd: &[&str]) -> Output {
    let mut c = Command::new(kapl_run());
    c.arg(img).arg("--plan").arg(plan);
    if let Some(s) = step {
        c.arg("--step").arg(s);
    }
    c.arg("--audit").arg(audit).arg("--").args(cmd);
    c.env("PATH", "/usr/bin:/bin");
    // A fixed HOME whatever the harness's environment: without one, bash
    // and python3 look the user up (nsswitch, /etc/passwd, nscd's socket),
    // which the test policies do not grant.
    c.env(
        "HOME",
        std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
    );
    c.output().expect("run kapl-run")
}

pub fn records(audit: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

pub struct Tmp(pub PathBuf);
impl Tmp {
    pub fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("kapl-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("mkdir");
        Tmp(p)
    }
    pub fn path(&self, rel: &str) -> String {
        self.0.join(rel).display().to_string()
    }
    pub fn write(&self, rel: &str, data: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, data).expect("write");
    }
}
impl Drop for Tmp {
    fn drop(&mut self) {
        if std::env::var_os("KAPL_TEST_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// No cgroup of ours is left under the cgroup v2 root.
pub fn assert_no_leftover_cgroups() {
    let root = kapl_runtime_bpf::cgroup::cgroup2_root().expect("cgroup v2");
    let left: Vec<String> = std::fs::read_dir(&root)
        .expect("read cgroup root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kapl-oneshot-"))
        .filter(|n| {
            // Only one-shots whose process is gone count as leftovers.
            n.trim_start_matches("kapl-oneshot-")
                .parse::<i32>()
                .map(|pid| !Path::new(&format!("/proc/{pid}")).exists())
                .unwrap_or(false)
        })
        .collect();
    assert!(left.is_empty(), "leftover cgroups: {left:?}");
}

/// Compiles policy text (std modules resolved by kapl-check) into image
/// bytes, failing on any front-end error.
pub fn image_from_text(name: &str, text: &str) -> Vec<u8> {
    let mut loader = kapl_check::MemoryLoader::new().with(&format!("/{name}.kapl"), text);
    let fe = kapl_check::check_front(&mut loader, &format!("/{name}.kapl"));
    let errors: Vec<_> = fe
        .diagnostics
        .iter()
        .filter(|d| d.severity == kapl_syntax::diag::Severity::Error)
        .collect();
    assert!(errors.is_empty(), "policy errors: {errors:#?}");
    let policy = fe.policy.expect("lowered policy");
    let out = kapl_codegen::compile(
        &policy,
        &fe.sources,
        &kapl_codegen::Options {
            policy: name.into(),
            compiler: "test".into(),
        },
    )
    .unwrap_or_else(|d| panic!("compile: {d:?}"));
    kapl_image::write(&out.image).expect("write image")
}

/// Stops a session when dropped, so a failing test leaves no supervisor,
/// cgroup or program behind.
pub struct SessionGuard(pub String);
impl Drop for SessionGuard {
    fn drop(&mut self) {
        let _ = Command::new(kapl_run())
            .args(["session", "stop", "--session", &self.0])
            .output();
    }
}
