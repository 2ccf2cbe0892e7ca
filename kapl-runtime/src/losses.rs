//! Decision events that could not be reported, by where they were lost.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Decision events that could not be reported, by where they were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Losses {
    /// Network and exec events: ring-buffer reservations that failed
    /// (exact, this session's programs only).
    #[serde(rename = "ring_buffer_events")]
    pub ring_buffer: u64,
    /// Audit records dropped at the session's audit socket (receive buffer
    /// full; exact).
    #[serde(rename = "audit_socket_records")]
    pub audit_socket: u64,
    /// Audit records the kernel dropped host-wide while the session ran
    /// (backlog full; exact for the host, an upper bound for the session).
    #[serde(rename = "audit_kernel_records")]
    pub audit_kernel: u64,
    /// Decision records the runtime could not write to the `--audit` file
    /// (exact; e.g. the disk is full).
    #[serde(rename = "audit_file_records")]
    pub audit_file: u64,
    /// Decision records the runtime could not deliver to the OTLP collector
    /// (`--otlp`; exact: queue full, or the collector refused or did not
    /// answer after the retries).
    #[serde(rename = "otlp_records", default)]
    pub otlp: u64,
}

impl Losses {
    /// Everything lost, in total (saturating: a counter that could not be
    /// read is `u64::MAX`, never a silent 0).
    pub fn total(&self) -> u64 {
        self.ring_buffer
            .saturating_add(self.audit_socket)
            .saturating_add(self.audit_kernel)
            .saturating_add(self.audit_file)
            .saturating_add(self.otlp)
    }
}

impl std::fmt::Display for Losses {
    /// `N events lost, M audit records lost (S at the audit socket, K in
    /// the kernel's backlog; host-wide)`: events are this session's ring
    /// buffer; the audit channels carry every audit record of the host, so
    /// another session's storm can show here (an upper bound, never less).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events lost, {} audit records lost ({} at the audit socket, {} in the kernel's backlog; host-wide)",
            self.ring_buffer,
            self.audit_socket.saturating_add(self.audit_kernel),
            self.audit_socket,
            self.audit_kernel
        )?;
        if self.audit_file > 0 {
            write!(
                f,
                ", {} records not written to the audit file",
                self.audit_file
            )?;
        }
        if self.otlp > 0 {
            write!(
                f,
                ", {} records not delivered to the OTLP collector",
                self.otlp
            )?;
        }
        Ok(())
    }
}

/// The line a command's stderr gets when decision events were lost while
/// it ran (`before` and `now` are [`Losses::total`]): its report of
/// denials is then incomplete, and says so.
pub fn loss_notice(before: u64, now: u64) -> Option<String> {
    (now > before).then(|| {
        format!(
            "kapl-run: {} decision events were lost while this command ran (kernel buffers full, or the audit file or OTLP collector could not take them; a denial is up to 4 audit records); the denials above and in the audit file are incomplete",
            now - before
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_saturate_and_the_file_is_named_only_when_it_lost() {
        let l = Losses {
            ring_buffer: u64::MAX,
            audit_socket: 1,
            ..Losses::default()
        };
        assert_eq!(l.total(), u64::MAX);
        let l = Losses {
            ring_buffer: 2,
            audit_socket: 3,
            audit_kernel: 4,
            audit_file: 0,
            otlp: 0,
        };
        assert_eq!(
            l.to_string(),
            "2 events lost, 7 audit records lost (3 at the audit socket, 4 in the kernel's backlog; host-wide)"
        );
        let l = Losses { audit_file: 5, ..l };
        assert!(
            l.to_string()
                .ends_with(", 5 records not written to the audit file")
        );
        assert_eq!(loss_notice(3, 3), None);
        assert!(loss_notice(3, 5).is_some_and(|l| l.contains(" 2 decision events")));
    }
}
