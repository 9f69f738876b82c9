//! A container's status, derived each time from the live process (its pid *and* start time,
//! so a reused pid is never taken for the container) and the exec fifo.

use std::path::Path;

use crate::sys::proc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    pub fn can_start(self) -> bool {
        self == Status::Created
    }

    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }

    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped)
    }

    /// Derive the status (pure, given the process facts).
    pub fn derive(
        live: Option<proc::ProcStat>,
        start_time: u64,
        fifo_exists: bool,
        frozen: bool,
    ) -> Status {
        match live {
            Some(st) if st.start_time == start_time && st.state != 'Z' && st.state != 'X' => {
                if fifo_exists {
                    Status::Created
                } else if frozen {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }
}

/// The status of the container whose init is `pid`.
pub fn current(pid: i32, start_time: u64, fifo: &Path, freezer_state: Option<&Path>) -> Status {
    let frozen = freezer_state
        .and_then(|p| std::fs::read_to_string(p).ok())
        .is_some_and(|s| s.trim() == "FROZEN" || s.trim() == "1");
    Status::derive(proc::stat(pid), start_time, fifo.exists(), frozen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(state: char, start: u64) -> Option<proc::ProcStat> {
        Some(proc::ProcStat {
            state,
            start_time: start,
        })
    }

    #[test]
    fn derivation() {
        assert_eq!(Status::derive(st('S', 7), 7, true, false), Status::Created);
        assert_eq!(Status::derive(st('S', 7), 7, false, false), Status::Running);
        assert_eq!(Status::derive(st('S', 7), 7, false, true), Status::Paused);
        // A reused pid: another start time.
        assert_eq!(Status::derive(st('S', 8), 7, false, false), Status::Stopped);
        assert_eq!(Status::derive(st('Z', 7), 7, false, false), Status::Stopped);
        assert_eq!(Status::derive(None, 7, true, false), Status::Stopped);
    }

    #[test]
    fn predicates() {
        assert!(Status::Created.can_start() && !Status::Running.can_start());
        assert!(Status::Running.can_kill() && !Status::Stopped.can_kill());
        assert!(Status::Stopped.can_delete() && !Status::Running.can_delete());
    }
}
