//! Signalling calls below Landlock ABI 6 (stage: runtime, supervised
//! calls): the processes a call reaches are looked up in `/proc`, and the
//! call runs only if all of them are inside the session
//! (`kapl_runtime::signals` decides and says why).

use super::{Served, comm_of, decision, read_proc};
use crate::session::Session;
use crate::sys::{self, Answer, Notif};
use kapl_runtime::record::Target;
use kapl_runtime::signals::{self, Reached, Recipient, SignalCall, Verdict};

/// `/proc/PID/cgroup` and `/proc/PID/stat` are short: one read holds them.
const PROC_CAP: usize = 4096;

impl Session {
    /// Decides a signalling call of listener `i`'s command.
    pub(super) fn serve_signal(
        &mut self,
        i: usize,
        n: &Notif,
        call: SignalCall,
        cmd: u64,
        step: u32,
    ) -> Served {
        let recipient = call.recipient(&n.args);
        let reached = match recipient {
            Recipient::Everyone => Vec::new(),
            Recipient::Task(p) => task(p).into_iter().collect(),
            Recipient::Group(g) => group(g),
            Recipient::CallersGroup => match pgrp_of(n.pid as i32) {
                Some(g) => group(g),
                None => return Served::errno(libc::ESRCH),
            },
            Recipient::Pidfd { fd, group: g } => match pidfd_target(n.pid, fd) {
                PidfdTarget::Pid(p) if g => match pgrp_of(p) {
                    Some(pg) => group(pg),
                    None => Vec::new(),
                },
                PidfdTarget::Pid(p) => task(p).into_iter().collect(),
                PidfdTarget::Gone => Vec::new(),
                PidfdTarget::Unknown(what) => vec![Reached {
                    pid: 0,
                    comm: what,
                    cgroup: String::new(),
                }],
            },
        };
        // The caller is still the thread that asked (its pid was not
        // reused while /proc was read on its behalf).
        if !sys::notif_id_valid(&self.supervised.listeners[i].fd, n.id) {
            return Served::errno(libc::ENOENT);
        }
        match signals::decide(recipient, reached, &self.id) {
            Verdict::Run => Served::answer(Answer::Continue),
            Verdict::Refuse(outside) => {
                let sig = signals::signal_name(call.signal(&n.args));
                let target = match &outside {
                    Some(r) => Target::Process {
                        pid: i64::from(r.pid),
                        comm: r.comm.clone(),
                    },
                    None => Target::Process {
                        pid: -1,
                        comm: "every process of the user".into(),
                    },
                };
                let why = signals::refusal_why(self.level.abi, outside.as_ref());
                Served {
                    answer: Answer::Errno(libc::EPERM),
                    decision: Some(decision(
                        n,
                        cmd,
                        step,
                        format!("{} {sig}", call.name()),
                        target,
                        None,
                        None,
                        Some(why),
                    )),
                }
            }
        }
    }
}

/// The process `pid` as reached, or `None` if it does not exist.
fn task(pid: i32) -> Option<Reached> {
    if pid <= 0 {
        return None;
    }
    let cg = read_proc(&format!("/proc/{pid}/cgroup"), PROC_CAP).ok()?;
    Some(Reached {
        pid,
        comm: comm_of(pid as u32),
        cgroup: String::from_utf8_lossy(&cg).into_owned(),
    })
}

/// The process group of `pid` (`/proc/PID/stat`, the third field after
/// the command name).
fn pgrp_of(pid: i32) -> Option<i32> {
    let stat = read_proc(&format!("/proc/{pid}/stat"), PROC_CAP).ok()?;
    let stat = String::from_utf8_lossy(&stat);
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Every process of process group `g`.
fn group(g: i32) -> Vec<Reached> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // Cannot tell who is in the group: refuse (fail closed).
        return vec![Reached {
            pid: -g,
            comm: "(process group: /proc unreadable)".into(),
            cgroup: String::new(),
        }];
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| pgrp_of(*p) == Some(g))
        .filter_map(task)
        .collect()
}

/// What a descriptor given to `pidfd_send_signal` refers to.
enum PidfdTarget {
    /// A live process.
    Pid(i32),
    /// A process that has exited, or no descriptor at all: the kernel
    /// answers the call itself (ESRCH, EBADF).
    Gone,
    /// Something this layer cannot place (a pidfd of another pid
    /// namespace, a `/proc` directory of another mount): refused.
    Unknown(String),
}

fn pidfd_target(tid: u32, fd: i32) -> PidfdTarget {
    if fd < 0 {
        return PidfdTarget::Gone;
    }
    let Ok(link) = std::fs::read_link(format!("/proc/{tid}/fd/{fd}")) else {
        return PidfdTarget::Gone;
    };
    if let Ok(info) = read_proc(&format!("/proc/{tid}/fdinfo/{fd}"), PROC_CAP)
        && let Some(pid) = signals::pidfd_pid(&String::from_utf8_lossy(&info))
    {
        return match pid {
            -1 => PidfdTarget::Gone,
            0 => PidfdTarget::Unknown("(a process of another pid namespace)".into()),
            p => PidfdTarget::Pid(p),
        };
    }
    // The kernel also takes a `/proc/PID` directory descriptor.
    let shown = link.display().to_string();
    match shown.strip_prefix("/proc/").map(str::parse::<i32>) {
        Some(Ok(p)) => PidfdTarget::Pid(p),
        _ if shown.starts_with("anon_inode:") || shown.contains(":[") => PidfdTarget::Gone,
        _ => PidfdTarget::Unknown(format!("(descriptor {fd}: {shown})")),
    }
}
