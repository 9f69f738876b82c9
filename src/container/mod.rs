//! The lifecycle verbs (create, start, kill, delete, state, list) over the state store.

mod create;
mod exec;
mod lifecycle;
mod pod;
pub mod signal;
pub mod status;
pub mod store;

use std::path::PathBuf;

use thiserror::Error;

pub use create::{create, CreateOpts};
pub use exec::{base_process, exec, guest_ps, ExecOpts};
pub use lifecycle::{
    delete, events, kill, list, pids, set_frozen, start, state, update, write_atomic,
};
pub use pod::joined;
pub use status::Status;
pub use store::{State, Store};

#[derive(Debug, Error)]
pub enum ContainerError {
    #[error(transparent)]
    Config(#[from] crate::oci::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Landlock(#[from] crate::landlock::LandlockError),
    #[error(transparent)]
    Process(#[from] crate::process::ProcessError),
    #[error(transparent)]
    Microvm(#[from] crate::microvm::MicrovmError),
    #[error("{0}")]
    Spawn(String),
    #[error("{0}")]
    Preflight(String),
    #[error("cannot {verb} container {id:?}: it is {status}")]
    WrongStatus {
        verb: &'static str,
        id: String,
        status: &'static str,
    },
    #[error("{0}")]
    Signal(String),
    #[error("{0}")]
    Hook(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> ContainerError {
    let path = path.into();
    move |source| ContainerError::Io { op, path, source }
}
