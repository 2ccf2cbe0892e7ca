//! Network by name on the real kernel: host-name grants enforced through
//! the session's own resolver. Everything runs in a network namespace the
//! test makes (loopback up, two documentation addresses on it) with a DNS
//! server of the test's own (`kapl-probe dns-serve`), so no packet leaves
//! the machine; the namespace is deleted at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A network namespace of the test's, deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("kapl-dns-{}-{n}", std::process::id());
        let ip = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap_or_else(|e| {
                panic!("`ip` (iproute2) is needed to make the test's network namespace: {e}")
            });
            assert!(o.status.success(), "ip {args:?}: {}", text(&o).1);
        };
        ip(&["netns", "add", &name]);
        let ns = Netns(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        for a in ["203.0.113.7/32", "203.0.113.8/32", "203.0.113.99/32"] {
            ip(&["-n", &name, "addr", "add", a, "dev", "lo"]);
        }
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            "2001:db8::7/128",
            "dev",
            "lo",
            "nodad",
        ]);
        ns
    }

    /// `PROGRAM ARGS` in the namespace (only the network is switched).
    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.0))
            .arg("--")
            .arg(program)
            .args(args)
            .env("PATH", "/usr/bin:/bin")
            .env_remove("KAPL_SESSION");
        c
    }

    fn kapl(&self, args: &[&str]) -> Output {
        self.cmd(kapl_run(), args)
            .output()
            .expect("nsenter kapl-run")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A child killed when dropped.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const ZONE: &[&str] = &[
    "pypi.test=203.0.113.7",
    "www.pypi.test=@pypi.test",
    "six.test=2001:db8::7",
    "short.test=203.0.113.8/1",
    "meta.test=169.254.169.254",
    "loop.test=127.0.0.1",
    "trap.test=203.0.113.99",
    "denied.test=203.0.113.7",
    "evil.test=@bad.never.test",
    "bad.never.test=203.0.113.7",
];

fn policy(probe: &str) -> String {
    format!(
        r#"use std.runtime
objective o {{
  bound {{
    net connect "*.test", "**.pypi.test" port 8443
    net connect 127.0.0.0/8 port 9
    use runtime.loader use runtime.names
    exec "{probe}"
  }}
  never {{ net connect 203.0.113.99, "*.never.test" port any }}
}}
plan p under o {{
  grant use runtime.loader
  grant use runtime.names
  grant exec "{probe}"
  step one {{
    grant net connect "pypi.test", "**.pypi.test", "six.test", "short.test", "meta.test",
                      "loop.test", "trap.test", "evil.test" port 8443
  }}
  step two after one {{ grant net connect "six.test" port 8443 }}
}}
"#
    )
}

/// The session, its namespace and DNS server.
struct Fixture {
    ns: Netns,
    _dns: Killed,
    id: String,
    audit: String,
    _t: Tmp,
}

impl Fixture {
    fn start() -> Fixture {
        let ns = Netns::new();
        // One directory per fixture: tests run side by side.
        let t = Tmp::new(&ns.0);
        let mut dns_args = vec![
            "dns-serve",
            "127.0.0.1:5300",
            "--listen",
            "203.0.113.7:8443",
            "--listen",
            "203.0.113.8:8443",
            "--listen",
            "203.0.113.99:8443",
            "--listen",
            "[2001:db8::7]:8443",
        ];
        dns_args.extend(ZONE);
        let mut child = ns
            .cmd(probe_bin(), &dns_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the test's DNS server");
        // It says when it listens.
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut line,
        )
        .expect("read");
        assert!(line.starts_with("dns-serve ok"), "dns server: {line:?}");
        let dns = Killed(child);
        let img = t.path("p.kapi");
        std::fs::write(&img, image_from_text("dns", &policy(probe_bin()))).unwrap();
        let audit = t.path("audit.jsonl");
        let o = ns.kapl(&[
            "session",
            "start",
            &img,
            "--plan",
            "p",
            "--audit",
            &audit,
            "--resolver",
            "127.0.0.1:5300",
        ]);
        assert_eq!(o.status.code(), Some(0), "session start: {}", text(&o).1);
        let id = text(&o).0.trim().to_string();
        Fixture {
            ns,
            _dns: dns,
            id,
            audit,
            _t: t,
        }
    }

    fn probe(&self, args: &[&str]) -> (String, String) {
        let mut a = vec!["exec", "--session", &self.id, "--", probe_bin()];
        a.extend(args);
        let o = self.ns.kapl(&a);
        text(&o)
    }

    fn records(&self) -> Vec<serde_json::Value> {
        records(self.audit.as_ref())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.ns.kapl(&["session", "stop", "--session", &self.id]);
    }
}

#[test]
fn names_are_resolved_learned_and_enforced_in_the_kernel() {
    let f = Fixture::start();
    // An allowed name: glibc's resolution goes to the session's resolver
    // (whatever resolv.conf names), the address is admitted, the connect
    // is allowed and its record names the name.
    let (out, err) = f.probe(&["resolve", "pypi.test"]);
    assert_eq!(out.trim(), "resolve pypi.test ok 203.0.113.7", "{err}");
    let (out, err) = f.probe(&["connect", "203.0.113.7:8443"]);
    assert_eq!(out.trim(), "connect ok", "{err}");
    // Another port of the same address is not granted.
    let (out, _) = f.probe(&["connect", "203.0.113.7:8444"]);
    assert!(out.contains(" refused "), "{out}");
    // A name no grant allows is refused by the resolver and never asked.
    let (out, err) = f.probe(&["resolve", "denied.test"]);
    assert_eq!(out.trim(), "resolve denied.test refused -1", "{err}");
    assert!(
        err.contains("denied: ") && err.contains("denied.test"),
        "{err}"
    );
    // A CNAME within the answer: the address is credited to the name asked.
    let (out, err) = f.probe(&["resolve", "www.pypi.test"]);
    assert_eq!(out.trim(), "resolve www.pypi.test ok 203.0.113.7", "{err}");
    // IPv6 answers.
    let (out, err) = f.probe(&["resolve", "six.test"]);
    assert_eq!(out.trim(), "resolve six.test ok 2001:db8::7", "{err}");
    let (out, err) = f.probe(&["connect", "[2001:db8::7]:8443"]);
    assert_eq!(out.trim(), "connect ok", "{err}");
    // Rebinding: a name that resolves to the metadata service, to
    // loopback, or into a `never` range admits nothing.
    for (name, addr) in [
        ("meta.test", "169.254.169.254:8443"),
        ("loop.test", "127.0.0.1:8443"),
        ("trap.test", "203.0.113.99:8443"),
    ] {
        let (out, err) = f.probe(&["resolve", name]);
        assert!(out.contains(" ok "), "{name}: {out} {err}");
        assert!(
            err.contains("denied: ") && err.contains(name),
            "{name}: {err}"
        );
        let (out, _) = f.probe(&["connect", addr]);
        assert!(out.contains(" refused "), "{name}: {out}");
    }
    // A CNAME chain through a `never` name admits nothing.
    let (_, err) = f.probe(&["resolve", "evil.test"]);
    assert!(err.contains("bad.never.test"), "{err}");
    // DNS over TCP, and a query sent to an arbitrary address on port 53:
    // both answered by the session's resolver, the answer appearing to
    // come from where it was sent.
    let (out, err) = f.probe(&["dns-tcp", "pypi.test", "192.0.2.1:53"]);
    assert_eq!(
        out.trim(),
        "dns-tcp pypi.test ok No Error 203.0.113.7 from 192.0.2.1:53",
        "{err}"
    );
    let (out, err) = f.probe(&["dns-udp", "denied.test", "198.51.100.1:53"]);
    assert_eq!(
        out.trim(),
        "dns-udp denied.test ok Query Refused  from 198.51.100.1:53",
        "{err}"
    );
    let (out, err) = f.probe(&["dns-udp", "short.test", "198.51.100.1:53"]);
    assert!(
        out.starts_with("dns-udp short.test ok No Error 203.0.113.8"),
        "{out} {err}"
    );
    // Port 53 elsewhere than the resolver gains nothing: a plain connect
    // to another port of that address is refused.
    let (out, _) = f.probe(&["udp-connect", "198.51.100.1:5353"]);
    assert!(out.contains(" refused "), "{out}");
    // An expired time to live: short.test's TTL is 1 s (the floor is 2 s).
    let (out, _) = f.probe(&["connect", "203.0.113.8:8443"]);
    assert_eq!(out.trim(), "connect ok");
    std::thread::sleep(Duration::from_millis(3200));
    let (out, _) = f.probe(&["connect", "203.0.113.8:8443"]);
    assert!(out.contains(" refused "), "after the TTL: {out}");
    // The records.
    let recs = f.records();
    let learned = recs
        .iter()
        .find(|r| r["verdict"] == "allow" && r["learned"]["name"] == "pypi.test")
        .unwrap_or_else(|| {
            panic!(
                "a connect record with the name it was learned for: {:#?}",
                recs.iter()
                    .filter(|r| r["verdict"] != "deny")
                    .map(|r| format!(
                        "{} {} {} {}",
                        r["verdict"], r["operation"], r["object"], r["learned"]
                    ))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(learned["mechanism"], "bpf");
    assert!(
        learned["learned"]["queried_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let refused = recs
        .iter()
        .find(|r| r["target"]["name"] == "denied.test" && r["verdict"] == "deny")
        .expect("a denial for the refused name");
    assert_eq!(refused["mechanism"], "resolver");
    assert_eq!(refused["step"], "one");
    assert_eq!(refused["objective"], "o");
    // A step switch drops what was learned.
    let o = f.ns.kapl(&["step", "--session", &f.id, "two"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let (out, _) = f.probe(&["connect", "[2001:db8::7]:8443"]);
    assert!(out.contains(" refused "), "learned in step one: {out}");
    let (out, _) = f.probe(&["resolve", "pypi.test"]);
    assert_eq!(out.trim(), "resolve pypi.test refused -1");
    let (out, _) = f.probe(&["resolve", "six.test"]);
    assert_eq!(out.trim(), "resolve six.test ok 2001:db8::7");
    let (out, _) = f.probe(&["connect", "[2001:db8::7]:8443"]);
    assert_eq!(out.trim(), "connect ok");
}

#[test]
fn a_query_flood_leaves_the_resolver_responsive_and_bounded() {
    let f = Fixture::start();
    let pid = supervisor_of(&f.id);
    let rss = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    let before = rss();
    // Four storms of 20,000 queries for names no grant allows, while a
    // command outside the storm resolves and connects.
    let mut storms = Vec::new();
    for _ in 0..4 {
        let mut a = vec![
            "exec".to_string(),
            "--session".into(),
            f.id.clone(),
            "--".into(),
            probe_bin().into(),
        ];
        a.extend(["dns-flood".into(), "20000".into(), "192.0.2.53:53".into()]);
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        storms.push(Killed(
            f.ns.cmd(kapl_run(), &args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let t0 = Instant::now();
    let (out, err) = f.probe(&["resolve", "pypi.test"]);
    let took = t0.elapsed();
    // glibc gives up after two tries of 5 s: an answer at all is the
    // resolver staying responsive (how long it took is printed, not
    // asserted: timing belongs to benchmarks).
    assert_eq!(out.trim(), "resolve pypi.test ok 203.0.113.7", "{err}");
    eprintln!("resolution during the storm took {took:?}");
    for mut s in storms {
        let _ = s.0.wait();
    }
    let after = rss();
    assert!(
        after < before + 32 * 1024,
        "the supervisor grew from {before} kB to {after} kB"
    );
    let (out, _) = f.probe(&["resolve", "six.test"]);
    assert_eq!(out.trim(), "resolve six.test ok 2001:db8::7");
}
