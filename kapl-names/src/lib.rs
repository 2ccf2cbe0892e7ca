//! Host names and host-name patterns, as `net` rules write them and as the
//! session's resolver sees them in queries and answers.
//!
//! Input: text from a policy, an image or a DNS message. Output: names and
//! patterns in normal form, matching, and whether an address is public.
//!
//! One definition shared by the compiler (checking and proving name
//! patterns), the image (which stores them normalized) and the runtime
//! (which matches DNS names against them), so the three cannot disagree.
//!
//! - A **name** is ASCII labels separated by `.`: letters, digits, `-` and
//!   `_` (service labels such as `_tcp`), 1 to 63 bytes each, at most 253
//!   bytes in all. Case does not matter: names are kept in lower case. One
//!   trailing dot (the root) is dropped: `PyPI.org.` is `pypi.org`.
//!   Non-ASCII names are refused: write their IDNA form (`xn--...`).
//! - A **pattern** is a name in which a whole label may be `*` (exactly one
//!   label) and the leftmost label may be `**` (one or more labels).
//!   `*.example.com` matches `a.example.com`, not `example.com` nor
//!   `a.b.example.com`; `**.example.com` matches both of the latter's
//!   subdomains but still not `example.com`. A `*` inside a label
//!   (`a*.example.com`) is refused.
//! - An address a name resolves to is **public** unless it lies in one of
//!   the [`RESERVED`] ranges (loopback, private, link-local, shared,
//!   multicast, unspecified, ...). A name rule admits only public addresses:
//!   a name that resolves to `169.254.169.254` or `127.0.0.1` gains nothing
//!   (DNS rebinding); reaching such an address takes a rule that names it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a text is not a name or a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameError {
    /// Empty, or only a dot.
    Empty,
    /// Longer than 253 bytes (without the trailing dot).
    TooLong,
    /// An empty label (`a..b`, a leading dot).
    EmptyLabel,
    /// A label longer than 63 bytes.
    LongLabel(String),
    /// A byte outside ASCII: the name must be written in its IDNA form.
    NonAscii,
    /// A character no label may hold.
    BadChar(char),
    /// `*` inside a label, or `**` anywhere but the leftmost label.
    BadWildcard(String),
}

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NameError::Empty => write!(f, "a host name needs at least one label"),
            NameError::TooLong => write!(f, "a host name is at most 253 bytes"),
            NameError::EmptyLabel => write!(f, "a host name has no empty labels"),
            NameError::LongLabel(l) => write!(f, "label `{l}` is longer than 63 bytes"),
            NameError::NonAscii => write!(
                f,
                "host names are ASCII: write an internationalized name in its IDNA form (`xn--...`)"
            ),
            NameError::BadChar(c) => write!(
                f,
                "`{}` cannot appear in a host name (labels hold letters, digits, `-` and `_`)",
                c.escape_default()
            ),
            NameError::BadWildcard(l) => write!(
                f,
                "`{l}`: a wildcard is a whole label, `*` (one label) anywhere or `**` (one or more labels) leftmost"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// `name` in normal form (lower case, no trailing dot), or why it is not a
/// host name. Wildcards are refused: see [`pattern`].
pub fn normalize(name: &str) -> Result<String, NameError> {
    let n = lower(name)?;
    for l in n.split('.') {
        label(l)?;
    }
    Ok(n)
}

/// Pattern `text` in normal form (lower case, no trailing dot), or why it
/// is not one.
pub fn pattern(text: &str) -> Result<String, NameError> {
    let n = lower(text)?;
    for (i, l) in n.split('.').enumerate() {
        match l {
            "*" => {}
            "**" if i == 0 => {}
            _ if l.contains('*') => return Err(NameError::BadWildcard(l.to_string())),
            _ => label(l)?,
        }
    }
    Ok(n)
}

/// Whether the normalized `name` matches the normalized `pattern`.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    match p.split_first() {
        Some((&"**", rest)) => {
            n.len() > rest.len() && labels_match(rest, &n[n.len() - rest.len()..])
        }
        _ => labels_match(&p, &n),
    }
}

fn labels_match(p: &[&str], n: &[&str]) -> bool {
    p.len() == n.len() && p.iter().zip(n).all(|(p, n)| *p == "*" || p == n)
}

/// A name that `pattern` matches and none of `others` does, or `None` when
/// every name `pattern` matches is matched by one of `others` (all
/// normalized). Exact: names are label sequences; a label no pattern
/// mentions behaves like every other such label, so a fresh one ([`fresh`])
/// stands for all of them, and beyond the longest pattern only the last
/// labels matter. The witness puts the fresh label where a `*` or `**`
/// of `pattern` lets it escape (`x.pythonhosted.org`).
pub fn uncovered(pattern: &str, others: &[&str]) -> Option<String> {
    let p = Shape::of(pattern);
    let qs: Vec<Shape<'_>> = others.iter().map(|q| Shape::of(q)).collect();
    let mentioned: Vec<&str> = std::iter::once(&p)
        .chain(&qs)
        .flat_map(|s| s.labels.iter().copied())
        .filter(|l| *l != "*")
        .collect();
    let fresh = fresh(&mentioned);
    let longest = qs.iter().map(|q| q.labels.len()).max().unwrap_or(0);
    let min = p.labels.len() + usize::from(p.deep);
    let max = if p.deep { min.max(longest + 1) } else { min };
    for n in min..=max {
        // The others that can match a name of `n` labels at all.
        let alive: Vec<&Shape<'_>> = qs.iter().filter(|q| q.fits(n)).collect();
        let mut name = Vec::with_capacity(n);
        if let Some(w) = escape(&p, &alive, n, 0, &fresh, &mut name) {
            return Some(w);
        }
    }
    None
}

/// A name both patterns match, or `None` when they share no name.
pub fn overlap(a: &str, b: &str) -> Option<String> {
    let (pa, pb) = (Shape::of(a), Shape::of(b));
    let mentioned: Vec<&str> = pa
        .labels
        .iter()
        .chain(&pb.labels)
        .copied()
        .filter(|l| *l != "*")
        .collect();
    let fresh = fresh(&mentioned);
    let (la, lb) = (pa.labels.len(), pb.labels.len());
    let n = match (pa.deep, pb.deep) {
        (false, false) if la == lb => la,
        (false, false) => return None,
        (true, false) if lb > la => lb,
        (false, true) if la > lb => la,
        (true, true) => la.max(lb) + 1,
        _ => return None,
    };
    let mut out = Vec::with_capacity(n);
    for j in 0..n {
        // Position `j` from the right.
        let label = match (pa.at(j), pb.at(j)) {
            ("*", "*") => fresh.as_str(),
            ("*", l) | (l, "*") => l,
            (x, y) if x == y => x,
            _ => return None,
        };
        out.push(label);
    }
    out.reverse();
    Some(out.join("."))
}

/// A label none of `mentioned` is: `x`, else `kapl-witness`, else
/// `kapl-witness-N`.
pub fn fresh(mentioned: &[&str]) -> String {
    ["x".to_string(), "kapl-witness".to_string()]
        .into_iter()
        .chain((1u32..).map(|i| format!("kapl-witness-{i}")))
        .find(|c| !mentioned.contains(&c.as_str()))
        .unwrap_or_default()
}

/// A pattern as labels: `deep` when it starts with `**` (which is not in
/// `labels`).
struct Shape<'a> {
    deep: bool,
    labels: Vec<&'a str>,
}

impl<'a> Shape<'a> {
    fn of(p: &'a str) -> Shape<'a> {
        let mut labels: Vec<&str> = p.split('.').collect();
        let deep = labels.first() == Some(&"**");
        if deep {
            labels.remove(0);
        }
        Shape { deep, labels }
    }

    /// Whether some name of `n` labels may match.
    fn fits(&self, n: usize) -> bool {
        if self.deep {
            n > self.labels.len()
        } else {
            n == self.labels.len()
        }
    }

    /// The label at position `j` from the right (`*` inside the `**`).
    fn at(&self, j: usize) -> &'a str {
        self.labels
            .len()
            .checked_sub(j + 1)
            .map_or("*", |i| self.labels[i])
    }
}

/// Depth-first search, right to left, for a name of `n` labels that `p`
/// matches and no pattern of `alive` does; `name` holds the labels chosen
/// so far (rightmost first).
fn escape<'a>(
    p: &Shape<'a>,
    alive: &[&Shape<'a>],
    n: usize,
    j: usize,
    fresh: &'a str,
    name: &mut Vec<&'a str>,
) -> Option<String> {
    if alive.is_empty() {
        // Nothing left can match: complete with `p`'s labels (fresh for
        // its wildcards).
        let mut full = name.clone();
        full.extend((j..n).map(|k| match p.at(k) {
            "*" => fresh,
            l => l,
        }));
        full.reverse();
        return Some(full.join("."));
    }
    if j == n {
        return None;
    }
    let mut choices: Vec<&str> = match p.at(j) {
        "*" => std::iter::once(fresh)
            .chain(alive.iter().map(|q| q.at(j)).filter(|l| *l != "*"))
            .collect(),
        l => vec![l],
    };
    let mut seen = Vec::with_capacity(choices.len());
    choices.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    for c in choices {
        let next: Vec<&Shape<'a>> = alive
            .iter()
            .copied()
            .filter(|q| matches!(q.at(j), "*") || q.at(j) == c)
            .collect();
        name.push(c);
        let found = escape(p, &next, n, j + 1, fresh, name);
        name.pop();
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Whether `pattern` (normalized) has a wildcard.
pub fn is_wildcard(pattern: &str) -> bool {
    pattern.split('.').any(|l| l == "*" || l == "**")
}

fn lower(text: &str) -> Result<String, NameError> {
    if !text.is_ascii() {
        return Err(NameError::NonAscii);
    }
    let t = text.strip_suffix('.').unwrap_or(text);
    if t.is_empty() {
        return Err(NameError::Empty);
    }
    if t.len() > 253 {
        return Err(NameError::TooLong);
    }
    Ok(t.to_ascii_lowercase())
}

fn label(l: &str) -> Result<(), NameError> {
    if l.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if l.len() > 63 {
        return Err(NameError::LongLabel(l.to_string()));
    }
    match l
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(c) => Err(NameError::BadChar(c)),
        None => Ok(()),
    }
}

/// Address ranges a name never admits (RFC 6890's special-purpose
/// registries, the parts that are not globally reachable unicast):
/// `(network, prefix)`. IPv4-mapped IPv6 addresses are judged as their
/// IPv4 address. The documentation ranges (`192.0.2.0/24`,
/// `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`) are not listed:
/// nothing routes to them, and the tests use them for hosts in a network
/// namespace of their own.
pub const RESERVED: &[(IpAddr, u8)] = &[
    (v4(0, 0, 0, 0), 8),                 // "this network"
    (v4(10, 0, 0, 0), 8),                // private
    (v4(100, 64, 0, 0), 10),             // shared address space (carrier NAT)
    (v4(127, 0, 0, 0), 8),               // loopback
    (v4(169, 254, 0, 0), 16),            // link-local (cloud metadata services)
    (v4(172, 16, 0, 0), 12),             // private
    (v4(192, 0, 0, 0), 24),              // protocol assignments
    (v4(192, 168, 0, 0), 16),            // private
    (v4(198, 18, 0, 0), 15),             // benchmarking
    (v4(224, 0, 0, 0), 4),               // multicast
    (v4(240, 0, 0, 0), 4),               // reserved, broadcast
    (v6(0, 0), 128),                     // unspecified
    (v6(0, 1), 128),                     // loopback
    (v6(0x0064_ff9b_0001 << 16, 0), 48), // local-use NAT64
    (v6(0x0100 << 48, 0), 64),           // discard-only
    (v6(0xfc00 << 48, 0), 7),            // unique local
    (v6(0xfe80 << 48, 0), 10),           // link-local
    (v6(0xff00 << 48, 0), 8),            // multicast
];

const fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

const fn v6(hi: u64, lo: u64) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from_bits(((hi as u128) << 64) | lo as u128))
}

/// Whether a name may admit `addr`: it lies in no [`RESERVED`] range.
pub fn is_public(addr: IpAddr) -> bool {
    let addr = match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        a => a,
    };
    !RESERVED
        .iter()
        .any(|(net, prefix)| within(addr, *net, *prefix))
}

/// Whether `addr` lies in `net/prefix` (same family).
pub fn within(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            (a.to_bits() & m) == (n.to_bits() & m)
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            (a.to_bits() & m) == (n.to_bits() & m)
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize("PyPI.org."), Ok("pypi.org".into()));
        assert_eq!(
            normalize("_http._tcp.Example.com"),
            Ok("_http._tcp.example.com".into())
        );
        assert_eq!(normalize("."), Err(NameError::Empty));
        assert_eq!(normalize("a..b"), Err(NameError::EmptyLabel));
        assert_eq!(normalize("bücher.de"), Err(NameError::NonAscii));
        assert_eq!(normalize("a b.c"), Err(NameError::BadChar(' ')));
        assert_eq!(normalize("*.a.b"), Err(NameError::BadChar('*')));
        assert!(matches!(
            normalize(&"a".repeat(64)),
            Err(NameError::LongLabel(_))
        ));
        assert_eq!(normalize(&"a.".repeat(127)).map(|n| n.len()), Ok(253));
        assert_eq!(
            normalize(&format!("{}b", "a.".repeat(127))),
            Err(NameError::TooLong)
        );
    }

    #[test]
    fn patterns_match_whole_labels() {
        let p = |t: &str| pattern(t).unwrap();
        assert!(matches(&p("pypi.org"), "pypi.org"));
        assert!(!matches(&p("pypi.org"), "www.pypi.org"));
        assert!(matches(&p("*.Example.COM."), "a.example.com"));
        assert!(!matches(&p("*.example.com"), "example.com"));
        assert!(!matches(&p("*.example.com"), "a.b.example.com"));
        assert!(matches(&p("**.example.com"), "a.b.example.com"));
        assert!(matches(&p("**.example.com"), "a.example.com"));
        assert!(!matches(&p("**.example.com"), "example.com"));
        assert!(!matches(&p("**.example.com"), "badexample.com"));
        assert!(matches(&p("a.*.c"), "a.b.c"));
        assert!(matches(&p("**"), "anything.at.all"));
        assert!(matches!(
            pattern("a*.example.com"),
            Err(NameError::BadWildcard(_))
        ));
        assert!(matches!(
            pattern("a.**.com"),
            Err(NameError::BadWildcard(_))
        ));
        assert!(is_wildcard("*.a") && !is_wildcard("a.b"));
    }

    #[test]
    fn reserved_addresses_are_not_public() {
        for a in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "192.168.0.1",
            "172.31.255.255",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "151.101.0.223",
            "8.8.8.8",
            "172.32.0.1",
            "2a04:4e42::223",
            "203.0.113.7",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
    }

    /// Small pseudo-random numbers (no dependencies; reproducible).
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    fn random_pattern(r: &mut Lcg) -> String {
        let n = 1 + r.below(3);
        let mut l: Vec<&str> = (0..n).map(|_| ["a", "b", "*", "x"][r.below(4)]).collect();
        if r.below(3) == 0 {
            l.insert(0, "**");
        }
        l.join(".")
    }

    /// Every name of 1 to 5 labels over `a`, `b`, `x` and `c` (which no
    /// pattern mentions).
    fn universe() -> Vec<String> {
        let mut all = vec![String::new()];
        let mut out = Vec::new();
        for _ in 0..5 {
            all = all
                .iter()
                .flat_map(|p| {
                    ["a", "b", "x", "c"].map(|l| {
                        if p.is_empty() {
                            l.to_string()
                        } else {
                            format!("{l}.{p}")
                        }
                    })
                })
                .collect();
            out.extend(all.iter().cloned());
        }
        out
    }

    #[test]
    fn uncovered_agrees_with_brute_force() {
        let names = universe();
        let mut r = Lcg(7);
        for _ in 0..3000 {
            let p = random_pattern(&mut r);
            let qs: Vec<String> = (0..r.below(4)).map(|_| random_pattern(&mut r)).collect();
            let q: Vec<&str> = qs.iter().map(String::as_str).collect();
            let escapes = |n: &str| matches(&p, n) && !q.iter().any(|q| matches(q, n));
            match uncovered(&p, &q) {
                Some(w) => {
                    assert!(normalize(&w).is_ok(), "{w}");
                    assert!(escapes(&w), "{p} vs {q:?}: {w} does not escape");
                }
                None => {
                    let e = names.iter().find(|n| escapes(n));
                    assert!(e.is_none(), "{p} vs {q:?}: missed {e:?}");
                }
            }
        }
    }

    #[test]
    fn overlap_agrees_with_brute_force() {
        let names = universe();
        let mut r = Lcg(11);
        for _ in 0..3000 {
            let (a, b) = (random_pattern(&mut r), random_pattern(&mut r));
            match overlap(&a, &b) {
                Some(w) => assert!(matches(&a, &w) && matches(&b, &w), "{a} & {b}: {w}"),
                None => assert!(
                    !names.iter().any(|n| matches(&a, n) && matches(&b, n)),
                    "{a} & {b}"
                ),
            }
        }
    }

    #[test]
    fn witnesses_read_well() {
        assert_eq!(
            uncovered("*.pythonhosted.org", &["files.pythonhosted.org"]),
            Some("x.pythonhosted.org".into())
        );
        assert_eq!(uncovered("*.pythonhosted.org", &["**.org"]), None);
        assert_eq!(uncovered("**.com", &["*.com"]), Some("x.x.com".into()));
        assert_eq!(uncovered("pypi.org", &["*.org", "pypi.com"]), None);
        assert_eq!(uncovered("x.org", &[]), Some("x.org".into()));
        assert_eq!(overlap("*.evil.com", "**.com"), Some("x.evil.com".into()));
        assert_eq!(overlap("a.com", "*.org"), None);
    }
}
