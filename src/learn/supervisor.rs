//! The learning supervisor: a process of its own (forked before the container, so the runtime
//! stays single-threaded for its forks) that accepts the observer filters' listeners at the
//! observer socket, records every notified syscall and lets it continue.
//!
//! The workload cannot use it to block the runtime: the runtime never waits on it until the
//! workload is gone (and then for a bounded time), every notification is answered at once,
//! and what is kept is bounded (one entry per syscall and ABI, [`super::MAX_ARG_TUPLES`]
//! argument tuples each). If the supervisor dies, the listener closes and the kernel fails
//! the workload's syscalls with ENOSYS; the runtime sees the death and kills the workload.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::{abi_of, name_of, sensitive_args, Observations, Seen};
use crate::seccomp::compile::Abi;
use crate::sys::{self, seccomp::Notification, SingleThreaded};

/// The runtime's handle on the supervisor process.
pub struct Learner {
    pid: i32,
    /// Closed when the workload is gone: the supervisor then writes what it saw.
    done: OwnedFd,
    results: OwnedFd,
}

impl Learner {
    /// Fork the supervisor, which serves `listener` (bound at the observer filter's
    /// listenerPath) until [`Learner::finish`].
    pub fn start(one: &SingleThreaded, listener: &UnixListener) -> io::Result<Learner> {
        let (done_r, done_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (res_r, res_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        match sys::fork(one)? {
            sys::Forked::Child(_) => {
                drop(done_w);
                drop(res_r);
                let code = match serve(listener, &done_r, res_w) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("contain learn: supervisor: {e}");
                        1
                    }
                };
                sys::exit_now(code)
            }
            sys::Forked::Parent(pid) => Ok(Learner {
                pid,
                done: done_w,
                results: res_r,
            }),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The workload is gone: collect what the supervisor saw (waiting at most 10 s).
    pub fn finish(self) -> Result<Observations, String> {
        drop(self.done);
        let mut data = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.results.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => {
                    let _ =
                        nix::sys::signal::kill(Pid::from_raw(self.pid), nix::sys::signal::SIGKILL);
                    let _ = waitpid(Pid::from_raw(self.pid), None);
                    return Err("the learning supervisor did not report within 10 s".into());
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("wait for the learning supervisor: {e}")),
                Ok(_) => {}
            }
            match nix::unistd::read(self.results.as_raw_fd(), &mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("read the learning supervisor's report: {e}")),
            }
        }
        let status = waitpid(Pid::from_raw(self.pid), None);
        if data.is_empty() {
            return Err(format!(
                "the learning supervisor died before it reported ({status:?}); nothing was learnt"
            ));
        }
        serde_json::from_slice(&data).map_err(|e| format!("the learning supervisor's report: {e}"))
    }

    /// Whether the supervisor has ended (reaping it if so).
    pub fn ended(&self) -> bool {
        !matches!(
            waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG)),
            Ok(nix::sys::wait::WaitStatus::StillAlive)
        )
    }
}

/// One listener: the process it was made for, and whether that process has reached its
/// execve (before it, the syscalls are contain's own).
struct Watch {
    listener: OwnedFd,
    pid: u32,
    armed: bool,
}

fn serve(listener: &UnixListener, done: &OwnedFd, out: OwnedFd) -> io::Result<()> {
    // Our parent is the runtime; without it nobody collects the result.
    sys::set_parent_death_signal(libc::SIGKILL)?;
    listener.set_nonblocking(true)?;
    let mut rec = Recorder::default();
    let mut watches: Vec<Watch> = Vec::new();
    loop {
        let mut fds = vec![
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(done.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            watches
                .iter()
                .map(|w| PollFd::new(w.listener.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let revents: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        let mut gone = Vec::new();
        for (i, w) in watches.iter_mut().enumerate() {
            let r = revents[i + 2];
            if r.contains(PollFlags::POLLIN) {
                rec.answer(w);
            } else if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            watches.swap_remove(i);
        }
        if !revents[0].is_empty() {
            while let Ok((conn, _)) = listener.accept() {
                match accept_listener(conn) {
                    Ok(w) => {
                        rec.obs.runs += 1;
                        watches.push(w);
                    }
                    Err(e) => rec
                        .obs
                        .note(format!("a listener could not be received: {e}")),
                }
            }
        }
        if !revents[1].is_empty() {
            break;
        }
    }
    rec.obs.note_namespaces();
    let data = serde_json::to_vec(&rec.obs).map_err(io::Error::other)?;
    std::fs::File::from(out).write_all(&data)
}

/// Receive the listener and the process state the runtime sends (the runtime-spec's
/// seccomp agent message: state JSON, the listener as SCM_RIGHTS).
fn accept_listener(conn: UnixStream) -> io::Result<Watch> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let (listener, mut data) = sys::socket::recv_fd_and_data(conn.as_fd())?;
    (&conn).read_to_end(&mut data)?;
    let msg: serde_json::Value = serde_json::from_slice(&data).map_err(io::Error::other)?;
    let pid = msg["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| io::Error::other("the message names no pid"))?;
    // Best effort: without it (before Linux 6.6) learning is only slower.
    let _ = sys::seccomp::notif_sync_wake_up(listener.as_fd());
    Ok(Watch {
        listener,
        pid,
        armed: false,
    })
}

#[derive(Default)]
struct Recorder {
    obs: Observations,
    names: HashMap<(Abi, u32), Option<&'static str>>,
}

impl Recorder {
    /// Take one notification from `w`, record it, let the syscall continue.
    fn answer(&mut self, w: &mut Watch) {
        let n = match sys::seccomp::notif_recv(w.listener.as_fd()) {
            Ok(n) => n,
            // The process died, or was interrupted, between the wake-up and the receive.
            Err(_) => return,
        };
        self.record(w, &n);
        // ENOENT: the process is gone or its syscall was interrupted; nothing to answer.
        let _ = sys::seccomp::notif_continue(w.listener.as_fd(), n.id);
    }

    fn record(&mut self, w: &mut Watch, n: &Notification) {
        let Some((abi, nr)) = abi_of(n.arch, n.nr) else {
            self.obs.note(format!(
                "a syscall of unknown architecture {:#x} was seen",
                n.arch
            ));
            return;
        };
        let name = *self
            .names
            .entry((abi, nr))
            .or_insert_with(|| name_of(abi, nr));
        let Some(name) = name else {
            self.obs.note(format!(
                "syscall number {nr} ({}) has no name in contain's table and is not in the profile",
                abi.token()
            ));
            return;
        };
        if !w.armed && n.pid == w.pid && (name == "execve" || name == "execveat") {
            w.armed = true;
        }
        let set = if w.armed {
            &mut self.obs.syscalls
        } else {
            &mut self.obs.runtime
        };
        let seen: &mut Seen = set
            .entry(abi.token().to_string())
            .or_default()
            .entry(name.to_string())
            .or_default();
        if seen.count == 0 {
            seen.first_by = comm(n.pid);
        }
        seen.count += 1;
        let mask = if abi.wide() {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let indices = sensitive_args(name);
        if !indices.is_empty() {
            seen.add_args(indices.iter().map(|&i| n.args[i] & mask).collect());
        }
        if w.armed && (name == "bind" || name == "connect") {
            if let Some(port) = tcp_port(w.listener.as_fd(), n, mask) {
                self.obs.tcp.add(name, port, || comm(n.pid));
            }
        }
    }
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default()
}

/// The port of a bind or connect on a TCP socket (IPv4 or IPv6), read from the process: the
/// address's family and port from its memory, the socket's type from the
/// descriptor (taken with pidfd_getfd); then checked to be still the notifying process's.
/// None for any other socket or address, or what could not be read.
fn tcp_port(listener: BorrowedFd<'_>, n: &Notification, mask: u64) -> Option<u16> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    use std::os::unix::fs::FileExt;
    if n.args[2] & mask < 4 {
        return None;
    }
    let mem = std::fs::File::open(format!("/proc/{}/mem", n.pid)).ok()?;
    let mut head = [0u8; 4];
    mem.read_exact_at(&mut head, n.args[1] & mask).ok()?;
    let family = i32::from(u16::from_ne_bytes([head[0], head[1]]));
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return None;
    }
    let pidfd = sys::proc::pidfd_open(i32::try_from(n.pid).ok()?).ok()?;
    let sock = sys::seccomp::pidfd_getfd(&pidfd, i32::try_from(n.args[0] & mask).ok()?).ok()?;
    // An IPv4 or IPv6 stream socket is TCP (or MPTCP, which Landlock treats alike).
    let tcp = getsockopt(&sock, sockopt::SockType).ok()? == SockType::Stream;
    sys::seccomp::notif_id_valid(listener, n.id).ok()?;
    tcp.then(|| u16::from_be_bytes([head[2], head[3]]))
}
