//! The control protocol between `kapl-run` clients and a session's
//! supervisor (stage: runtime, sessions).
//!
//! Messages are JSON lines ([`Request`] from the client, [`Reply`] lines
//! back); `exec` passes the client's stdin, stdout and stderr alongside
//! with SCM_RIGHTS (the kernel crate's `control` module moves the bytes and
//! descriptors). The socket is the abstract UNIX socket named by
//! [`socket_name`]. Schema: `schemas/control-request.schema.json` and
//! `schemas/control-reply.schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
#[schemars(title = "kapl-run control request (one line, client to supervisor)")]
pub enum Request {
    /// Run a command under the current step.
    Exec {
        /// argv, as bytes.
        argv: Vec<Vec<u8>>,
        /// Environment (`NAME=value`), as bytes.
        env: Vec<Vec<u8>>,
        /// Working directory, as bytes.
        cwd: Vec<u8>,
        /// Print allow lines too.
        show_allows: bool,
    },
    /// Move to a step.
    Step {
        /// Its name.
        name: String,
    },
    /// Stop the session.
    Stop,
    /// Describe the session.
    Status,
    /// Load a plan image into a session pinned to an objective; the image
    /// comes as the one descriptor sent with the request (a regular file
    /// or memfd the client opened).
    Load {
        /// The image's file name, for messages and the history.
        file: String,
        /// The plan (else the image's only one).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<String>,
        /// The step to start in (else the plan's only start step).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
    },
    /// The latest denials, explained against the pinned objective (the
    /// `ok` reply's message is a JSON array).
    Explain {
        /// How many (the latest).
        last: u32,
    },
    /// What a proposal is built with: the `ok` reply's message is a JSON
    /// [`ProposalContext`], and the objective image comes with it as one
    /// descriptor (a sealed memfd).
    Proposal,
    /// A proposal refused before it reached the supervisor (its build
    /// failed): kept in the session's plan history.
    Refused {
        /// The proposal's file name (`<stdin>`).
        file: String,
        /// SHA-256 of its text, hex.
        sha256: String,
        /// Why, in one line.
        why: String,
    },
}

/// What a client needs to build a proposed plan against a session's
/// objective, with no more authority to read than the session's current
/// step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProposalContext {
    /// The objective image's file name (as `--against` records it).
    pub objective_file: String,
    /// The current step's read rules: `(path, whole subtree)`.
    pub read_rules: Vec<ReadRule>,
}

/// One path a proposal's build may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReadRule {
    /// The path, as bytes.
    pub path: Vec<u8>,
    /// The whole subtree below it (else the file or directory itself).
    pub subtree: bool,
    /// Whether directories may be listed there (else files read only).
    pub list: bool,
}

impl Request {
    /// Parses one request line: the supervisor's only parser of bytes a
    /// client sends (fuzzed by `fuzz/fuzz_targets/control.rs`).
    pub fn parse(line: &[u8]) -> Result<Request, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// A reply line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[schemars(title = "kapl-run control reply (one line, supervisor to client)")]
pub enum Reply {
    /// A line for stderr.
    Notice {
        /// The text.
        line: String,
        /// The decision's audit record, for clients that read it rather
        /// than the text (absent for the session's own notices).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<Box<crate::record::DecisionRecord>>,
    },
    /// The command exited.
    Exit {
        /// Exit status.
        code: i32,
    },
    /// Success, with a message for stdout.
    Ok {
        /// The message.
        message: String,
    },
    /// Failure.
    Error {
        /// The stable code (`KAPL08xx`).
        code: String,
        /// The message.
        message: String,
        /// How to fix it, when there is something to say.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        help: Option<String>,
        /// The exit status the client exits with (125: refused before
        /// the command ran; 126: the command may not run; 127: not found).
        exit: i32,
    },
}

/// A message as one line of the protocol (with its newline).
pub fn line(msg: &impl Serialize) -> Result<Vec<u8>, serde_json::Error> {
    let mut v = serde_json::to_vec(msg)?;
    v.push(b'\n');
    Ok(v)
}

/// The abstract socket name of session `id` of user `uid`.
pub fn socket_name(uid: u32, id: &str) -> Vec<u8> {
    format!("kapl-run/{uid}/{id}").into_bytes()
}

/// Longest line either side accepts; a longer one is an error (a client
/// cannot make the supervisor buffer without bound).
pub const MAX_LINE: usize = 16 << 20;

/// Bytes received so far, cut into lines.
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
}

impl LineBuffer {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete line (without its newline), if any.
    pub fn line(&mut self) -> Option<Vec<u8>> {
        let pos = self.buf.iter().position(|b| *b == b'\n')?;
        let rest = self.buf.split_off(pos + 1);
        let mut line = std::mem::replace(&mut self.buf, rest);
        line.pop();
        Some(line)
    }

    /// Bytes held that are not yet a line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_an_error() {
        for r in [
            Request::Exec {
                argv: vec![b"/bin/true".to_vec()],
                env: vec![b"A=\xff".to_vec()],
                cwd: b"/tmp".to_vec(),
                show_allows: true,
            },
            Request::Step { name: "b".into() },
            Request::Stop,
            Request::Status,
        ] {
            let line = serde_json::to_vec(&r).unwrap_or_default();
            assert_eq!(Request::parse(&line).ok(), Some(r));
        }
        for bad in [
            &b""[..],
            b"{}",
            b"{\"op\":\"nosuch\"}",
            b"\xff",
            b"{\"op\":\"step\"}",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lines_are_cut_at_newlines_only() {
        let mut b = LineBuffer::default();
        b.push(b"{\"a\"");
        assert_eq!(b.line(), None);
        b.push(b":1}\n{\"b\":2}\npart");
        assert_eq!(b.line().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(b.line().as_deref(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(b.line(), None);
        assert_eq!(b.pending(), 4);
    }

    #[test]
    fn error_replies_carry_code_help_and_exit_status() {
        let r = Reply::Error {
            code: "KAPL0806".into(),
            message: "no step".into(),
            help: None,
            exit: 125,
        };
        let line = line(&r).unwrap_or_default();
        assert!(line.ends_with(b"\n"));
        let back: Option<Reply> = serde_json::from_slice(&line[..line.len() - 1]).ok();
        assert_eq!(back, Some(r));
    }
}
