//! Host-name tables: a plan's name grants become sorted name entries per
//! step and protocol, the `never` rules above it its exclusions and never
//! names, and the image answers the resolver's questions as the rules say.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail by panicking"
)]

use kapl_codegen::{Options, compile};
use kapl_image::{PortGrant, Proto};

const POLICY: &str = r#"
objective o {
  bound {
    net connect "**.org" port 443
    net connect any port 80
  }
  never {
    net connect 169.254.0.0/16, 151.101.64.0/18 port any
    net connect "*.evil.org" port 443
  }
}
plan p under o {
  grant net connect "pypi.org" port 443
  step a {
    grant net connect "*.pythonhosted.org", "PyPI.org." port 443
  }
  step b {
    grant net connect "example.org" port 80
  }
}
"#;

#[test]
fn name_tables_follow_the_rules() {
    let mut loader = kapl_check::MemoryLoader::new().with("/p.kapl", POLICY);
    let fe = kapl_check::check_front(&mut loader, "/p.kapl");
    let policy = fe.policy.expect("checks");
    let opts = Options {
        policy: "p".into(),
        compiler: "test".into(),
    };
    let image = compile(&policy, &fe.sources, &opts).unwrap().image;
    let back = kapl_image::read(&kapl_image::write(&image).unwrap()).unwrap();
    assert_eq!(back, image);
    let (_, plan) = image.plan("p").unwrap();
    let keys: Vec<(u32, Proto, &str)> = plan
        .names
        .iter()
        .map(|e| (e.step, e.proto, e.pattern.as_str()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (0, Proto::Tcp, "*.pythonhosted.org"),
            (0, Proto::Tcp, "pypi.org"),
            (0, Proto::Udp, "*.pythonhosted.org"),
            (0, Proto::Udp, "pypi.org"),
            (1, Proto::Tcp, "example.org"),
            (1, Proto::Tcp, "pypi.org"),
            (1, Proto::Udp, "example.org"),
            (1, Proto::Udp, "pypi.org"),
        ]
    );
    // The plan-wide grant (id 0) is the lowest one allowing pypi.org.
    assert_eq!(
        plan.name_ports(0, Proto::Tcp, "pypi.org"),
        vec![PortGrant {
            lo: 443,
            hi: 443,
            grant: 0
        }]
    );
    assert_eq!(
        plan.name_ports(0, Proto::Tcp, "x.pythonhosted.org")[0].grant,
        1
    );
    assert!(
        plan.name_ports(1, Proto::Tcp, "x.pythonhosted.org")
            .is_empty()
    );
    let ip = |s: &str| s.parse().unwrap();
    assert!(plan.name_admits(Proto::Tcp, ip("151.101.0.223"), 443));
    assert!(
        !plan.name_admits(Proto::Tcp, ip("151.101.65.223"), 443),
        "never"
    );
    assert!(!plan.name_admits(Proto::Udp, ip("169.254.169.254"), 53));
    assert!(plan.name_never(Proto::Tcp, "a.evil.org"));
    assert!(!plan.name_never(Proto::Tcp, "evil.org"));
    let ev = kapl_image::Evaluator::new(plan);
    assert_eq!(
        ev.decide_name(
            0,
            Proto::Tcp,
            "files.pythonhosted.org",
            ip("151.101.0.223"),
            443
        )
        .grant(),
        Some(1)
    );
}

#[test]
fn objective_levels_hold_their_name_rules() {
    let text = POLICY.split("plan p").next().unwrap();
    let mut loader = kapl_check::MemoryLoader::new().with("/o.kapl", text);
    let fe = kapl_check::check_front(&mut loader, "/o.kapl");
    let policy = fe.policy.expect("checks");
    let opts = Options {
        policy: "o".into(),
        compiler: "test".into(),
    };
    let image = compile(&policy, &fe.sources, &opts).unwrap().image;
    let t = image.objective.as_ref().unwrap();
    let pats: Vec<(u32, &str)> = t.levels[0]
        .names
        .iter()
        .filter(|e| e.proto == Proto::Tcp)
        .map(|e| (e.step, e.pattern.as_str()))
        .collect();
    assert_eq!(pats, vec![(0, "**.org"), (1, "*.evil.org")]);
    let back = kapl_image::read(&kapl_image::write(&image).unwrap()).unwrap();
    assert_eq!(back, image);
}
