//! Test helpers: hand-built IR policies and a small deterministic RNG.

#![allow(dead_code, reason = "shared by several test files")]

use kapl_check::ir::*;
use kapl_syntax::ast::{NetOp, Right};
use kapl_syntax::glob::parse_glob;
use kapl_syntax::{FileId, Origin, SourceMap, Span};
use std::net::IpAddr;

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
}

/// Builds a policy with one objective (bound: everything) and plans.
pub struct Builder {
    pub policy: Policy,
    pub sources: SourceMap,
    file: FileId,
}

fn sp(file: FileId) -> Span {
    Span::new(file, 0, 1)
}

pub fn pat(text: &str) -> Option<PatternRef> {
    let glob = parse_glob(text, Span::new(FileId(0), 0, 0)).ok()?;
    Some(PatternRef {
        source: text.into(),
        glob: glob.into(),
        span: Span::new(FileId(0), 0, 0),
    })
}

impl Builder {
    pub fn new() -> Builder {
        let mut sources = SourceMap::new();
        let file = sources.add(
            Origin::Virtual("test.kapl".into()),
            "grant fs read \"/a\"\n".into(),
        );
        let all = pat("/**").expect("glob");
        let policy = Policy {
            objectives: vec![Objective {
                name: "o".into(),
                name_span: sp(file),
                span: sp(file),
                about: Some("test objective".into()),
                bound: vec![Rule {
                    kind: RuleKind::Fs {
                        rights: Rights(15),
                        patterns: vec![all],
                        except: vec![],
                    },
                    span: sp(file),
                    via: vec![],
                }],
                never: vec![],
            }],
            ..Policy::default()
        };
        Builder {
            policy,
            sources,
            file,
        }
    }

    /// Adds a plan with `steps` steps (step i after step i-1 for i odd).
    pub fn plan(&mut self, name: &str, steps: usize) -> u32 {
        let id = self.policy.plans.len() as u32;
        self.policy.plans.push(Plan {
            name: name.into(),
            name_span: sp(self.file),
            span: sp(self.file),
            parent: Parent::Objective(ObjectiveId(0)),
            about: None,
            grants: vec![],
            steps: (0..steps)
                .map(|i| Step {
                    name: format!("s{i}"),
                    name_span: sp(self.file),
                    span: sp(self.file),
                    after: if i % 2 == 1 {
                        vec![StepId(i as u32 - 1)]
                    } else {
                        vec![]
                    },
                    about: None,
                    grants: vec![],
                })
                .collect(),
        });
        id
    }

    pub fn grant(&mut self, plan: u32, step: Option<u32>, kind: RuleKind) -> u32 {
        let id = self.policy.grants.len() as u32;
        self.policy.grants.push(Grant {
            id: GrantId(id),
            plan: PlanId(plan),
            step: step.map(StepId),
            rule: Rule {
                kind,
                span: Span::new(self.file, 6, 18),
                via: vec![],
            },
            site: Span::new(self.file, 0, 18),
        });
        let p = &mut self.policy.plans[plan as usize];
        match step {
            None => p.grants.push(GrantId(id)),
            Some(s) => p.steps[s as usize].grants.push(GrantId(id)),
        }
        id
    }

    pub fn fs(
        &mut self,
        plan: u32,
        step: Option<u32>,
        rights: &[Right],
        pats: &[&str],
        except: &[&str],
    ) -> u32 {
        let mut r = Rights::default();
        for x in rights {
            r = r.with(*x);
        }
        self.grant(
            plan,
            step,
            RuleKind::Fs {
                rights: r,
                patterns: pats.iter().filter_map(|p| pat(p)).collect(),
                except: except.iter().filter_map(|p| pat(p)).collect(),
            },
        )
    }

    pub fn exec(&mut self, plan: u32, step: Option<u32>, pats: &[&str]) -> u32 {
        self.grant(
            plan,
            step,
            RuleKind::Exec {
                patterns: pats.iter().filter_map(|p| pat(p)).collect(),
            },
        )
    }

    pub fn net(
        &mut self,
        plan: u32,
        step: Option<u32>,
        op: NetOp,
        addrs: &[(&str, u8)],
        ports: &[(u16, u16)],
    ) -> u32 {
        self.grant(
            plan,
            step,
            RuleKind::Net {
                names: Vec::new(),
                op,
                addrs: addrs
                    .iter()
                    .map(|(a, p)| {
                        let addr: IpAddr = a.parse().expect("address");
                        let cidr = Cidr { addr, prefix: *p };
                        normalize_cidr(cidr)
                    })
                    .collect(),
                ports: ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect(),
            },
        )
    }
}

/// Masks host bits and maps IPv4-mapped blocks to IPv4, as the IR does.
pub fn normalize_cidr(c: Cidr) -> Cidr {
    match c.addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0);
            Cidr {
                addr: IpAddr::V4((u32::from(a) & m).into()),
                prefix: c.prefix,
            }
        }
        IpAddr::V6(a) => {
            if let (Some(v4), true) = (a.to_ipv4_mapped(), c.prefix >= 96) {
                return normalize_cidr(Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: c.prefix - 96,
                });
            }
            let m = u128::MAX
                .checked_shl(128 - u32::from(c.prefix))
                .unwrap_or(0);
            Cidr {
                addr: IpAddr::V6((u128::from(a) & m).into()),
                prefix: c.prefix,
            }
        }
    }
}

/// The reference decision (lowest covering grant) for an fs/exec request.
pub fn reference_path(
    policy: &Policy,
    plan: &Plan,
    step: usize,
    right: Option<Right>,
    path: &[u8],
) -> Option<u32> {
    let s = &plan.steps[step];
    plan.grants
        .iter()
        .chain(&s.grants)
        .map(|g| &policy.grants[g.0 as usize])
        .filter(|g| match (&g.rule.kind, right) {
            (
                RuleKind::Fs {
                    rights,
                    patterns,
                    except,
                },
                Some(r),
            ) => {
                rights.has(r)
                    && patterns.iter().any(|p| p.glob.matches(path))
                    && !except.iter().any(|p| p.glob.matches(path))
            }
            (RuleKind::Exec { patterns }, None) => patterns.iter().any(|p| p.glob.matches(path)),
            _ => false,
        })
        .map(|g| g.id.0)
        .min()
}

pub const SEGS: &[&str] = &[
    "a", "b", "ab", "ba", ".env", "x.log", "bin", "c", "..", ".", "a.b", "é",
];

/// A random path: mostly normalized, sometimes not.
pub fn random_path(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(3) {
        return rng
            .pick(&[&b""[..], b"/", b"//", b"/a/", b"a/b", b"/a//b", b"/a\0b"])
            .to_vec();
    }
    let depth = rng.below(5);
    if depth == 0 {
        return b"/".to_vec();
    }
    let mut p = Vec::new();
    for _ in 0..depth {
        p.push(b'/');
        p.extend_from_slice((*rng.pick(SEGS)).as_bytes());
    }
    p
}

const GLOB_SEGS: &[&str] = &[
    "a",
    "b",
    "ab",
    "*",
    "**",
    "a*",
    "*b",
    "?",
    "?b",
    "[ab]",
    "[!a]*",
    "{a,b}",
    "{ab,*.log}",
    ".env",
    "x.log",
    "bin",
    "*.*",
    "c",
];

/// A random glob text (may fail to parse, e.g. `**` next to text).
pub fn random_glob(rng: &mut Rng) -> String {
    let depth = rng.below(4);
    if depth == 0 {
        return if rng.chance(50) {
            "/".into()
        } else {
            "/**".into()
        };
    }
    let mut g = String::new();
    for _ in 0..depth {
        g.push('/');
        g.push_str(rng.pick::<&str>(GLOB_SEGS));
    }
    g
}
