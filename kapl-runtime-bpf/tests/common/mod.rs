//! Test helpers: build real images (kapl-check IR → kapl-codegen → kapl-image
//! bytes) for policies rooted in a temporary directory, run `kapl-run` (one
//! shot, or a [`Session`] driven through start/exec/step/stop), read its
//! audit file. The IR is built by hand over a generated policy text so
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
            names: Vec::new(),
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
                    names: Vec::new(),
                    op: NetOp::Connect,
                    addrs: any4.clone(),
                    ports: vec![PortRange { lo: 0, hi: 65535 }],
                }),
                all(RuleKind::Net {
                    names: Vec::new(),
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

/// The records of an audit file, each checked against the committed
/// schema (`schemas/audit-record.schema.json`): every kernel test that
/// reads records validates the runtime's real output.
pub fn records(audit: &Path) -> Vec<serde_json::Value> {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/audit-record.schema.json");
        let text = std::fs::read_to_string(&p).expect("schemas/audit-record.schema.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
        jsonschema::validator_for(&v).expect("schema compiles")
    });
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let errors: Vec<String> = schema.iter_errors(&v).map(|e| e.to_string()).collect();
            assert!(
                errors.is_empty(),
                "audit record fails its schema: {errors:?}\n{l}"
            );
            v
        })
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

/// One step `look` that may read `glob` and run `programs`: the policy of
/// the tests that read files with `cat`.
pub fn read_step(glob: String, programs: &[&str]) -> PolicySpec {
    one_step(
        vec![],
        "look",
        vec![
            G::Fs(&[Right::Read], vec![glob], vec![]),
            G::Exec(programs.iter().map(|p| p.to_string()).collect()),
        ],
    )
}

/// The probe binary (`kapl-probe`, its own crate: the attacker is not part
/// of the shipped runtime): each of its subcommands tries one action and
/// prints its outcome. It is built beside kapl-run (`scripts/test` builds it
/// first); a test that finds it missing fails and says how to build it.
pub fn probe_bin() -> &'static str {
    static PROBE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROBE.get_or_init(|| {
        let p = Path::new(kapl_run()).with_file_name("kapl-probe");
        assert!(
            p.is_file(),
            "the escape suite's attacker {} is missing: build it with `cargo build -p kapl-probe` (scripts/test does) before `cargo test -p kapl-runtime-bpf`",
            p.display()
        );
        p.display().to_string()
    })
}

/// The grant that lets a step run the probe.
pub fn probe_exec() -> G {
    G::Exec(vec![probe_bin().into()])
}

/// Runs `kapl-run ARGS` with a fixed PATH and no inherited session.
pub fn kapl(args: &[&str]) -> Output {
    Command::new(kapl_run())
        .args(args)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("KAPL_SESSION")
        .output()
        .expect("run kapl-run")
}

/// A command's (stdout, stderr) as text.
pub fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Step `name`, which comes after the steps of index `after`.
pub fn step(name: &'static str, after: &[u32], grants: Vec<G>) -> StepSpec {
    StepSpec {
        name,
        after: after.to_vec(),
        grants,
    }
}

/// Plan `p` with plan-wide `plan_grants` and `steps`.
pub fn plan_p(plan_grants: Vec<G>, steps: Vec<StepSpec>) -> PolicySpec {
    PolicySpec {
        plan: "p",
        plan_grants,
        steps,
    }
}

/// Plan `p` with plan-wide `plan_grants` and one step `name`.
pub fn one_step(plan_grants: Vec<G>, name: &'static str, grants: Vec<G>) -> PolicySpec {
    plan_p(plan_grants, vec![step(name, &[], grants)])
}

/// Writes `spec`'s image to `file` in `t`; returns its path.
pub fn write_image(t: &Tmp, file: &str, spec: PolicySpec) -> String {
    let img = t.path(file);
    std::fs::write(&img, image(spec)).expect("write image");
    img
}

/// A TCP listener on 127.0.0.1 and its port.
pub fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

/// The pid of session `id`'s supervisor, from the registry.
pub fn supervisor_of(id: &str) -> i32 {
    std::fs::read_to_string(kapl_runtime_bpf::control::registry_dir().join(id))
        .expect("registry entry")
        .trim()
        .parse()
        .expect("pid")
}

/// A running session of plan `p`: its id, its supervisor's pid and its
/// audit file; stopped when dropped.
pub struct Session {
    pub id: String,
    pub pid: i32,
    pub audit: Option<String>,
    _guard: SessionGuard,
}

impl Session {
    /// Starts a session of plan `p` of `img`.
    #[track_caller]
    pub fn start(img: &str, audit: Option<&str>) -> Session {
        Session::start_with_report(img, audit).0
    }

    /// Starts a session; also returns what `session start` wrote on
    /// stderr (the precision report).
    #[track_caller]
    pub fn start_with_report(img: &str, audit: Option<&str>) -> (Session, String) {
        let mut args = vec!["session", "start", img, "--plan", "p"];
        if let Some(a) = audit {
            args.extend(["--audit", a]);
        }
        let o = kapl(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(0), "session start: {err}");
        let id = out.trim().to_string();
        let guard = SessionGuard(id.clone());
        assert_eq!(id.len(), 8, "the id alone on stdout: {out:?}");
        let pid = supervisor_of(&id);
        (
            Session {
                id,
                pid,
                audit: audit.map(str::to_string),
                _guard: guard,
            },
            err,
        )
    }

    /// Writes `spec`'s image into `t` and starts it, auditing to
    /// `t/audit.jsonl`.
    #[track_caller]
    pub fn of_spec(t: &Tmp, spec: PolicySpec) -> Session {
        Session::of_spec_with_report(t, spec).0
    }

    /// [`Session::of_spec`], also returning the precision report.
    #[track_caller]
    pub fn of_spec_with_report(t: &Tmp, spec: PolicySpec) -> (Session, String) {
        let img = write_image(t, "p.kapi", spec);
        Session::start_with_report(&img, Some(&t.path("audit.jsonl")))
    }

    /// `kapl-run exec` of `cmd` in the session.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut a = vec!["exec", "--session", &self.id, "--"];
        a.extend(cmd);
        kapl(&a)
    }

    /// `kapl-run exec` of `kapl-probe ARGS` in the session.
    pub fn probe(&self, args: &[&str]) -> Output {
        let mut a = vec![probe_bin()];
        a.extend(args);
        self.exec(&a)
    }

    /// `kapl-run exec` of `cmd` in the session, started in the background
    /// with its output discarded.
    pub fn spawn(&self, cmd: &[&str]) -> std::process::Child {
        Command::new(kapl_run())
            .args(["exec", "--session", &self.id, "--"])
            .args(cmd)
            .env("PATH", "/usr/bin:/bin")
            .env_remove("KAPL_SESSION")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn kapl-run exec")
    }

    /// `kapl-run step` to `step`.
    pub fn step(&self, step: &str) -> Output {
        kapl(&["step", "--session", &self.id, step])
    }

    /// The records of the session's audit file.
    pub fn records(&self) -> Vec<serde_json::Value> {
        records(
            self.audit
                .as_deref()
                .expect("a session with --audit")
                .as_ref(),
        )
    }

    /// The session's cgroup.
    pub fn cgroup(&self) -> PathBuf {
        kapl_runtime_bpf::cgroup::cgroup2_root()
            .expect("cgroup v2")
            .join(format!("kapl-{}", self.id))
    }

    /// `kapl-run status` (asserted to succeed): its stdout.
    #[track_caller]
    pub fn status(&self) -> String {
        let o = kapl(&["status", "--session", &self.id]);
        assert_eq!(o.status.code(), Some(0), "status: {}", text(&o).1);
        text(&o).0
    }

    /// `kapl-run session stop` (asserted to succeed): its summary.
    #[track_caller]
    pub fn stop(self) -> String {
        let o = kapl(&["session", "stop", "--session", &self.id]);
        assert_eq!(o.status.code(), Some(0), "session stop: {}", text(&o).1);
        text(&o).0
    }
}

/// Every pid in a cgroup tree.
pub fn tree_pids(p: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_to_string(p.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                v.extend(tree_pids(&e.path()));
            }
        }
    }
    v
}

/// Every cgroup directory in a tree (the root included).
pub fn tree_cgroups(p: &Path) -> usize {
    if !p.is_dir() {
        return 0;
    }
    1 + std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| tree_cgroups(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

/// Polls `f` every 10 ms until it holds; fails naming `what` if it does
/// not within `timeout`. Returns how long it took.
#[track_caller]
pub fn wait_until(
    what: &str,
    timeout: std::time::Duration,
    mut f: impl FnMut() -> bool,
) -> std::time::Duration {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < timeout, "{what}: not within {timeout:?}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    t.elapsed()
}

/// A UDP socket on 127.0.0.1 and its port.
pub fn udp_socket() -> (std::net::UdpSocket, u16) {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = u.local_addr().expect("local addr").port();
    (u, port)
}

/// A TCP port of 127.0.0.1 that was free a moment ago (its listener is
/// closed again).
pub fn free_port() -> u16 {
    listener().1
}

/// A grant of `op` to 127.0.0.1 on `port` alone.
pub fn loopback(op: NetOp, port: u16) -> G {
    G::Net(op, vec![("127.0.0.1".into(), 32)], vec![(port, port)])
}
