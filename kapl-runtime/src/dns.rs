//! The session resolver's pure core: DNS messages from the session's
//! commands and from the upstream server, and what a step's host-name
//! grants make of them (stage: runtime; input: message bytes and the
//! plan's name tables; output: replies, and addresses to admit).
//!
//! ```text
//! command ─query─► parse_query ─► query_grant ─┬─ none: refused() ─► command
//!                                              └─ grant: forward (new id) ─► upstream
//! upstream ─answer─► parse_answer (question checked, CNAME chain within
//!                    the answer) ─► admit() per address ─► the kernel's
//!                    `learned` map ─► answer (the command's id) ─► command
//! ```
//!
//! Every byte here is hostile: a command may send anything to port 53, and
//! the upstream server's answers are not trusted either. Messages are
//! parsed by `hickory-proto`; nothing here panics or allocates without a
//! bound on any input (`fuzz/fuzz_targets/dns.rs`).

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use kapl_image::{Plan, PortGrant, Proto, names};
use std::net::IpAddr;

/// A DNS message is at most this long over UDP here (EDNS allows more
/// upstream; what is longer is cut by the sender with the TC bit).
pub const MAX_UDP: usize = 4096;
/// CNAME records followed within one answer at most.
pub const MAX_CHAIN: usize = 16;
/// Shortest time a learned address stays admitted, whatever the answer's
/// TTL (a TTL of 0 would expire before the program connects).
pub const TTL_FLOOR_SECS: u32 = 2;
/// Longest time a learned address stays admitted without a new answer.
pub const TTL_CEILING_SECS: u32 = 600;

/// Why a message was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsError {
    /// Not a DNS message.
    Malformed(String),
    /// A message, but not one standard query for one Internet-class name.
    Unsupported(String),
    /// An answer that does not answer the question asked.
    Mismatch,
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnsError::Malformed(e) => write!(f, "not a DNS message: {e}"),
            DnsError::Unsupported(e) => write!(f, "unsupported DNS message: {e}"),
            DnsError::Mismatch => write!(f, "the answer does not answer the question"),
        }
    }
}

impl std::error::Error for DnsError {}

/// One standard query for one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Question {
    /// The query's id.
    pub id: u16,
    /// The name asked (normalized: lower case, no trailing dot).
    pub name: String,
    /// The record type asked (`A`, `AAAA`, `MX`, ...).
    pub qtype: RecordType,
}

impl Question {
    /// The record type as DNS writes it.
    pub fn qtype_name(&self) -> String {
        self.qtype.to_string()
    }
}

/// The name of a message's only question, normalized; an error for a name
/// that is no host name (a command may ask anything).
fn question_of(m: &Message) -> Result<(String, RecordType), DnsError> {
    let [q] = m.queries.as_slice() else {
        return Err(DnsError::Unsupported(format!(
            "{} questions (one is asked at a time)",
            m.queries.len()
        )));
    };
    if q.query_class() != DNSClass::IN {
        return Err(DnsError::Unsupported(format!(
            "class {} (only IN)",
            q.query_class()
        )));
    }
    let ascii = q.name().to_ascii();
    let name = names::normalize(&ascii)
        .map_err(|e| DnsError::Unsupported(format!("name `{}`: {e}", ascii.escape_default())))?;
    Ok((name, q.query_type()))
}

/// Parses a query a command sent.
pub fn parse_query(bytes: &[u8]) -> Result<Question, DnsError> {
    let m = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    if m.metadata.message_type != MessageType::Query {
        return Err(DnsError::Unsupported("a response sent as a query".into()));
    }
    if m.metadata.op_code != OpCode::Query {
        return Err(DnsError::Unsupported(format!(
            "opcode {:?} (only QUERY)",
            m.metadata.op_code
        )));
    }
    let (name, qtype) = question_of(&m)?;
    Ok(Question {
        id: m.metadata.id,
        name,
        qtype,
    })
}

/// The reply with `rcode` to the query in `bytes` (its id and question
/// echoed), or `None` when the bytes are not even a message header.
pub fn reply(bytes: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    let (id, queries, rd) = match Message::from_vec(bytes) {
        Ok(m) => (m.metadata.id, m.queries, m.metadata.recursion_desired),
        Err(_) => {
            let id = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
            bytes.get(11)?;
            (id, Vec::new(), false)
        }
    };
    let mut r = Message::response(id, OpCode::Query);
    r.metadata.response_code = rcode;
    r.metadata.recursion_desired = rd;
    r.metadata.recursion_available = true;
    r.add_queries(queries);
    r.to_vec().ok()
}

/// `bytes` with its id replaced (queries are forwarded under the
/// resolver's own ids, answers returned under the command's).
pub fn with_id(bytes: &[u8], id: u16) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if let Some(h) = b.get_mut(..2) {
        h.copy_from_slice(&id.to_be_bytes());
    }
    b
}

/// What an answer says about the question's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Its response code.
    pub rcode: ResponseCode,
    /// The question's name, then each CNAME target followed from it
    /// within the answer section, in order.
    pub chain: Vec<String>,
    /// The A and AAAA records of a name of the chain, with their TTLs.
    pub addrs: Vec<(IpAddr, u32)>,
}

/// Parses the upstream's answer to `q`: the same id, a response, the same
/// question; CNAME records are followed from the question's name only
/// within the answer section (at most [`MAX_CHAIN`]), and only addresses
/// owned by a name of that chain are kept (records for other names are
/// ignored: an answer cannot make the resolver learn about a name nobody
/// asked for).
pub fn parse_answer(bytes: &[u8], q: &Question) -> Result<Answer, DnsError> {
    let m = Message::from_vec(bytes).map_err(|e| DnsError::Malformed(e.to_string()))?;
    if m.metadata.message_type != MessageType::Response || m.metadata.id != q.id {
        return Err(DnsError::Mismatch);
    }
    let (name, qtype) = question_of(&m)?;
    if name != q.name || qtype != q.qtype {
        return Err(DnsError::Mismatch);
    }
    let owner = |r: &hickory_proto::rr::Record| names::normalize(&r.name.to_ascii()).ok();
    let mut chain = vec![name];
    while chain.len() <= MAX_CHAIN {
        let Some(last) = chain.last() else { break };
        let next = m.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(t) if owner(r).as_ref() == Some(last) => {
                names::normalize(&t.0.to_ascii()).ok()
            }
            _ => None,
        });
        match next {
            Some(n) if !chain.contains(&n) => chain.push(n),
            _ => break,
        }
    }
    let addrs = m
        .answers
        .iter()
        .filter(|r| r.dns_class == DNSClass::IN)
        .filter(|r| owner(r).is_some_and(|o| chain.contains(&o)))
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((IpAddr::V4(a.0), r.ttl)),
            RData::AAAA(a) => Some((IpAddr::V6(a.0), r.ttl)),
            _ => None,
        })
        .collect();
    Ok(Answer {
        rcode: m.metadata.response_code,
        chain,
        addrs,
    })
}

/// How long an address learned with `ttl` stays admitted.
pub fn admitted_for(ttl: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(ttl.clamp(TTL_FLOOR_SECS, TTL_CEILING_SECS)))
}

/// The lowest-id grant of `step` whose name rule allows `name` (for any
/// protocol and port): the query may be forwarded.
pub fn query_grant(plan: &Plan, step: u32, name: &str) -> Option<u32> {
    [Proto::Tcp, Proto::Udp]
        .iter()
        .flat_map(|p| plan.name_ports(step, *p, name))
        .map(|r| r.grant)
        .min()
}

/// Why an address of an answer is not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A name of the CNAME chain matches a `never` name pattern.
    NeverName(String),
    /// The address is reserved (loopback, private, link-local, ...).
    Reserved,
    /// Every port the name's grants give is inside a `never` range for
    /// this address.
    Never,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NeverName(n) => write!(
                f,
                "the answer's CNAME chain passes through `{n}`, which a `never` rule names"
            ),
            Refusal::Reserved => write!(
                f,
                "a reserved address (loopback, private, link-local, multicast...): a host name never admits one; a rule naming the address does"
            ),
            Refusal::Never => write!(f, "inside a `never` address range for every granted port"),
        }
    }
}

/// The ports a connect to `addr`, learned for the question's name through
/// `chain`, may use over `proto` in `step`, each with its grant: the name's
/// grants' ranges minus the ports of `never` ranges holding `addr`. Empty
/// with the reason when nothing is admitted.
pub fn admit(
    plan: &Plan,
    step: u32,
    proto: Proto,
    chain: &[String],
    addr: IpAddr,
) -> Result<Vec<PortGrant>, Refusal> {
    if let Some(n) = chain.iter().find(|n| plan.name_never(proto, n)) {
        return Err(Refusal::NeverName(n.clone()));
    }
    if !names::is_public(addr) {
        return Err(Refusal::Reserved);
    }
    let Some(name) = chain.first() else {
        return Ok(Vec::new());
    };
    let granted = plan.name_ports(step, proto, name);
    // The ports the plan's `never` ranges refuse at this address (what
    // `Plan::name_admits` checks port by port), sorted.
    let unmapped = kapl_image::unmap(addr);
    let mut excluded: Vec<(u32, u32)> = plan
        .name_excluded
        .iter()
        .filter(|x| x.proto == proto && names::within(unmapped, x.addr, x.prefix))
        .flat_map(|x| {
            x.ports
                .iter()
                .map(|&(lo, hi)| (u32::from(lo), u32::from(hi)))
        })
        .collect();
    excluded.sort_unstable();
    let mut out = Vec::new();
    for r in &granted {
        let (mut from, hi) = (u32::from(r.lo), u32::from(r.hi));
        // INVARIANT: every piece lies within r's u16 range.
        let piece = |lo: u32, hi: u32| PortGrant {
            lo: lo as u16,
            hi: hi as u16,
            grant: r.grant,
        };
        for &(xlo, xhi) in &excluded {
            if xhi < from || xlo > hi {
                continue;
            }
            if xlo > from {
                out.push(piece(from, xlo - 1));
            }
            from = from.max(xhi + 1);
        }
        if from <= hi {
            out.push(piece(from, hi));
        }
    }
    if out.is_empty() && !granted.is_empty() {
        return Err(Refusal::Never);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME};
    use hickory_proto::rr::{Name, Record};

    fn query(id: u16, name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn rec(name: &str, data: RData) -> Record {
        Record::from_rdata(Name::from_ascii(name).unwrap(), 30, data)
    }

    #[test]
    fn queries_are_parsed_and_refused_with_their_question() {
        let q = parse_query(&query(7, "PyPI.org.", RecordType::AAAA)).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype_name().as_str()),
            (7, "pypi.org", "AAAA")
        );
        let r = Message::from_vec(
            &reply(&query(7, "pypi.org.", RecordType::A), ResponseCode::Refused).unwrap(),
        )
        .unwrap();
        assert_eq!(r.metadata.id, 7);
        assert_eq!(r.metadata.message_type, MessageType::Response);
        assert_eq!(r.metadata.response_code, ResponseCode::Refused);
        assert_eq!(r.queries.len(), 1);
        // A header alone still gets its id back; less is not answered.
        let mut junk = vec![0xab, 0xcd];
        junk.extend([0xff; 10]);
        assert_eq!(
            Message::from_vec(&reply(&junk, ResponseCode::FormErr).unwrap())
                .unwrap()
                .metadata
                .id,
            0xabcd
        );
        assert_eq!(reply(&[1, 2, 3], ResponseCode::FormErr), None);
        assert!(matches!(parse_query(&[0; 5]), Err(DnsError::Malformed(_))));
    }

    #[test]
    fn answers_follow_cnames_within_the_answer_only() {
        let q = parse_query(&query(9, "pypi.org.", RecordType::A)).unwrap();
        let mut m = Message::response(9, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("pypi.org.").unwrap(),
            RecordType::A,
        ));
        m.add_answer(rec(
            "pypi.org.",
            RData::CNAME(CNAME(Name::from_ascii("Edge.CDN.net.").unwrap())),
        ));
        m.add_answer(rec("edge.cdn.net.", RData::A(A::new(151, 101, 0, 223))));
        m.add_answer(rec(
            "edge.cdn.net.",
            RData::AAAA(AAAA::new(0x2a04, 0x4e42, 0, 0, 0, 0, 0, 0x223)),
        ));
        // A record for a name nobody asked about is ignored.
        m.add_answer(rec("bank.example.", RData::A(A::new(203, 0, 113, 9))));
        let a = parse_answer(&m.to_vec().unwrap(), &q).unwrap();
        assert_eq!(a.chain, ["pypi.org", "edge.cdn.net"]);
        assert_eq!(a.addrs.len(), 2);
        assert!(
            a.addrs
                .iter()
                .all(|(ip, ttl)| *ttl == 30 && !ip.to_string().starts_with("203."))
        );
        // Another id or question is not an answer to this query.
        let other = with_id(&m.to_vec().unwrap(), 10);
        assert_eq!(parse_answer(&other, &q), Err(DnsError::Mismatch));
        let q2 = parse_query(&query(9, "pypi.org.", RecordType::AAAA)).unwrap();
        assert_eq!(
            parse_answer(&m.to_vec().unwrap(), &q2),
            Err(DnsError::Mismatch)
        );
    }

    #[test]
    fn cname_loops_end() {
        let q = parse_query(&query(1, "a.test.", RecordType::A)).unwrap();
        let mut m = Message::response(1, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::A,
        ));
        m.add_answer(rec(
            "a.test.",
            RData::CNAME(CNAME(Name::from_ascii("b.test.").unwrap())),
        ));
        m.add_answer(rec(
            "b.test.",
            RData::CNAME(CNAME(Name::from_ascii("a.test.").unwrap())),
        ));
        assert_eq!(
            parse_answer(&m.to_vec().unwrap(), &q).unwrap().chain,
            ["a.test", "b.test"]
        );
    }

    #[test]
    fn ttls_are_clamped() {
        assert_eq!(admitted_for(0).as_secs(), u64::from(TTL_FLOOR_SECS));
        assert_eq!(admitted_for(60).as_secs(), 60);
        assert_eq!(
            admitted_for(u32::MAX).as_secs(),
            u64::from(TTL_CEILING_SECS)
        );
    }

    #[test]
    fn ranges_merge_with_the_lower_grant() {
        let g = |lo, hi, grant| PortGrant { lo, hi, grant };
        assert_eq!(
            kapl_image::merge_ports(&[g(80, 90, 5)], &[g(85, 100, 2), g(443, 443, 7)]),
            [g(80, 84, 5), g(85, 100, 2), g(443, 443, 7)]
        );
        assert_eq!(
            kapl_image::merge_ports(&[], &[g(0, 65535, 1)]),
            [g(0, 65535, 1)]
        );
    }
}
