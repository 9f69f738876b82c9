//! The last steps before a container process execs (shared by the init and `exec`):
//! privileges, working directory, umask, no_new_privs, and the program found in the
//! container's PATH; then the exec itself.

use super::ProcessError;
use crate::sys::during;
use std::ffi::CString;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::caps::CapPlan;
use crate::sys;

/// A program ready to be executed.
pub struct Program {
    path: PathBuf,
    path_c: CString,
    argv: Vec<CString>,
    env: Vec<CString>,
}

/// Why a process could not be made ready to exec.
#[derive(Debug)]
pub enum NotReady {
    /// Its program is not in the container (a shell's status 127).
    NotFound(ProcessError),
    /// Another step failed.
    Failed(ProcessError),
}

impl From<NotReady> for ProcessError {
    fn from(e: NotReady) -> ProcessError {
        match e {
            NotReady::NotFound(e) | NotReady::Failed(e) => e,
        }
    }
}

/// Enter its cwd, drop to the process's capabilities and user, set its umask and
/// no_new_privs, and resolve its program (as the user, in the container's PATH).
pub fn become_process(p: &Process, caps: &CapPlan) -> Result<Program, NotReady> {
    let user = p.user();
    let failed = NotReady::Failed;
    let cwd_err =
        |e: nix::Error| failed(during(format!("process.cwd {}", p.cwd().display()))(e).into());
    // The cwd is entered before the user is (as runc does), so that a process whose user
    // cannot reach it (`exec --user 1000` in a container whose cwd is /root) still starts
    // there; only a refusal for lack of permission is retried as the user.
    let entered = match nix::unistd::chdir(p.cwd()) {
        Ok(()) => true,
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) => false,
        Err(e) => return Err(cwd_err(e)),
    };
    let caps_err = |e| failed(ProcessError::Capabilities(e));
    caps.drop_bounding().map_err(caps_err)?;
    super::credentials::set_user(user).map_err(failed)?;
    caps.apply().map_err(caps_err)?;
    if !entered {
        nix::unistd::chdir(p.cwd()).map_err(cwd_err)?;
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        user.umask().unwrap_or(0o022),
    ));
    if p.no_new_privileges().unwrap_or(false) {
        sys::set_no_new_privs().map_err(|e| failed(during("no_new_privs")(e).into()))?;
    }
    let argv = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    let first = argv
        .first()
        .ok_or_else(|| failed("process.args is empty".into()))?;
    let path = lookup(first, &env).map_err(NotReady::NotFound)?;
    Ok(Program {
        path_c: cstrings(&[path.to_string_lossy().into_owned()])
            .map_err(failed)?
            .remove(0),
        path,
        argv: cstrings(&argv).map_err(failed)?,
        env: cstrings(&env).map_err(failed)?,
    })
}

impl Program {
    /// execve(2); on failure report on stderr (the runtime may be gone) and exit 127 or 126.
    pub fn exec(self) -> ! {
        let err = match nix::unistd::execve(&self.path_c, &self.argv, &self.env) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        eprintln!("contain: exec {}: {err}", self.path.display());
        sys::exit_now(if err == nix::errno::Errno::ENOENT {
            127
        } else {
            126
        })
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Look `prog` up as execvp would, in the container's PATH.
fn lookup(prog: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    let is_exec =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && p.is_file();
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        return if is_exec(&p) {
            Ok(p)
        } else {
            Err(ProcessError::Refused(format!(
                "exec: {prog:?}: no such executable file in the container"
            )))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(prog);
        if is_exec(&p) {
            return Ok(p);
        }
    }
    Err(ProcessError::Refused(format!(
        "exec: {prog:?}: executable file not found in $PATH"
    )))
}

fn cstrings(items: &[String]) -> Result<Vec<CString>, ProcessError> {
    items
        .iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| ProcessError::Refused(format!("{s:?} contains a NUL byte")))
        })
        .collect()
}

/// Every signal back to its default action and none blocked, as a new process expects.
pub(crate) fn reset_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow};
    sys::reset_signal_handlers();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
