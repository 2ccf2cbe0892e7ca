//! Signals below Landlock ABI 6: which processes a signalling call
//! reaches, so that the supervisor can refuse those outside the session
//! (stage: runtime, supervised calls).
//!
//! From ABI 6 on, Landlock's signal scope keeps a command from signalling
//! any process outside its domain. Below it, the commands' seccomp filter
//! sends the signalling calls to the supervisor instead (`kill`, `tkill`,
//! `tgkill`, `rt_sigqueueinfo`, `rt_tgsigqueueinfo`,
//! `pidfd_send_signal`), which lets the kernel run a call only when every
//! process it reaches is inside the session's cgroup, and otherwise refuses
//! it with EPERM, as the scope would.
//!
//! Input: the call and its raw arguments; for the answer, what `/proc`
//! says about the processes reached. Output: the [`Recipient`] to look
//! up, the signal's name for reports, and the [`Verdict`].
//!
//! Looser than the scope in two ways. Signals between two commands of the
//! session are allowed (the session is one agent; the scope would refuse
//! them between sibling domains). And the kernel delivers the signal after
//! the decision (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`): a target that exits
//! and whose pid is reused by a process outside the session in between
//! would receive it. Pids are reused only after the whole pid space has
//! been cycled through, and `pidfd_send_signal` has no such window.

use crate::proc_cgroup;

/// A signalling system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalCall {
    /// `kill(pid, sig)`.
    Kill,
    /// `tkill(tid, sig)`.
    Tkill,
    /// `tgkill(tgid, tid, sig)`.
    Tgkill,
    /// `rt_sigqueueinfo(tgid, sig, info)`.
    RtSigqueueinfo,
    /// `rt_tgsigqueueinfo(tgid, tid, sig, info)`.
    RtTgsigqueueinfo,
    /// `pidfd_send_signal(pidfd, sig, info, flags)`.
    PidfdSendSignal,
}

/// Whom a call signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient {
    /// One process (or thread) by id.
    Task(i32),
    /// Every process of a process group.
    Group(i32),
    /// Every process of the caller's process group (`kill(0, sig)`).
    CallersGroup,
    /// Every process the caller may signal (`kill(-1, sig)`).
    Everyone,
    /// The process a pidfd of the caller refers to, or with `group`
    /// (`PIDFD_SIGNAL_PROCESS_GROUP`) every process of its process group.
    Pidfd {
        /// The descriptor.
        fd: i32,
        /// The whole process group.
        group: bool,
    },
}

/// `PIDFD_SIGNAL_PROCESS_GROUP` (Linux 6.9): `pidfd_send_signal` signals
/// the pidfd's process group.
pub const PIDFD_SIGNAL_PROCESS_GROUP: u64 = 1 << 2;

/// The low 32 bits of an argument as the kernel reads an `int`.
fn int(a: u64) -> i32 {
    (a as u32).cast_signed()
}

impl SignalCall {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SignalCall::Kill => "kill",
            SignalCall::Tkill => "tkill",
            SignalCall::Tgkill => "tgkill",
            SignalCall::RtSigqueueinfo => "rt_sigqueueinfo",
            SignalCall::RtTgsigqueueinfo => "rt_tgsigqueueinfo",
            SignalCall::PidfdSendSignal => "pidfd_send_signal",
        }
    }

    /// Whom the call with these arguments signals.
    pub fn recipient(self, args: &[u64; 6]) -> Recipient {
        match self {
            SignalCall::Kill => match int(args[0]) {
                0 => Recipient::CallersGroup,
                -1 => Recipient::Everyone,
                p if p < 0 => Recipient::Group(p.wrapping_neg()),
                p => Recipient::Task(p),
            },
            SignalCall::Tkill | SignalCall::RtSigqueueinfo => Recipient::Task(int(args[0])),
            // The thread must belong to the thread group (the kernel
            // checks that); the thread's cgroup is the one asked.
            SignalCall::Tgkill | SignalCall::RtTgsigqueueinfo => Recipient::Task(int(args[1])),
            SignalCall::PidfdSendSignal => Recipient::Pidfd {
                fd: int(args[0]),
                group: args[3] & PIDFD_SIGNAL_PROCESS_GROUP != 0,
            },
        }
    }

    /// The signal number the call sends.
    pub fn signal(self, args: &[u64; 6]) -> i32 {
        match self {
            SignalCall::Kill
            | SignalCall::Tkill
            | SignalCall::RtSigqueueinfo
            | SignalCall::PidfdSendSignal => int(args[1]),
            SignalCall::Tgkill | SignalCall::RtTgsigqueueinfo => int(args[2]),
        }
    }
}

/// A signal's name (`SIGTERM`, `SIGRTMIN+3`, `signal 0` for the existence
/// check, `signal N` for anything else).
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "signal 0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match usize::try_from(sig) {
        Ok(i) if i < NAMES.len() => NAMES[i].to_string(),
        Ok(i) if (32..=64).contains(&i) => format!("SIGRTMIN+{}", i - 32),
        _ => format!("signal {sig}"),
    }
}

/// The pid a pidfd refers to, from its `/proc/PID/fdinfo/FD` text (`Pid:`
/// line; -1 once the process has exited). `None`: not a pidfd.
pub fn pidfd_pid(fdinfo: &str) -> Option<i32> {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A process a call reaches, as the supervisor found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reached {
    /// Its pid.
    pub pid: i32,
    /// Its comm (`?` when it could not be read).
    pub comm: String,
    /// Its `/proc/PID/cgroup` text.
    pub cgroup: String,
}

/// What the supervisor answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every process reached is inside the session (or none exists: the
    /// kernel answers ESRCH itself): the kernel runs the call.
    Run,
    /// Refused (EPERM): the first process reached outside the session, or
    /// `None` for `kill(-1, …)` (every process of the user).
    Refuse(Option<Reached>),
}

/// The verdict for a call reaching `reached` (all processes the recipient
/// names that exist) from a command of session `id`.
pub fn decide(recipient: Recipient, reached: Vec<Reached>, id: &str) -> Verdict {
    if recipient == Recipient::Everyone {
        return Verdict::Refuse(None);
    }
    match reached
        .into_iter()
        .find(|r| !proc_cgroup::in_session(&r.cgroup, id))
    {
        Some(outside) => Verdict::Refuse(Some(outside)),
        None => Verdict::Run,
    }
}

/// Why a signal was refused, for the decision's `why`.
pub fn refusal_why(abi: u8, reached: Option<&Reached>) -> String {
    let whom = match reached {
        Some(_) => "the process is outside the session",
        None => "kill(-1) signals every process of the user, most of them outside the session",
    };
    format!(
        "{whom}: at Landlock ABI {abi} signals are not scoped (that needs ABI 6), so the supervisor decides signalling calls and refuses any that reaches a process outside the session's cgroups"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[i64]) -> [u64; 6] {
        let mut v = [0u64; 6];
        for (i, x) in a.iter().enumerate() {
            v[i] = *x as u64;
        }
        v
    }

    #[test]
    fn recipients_follow_each_call_s_arguments() {
        let k = SignalCall::Kill;
        assert_eq!(k.recipient(&args(&[42, 15])), Recipient::Task(42));
        assert_eq!(k.recipient(&args(&[0, 15])), Recipient::CallersGroup);
        assert_eq!(k.recipient(&args(&[-1, 9])), Recipient::Everyone);
        assert_eq!(k.recipient(&args(&[-77, 9])), Recipient::Group(77));
        // An int argument: the upper half of the register is ignored.
        assert_eq!(
            k.recipient(&[0xdead_0000_0000_0007, 1, 0, 0, 0, 0]),
            Recipient::Task(7)
        );
        assert_eq!(k.signal(&args(&[42, 15])), 15);
        assert_eq!(
            SignalCall::Tgkill.recipient(&args(&[10, 11, 2])),
            Recipient::Task(11)
        );
        assert_eq!(SignalCall::Tgkill.signal(&args(&[10, 11, 2])), 2);
        assert_eq!(
            SignalCall::RtTgsigqueueinfo.recipient(&args(&[10, 12, 3])),
            Recipient::Task(12)
        );
        assert_eq!(
            SignalCall::RtSigqueueinfo.recipient(&args(&[10, 3])),
            Recipient::Task(10)
        );
        assert_eq!(
            SignalCall::PidfdSendSignal.recipient(&args(&[5, 9])),
            Recipient::Pidfd {
                fd: 5,
                group: false
            }
        );
        assert_eq!(
            SignalCall::PidfdSendSignal.recipient(&args(&[5, 9, 0, 4])),
            Recipient::Pidfd { fd: 5, group: true }
        );
        assert_eq!(SignalCall::PidfdSendSignal.signal(&args(&[5, 9])), 9);
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(0), "signal 0");
        assert_eq!(signal_name(34), "SIGRTMIN+2");
        assert_eq!(signal_name(99), "signal 99");
        assert_eq!(signal_name(-3), "signal -3");
    }

    #[test]
    fn a_pidfd_s_pid_comes_from_its_fdinfo() {
        assert_eq!(
            pidfd_pid("pos:\t0\nflags:\t02000002\nPid:\t4242\n"),
            Some(4242)
        );
        assert_eq!(pidfd_pid("Pid:\t-1\n"), Some(-1));
        assert_eq!(pidfd_pid("pos:\t0\nflags:\t02\nmnt_id:\t15\n"), None);
    }

    #[test]
    fn only_processes_inside_the_session_may_be_signalled() {
        let r = |pid, cg: &str| Reached {
            pid,
            comm: "x".into(),
            cgroup: format!("0::{cg}\n"),
        };
        let id = "0123abcd";
        let inside = r(1, "/kapl-0123abcd/step-0/cmd-1");
        let other = r(2, "/kapl-99999999/step-0/cmd-1");
        let host = r(3, "/user.slice");
        assert_eq!(
            decide(Recipient::Task(1), vec![inside.clone()], id),
            Verdict::Run
        );
        assert_eq!(
            decide(Recipient::Task(2), vec![other.clone()], id),
            Verdict::Refuse(Some(other))
        );
        assert_eq!(
            decide(Recipient::Group(1), vec![inside.clone(), host.clone()], id),
            Verdict::Refuse(Some(host))
        );
        // Nothing reached: the kernel says ESRCH itself.
        assert_eq!(decide(Recipient::Task(9), Vec::new(), id), Verdict::Run);
        assert_eq!(
            decide(Recipient::Everyone, vec![inside], id),
            Verdict::Refuse(None)
        );
        assert!(refusal_why(4, None).contains("kill(-1)"));
    }
}
