//! The KAPL runtime: the only crate with `unsafe`, syscalls and aya.
//!
//! PLAN (issue 5): a session supervisor that runs each agent command under
//! the current step's authority — a Landlock domain built by walking the
//! image's DFAs over the live file system, and cgroup BPF programs (C, built
//! with clang at build time, loaded with aya) deciding network access from
//! the image's LPM maps — and reports every decision with its authority
//! chain.
