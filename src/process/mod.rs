//! Creating the container's processes: spawn (runtime side), sync (typed messages), init
//! (everything between fork and exec).

mod credentials;
pub(crate) mod exec;
pub mod exec_init;
pub mod init;
pub mod rlimits;
mod spawn;
pub mod sync;
mod tty;

use std::io;

pub use exec_init::ExecArgs;
pub use init::InitArgs;
pub use spawn::{spawn, spawn_exec};

/// What can go wrong while starting a container's process, on either side of the fork. The
/// forked stages send theirs to the runtime as text over the sync socket, where it arrives
/// as [`ProcessError::Child`]; the runtime's own keep their `io::Error`, and with it the
/// errno.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// A system call failed: the step it was for, and its error.
    #[error(transparent)]
    Sys(#[from] crate::sys::StepError),
    /// A failure whose error says what failed (the sync socket's: the init exited before
    /// reporting, a message cut short; the runtime's thread check before a fork).
    #[error("{0}")]
    Io(io::Error),
    /// The forked stage failed, and said why.
    #[error("{0}")]
    Child(String),
    /// The other side of the sync socket sent what the protocol does not allow here.
    #[error("{0}")]
    Protocol(String),
    /// What config.json or the runtime asks for cannot be done here (a limit above the
    /// host's, an owner the user namespace does not map, a missing section).
    #[error("{0}")]
    Refused(String),
    /// A hook, or the runtime's part of the start (its createRuntime hooks, the seccomp
    /// agent), failed.
    #[error("{0}")]
    Hook(String),
    /// Dropping or setting the process's capabilities.
    #[error("{0}")]
    Capabilities(String),
    /// Building the microVM.
    #[error(transparent)]
    Vm(#[from] crate::microvm::MicrovmError),
    /// Joining or making a namespace.
    #[error("{0}")]
    Namespace(String),
    #[error(transparent)]
    Rootfs(#[from] crate::rootfs::RootfsError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Landlock(#[from] crate::landlock::LandlockError),
}

impl From<&str> for ProcessError {
    fn from(what: &str) -> ProcessError {
        ProcessError::Refused(what.into())
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessError;
    use crate::sys::{during, StepError};
    use std::error::Error;

    #[test]
    fn a_failed_step_names_it_and_keeps_the_errno() {
        let e = ProcessError::from(during("prctl")(nix::errno::Errno::EPERM));
        assert!(e.to_string().starts_with("prctl: "), "{e}");
        let source = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(source.and_then(|s| s.raw_os_error()), Some(libc::EPERM));
        let io = ProcessError::from(during(format!("open {}", "/x"))(
            std::io::Error::from_raw_os_error(libc::ENOENT),
        ));
        assert!(matches!(&io, ProcessError::Sys(StepError { step, source })
            if step == "open /x" && source.raw_os_error() == Some(libc::ENOENT)));
    }

    #[test]
    fn what_a_child_or_a_refusal_says_reads_unchanged() {
        let child = ProcessError::Child("mount /proc: Operation not permitted".into());
        assert_eq!(child.to_string(), "mount /proc: Operation not permitted");
        let refused: ProcessError = "no linux section".into();
        assert!(matches!(&refused, ProcessError::Refused(s) if s == "no linux section"));
        assert_eq!(refused.to_string(), "no linux section");
    }
}
