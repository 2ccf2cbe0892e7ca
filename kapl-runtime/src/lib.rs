//! The runtime's pure core (stage: runtime; no syscalls, no `unsafe`).
//!
//! Everything the supervisor decides or reports that does not touch the
//! kernel lives here, so it is unit-tested and fuzzed without root, clang
//! or BPF:
//!
//! - [`protocol`]: the control protocol between `kapl-run` clients and a
//!   session's supervisor (requests, replies, line framing);
//! - [`auditlog`]: parsing the kernel's audit records (Landlock, seccomp)
//!   and joining them by serial;
//! - [`automaton`] and [`attribution`]: a step's view of the image's path
//!   automata, which grant covers a request, and the nearest grant behind
//!   a denial;
//! - [`report`] and [`record`]: a decision attributed through grant → step
//!   → plan → intent → objective, as a typed, versioned audit record and a
//!   line for the command's stderr;
//! - [`containment`]: the runtime's own check, over image tables only,
//!   that every step of a plan image lies inside an objective image's
//!   bounds and outside its `never` rules, with witnesses;
//! - [`step`]: which step a session starts in and which moves are allowed;
//! - [`narrowing`] and [`precision`]: where enforcement is narrower than a
//!   grant as written, and the report that says so;
//! - [`elf`]: what the kernel starts before a program (its ELF loader or
//!   `#!` interpreter), read from the program's first bytes;
//! - [`proc_cgroup`]: reading `/proc/PID/cgroup` (whose session a process
//!   is in);
//! - [`supervised`]: the calls Landlock has no right for (mode, owner,
//!   times, extended attributes, inotify watches, `listen`), decided
//!   exactly by the supervisor;
//! - [`losses`]: decision events that could not be reported;
//! - [`session_report`]: an audit file (and the images behind it) as one
//!   self-contained HTML page (`kapl-run report`);
//! - [`kernel_level`]: the Landlock ABI a session runs at (`--min-abi`)
//!   and what a level below 7 loses, and [`lsm_layer`]: whether the BPF
//!   LSM precision layer could run (its start-report line);
//! - [`schemas`]: the JSON Schemas of the records and the protocol;
//! - [`otlp`]: decision records as OpenTelemetry log records;
//! - [`mcp`]: the Model Context Protocol server's messages and tools
//!   (`kapl-run mcp`), and [`hook`]: Claude Code's PreToolUse hook
//!   (`kapl-run hook claude-code`).
//!
//! The kernel crate (`kapl-runtime-bpf`) feeds it bytes and kernel events
//! and carries out what it decides.

pub mod access;
pub mod attribution;
pub mod auditlog;
pub mod automaton;
pub mod containment;
pub mod dns;
pub mod elf;
pub mod explain;
pub mod hook;
pub mod kernel_level;
pub mod losses;
pub mod lsm_layer;
pub mod mcp;
pub mod narrowing;
pub mod otlp;
pub mod precision;
pub mod proc_cgroup;
pub mod protocol;
pub mod record;
pub mod report;
pub mod schemas;
pub mod session_report;
pub mod signals;
pub mod step;
pub mod supervised;

#[cfg(test)]
mod tests_support;
