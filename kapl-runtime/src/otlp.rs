//! Decision records as OpenTelemetry log records (OTLP/HTTP, JSON
//! encoding), for fleets that ship decisions to an existing log pipeline.
//!
//! Input: [`DecisionRecord`]s and who reported them ([`Origin`]). Output:
//! one `LogRecord` per decision, its authority chain as attributes
//! (`kapl.objective`, `kapl.intent`, `kapl.plan`, `kapl.step`,
//! `kapl.grant.id`, `kapl.grant.site`, `kapl.verdict`, `kapl.object`, ...),
//! the whole record as the body; and the `ExportLogsServiceRequest` body a
//! batch is posted in to `URL/v1/logs`. The transport (batching, retries,
//! bounded memory) is the kernel crate's.

use crate::record::{DecisionRecord, Verdict};
use crate::report::Origin;
use serde_json::{Value, json};

/// Where logs are posted: a plain-HTTP collector's base address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port (4318 when the URL names none, OTLP/HTTP's default).
    pub port: u16,
    /// The request path: the URL's path followed by `/v1/logs`.
    pub path: String,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/BASE]`. Only plain HTTP is spoken (a
    /// local collector or agent forwards to TLS back ends).
    pub fn parse(url: &str) -> Result<Endpoint, String> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            format!("`{url}`: the OTLP address must start with http:// (kapl-run speaks plain OTLP/HTTP to a local collector)")
        })?;
        let (authority, base) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("`{url}`: `{p}` is not a port"))?;
                (h, port)
            }
            _ => (authority, 4318),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
            path: format!("{base}/v1/logs"),
        })
    }
}

fn string(key: &str, v: &str) -> Value {
    json!({"key": key, "value": {"stringValue": v}})
}

fn int(key: &str, v: i64) -> Value {
    // OTLP/JSON writes 64-bit integers as strings.
    json!({"key": key, "value": {"intValue": v.to_string()}})
}

/// One decision as an OTLP `LogRecord` (JSON).
pub fn log_record(r: &DecisionRecord) -> Value {
    let nanos = humantime::parse_rfc3339(&r.time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut attrs = vec![
        string(
            "kapl.verdict",
            if r.verdict == Verdict::Deny {
                "deny"
            } else {
                "allow"
            },
        ),
        string("kapl.operation", &r.operation),
        string("kapl.object", &r.object),
        string("kapl.objective", &r.objective),
        string("kapl.plan", &r.plan),
        string("kapl.step", &r.step),
        string("kapl.session", &r.session),
        string(
            "kapl.mechanism",
            serde_json::to_value(r.mechanism)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
                .as_str(),
        ),
        string("process.command", &r.comm),
    ];
    if let Some(i) = &r.intent {
        attrs.push(string("kapl.intent", i));
    }
    if let Some(g) = &r.grant {
        attrs.push(int("kapl.grant.id", i64::from(g.id)));
        attrs.push(string("kapl.grant.site", &g.site));
        attrs.push(string("kapl.grant.source", &g.source));
        attrs.push(string("kapl.grant.text", &g.text));
    }
    if let Some(n) = &r.nearest {
        attrs.push(int("kapl.nearest.id", i64::from(n.grant.id)));
        attrs.push(string("kapl.nearest.site", &n.grant.site));
        attrs.push(string("kapl.nearest.why", &n.why));
    }
    if let Some(p) = r.pid {
        attrs.push(int("process.pid", i64::from(p)));
    }
    if let Some(e) = &r.exe {
        attrs.push(string("process.executable.path", e));
    }
    if let Some(s) = r.audit_serial {
        attrs.push(int(
            "kapl.audit_serial",
            i64::try_from(s).unwrap_or(i64::MAX),
        ));
    }
    let (number, text) = match r.verdict {
        Verdict::Deny => (13, "WARN"),
        Verdict::Allow => (9, "INFO"),
    };
    json!({
        "timeUnixNano": nanos.to_string(),
        "observedTimeUnixNano": nanos.to_string(),
        "severityNumber": number,
        "severityText": text,
        "body": {"stringValue": serde_json::to_string(r).unwrap_or_default()},
        "attributes": attrs,
    })
}

/// The body that posts `records` (each from [`log_record`]) for `origin`.
pub fn export_request(origin: &Origin, records: Vec<Value>) -> Vec<u8> {
    let body = json!({
        "resourceLogs": [{
            "resource": {"attributes": [
                string("service.name", "kapl-run"),
                string("service.version", env!("CARGO_PKG_VERSION")),
                string("host.name", &origin.host),
                string("kapl.session", &origin.session),
                int("user.id", i64::from(origin.uid)),
            ]},
            "scopeLogs": [{
                "scope": {"name": "kapl-run", "version": env!("CARGO_PKG_VERSION")},
                "logRecords": records,
            }],
        }],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_the_logs_path() {
        let e = Endpoint::parse("http://127.0.0.1:4318").unwrap_or_else(panic_free);
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 4318, "/v1/logs")
        );
        let e = Endpoint::parse("http://collector/otel/").unwrap_or_else(panic_free);
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("collector", 4318, "/otel/v1/logs")
        );
        let e = Endpoint::parse("http://[::1]:9000").unwrap_or_else(panic_free);
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        for bad in [
            "https://x",
            "x:1",
            "http://",
            "http://h:port",
            "http://h:99999",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    fn panic_free(e: String) -> Endpoint {
        Endpoint {
            host: e,
            port: 0,
            path: String::new(),
        }
    }
}
