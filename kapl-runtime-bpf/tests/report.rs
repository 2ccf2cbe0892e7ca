//! `kapl-run report` in a real browser: Debian's headless Chromium loads
//! the page from a file:// URL, runs its script, and the test reads the
//! rendered DOM (`--dump-dom`) and keeps a screenshot under
//! `target/test-artifacts/`. A machine without Chromium fails these tests
//! (scripts/setup installs it); they never pass vacuously.
//!
//! The session test needs root (a real session); the hostile-audit and
//! 100,000-record tests need nothing of the kernel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kapl_syntax::ast::Right;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where artifacts go: `target/test-artifacts/`.
fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("test-artifacts");
    std::fs::create_dir_all(&d).expect("mkdir test-artifacts");
    d
}

/// Runs headless Chromium on `page` with a fresh profile in `t`: the DOM
/// after the page's scripts ran, and with `shot` a screenshot there.
fn chromium(t: &Tmp, page: &Path, shot: Option<(&Path, &str)>) -> String {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the report's browser tests need Debian's `chromium` package (scripts/setup installs it)"
    );
    let profile = t.0.join(format!("chromium-profile-{}", shot.is_some()));
    let url = format!("file://{}", page.display());
    let mut c = Command::new("/usr/bin/timeout");
    c.args(["180", CHROMIUM])
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some((png, size)) => {
            c.arg(format!("--screenshot={}", png.display()))
                .arg(format!("--window-size={size}"));
        }
        None => {
            c.arg("--dump-dom");
        }
    }
    let o = c.arg(&url).output().expect("run chromium");
    assert!(
        o.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    if let Some((png, _)) = shot {
        assert!(png.is_file(), "no screenshot {}", png.display());
    }
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn report(args: &[&str]) -> String {
    let mut a = vec!["report"];
    a.extend(args);
    let o = kapl(&a);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "kapl-run report: {err}");
    out
}

/// A short session's story as the demo tells it: a read allowed, a secret
/// refused, a second step; the report found by `--session` renders its
/// steps, commands and the denial's details.
#[test]
fn a_session_report_renders_its_steps_commands_and_denials() {
    let t = Tmp::new("report-session");
    t.write("logs/deploy.log", "error: port\n");
    t.write("secret/.env", "PASSWORD=x\n");
    let spec = plan_p(
        loader(),
        vec![
            step(
                "read_logs",
                &[],
                vec![
                    G::Fs(&[Right::Read], vec![t.path("logs/**")], vec![]),
                    G::Exec(vec!["/usr/bin/cat".into(), "/usr/bin/grep".into()]),
                ],
            ),
            step(
                "review",
                &[0],
                vec![
                    G::Fs(&[Right::Read], vec![t.path("logs/*.log")], vec![]),
                    G::Exec(vec!["/usr/bin/head".into()]),
                    G::Exec(vec!["/usr/bin/tac".into()]),
                ],
            ),
        ],
    );
    let s = Session::of_spec(&t, spec);
    assert!(
        s.exec(&["cat", &t.path("logs/deploy.log")])
            .status
            .success()
    );
    assert!(!s.exec(&["cat", &t.path("secret/.env")]).status.success());
    assert!(s.step("review").status.success());
    assert!(
        s.exec(&["head", "-n1", &t.path("logs/deploy.log")])
            .status
            .success()
    );
    let id = s.id.clone();
    s.stop();
    // The stopped session is found by id, with its image.
    let page = t.0.join("report.html");
    let out = report(&["--session", &id, "-o", page.to_str().unwrap()]);
    assert!(out.starts_with("report: "), "{out}");
    let dom = chromium(&t, &page, None);
    for want in [
        "step read_logs",
        "step review",
        "/usr/bin/cat",
        "/usr/bin/head",
        "class=\"verdict deny\"",
        &format!("{}/.env", t.path("secret")),
        "no grant of step read_logs",
        // Never used: tac.
        "exec \"/usr/bin/tac\"",
        "No losses",
    ] {
        assert!(dom.contains(want), "the rendered page lacks {want:?}");
    }
    assert!(dom.contains("data-ms=\""), "the script did not finish");
    // A bar per command with its argv and exit status; the denial is a
    // mark on the bar of the command that made it, and only there.
    let row = |argv: &str| -> &str {
        dom.split("<div class=\"row cmd\"")
            .skip(1)
            .find(|r| r.contains(&format!("<code>{argv}</code>")))
            .unwrap_or_else(|| panic!("no command bar for {argv:?}"))
    };
    let ok = row(&format!("cat {}", t.path("logs/deploy.log")));
    assert!(ok.contains(">exit 0 · "), "{ok}");
    let denied = row(&format!("cat {}", t.path("secret/.env")));
    assert!(denied.contains(">exit 1 · "), "{denied}");
    assert!(denied.contains("class=\"mk deny\""), "{denied}");
    let head = row(&format!("head -n1 {}", t.path("logs/deploy.log")));
    assert!(head.contains(">exit 0 · "), "{head}");
    assert_eq!(dom.matches("<div class=\"row cmd\"").count(), 3);
    // Which bar the `.env` denial is a mark on: the page's data says (a
    // mark lists its decisions); the first `cat` may have quiet denials of
    // its own (a loader's), never this one.
    let html = std::fs::read_to_string(&page).unwrap();
    let start = html.find("id=\"kapl-data\">").unwrap() + "id=\"kapl-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
    let env = format!("{}/.env", t.path("secret"));
    let x = data["details"]
        .as_array()
        .unwrap()
        .iter()
        .position(|d| d["object"] == env.as_str() && d["deny"] == true)
        .expect("the .env denial's detail");
    let cmds = data["sessions"][0]["segments"][0]["cmds"]
        .as_array()
        .unwrap();
    let on = |c: &serde_json::Value| {
        c["marks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["x"].as_array().unwrap().iter().any(|v| v == x))
    };
    let holders: Vec<&str> = cmds
        .iter()
        .filter(|c| on(c))
        .map(|c| c["argv"].as_str().unwrap())
        .collect();
    assert_eq!(holders, [format!("cat {env}")]);
    let png = artifacts().join("report.png");
    chromium(&t, &page, Some((&png, "1280,1800")));
    // A session nobody remembers: a coded error.
    let o = kapl(&["report", "--session", "feedf00d"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(text(&o).1.contains("error[KAPL0813]"), "{}", text(&o).1);
}

/// Paths, command names and policy text full of markup render as text
/// and run nothing: each would set the title or add a `#pwned` element.
#[test]
fn a_hostile_audit_renders_as_text_and_runs_nothing() {
    let t = Tmp::new("report-hostile");
    let evil = "/srv/<script>document.title='pwned';document.body.appendChild(document.createElement('i')).id='pwned'</script>\"'&amp;/x";
    let img = image_from_text(
        "hostile",
        r#"objective o {
  about "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
  bound { fs read "/srv/**" }
}
plan p under o {
  about "</details><script>document.title='pwned'</script>"
  step a { grant fs read "/srv/<b>/**" }
}
"#,
    );
    std::fs::write(t.0.join("h.kapi"), img).unwrap();
    let mut r = kapl_runtime::session_report::synthetic::record(0, 7, "deny", "read", evil);
    r["comm"] = "<img src=x onerror=document.title='pwned'>".into();
    r["step"] = "</script><script>document.title='pwned'</script>".into();
    r["reason"] = "<iframe src=javascript:document.title='pwned'>".into();
    let mut audit = format!("{r}\n");
    audit.push_str("{\"verdict\":\"<script>document.title='pwned'</script>\"}\n");
    std::fs::write(t.0.join("audit.jsonl"), audit).unwrap();
    let page = t.0.join("hostile.html");
    report(&[
        t.0.join("audit.jsonl").to_str().unwrap(),
        "--image",
        t.0.join("h.kapi").to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    let dom = chromium(&t, &page, None);
    let title = dom
        .split("<title>")
        .nth(1)
        .and_then(|s| s.split("</title>").next())
        .unwrap_or("");
    assert_eq!(title, "KAPL session report: audit.jsonl");
    assert!(!dom.contains("id=\"pwned\""), "a script ran");
    assert!(
        !dom.contains("<img") && !dom.contains("<iframe"),
        "markup got in"
    );
    // The strings are there, as text.
    assert!(dom.contains("/srv/&lt;script&gt;document.title='pwned'"));
    assert!(dom.contains("1 records not understood"));
    assert!(dom.contains("data-ms=\""), "the script did not finish");
    chromium(
        &t,
        &page,
        Some((&artifacts().join("report-hostile.png"), "1280,1200")),
    );
}

/// 100,000 records: the page stays under 3 MB and renders; the numbers
/// (build time, size, time to rendered) are printed, not asserted (see
/// `cargo bench -p kapl-runtime --bench session_report`).
#[test]
fn a_hundred_thousand_records_render() {
    let t = Tmp::new("report-100k");
    let audit = t.0.join("audit.jsonl");
    std::fs::write(
        &audit,
        kapl_runtime::session_report::synthetic::synthetic(100_000),
    )
    .unwrap();
    let page = t.0.join("big.html");
    let started = std::time::Instant::now();
    let out = report(&[audit.to_str().unwrap(), "-o", page.to_str().unwrap()]);
    let built = started.elapsed();
    // 100,000 decisions and 479 command records (240 starts, 239 ends).
    assert!(out.contains("100479 records"), "{out}");
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size < 3 << 20, "{size} bytes");
    let dom = chromium(&t, &page, None);
    for s in [
        "step step0",
        "step step3",
        "Refused: 10000 denials",
        "60 commands",
        "running / no end record",
    ] {
        assert!(dom.contains(s), "{s}");
    }
    let rendered = dom
        .split("data-ms=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the script did not finish");
    eprintln!(
        "100,000 records: page {size} bytes, built by kapl-run in {built:.2?}, rendered by Chromium {rendered} ms after navigation"
    );
}
