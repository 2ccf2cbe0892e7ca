//! The JSON Schemas of the runtime's machine outputs, generated from the
//! types: the audit record and the control protocol's two directions.
//! `kapl-run schema NAME|--all --out DIR` writes them; the committed copies
//! live in `schemas/` at the repository root, and
//! `cargo test -p kapl-runtime --test schemas` fails when one is stale.

use crate::protocol::{Reply, Request};
use crate::record::AuditRecord;
use serde_json::{Map, Value};

/// A document the runtime writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Document {
    /// One line of an `--audit` file.
    AuditRecord,
    /// A control request line.
    ControlRequest,
    /// A control reply line.
    ControlReply,
}

impl Document {
    /// Every document, in the order `--all` writes them.
    pub const ALL: [Document; 3] = [
        Document::AuditRecord,
        Document::ControlRequest,
        Document::ControlReply,
    ];

    /// The name, as on the command line and in `NAME.schema.json`.
    pub fn name(self) -> &'static str {
        match self {
            Document::AuditRecord => "audit-record",
            Document::ControlRequest => "control-request",
            Document::ControlReply => "control-reply",
        }
    }

    /// The document named `name`.
    pub fn by_name(name: &str) -> Option<Document> {
        Document::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The JSON Schema (draft 2020-12), as written: keys sorted at every
    /// level, two-space indented, with a final newline.
    pub fn schema_text(self) -> String {
        let generator = schemars::generate::SchemaSettings::draft2020_12()
            .for_serialize()
            .into_generator();
        let schema = match self {
            Document::AuditRecord => generator.into_root_schema_for::<AuditRecord>(),
            Document::ControlRequest => generator.into_root_schema_for::<Request>(),
            Document::ControlReply => generator.into_root_schema_for::<Reply>(),
        };
        let mut text = serde_json::to_string_pretty(&sorted(schema.to_value())).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// `v` with every object's keys in sorted order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sorted(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}
