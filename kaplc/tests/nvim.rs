//! One real editor end to end: Neovim (headless) starts `kaplc lsp` on
//! `overreach.kapl` and reads back the diagnostics it shows — the prover's
//! four errors with their witnesses.

#![allow(clippy::panic, reason = "tests fail loudly")]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The client script: Neovim 0.7's API (`vim.lsp.start_client`), which later
/// versions still provide.
const SCRIPT: &str = r#"
local file, out, kaplc = vim.env.KAPL_FILE, vim.env.KAPL_OUT, vim.env.KAPLC
vim.cmd('edit ' .. vim.fn.fnameescape(file))
local buf = vim.api.nvim_get_current_buf()
local id = vim.lsp.start_client({
  name = 'kapl',
  cmd = { kaplc, 'lsp' },
  root_dir = vim.fn.fnamemodify(file, ':h'),
})
if not id then
  local f = io.open(out, 'w'); f:write('{"error": "start_client failed"}'); f:close()
  vim.cmd('qa!')
end
vim.lsp.buf_attach_client(buf, id)
local function errors()
  local n = 0
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    if d.severity == vim.diagnostic.severity.ERROR then n = n + 1 end
  end
  return n
end
local ok = vim.wait(60000, function() return errors() >= 4 end, 50)
-- Hover on a step name, through the editor's own request path.
local hover = vim.lsp.buf_request_sync(buf, 'textDocument/hover', {
  textDocument = { uri = vim.uri_from_bufnr(buf) },
  position = { line = tonumber(vim.env.KAPL_HOVER_LINE), character = tonumber(vim.env.KAPL_HOVER_COL) },
}, 20000)
local hover_text = ''
for _, r in pairs(hover or {}) do
  if r.result and r.result.contents then hover_text = r.result.contents.value or '' end
end
local result = {}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  local lsp = (d.user_data or {}).lsp or {}
  table.insert(result, {
    lnum = d.lnum, col = d.col, severity = d.severity,
    message = d.message, source = d.source,
    code = d.code or lsp.code,
    witness = lsp.data,
  })
end
local f = io.open(out, 'w')
f:write(vim.fn.json_encode({ ok = ok, diagnostics = result, hover = hover_text }))
f:close()
vim.lsp.stop_client(id)
vim.cmd('qa!')
"#;

#[test]
fn neovim_shows_the_provers_diagnostics_for_overreach() {
    let nvim = Command::new("nvim").arg("--version").output();
    let version = match nvim {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => panic!(
            "Neovim is not installed: this test needs `nvim` (apt-get install neovim; scripts/setup installs it)"
        ),
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/examples/overreach.kapl");
    let text = std::fs::read_to_string(&example).unwrap_or_else(|e| panic!("{e}"));
    let file = tmp.path().join("overreach.kapl");
    std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
    let script = tmp.path().join("client.lua");
    std::fs::write(&script, SCRIPT).unwrap_or_else(|e| panic!("{e}"));
    let out = tmp.path().join("out.json");
    // Hover target: the name of step `look_around`.
    let (hl, hc) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("  step look_around {").map(|c| (i, c + 8)))
        .unwrap_or_else(|| panic!("step look_around not in the example"));

    let mut child = Command::new("nvim")
        .args(["--headless", "--clean", "-n", "-i", "NONE", "-c"])
        .arg(format!("luafile {}", script.display()))
        .env("KAPL_FILE", &file)
        .env("KAPL_OUT", &out)
        .env("KAPLC", env!("CARGO_BIN_EXE_kaplc"))
        .env("KAPL_HOVER_LINE", hl.to_string())
        .env("KAPL_HOVER_COL", hc.to_string())
        .env("XDG_STATE_HOME", tmp.path())
        .env("XDG_DATA_HOME", tmp.path())
        .env("XDG_CACHE_HOME", tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start nvim: {e}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nvim did not finish within 120 s");
            }
        }
    }
    let report = std::fs::read_to_string(&out).unwrap_or_else(|e| {
        let mut err = String::new();
        if let Some(mut s) = child.stderr.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut err);
        }
        panic!("nvim wrote no report ({e}); {version}\nstderr: {err}")
    });
    let report: Value = serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}"));
    assert_eq!(
        report["ok"], true,
        "diagnostics never reached 4 errors: {report:#}"
    );
    let diags = report["diagnostics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let errors: Vec<&Value> = diags.iter().filter(|d| d["severity"] == 1).collect();
    assert_eq!(errors.len(), 4, "{report:#}");
    // The four places the example's header names, 0-based lines as Neovim
    // counts them.
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in the example"))
    };
    let mut want = vec![
        line_of("fs read, write \"/etc/web/**\""),
        line_of("grant fs read \"/srv/**\""),
        line_of("grant fs read \"/srv/web/config/*\""),
        line_of("grant net connect 10.20.0.0/16 port any"),
    ];
    want.sort_unstable();
    let mut have: Vec<usize> = errors
        .iter()
        .filter_map(|d| d["lnum"].as_u64())
        .map(|l| l as usize)
        .collect();
    have.sort_unstable();
    assert_eq!(have, want, "{report:#}");
    for e in &errors {
        assert_eq!(e["source"], "kapl");
        assert!(
            e["code"].as_str().is_some_and(|c| c.starts_with("KAPL04")),
            "{e}"
        );
        assert!(e["witness"]["kind"].is_string(), "no witness: {e}");
        assert!(
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("witness: ")),
            "{e}"
        );
    }
    // The witness for the `never` breach is the one the header names.
    assert!(
        errors
            .iter()
            .any(|e| e["witness"]["path"] == "/srv/web/config/.env"),
        "{report:#}"
    );
    let hover = report["hover"].as_str().unwrap_or("");
    assert!(hover.contains("step look_around (plan wander)"), "{hover}");
    assert!(hover.contains("grant fs read \"/srv/**\""), "{hover}");
}
