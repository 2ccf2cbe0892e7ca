//! One audit line, read leniently: the fields a report shows, taken from
//! the JSON by name, so a record of a newer runtime (a target kind, a
//! mechanism or a field this build does not know) still reads. A line
//! without what every record has (time, session, verdict, and for a
//! decision its step, plan, operation and object) is not understood; the
//! report counts it and goes on.

use serde_json::Value;

/// A grant as a record names it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Grant {
    /// Its id in the image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// `FILE:LINE:COLUMN`.
    pub source: String,
    /// Where it is used, when that differs.
    pub site: String,
    /// Its source text.
    pub text: String,
    /// Its step (`None`: plan-wide).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// A decision record's fields the report shows.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// As written.
    pub time: String,
    /// The session id.
    pub session: String,
    /// The host.
    pub host: String,
    /// The user.
    pub uid: Option<u64>,
    /// The process.
    pub pid: Option<i64>,
    /// Its comm.
    pub comm: String,
    /// Its program.
    pub exe: Option<String>,
    /// What it tried.
    pub operation: String,
    /// On what, readable.
    pub object: String,
    /// `target.kind` (`path`, `program`, `endpoint`, ...; empty if absent).
    pub kind: String,
    /// `target.path`, for path-like targets.
    pub path: Option<String>,
    /// Denied (else allowed).
    pub deny: bool,
    /// The allowing grant.
    pub grant: Option<Grant>,
    /// The grant that covers a denial enforcement is narrower than.
    pub covering: Option<Grant>,
    /// The step.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// The plan's revision (pinned sessions).
    pub revision: Option<u64>,
    /// The intent.
    pub intent: Option<String>,
    /// The objective.
    pub objective: String,
    /// Why denied (or allowed without a grant).
    pub reason: Option<String>,
    /// The nearest grant to a denial, and why it does not cover.
    pub nearest: Option<(Grant, String)>,
    /// The mechanism that decided.
    pub mechanism: String,
    /// The name the address was learned from (DNS), if the record says.
    pub learned: Option<String>,
    /// The kernel audit serial.
    pub audit_serial: Option<u64>,
    /// The command whose process it was (`command`), when the record says.
    pub command: Option<u64>,
}

/// A `command_started` record's fields the report shows.
#[derive(Clone, Debug)]
pub struct Started {
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// As written.
    pub time: String,
    /// The session.
    pub session: String,
    /// The host.
    pub host: String,
    /// The user.
    pub uid: Option<u64>,
    /// The command id.
    pub command: u64,
    /// Its process.
    pub pid: Option<i64>,
    /// Its arguments, as recorded.
    pub argv: Vec<String>,
    /// The record cut them.
    pub argv_truncated: bool,
    /// Its program.
    pub program: String,
    /// Its working directory.
    pub cwd: Option<String>,
    /// The step.
    pub step: String,
    /// The plan.
    pub plan: String,
    /// The plan's revision.
    pub revision: Option<u64>,
}

/// A `command_ended` record's fields the report shows.
#[derive(Clone, Debug)]
pub struct Ended {
    /// Milliseconds since the epoch.
    pub ms: i64,
    /// As written.
    pub time: String,
    /// The session.
    pub session: String,
    /// The command id.
    pub command: u64,
    /// How it ended, as the page says it (`exit 0`, `killed by SIGKILL`,
    /// `refused (exit 126)`, ...).
    pub status: String,
    /// It exited 0.
    pub ok: bool,
    /// From start to end, as recorded.
    pub duration_ms: Option<u64>,
    /// Its step's (or the session's) end killed it.
    pub with_step: bool,
}

/// A `lost` record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Lost {
    /// When.
    pub time: String,
    /// The session.
    pub session: String,
    /// Counts by channel (every numeric field of `lost`).
    pub counts: Vec<(String, u64)>,
    /// What the counts mean.
    pub reason: String,
}

/// One line.
#[derive(Clone, Debug)]
pub enum Line {
    /// A decision.
    Decision(Box<Decision>),
    /// Lost events.
    Lost(Lost),
    /// A command started.
    Started(Box<Started>),
    /// A command ended.
    Ended(Ended),
    /// A record the report reads but does not show (`degraded`: the page
    /// is about decisions; the kernel level is in `kapl-run status`).
    Other,
}

/// How a `command_ended` record's `exit` reads, and whether it is 0.
fn exit_text(e: Option<&Value>) -> (String, bool) {
    let Some(e) = e else {
        return ("no exit status recorded".into(), false);
    };
    let num = |k: &str| e.get(k).and_then(Value::as_i64);
    match e.get("kind").and_then(Value::as_str).unwrap_or("") {
        "exited" => {
            let c = num("code").unwrap_or(-1);
            (format!("exit {c}"), c == 0)
        }
        "killed" => {
            let sig = match (text(e, "name"), num("signal")) {
                (Some(n), _) => n,
                (None, Some(n)) => format!("signal {n}"),
                (None, None) => "a signal".into(),
            };
            (format!("killed by {sig}"), false)
        }
        "refused" => ("refused: not executed (exit 126)".into(), false),
        "not_started" => (
            format!("not started: {}", text(e, "error").unwrap_or_default()),
            false,
        ),
        "unknown" => ("exit status unknown".into(), false),
        other => (format!("ended ({other})"), false),
    }
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn need(v: &Value, k: &str) -> Result<String, String> {
    text(v, k).ok_or_else(|| format!("no `{k}`"))
}

fn grant(v: Option<&Value>) -> Option<Grant> {
    let v = v.filter(|v| v.is_object())?;
    Some(Grant {
        id: v.get("id").and_then(Value::as_u64),
        source: text(v, "source").unwrap_or_default(),
        site: text(v, "site").unwrap_or_default(),
        text: text(v, "text").unwrap_or_default(),
        step: text(v, "step"),
    })
}

/// RFC 3339 to milliseconds since the epoch.
pub fn millis(t: &str) -> Option<i64> {
    let st = humantime::parse_rfc3339(t)
        .or_else(|_| humantime::parse_rfc3339_weak(t))
        .ok()?;
    let d = st.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Reads one line (not empty).
pub fn line(s: &str) -> Result<Line, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    let verdict = need(&v, "verdict")?;
    let time = need(&v, "time")?;
    let session = need(&v, "session")?;
    match verdict.as_str() {
        "lost" => {
            let counts = v
                .get("lost")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Line::Lost(Lost {
                time,
                session,
                counts,
                reason: text(&v, "reason").unwrap_or_default(),
            }))
        }
        "allow" | "deny" => {
            let ms = millis(&time).ok_or_else(|| format!("`time` {time:?} is not RFC 3339"))?;
            let target = v.get("target");
            let kind = target.and_then(|t| text(t, "kind")).unwrap_or_default();
            Ok(Line::Decision(Box::new(Decision {
                ms,
                time,
                session,
                host: text(&v, "host").unwrap_or_default(),
                uid: v.get("uid").and_then(Value::as_u64),
                pid: v.get("pid").and_then(Value::as_i64),
                comm: text(&v, "comm").unwrap_or_default(),
                exe: text(&v, "exe"),
                operation: need(&v, "operation")?,
                object: need(&v, "object")?,
                path: target.and_then(|t| text(t, "path")),
                kind,
                deny: verdict == "deny",
                grant: grant(v.get("grant")),
                covering: grant(v.get("covering")),
                step: need(&v, "step")?,
                plan: need(&v, "plan")?,
                revision: v.get("plan_revision").and_then(Value::as_u64),
                intent: text(&v, "intent"),
                objective: text(&v, "objective").unwrap_or_default(),
                reason: text(&v, "reason"),
                nearest: v
                    .get("nearest")
                    .and_then(|n| Some((grant(Some(n))?, text(n, "why").unwrap_or_default()))),
                mechanism: text(&v, "mechanism").unwrap_or_default(),
                learned: v.get("learned").and_then(|l| text(l, "name")),
                audit_serial: v.get("audit_serial").and_then(Value::as_u64),
                command: v.get("command").and_then(Value::as_u64),
            })))
        }
        "command_started" => {
            let ms = millis(&time).ok_or_else(|| format!("`time` {time:?} is not RFC 3339"))?;
            let command = v
                .get("command")
                .and_then(Value::as_u64)
                .ok_or("no `command`")?;
            let argv = v
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            Ok(Line::Started(Box::new(Started {
                ms,
                time,
                session,
                host: text(&v, "host").unwrap_or_default(),
                uid: v.get("uid").and_then(Value::as_u64),
                command,
                pid: v.get("pid").and_then(Value::as_i64),
                argv,
                argv_truncated: v
                    .get("argv_truncated")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                program: text(&v, "program").unwrap_or_default(),
                cwd: text(&v, "cwd"),
                step: need(&v, "step")?,
                plan: need(&v, "plan")?,
                revision: v.get("plan_revision").and_then(Value::as_u64),
            })))
        }
        "command_ended" => {
            let ms = millis(&time).ok_or_else(|| format!("`time` {time:?} is not RFC 3339"))?;
            let command = v
                .get("command")
                .and_then(Value::as_u64)
                .ok_or("no `command`")?;
            let (status, ok) = exit_text(v.get("exit"));
            Ok(Line::Ended(Ended {
                ms,
                time,
                session,
                command,
                status,
                ok,
                duration_ms: v.get("duration_ms").and_then(Value::as_u64),
                with_step: v
                    .get("ended_with_step")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }))
        }
        "degraded" => Ok(Line::Other),
        other => Err(format!("verdict `{other}` is not one this report knows")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_and_fields_still_read_and_missing_ones_do_not() {
        let l = r#"{"schema_version":1,"time":"2026-12-06T04:05:06.789Z","session":"s","host":"h","uid":0,"pid":7,"comm":"curl","exe":"/usr/bin/curl","operation":"connect","object":"93.184.216.34:443 (tcp)","target":{"kind":"host","name":"example.com","address":"93.184.216.34"},"verdict":"allow","grant":null,"step":"a","plan":"p","intent":null,"objective":"o","reason":null,"nearest":null,"mechanism":"resolver","learned":{"name":"example.com","queried_at":"2026-12-06T04:05:06.700Z"},"new_field":[1,2]}"#;
        let Ok(Line::Decision(d)) = line(l) else {
            unreachable!("{:?}", line(l))
        };
        assert_eq!(d.kind, "host");
        assert_eq!(d.mechanism, "resolver");
        assert_eq!(d.learned.as_deref(), Some("example.com"));
        assert_eq!(d.ms, 1_796_529_906_789);
        for bad in [
            "[]",
            "{",
            r#"{"verdict":"allow"}"#,
            r#"{"verdict":"maybe","time":"2026-12-06T04:05:06Z","session":"s"}"#,
            r#"{"verdict":"deny","time":"yesterday","session":"s","step":"a","plan":"p","operation":"o","object":"x"}"#,
        ] {
            assert!(line(bad).is_err(), "{bad}");
        }
    }
}
