//! `run`: create + start; in the foreground, forward signals to the container's init, wait
//! for it, delete the container and exit with its status.

use std::os::fd::AsFd;

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::{self, CreateOpts, Store};

const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

pub fn run(store: &Store, opts: &CreateOpts, detach: bool, keep: bool) -> anyhow::Result<i32> {
    if detach {
        container::create(store, opts)?;
        if let Err(e) = container::start(store, &opts.id) {
            let _ = container::delete(store, &opts.id, true);
            return Err(e.into());
        }
        return Ok(0);
    }
    // Block the signals before the init exists so that none is lost; the init unblocks them.
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    for s in FORWARDED {
        set.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC)?;
    let state = container::create(store, opts)?;
    let pid = Pid::from_raw(state.pid);
    if let Err(e) = container::start(store, &opts.id) {
        let _ = container::delete(store, &opts.id, true);
        return Err(e.into());
    }
    let code = loop {
        if let Some(code) = reap(pid)? {
            break code;
        }
        let Some(info) = sfd.read_signal()? else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig != libc::SIGCHLD {
            if let Ok(s) = Signal::try_from(sig) {
                let _ = nix::sys::signal::kill(pid, s);
            }
        }
    };
    let _ = sfd.as_fd();
    if !keep {
        container::delete(store, &opts.id, true)?;
    }
    Ok(code)
}

/// Reap the init if it exited; its exit code, or 128 + the signal that killed it.
fn reap(pid: Pid) -> anyhow::Result<Option<i32>> {
    match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, code)) => Ok(Some(code)),
        Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(128 + sig as i32)),
        Ok(_) => Ok(None),
        Err(nix::errno::Errno::ECHILD) => Ok(Some(255)),
        Err(e) => Err(e.into()),
    }
}
