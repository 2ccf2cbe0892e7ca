//! The image evaluator: answers a request from the tables exactly as the
//! runtime and the BPF programs read them.
//!
//! Input: a validated [`Image`], a plan, a step and a [`Request`].
//! Output: [`Decision::Allow`] with the allowing grant (the lowest-id grant
//! of the step, plan-wide grants included, that covers the request) or
//! [`Decision::Deny`].
//!
//! Paths are walked byte by byte through the plan's DFA; network requests go
//! through the byte-level LPM maps of [`crate::bpf::NetMaps`]; a connect by
//! host name ([`Evaluator::decide_name`]) also through the plan's name tables.

use crate::bpf::NetMaps;
use crate::model::*;
use std::net::IpAddr;

/// One request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// A file-system access.
    Fs {
        /// The right needed.
        right: FsRight,
        /// The absolute path.
        path: Vec<u8>,
    },
    /// Executing a program.
    Exec {
        /// The executed file's absolute path.
        path: Vec<u8>,
    },
    /// A network operation.
    Net {
        /// Connect (or send) / bind.
        op: NetOp,
        /// The address (IPv4-mapped IPv6 is treated as IPv4).
        addr: IpAddr,
        /// The port.
        port: u16,
        /// TCP or UDP.
        proto: Proto,
    },
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this grant.
    Allow {
        /// The grant id.
        grant: u32,
    },
    /// No grant of the step covers the request.
    Deny,
}

impl Decision {
    /// The allowing grant, if any.
    pub fn grant(self) -> Option<u32> {
        match self {
            Decision::Allow { grant } => Some(grant),
            Decision::Deny => None,
        }
    }
}

/// The grant of `step` that covers `path` in column `column` of the plan's
/// `kind` DFA (the fs rights' columns, or 0 for exec): the one lookup the
/// evaluator and the runtime's attribution of kernel decisions share.
pub fn path_grant(
    plan: &Plan,
    kind: DfaKind,
    column: usize,
    step: u32,
    path: &[u8],
) -> Option<u32> {
    let d = match kind {
        DfaKind::Fs => &plan.fs,
        DfaKind::Exec => &plan.exec,
    };
    let g = d.cell(d.walk(path), step, column).grant;
    (g != NO_GRANT).then_some(g)
}

/// Evaluates requests against one plan of an image.
#[derive(Clone, Debug)]
pub struct Evaluator<'a> {
    plan: &'a Plan,
    net: NetMaps,
}

impl<'a> Evaluator<'a> {
    /// An evaluator for `plan` (lays out its network maps once).
    pub fn new(plan: &'a Plan) -> Evaluator<'a> {
        Evaluator {
            plan,
            net: NetMaps::of(plan),
        }
    }

    /// The plan.
    pub fn plan(&self) -> &'a Plan {
        self.plan
    }

    /// Decides `req` in `step`; an out-of-range step denies everything.
    pub fn decide(&self, step: u32, req: &Request) -> Decision {
        if step as usize >= self.plan.steps.len() {
            return Decision::Deny;
        }
        let grant = match req {
            Request::Fs { right, path } => {
                path_grant(self.plan, DfaKind::Fs, right.column(), step, path).unwrap_or(NO_GRANT)
            }
            Request::Exec { path } => {
                path_grant(self.plan, DfaKind::Exec, 0, step, path).unwrap_or(NO_GRANT)
            }
            Request::Net {
                op,
                addr,
                port,
                proto,
            } => self
                .net
                .lookup(step, *op, *proto, *addr, *port)
                .unwrap_or(NO_GRANT),
        };
        if grant == NO_GRANT {
            Decision::Deny
        } else {
            Decision::Allow { grant }
        }
    }

    /// Decides a connect (or send) to `addr` learned for `name` in `step`,
    /// as the runtime does once the session's resolver has admitted it: the
    /// lower of the grant whose address rule covers the request and the
    /// grant whose name rule allows `name` on `port`, when
    /// [`Plan::name_admits`] the address (public, outside every `never`
    /// range) and the name is no [`Plan::name_never`] name.
    pub fn decide_name(
        &self,
        step: u32,
        proto: Proto,
        name: &str,
        addr: IpAddr,
        port: u16,
    ) -> Decision {
        let by_addr = self.decide(
            step,
            &Request::Net {
                op: NetOp::Connect,
                addr,
                port,
                proto,
            },
        );
        let by_name = (step < self.plan.steps.len() as u32
            && self.plan.name_admits(proto, addr, port)
            && !self.plan.name_never(proto, name))
        .then(|| {
            self.plan
                .name_ports(step, proto, name)
                .iter()
                .find(|p| p.lo <= port && port <= p.hi)
                .map(|p| p.grant)
        })
        .flatten();
        match (by_addr.grant(), by_name) {
            (Some(a), Some(b)) => Decision::Allow { grant: a.min(b) },
            (Some(g), None) | (None, Some(g)) => Decision::Allow { grant: g },
            (None, None) => Decision::Deny,
        }
    }
}
