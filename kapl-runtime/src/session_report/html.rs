//! The page: the header (counts, losses, lines not understood, the policy
//! from the images) written here with every string HTML-escaped, and the
//! aggregate as one JSON blob in a `<script type="application/json">`
//! (with `<`, `>` and `&` written as `\u003c`, `\u003e`, `\u0026`, so no
//! string can close the element) that `report.js` renders with text nodes
//! only. The page loads nothing: its style and script are inline, and its
//! Content-Security-Policy allows that one script (by hash) and nothing
//! else, so markup that slipped into the page still could not run.

use super::{Data, NamedImage};
use kapl_image::Image;
use std::fmt::Write;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// `s` with `& < > " '` escaped, for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// JSON safe inside a `<script>` element: `<`, `>` and `&` (which occur
/// only inside strings) as escapes, and the line separators too.
pub fn script_json(v: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut o = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => o.push_str("\\u003c"),
            '>' => o.push_str("\\u003e"),
            '&' => o.push_str("\\u0026"),
            '\u{2028}' => o.push_str("\\u2028"),
            '\u{2029}' => o.push_str("\\u2029"),
            c => o.push(c),
        }
    }
    o
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut o = String::new();
    for ch in bytes.chunks(3) {
        let b = [ch[0], *ch.get(1).unwrap_or(&0), *ch.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= ch.len() {
                o.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                o.push('=');
            }
        }
    }
    o
}

fn one_line(s: &str) -> String {
    crate::report::flat(s)
}

fn rules(o: &mut String, sources: &[String], all: &[kapl_image::RuleText], never: bool) {
    let rs: Vec<_> = all.iter().filter(|r| r.never == never).collect();
    if rs.is_empty() {
        return;
    }
    let _ = write!(o, "<div><b>{}</b>", if never { "never" } else { "bound" });
    let file_of = |r: &kapl_image::RuleText| {
        sources
            .get(r.source.file as usize)
            .map_or("?", String::as_str)
    };
    // The standard library's rules (`use runtime.loader`) fold away.
    let (lib, own): (Vec<_>, Vec<_>) = rs.into_iter().partition(|r| file_of(r).starts_with('<'));
    let rule = |o: &mut String, r: &kapl_image::RuleText| {
        let _ = write!(
            o,
            "<div class=\"rule\"><code>{}</code> <span class=\"src\">{}:{}</span></div>",
            esc(&one_line(&r.text)),
            esc(file_of(r)),
            r.source.line
        );
    };
    for r in own {
        rule(o, r);
    }
    if !lib.is_empty() {
        let _ = write!(
            o,
            "<details class=\"rule\"><summary>{} rules from the standard library</summary>",
            lib.len()
        );
        for r in lib {
            rule(o, r);
        }
        o.push_str("</details>");
    }
    o.push_str("</div>");
}

fn grant_line(o: &mut String, img: &Image, g: u32) {
    if let Some(r) = crate::report::grant_ref(img, g) {
        let _ = write!(
            o,
            "<div class=\"rule\"><code>{}</code> <span class=\"src\">{}</span></div>",
            esc(&one_line(&r.text)),
            esc(&r.source)
        );
    }
}

fn image_section(o: &mut String, ni: &NamedImage<'_>) {
    let img = ni.image;
    let _ = write!(
        o,
        "<div class=\"card\"><h3>image <code>{}</code>: policy <code>{}</code></h3><div class=\"meta\">written by {}; sources: {}</div>",
        esc(ni.file),
        esc(&img.meta.policy),
        esc(&img.meta.compiler),
        esc(&img.meta.sources.join(", "))
    );
    if !img.meta.params.is_empty() {
        let p: Vec<String> = img
            .meta
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = write!(
            o,
            "<div>parameters: <code>{}</code></div>",
            esc(&p.join(", "))
        );
    }
    if let Some(a) = &img.against {
        let _ = write!(
            o,
            "<div class=\"meta\">built against {} (objective identity {})</div>",
            esc(&a.file),
            kapl_image::hex(&a.identity)
        );
    }
    let sources = &img.meta.sources;
    for (i, ob) in img.objectives.iter().enumerate() {
        let _ = write!(o, "<h4>objective <code>{}</code></h4>", esc(&ob.name));
        if let Some(a) = &ob.about {
            let _ = write!(o, "<div>“{}”</div>", esc(a));
        }
        rules(o, sources, &ob.rules, false);
        rules(o, sources, &ob.rules, true);
        for it in img.intents.iter().filter(|it| it.objective as usize == i) {
            let _ = write!(o, "<h4>intent <code>{}</code></h4>", esc(&it.name));
            if let Some(a) = &it.about {
                let _ = write!(o, "<div>“{}”</div>", esc(a));
            }
            rules(o, sources, &it.rules, false);
            rules(o, sources, &it.rules, true);
        }
    }
    for p in &img.plans {
        let _ = write!(
            o,
            "<details><summary>plan <code>{}</code>{}</summary>",
            esc(&p.name),
            p.about
                .as_ref()
                .map_or_else(String::new, |a| format!(": “{}”", esc(a)))
        );
        if !p.grants.is_empty() {
            o.push_str("<div><b>plan-wide</b>");
            for &g in &p.grants {
                grant_line(o, img, g);
            }
            o.push_str("</div>");
        }
        for s in &p.steps {
            let _ = write!(o, "<div><b>step <code>{}</code></b>", esc(&s.name));
            if let Some(a) = &s.about {
                let _ = write!(o, " “{}”", esc(a));
            }
            for &g in &s.grants {
                grant_line(o, img, g);
            }
            o.push_str("</div>");
        }
        o.push_str("</details>");
    }
    o.push_str("</div>");
}

/// The whole page.
pub fn page(title: &str, data: &Data, images: &[NamedImage<'_>]) -> String {
    let st = &data.stats;
    let mut o = String::with_capacity(64 * 1024);
    let script_hash = base64(&kapl_image::sha256(JS.as_bytes()));
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>KAPL session report: {}</title><style>{CSS}</style></head><body><main>",
        esc(title)
    );
    let _ = write!(
        o,
        "<h1>KAPL session report</h1><div class=\"sub\"><code>{}</code>: {} records, {} sessions: <span class=\"counts\"><b class=\"allow\">{}</b> allowed, <b class=\"deny\">{}</b> denied</span></div>",
        esc(title),
        st.lines,
        st.sessions,
        st.allows,
        st.denials
    );
    if st.lost_records > 0 || st.lost > 0 {
        let _ = write!(
            o,
            "<div class=\"banner bad\" id=\"losses\">Losses: {} events or records were not delivered. This report is incomplete.",
            st.lost
        );
        for l in &data.losses {
            let counts: Vec<String> = l
                .counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = write!(
                o,
                "<div class=\"meta\">session <code>{}</code> at {}: {} — {}</div>",
                esc(&l.session),
                esc(&l.time),
                esc(&counts.join(", ")),
                esc(&l.reason)
            );
        }
        o.push_str("</div>");
    } else {
        o.push_str("<div class=\"banner ok\" id=\"losses\">No losses: the sessions report no lost decision events or records.</div>");
    }
    if st.not_understood > 0 {
        let _ = write!(
            o,
            "<div class=\"banner warn\" id=\"not-understood\">{} records not understood (left out of this report; a newer runtime's, or damaged):",
            st.not_understood
        );
        for n in &data.not_understood {
            let _ = write!(
                o,
                "<div class=\"meta\">line {}: {}<pre>{}</pre></div>",
                n.line,
                esc(&n.why),
                esc(&n.text)
            );
        }
        o.push_str("</div>");
    }
    for ni in images {
        for ob in &ni.image.objectives {
            let _ = write!(
                o,
                "<div class=\"objective\">objective <code>{}</code>{} <span class=\"src\">({}; its text is under Policy, below)</span></div>",
                esc(&ob.name),
                ob.about
                    .as_ref()
                    .map_or_else(String::new, |a| format!(": “{}”", esc(a))),
                esc(ni.file)
            );
        }
        if !ni.image.meta.params.is_empty() {
            let p: Vec<String> = ni
                .image
                .meta
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = write!(
                o,
                "<div>parameters ({}): <code>{}</code></div>",
                esc(ni.file),
                esc(&p.join(", "))
            );
        }
    }
    o.push_str(
        "<div id=\"kapl-app\"><p class=\"note\">This report renders with JavaScript.</p></div>",
    );
    o.push_str("<h2>Policy</h2><section class=\"policy\">");
    if images.is_empty() {
        o.push_str("<div class=\"note\">No image given (<code>--image</code>): the objective's text, the parameters and the grants never used are not shown. Each decision still names its grant with its source line and text.</div>");
    }
    for ni in images {
        image_section(&mut o, ni);
    }
    o.push_str("</section>");
    let _ = writeln!(
        o,
        "<footer>A timeline bar is a command, from its start record to its end record (to the session's last record when it has no end), its decisions the marks on it; decisions of no command, and every decision of an audit file without command records, draw one row per process, from its first record to its last. Allows are recorded once per grant and object. <span id=\"kapl-rendered\"></span></footer></main>\
<script type=\"application/json\" id=\"kapl-data\">{}</script><script>{JS}</script></body></html>",
        script_json(data)
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn nothing_in_a_string_closes_the_script_or_the_markup() {
        let hostile = "</script><script>alert(1)</script> \"'& \u{2028}";
        let j = script_json(&serde_json::json!({ "p": hostile }));
        assert!(!j.contains('<') && !j.contains('>') && !j.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&j).unwrap_or_default();
        assert_eq!(back["p"], hostile);
        assert_eq!(
            esc(hostile),
            "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; &quot;&#39;&amp; \u{2028}"
        );
    }
}
