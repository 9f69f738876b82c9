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

pub use exec_init::ExecArgs;
pub use init::InitArgs;
pub use spawn::{spawn, spawn_exec};
