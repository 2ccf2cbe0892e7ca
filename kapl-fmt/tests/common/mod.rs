//! Helpers shared by the formatter tests: span-free tree comparison and a
//! generator of random, badly laid out (but valid) policies.

use kapl_syntax::FileId;
use kapl_syntax::ast::File;
use kapl_testkit::Rng;

/// The file's items printed without any span, so two parses of differently
/// laid out texts compare equal exactly when they say the same thing.
pub fn shape(file: &File) -> String {
    strip_spans(&format!("{:#?}", file.items))
}

/// The comments' texts, in order, trailing blanks removed.
pub fn comment_texts(file: &File) -> Vec<String> {
    file.comments
        .iter()
        .map(|c| c.text.trim_end().to_string())
        .collect()
}

/// Parses and insists on no errors.
pub fn parse_clean(text: &str) -> File {
    let parsed = kapl_syntax::parse(FileId(0), text);
    let errors: Vec<_> = parsed
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{} {}", d.code, d.message))
        .collect();
    assert!(errors.is_empty(), "parse errors {errors:?} in:\n{text}");
    parsed.file
}

/// Removes every `Span { .. }` from a `Debug` rendering.
fn strip_spans(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(i) = rest.find("Span {") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        match after.find('}') {
            Some(j) => {
                out.push_str("Span");
                rest = &after[j + 1..];
            }
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A generator of random policies, seeded by proptest (the shared
/// xorshift stream of `kapl_testkit`).
pub struct Gen {
    rng: Rng,
}

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen { rng: Rng(seed | 1) }
    }

    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// Whitespace or comments between two tokens.
    fn sep(&mut self) -> String {
        let choices = [
            " ",
            " ",
            " ",
            "\n",
            "\n    ",
            "   \n\n\t",
            "\n\n\n",
            " /* note */ ",
            " // trailing remark\n",
            "\n// a comment line\n",
            "\n/* a block\n   over lines */\n",
            "\t",
        ];
        let n = self.below(choices.len() + 8);
        choices.get(n).copied().unwrap_or(" ").to_string()
    }

    fn list(&mut self, pool: &[&str], max: usize) -> Vec<String> {
        let n = 1 + self.below(max);
        (0..n).map(|_| self.pick(pool).to_string()).collect()
    }

    fn comma_list(&mut self, items: &[String]) -> String {
        let mut s = String::new();
        for (i, x) in items.iter().enumerate() {
            if i > 0 {
                s.push(',');
                s.push_str(&self.sep());
            }
            s.push_str(x);
        }
        s
    }

    fn name(&mut self) -> String {
        let pool = [
            "a",
            "b",
            "web",
            "read_logs",
            "fix_deploy",
            "x1",
            "patch",
            "repair",
            "step_two",
        ];
        self.pick(&pool).to_string()
    }

    fn rule(&mut self) -> String {
        let patterns = [
            "\"/a/**\"",
            "\"/srv/web/*.log\"",
            "\"/x/{a,b}/c\"",
            "\"/[a-z]?\"",
            "\"/\"",
            "\"/srv/web/config/very/long/path/to/something/that/takes/room/*.yaml\"",
            "\"/usr/bin/{git,grep,cat}\"",
            "\"/home/dev/.cargo/[!.]*\"",
        ];
        let addrs = [
            "any",
            "localhost",
            "10.0.0.0/8",
            "10.1.2.3",
            "10.1.2.3/32",
            "::1",
            "2001:db8::/32",
            "::ffff:1.2.3.4",
            "192.0.2.0/24",
        ];
        let ports = ["any", "22", "8000-8099", "0", "443", "0-65535", "5432"];
        match self.below(4) {
            0 => {
                let mut rights = vec!["read", "write", "create", "delete"];
                let n = 1 + self.below(4);
                for i in 0..4 {
                    let j = self.below(4);
                    rights.swap(i, j);
                }
                rights.truncate(n);
                let rights: Vec<String> = rights.iter().map(|r| r.to_string()).collect();
                let pats = self.list(&patterns, 6);
                let mut s = format!(
                    "fs{}{}{}{}",
                    self.sep(),
                    self.comma_list(&rights),
                    self.sep(),
                    self.comma_list(&pats)
                );
                if self.below(3) == 0 {
                    let ex = self.list(&patterns, 3);
                    s.push_str(&self.sep());
                    s.push_str("except");
                    s.push_str(&self.sep());
                    s.push_str(&self.comma_list(&ex));
                }
                s
            }
            1 => {
                let pats = self.list(&patterns, 5);
                format!("exec{}{}", self.sep(), self.comma_list(&pats))
            }
            2 => {
                let op = self.pick(&["connect", "bind"]);
                let a = self.list(&addrs, 6);
                let p = self.list(&ports, 4);
                format!(
                    "net{}{op}{}{}{}port{}{}",
                    self.sep(),
                    self.sep(),
                    self.comma_list(&a),
                    self.sep(),
                    self.sep(),
                    self.comma_list(&p)
                )
            }
            _ => {
                let n = self.pick(&["runtime.loader", "std.runtime.loader", "shared", "tools"]);
                format!("use{}{n}", self.sep())
            }
        }
    }

    fn rules(&mut self, min: usize) -> String {
        let n = min + self.below(4);
        let mut s = String::new();
        for _ in 0..n {
            s.push_str(&self.sep());
            s.push_str(&self.rule());
        }
        s
    }

    fn about(&mut self) -> String {
        let texts = [
            "\"Find and fix the deployment\"",
            "\"\"",
            "\"with \\\"quotes\\\" inside\"",
        ];
        format!("about{}{}", self.sep(), self.pick(&texts))
    }

    fn block(&mut self, kw: &str) -> String {
        format!("{kw}{}{{{}{}}}", self.sep(), self.rules(0), self.sep())
    }

    fn bounded(&mut self, kw: &str, under: bool) -> String {
        let mut body = String::new();
        if self.below(2) == 0 {
            body.push_str(&self.sep());
            body.push_str(&self.about());
        }
        body.push_str(&self.sep());
        body.push_str(&self.block("bound"));
        if self.below(2) == 0 {
            body.push_str(&self.sep());
            body.push_str(&self.block("never"));
        }
        let under = if under {
            format!("{}under{}{}", self.sep(), self.sep(), self.name())
        } else {
            String::new()
        };
        format!(
            "{kw}{}{}{under}{}{{{body}{}}}",
            self.sep(),
            self.name(),
            self.sep(),
            self.sep()
        )
    }

    fn grant(&mut self) -> String {
        format!("grant{}{}", self.sep(), self.rule())
    }

    fn plan(&mut self) -> String {
        let mut body = String::new();
        if self.below(2) == 0 {
            body.push_str(&self.sep());
            body.push_str(&self.about());
        }
        for _ in 0..self.below(3) {
            body.push_str(&self.sep());
            body.push_str(&self.grant());
        }
        let steps = self.below(4);
        for i in 0..steps {
            body.push_str(&self.sep());
            let after = if i > 0 && self.below(2) == 0 {
                let names: Vec<String> = (0..1 + self.below(2)).map(|_| self.name()).collect();
                format!(
                    "{}after{}{}",
                    self.sep(),
                    self.sep(),
                    self.comma_list(&names)
                )
            } else {
                String::new()
            };
            let mut sbody = String::new();
            if self.below(3) == 0 {
                sbody.push_str(&self.sep());
                sbody.push_str(&self.about());
            }
            for _ in 0..self.below(4) {
                sbody.push_str(&self.sep());
                sbody.push_str(&self.grant());
            }
            body.push_str(&format!(
                "step{}{}{after}{}{{{sbody}{}}}",
                self.sep(),
                self.name(),
                self.sep(),
                self.sep()
            ));
        }
        format!(
            "plan{}{}{}under{}{}{}{{{body}{}}}",
            self.sep(),
            self.name(),
            self.sep(),
            self.sep(),
            self.name(),
            self.sep(),
            self.sep()
        )
    }

    /// A whole policy: valid syntax, arbitrary layout and comments (names
    /// need not resolve: the formatter works on syntax alone).
    pub fn policy(&mut self) -> String {
        let mut s = String::new();
        if self.below(2) == 0 {
            s.push_str("// header comment\n//\n// more words\n\n");
        }
        for _ in 0..self.below(7) {
            s.push_str(&self.sep());
            let item = match self.below(6) {
                0 => format!("use{}std.runtime", self.sep()),
                1 => format!("use{}\"./shared.kapl\"", self.sep()),
                2 => format!(
                    "authority{}{}{}{{{}{}}}",
                    self.sep(),
                    self.name(),
                    self.sep(),
                    self.rules(0),
                    self.sep()
                ),
                3 => self.bounded("objective", false),
                4 => self.bounded("intent", true),
                _ => self.plan(),
            };
            s.push_str(&item);
        }
        s.push_str(&self.sep());
        s
    }
}
