//! The KAPL runtime's kernel crate: the only crate with `unsafe`, syscalls
//! and aya (every system call goes through [`sys`]).
//!
//! Stage: enforcement. Input: a verified image (kapl-image) and a plan.
//! Output: commands running under the current step's authority — a Landlock
//! domain built by walking the image's DFAs over the live file system, cgroup
//! BPF programs (C, built with clang at build time, loaded with aya) deciding
//! network access from the image's LPM entries — and every decision reported
//! with its authority chain. What needs no kernel (the control protocol,
//! audit-record parsing, attribution, the records) is `kapl_runtime`.
//!
//! - [`session`]: a session's lifecycle (steps, commands, events, reports);
//! - [`supervisor`]: a session's supervisor serving `kapl-run` clients;
//! - [`client`]: the client side of `kapl-run exec`, `step`, `status`, `stop`;
//! - [`oneshot`]: `kapl-run IMAGE --plan P -- CMD`;
//! - [`mcp`] and [`hook`]: agents (`kapl-run mcp`, an MCP server on
//!   stdio; `kapl-run hook claude-code`, Claude Code's PreToolUse hook);
//! - [`report`]: `kapl-run report` (the page is built by
//!   `kapl_runtime::session_report`);
//! - [`cli`]: the command line;
//! - the kernel pieces: [`domain`] (Landlock), [`cgroup`], [`bpf`] and
//!   [`unix`] (cgroup BPF), [`lsm_core`] (the BPF LSM layer's decision
//!   core, run through `BPF_PROG_TEST_RUN`) and [`lsm_probe`] (whether
//!   the kernel loads BPF LSM programs), [`audit`] (audit netlink), [`seccomp`],
//!   [`spawn`], [`control`] (the control socket), [`otlp`] (the
//!   collector export), [`sys`].

pub mod audit;
pub mod bpf;
pub mod cgroup;
pub mod cli;
pub mod client;
pub mod control;
pub mod domain;
pub mod error;
pub mod hook;
pub mod lsm_core;
pub mod lsm_probe;
pub mod mcp;
pub mod oneshot;
pub mod otlp;
pub mod propose;
pub mod report;
pub mod seccomp;
pub mod session;
pub mod spawn;
pub mod supervisor;
pub mod sys;
pub mod unix;
