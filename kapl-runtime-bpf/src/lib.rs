//! The KAPL runtime: the only crate with `unsafe`, syscalls and aya.
//!
//! Stage: enforcement. Input: a verified image (kapl-image) and a plan.
//! Output: commands running under the current step's authority — a Landlock
//! domain built by walking the image's DFAs over the live file system, cgroup
//! BPF programs (C, built with clang at build time, loaded with aya) deciding
//! network access from the image's LPM entries — and every decision reported
//! with its authority chain.

pub mod audit;
pub mod bpf;
pub mod cgroup;
pub mod control;
pub mod domain;
pub mod engine;
pub mod plan;
pub mod seccomp;
pub mod spawn;
pub mod sys;
pub mod unix;
