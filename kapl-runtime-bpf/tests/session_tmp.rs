//! The session's private temporary directory on the real kernel (root):
//! `runtime.tmp` grants it, commands find it in `TMPDIR`, each session sees
//! its own at the same path, other files in /tmp stay out of reach, and
//! nothing is left behind (no directory, no mount in the host).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
use common::*;

fn policy() -> String {
    r#"use std.runtime
objective o {
  bound {
    exec "/usr/bin/{dash,cat,ls,python3.11}"
    fs read "/usr/lib/python3.11/**"
    use runtime.loader
    use runtime.tmp
  }
}
plan p under o {
  grant use runtime.loader
  grant use runtime.tmp
  step s {
    grant exec "/usr/bin/{dash,cat,ls,python3.11}"
    grant fs read "/usr/lib/python3.11/**"
  }
}
"#
    .into()
}

fn host_mounts_tmp() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/run/kapl-tmp"))
}

#[test]
fn each_session_has_its_own_temporary_directory() {
    let t = Tmp::new("session-tmp");
    // Another user's file in /tmp.
    let other = t.path("other-users-file");
    std::fs::write(&other, "not yours\n").unwrap();
    let img = t.path("p.kapi");
    std::fs::write(&img, image_from_text("tmp", &policy())).unwrap();
    let a = Session::start(&img, Some(&t.path("audit.jsonl")));
    let b = Session::start(&img, None);

    let o = a.exec(&[
        "/usr/bin/python3.11",
        "-c",
        "import tempfile, os\nfd, p = tempfile.mkstemp()\nos.write(fd, b'x')\nd = tempfile.mkdtemp()\nopen(d + '/f', 'w').write('y')\nprint(os.environ['TMPDIR'], os.environ['TMP'], os.environ['TEMP'])\nprint(len(os.listdir('/run/kapl-tmp')))",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        out, "/run/kapl-tmp /run/kapl-tmp /run/kapl-tmp\n2\n",
        "{err}"
    );
    // The other session sees its own, empty, at the same path.
    let o = b.exec(&["/usr/bin/ls", "-A", "/run/kapl-tmp"]);
    assert_eq!(text(&o), (String::new(), String::new()));
    // Files in /tmp outside the session's directory stay out of reach.
    let o = a.exec(&["/usr/bin/cat", &other]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("denied: cat read"), "{}", text(&o).1);
    // The real directories exist while the sessions run, owner-only.
    let mine: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&format!("kapl-tmp-{}-", a.id))
                || n.starts_with(&format!("kapl-tmp-{}-", b.id))
        })
        .collect();
    assert_eq!(mine.len(), 2);
    for e in &mine {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(e.metadata().unwrap().permissions().mode() & 0o777, 0o700);
    }
    assert!(
        !host_mounts_tmp(),
        "the session's mount leaked into the host"
    );
    let paths: Vec<_> = mine.iter().map(std::fs::DirEntry::path).collect();
    a.stop();
    b.stop();
    for p in paths {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    assert!(!host_mounts_tmp());
    assert_no_leftover_cgroups();
}
