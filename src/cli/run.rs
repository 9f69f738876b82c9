//! `run`: create + start; in the foreground, forward signals to the container's init, wait
//! for it, delete the container and exit with its status.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::console::{copy_window_size, pump, ConsoleSocket, RawMode};
use crate::container::{self, CreateOpts, Store};

/// Whether the bundle asks for a terminal (read early: `run` must then own the console).
fn wants_terminal(opts: &CreateOpts) -> bool {
    std::fs::read(opts.bundle.join("config.json"))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .is_some_and(|v| v["process"]["terminal"] == serde_json::Value::Bool(true))
}

pub fn run(store: &Store, opts: &CreateOpts, detach: bool, keep: bool) -> anyhow::Result<i32> {
    if detach {
        container::create(store, opts)?;
        if let Err(e) = container::start(store, &opts.id) {
            let _ = container::delete(store, &opts.id, true);
            return Err(e.into());
        }
        return Ok(0);
    }
    foreground(store, opts, keep, None)
}

/// `run` in the foreground; with `guard`, a child of ours whose end kills the container
/// (`contain learn`'s supervisor, without which the workload's syscalls would fail).
pub fn foreground(
    store: &Store,
    opts: &CreateOpts,
    keep: bool,
    guard: Option<Pid>,
) -> anyhow::Result<i32> {
    let mut opts = opts.clone();
    let console = if opts.console_socket.is_none() && wants_terminal(&opts) {
        let c = ConsoleSocket::new()?;
        opts.console_socket = Some(c.path());
        Some(c)
    } else {
        None
    };
    let mut supervisor = Supervisor::new()?;
    supervisor.guard = guard;
    let state = container::create(store, &opts)?;
    let pid = Pid::from_raw(state.pid);
    let master = match console.as_ref().map(ConsoleSocket::master).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = container::delete(store, &opts.id, true);
            return Err(anyhow::anyhow!("receive the pty master: {e}"));
        }
    };
    drop(console);
    if let Err(e) = container::start(store, &opts.id) {
        let _ = container::delete(store, &opts.id, true);
        return Err(e.into());
    }
    let code = supervisor.wait(pid, master.as_ref())?;
    if !keep {
        container::delete(store, &opts.id, true)?;
    }
    Ok(code)
}

/// Signals blocked (before the child exists, so that none is lost; the child unblocks them)
/// and read through a signalfd, to wait for the child and forward the rest to it.
pub struct Supervisor {
    sfd: SignalFd,
    /// A child whose end kills the waited-for process.
    guard: Option<Pid>,
}

impl Supervisor {
    pub fn new() -> anyhow::Result<Supervisor> {
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        for s in crate::sys::FORWARDED_SIGNALS {
            set.add(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let sfd = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
        Ok(Supervisor { sfd, guard: None })
    }

    /// Wait for `pid` (relaying `master` when given); its exit status.
    pub fn wait(&self, pid: Pid, master: Option<&OwnedFd>) -> anyhow::Result<i32> {
        match master {
            Some(m) => relay(m, self, pid),
            None => wait_forwarding(self, pid),
        }
    }

    /// `pid`'s exit status if it ended; kills it first if the guard ended.
    fn reap(&self, pid: Pid) -> anyhow::Result<Option<i32>> {
        if let Some(g) = self.guard {
            if !matches!(
                waitpid(g, Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive)
            ) {
                let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            }
        }
        reap(pid)
    }
}

fn forward(info: &libc::signalfd_siginfo, pid: Pid, master: Option<&OwnedFd>) {
    let sig = info.ssi_signo as i32;
    if sig == libc::SIGCHLD {
        return;
    }
    if let (Some(m), true) = (master, sig == libc::SIGWINCH) {
        copy_window_size(m);
    }
    if let Ok(s) = Signal::try_from(sig) {
        let _ = nix::sys::signal::kill(pid, s);
    }
}

fn wait_forwarding(sup: &Supervisor, pid: Pid) -> anyhow::Result<i32> {
    let sfd = &sup.sfd;
    loop {
        if let Some(code) = sup.reap(pid)? {
            return Ok(code);
        }
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::NONE);
        while let Ok(Some(info)) = sfd.read_signal() {
            forward(&info, pid, None);
        }
    }
}

/// Relay stdin -> pty and pty -> stdout until the init exits.
fn relay(master: &OwnedFd, sup: &Supervisor, pid: Pid) -> anyhow::Result<i32> {
    let sfd = &sup.sfd;
    let _raw = RawMode::enter();
    copy_window_size(master);
    let m = master.as_raw_fd();
    let (stdin, stdout) = (std::io::stdin(), std::io::stdout());
    let mut stdin_open = true;
    let mut master_open = true;
    loop {
        if let Some(code) = sup.reap(pid)? {
            // Drain what the container wrote before it exited.
            let _ = nix::fcntl::fcntl(
                m,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            while master_open && pump(master.as_fd(), stdout.as_fd()) {}
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if master_open {
            fds.push(PollFd::new(master.as_fd(), PollFlags::POLLIN));
        }
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let _ = poll(&mut fds, PollTimeout::NONE);
        let ready = crate::sys::poll_ready(&fds);
        drop(fds);
        if ready[0] {
            while let Ok(Some(info)) = sfd.read_signal() {
                forward(&info, pid, Some(master));
            }
        }
        let mut i = 1;
        if master_open {
            if ready[i] && !pump(master.as_fd(), stdout.as_fd()) {
                master_open = false;
            }
            i += 1;
        }
        if stdin_open
            && ready.get(i).copied().unwrap_or(false)
            && !pump(stdin.as_fd(), master.as_fd())
        {
            stdin_open = false;
        }
    }
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
