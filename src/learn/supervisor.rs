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
use std::os::unix::fs::FileExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::{abi_of, caps, fs, name_of, sensitive_args, Observations, Seen};
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
                let served = sys::set_parent_death_signal(libc::SIGKILL)
                    .and_then(|()| serve(listener, Until::Done(&done_r)))
                    .and_then(|obs| {
                        let data = serde_json::to_vec(&obs).map_err(io::Error::other)?;
                        std::fs::File::from(res_w).write_all(&data)
                    });
                let code = match served {
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

/// Fork a supervisor for `create --learn` (a client's create: podman, containerd), detached
/// from the runtime, which exits at once. In the child: a session of its own, stdio on
/// /dev/null (a client waiting for the runtime's output must not wait for it), serving
/// `listener` until the container's init has exited and every listener is closed; then
/// `finish` gets what it saw, and the child returns [`Detached::Child`] with its exit
/// status, for the caller to clean up and exit.
pub fn detach(
    one: &SingleThreaded,
    listener: &UnixListener,
    finish: impl FnOnce(Observations) -> Result<(), String>,
) -> io::Result<Detached> {
    match sys::fork(one)? {
        sys::Forked::Child(_) => {
            let served = (|| -> Result<(), String> {
                nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
                let null = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| format!("/dev/null: {e}"))?;
                for fd in 0..3 {
                    nix::unistd::dup2(null.as_raw_fd(), fd).map_err(|e| format!("dup2: {e}"))?;
                }
                let obs = serve(listener, Until::InitGone).map_err(|e| e.to_string())?;
                finish(obs)
            })();
            Ok(Detached::Child(i32::from(served.is_err())))
        }
        sys::Forked::Parent(pid) => Ok(Detached::Parent(pid)),
    }
}

/// Which side of [`detach`] returned.
pub enum Detached {
    /// The runtime: the supervisor's pid.
    Parent(i32),
    /// The supervisor, done: its exit status.
    Child(i32),
}

/// When a supervisor stops serving.
enum Until<'a> {
    /// The runtime closes this pipe (`contain learn`: the workload is gone).
    Done(&'a OwnedFd),
    /// The first listener's process (the container's init) has exited and every listener
    /// is closed (`create --learn`).
    InitGone,
}

fn serve(listener: &UnixListener, until: Until<'_>) -> io::Result<Observations> {
    listener.set_nonblocking(true)?;
    let mut rec = Recorder::default();
    let mut watches: Vec<Watch> = Vec::new();
    let mut init: Option<OwnedFd> = None;
    let mut init_gone = false;
    loop {
        if matches!(until, Until::InitGone) && init_gone && watches.is_empty() {
            break;
        }
        // The second slot: the runtime's pipe, or the init's pidfd (readable once it exits).
        let second = match (&until, &init) {
            (Until::Done(fd), _) => Some(fd.as_fd()),
            (Until::InitGone, Some(pidfd)) if !init_gone => Some(pidfd.as_fd()),
            _ => None,
        };
        let mut fds = vec![PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        fds.push(match second {
            Some(fd) => PollFd::new(fd, PollFlags::POLLIN),
            None => PollFd::new(listener.as_fd(), PollFlags::empty()),
        });
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
        let second_ready = second.is_some() && !revents[1].is_empty();
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
                        if init.is_none() {
                            init = i32::try_from(w.pid)
                                .ok()
                                .and_then(|p| sys::proc::pidfd_open(p).ok());
                            // Gone already (or its pid unknown): end when its listeners are.
                            init_gone = init.is_none();
                        }
                        watches.push(w);
                    }
                    Err(e) => rec
                        .obs
                        .note(format!("a listener could not be received: {e}")),
                }
            }
        }
        if second_ready {
            match until {
                Until::Done(_) => break,
                Until::InitGone => init_gone = true,
            }
        }
    }
    rec.obs.note_namespaces();
    Ok(rec.obs)
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
        // The arguments as the ABI has them (a 32-bit ABI's upper halves are not its own).
        let mask = if abi.wide() {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let n = &Notification {
            args: n.args.map(|a| a & mask),
            ..*n
        };
        let indices = sensitive_args(name);
        if !indices.is_empty() {
            seen.add_args(indices.iter().map(|&i| n.args[i]).collect());
        }
        if !w.armed {
            return;
        }
        for cap in caps::needed_by(name, &n.args) {
            self.need(cap, || format!("{name} by {:?}", comm(n.pid)));
        }
        if name == "bind" || name == "connect" {
            if let Some(port) = tcp_port(w.listener.as_fd(), n) {
                self.obs.tcp.add(name, port, || comm(n.pid));
                if name == "bind" && (1..1024).contains(&port) {
                    self.need("CAP_NET_BIND_SERVICE", || {
                        format!("bind to port {port} by {:?}", comm(n.pid))
                    });
                }
            }
        }
        self.record_paths(w, n, name);
    }

    fn need(&mut self, cap: &str, why: impl FnOnce() -> String) {
        self.obs.caps.entry(cap.to_string()).or_insert_with(why);
    }

    /// The directories a path syscall needs Landlock rights beneath (see [`path_rights`]).
    fn record_paths(&mut self, w: &Watch, n: &Notification, name: &str) {
        let ops = path_rights(name, n);
        if ops.is_empty() {
            return;
        }
        let Ok(mem) = std::fs::File::open(format!("/proc/{}/mem", n.pid)) else {
            return;
        };
        let Some(tree) = Tree::of(n.pid) else {
            return;
        };
        let mut found = Vec::new();
        let mut dac = None;
        for op in ops {
            let (fixed, open) = match op.rights {
                Rights::Fixed(r) => (r, None),
                Rights::Open(flags) => (Vec::new(), Some(flags)),
                Rights::OpenHow(addr) => {
                    let mut flags = [0u8; 8];
                    if mem.read_exact_at(&mut flags, addr).is_err() {
                        continue;
                    }
                    (Vec::new(), Some(u64::from_ne_bytes(flags)))
                }
            };
            let Some(path) = read_path(&mem, op.path) else {
                continue;
            };
            let base = match op.dirfd {
                Some(fd) if fd != libc::AT_FDCWD => format!("/proc/{}/fd/{fd}", n.pid),
                _ => format!("/proc/{}/cwd", n.pid),
            };
            let Some(base) = std::fs::read_link(&base).ok().and_then(|b| tree.inside(&b)) else {
                continue;
            };
            let abs = fs::absolute(&base, &path);
            let executes = fixed.contains(&"execute");
            let follow =
                executes || open.is_some_and(|f| f as i32 & (libc::O_NOFOLLOW | libc::O_PATH) == 0);
            let (real, meta) = tree.resolve(&abs, follow);
            // The kernel's filesystems are granted at their mount point, and kept where the
            // lookup fails: /proc/self is the supervisor's there, which is not in the
            // container's pid namespace.
            let kernel = abs.starts_with("/proc") || abs.starts_with("/sys");
            let creates = open.is_some_and(|f| f as i32 & libc::O_CREAT != 0);
            if !kernel && meta.is_none() && (executes || open.is_some() && !creates) {
                // Opening or executing what does not exist fails before Landlock is asked
                // (and a rule on a missing directory could not be applied).
                continue;
            }
            let rights = match open {
                Some(flags) => {
                    dac = meta
                        .as_ref()
                        .and_then(|m| dac_of_open(n.pid, m, flags))
                        .map(|c| (c, real.clone()));
                    let is_dir = meta.as_ref().is_some_and(|m| m.is_dir())
                        || flags as i32 & libc::O_DIRECTORY != 0;
                    fs::open_rights(flags, is_dir)
                }
                None => fixed,
            };
            if executes {
                found.extend(
                    interpreters(&tree, &real)
                        .into_iter()
                        .map(|p| (p, fs::EXECUTE.to_vec())),
                );
            }
            found.push((real, rights));
        }
        // All of it read from the process that is still in the syscall notified.
        if sys::seccomp::notif_id_valid(w.listener.as_fd(), n.id).is_err() {
            return;
        }
        if let Some((caps, path)) = dac {
            for cap in caps {
                self.need(cap, || {
                    format!("{name} {} by {:?}", path.display(), comm(n.pid))
                });
            }
        }
        for (path, rights) in found {
            for r in rights {
                let kept = fs::add(&mut self.obs.fs, &path, r, || {
                    format!("{name} {} by {:?}", path.display(), comm(n.pid))
                });
                if !kept {
                    self.obs.note(format!(
                        "more than {} directories were read, written or executed from: the later ones were granted at their top-level directory",
                        fs::MAX_DIRS
                    ));
                }
            }
        }
    }
}

/// Where a path syscall's Landlock rights come from.
enum Rights {
    Fixed(Vec<&'static str>),
    /// An open with these flags (also checked against the file's mode for DAC capabilities).
    Open(u64),
    /// openat2: the flags are the first field of the `struct open_how` at this address.
    OpenHow(u64),
}

/// One path argument of a syscall: its address, the directory descriptor it is relative to
/// (None: the cwd), and the rights it needs beneath its directory.
struct PathOp {
    path: u64,
    dirfd: Option<i32>,
    rights: Rights,
}

const RENAME_FROM: &[&str] = &["remove_file", "remove_dir", "refer"];
const RENAME_TO: &[&str] = &[
    "make_reg",
    "make_dir",
    "make_sym",
    "remove_file",
    "remove_dir",
    "refer",
];

/// The path arguments of syscall `name` and the Landlock rights each needs (none for the
/// syscalls that do not change the filesystem or execute).
fn path_rights(name: &str, n: &Notification) -> Vec<PathOp> {
    let a = |i: usize| n.args[i];
    let fd = |i: usize| Some(a(i) as u32 as i32);
    let op = |path: usize, dirfd: Option<i32>, rights: &[&'static str]| PathOp {
        path: a(path),
        dirfd,
        rights: Rights::Fixed(rights.to_vec()),
    };
    let open = |path: usize, dirfd: Option<i32>, flags: u64| PathOp {
        path: a(path),
        dirfd,
        rights: Rights::Open(flags),
    };
    let node = |mode: u64| -> &'static [&'static str] {
        match mode as u32 & libc::S_IFMT {
            libc::S_IFIFO => &["make_fifo"],
            libc::S_IFSOCK => &["make_sock"],
            libc::S_IFCHR => &["make_char"],
            libc::S_IFBLK => &["make_block"],
            _ => &["make_reg"],
        }
    };
    let ops = match name {
        "open" => vec![open(0, None, a(1))],
        "openat" => vec![open(1, fd(0), a(2))],
        "openat2" => vec![PathOp {
            path: a(1),
            dirfd: fd(0),
            rights: Rights::OpenHow(a(2)),
        }],
        "creat" => vec![op(0, None, &["write_file", "truncate", "make_reg"])],
        "mkdir" => vec![op(0, None, &["make_dir"])],
        "mkdirat" => vec![op(1, fd(0), &["make_dir"])],
        "mknod" => vec![op(0, None, node(a(1)))],
        "mknodat" => vec![op(1, fd(0), node(a(2)))],
        "unlink" => vec![op(0, None, &["remove_file"])],
        "rmdir" => vec![op(0, None, &["remove_dir"])],
        "unlinkat" if a(2) as i32 & libc::AT_REMOVEDIR != 0 => {
            vec![op(1, fd(0), &["remove_dir"])]
        }
        "unlinkat" => vec![op(1, fd(0), &["remove_file"])],
        "rename" => vec![op(0, None, RENAME_FROM), op(1, None, RENAME_TO)],
        "renameat" | "renameat2" => vec![op(1, fd(0), RENAME_FROM), op(3, fd(2), RENAME_TO)],
        "link" => vec![op(0, None, &["refer"]), op(1, None, &["make_reg", "refer"])],
        "linkat" => vec![
            op(1, fd(0), &["refer"]),
            op(3, fd(2), &["make_reg", "refer"]),
        ],
        "symlink" => vec![op(1, None, &["make_sym"])],
        "symlinkat" => vec![op(2, fd(1), &["make_sym"])],
        "truncate" => vec![op(0, None, &["truncate"])],
        "execve" => vec![op(0, None, fs::EXECUTE)],
        "execveat" => vec![op(1, fd(0), fs::EXECUTE)],
        _ => Vec::new(),
    };
    ops.into_iter()
        .filter(|o| !matches!(&o.rights, Rights::Fixed(r) if r.is_empty()))
        .collect()
}

/// The capabilities an open with `flags` of the file whose metadata is `meta` may exercise
/// beyond its mode bits for the process's filesystem ids (see [`caps::dac_needed`]). None
/// when it needs none.
fn dac_of_open(pid: u32, meta: &std::fs::Metadata, flags: u64) -> Option<&'static [&'static str]> {
    use std::os::unix::fs::MetadataExt;
    if flags as i32 & libc::O_PATH != 0 {
        return None;
    }
    let creds = caps::Creds::parse(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)?;
    let acc = flags as i32 & libc::O_ACCMODE;
    Some(caps::dac_needed(
        meta.mode(),
        meta.uid(),
        meta.gid(),
        &creds,
        acc != libc::O_WRONLY,
        acc != libc::O_RDONLY || flags as i32 & libc::O_TRUNC != 0,
    ))
    .filter(|c| !c.is_empty())
}

/// A process's root as the supervisor reaches it, to look its paths up in its own tree.
struct Tree {
    root: std::fs::File,
    /// Where that root is among the paths the kernel shows the supervisor: `/` where the
    /// container has a mount namespace of its own whose root it pivoted to, the rootfs
    /// directory's path under `--no-pivot`.
    at: PathBuf,
}

impl Tree {
    fn of(pid: u32) -> Option<Tree> {
        Some(Tree {
            root: std::fs::File::open(format!("/proc/{pid}/root")).ok()?,
            at: std::fs::read_link(format!("/proc/{pid}/root")).ok()?,
        })
    }

    /// A path the kernel showed the supervisor (a descriptor's, a cwd) in the process's tree.
    fn inside(&self, shown: &Path) -> Option<PathBuf> {
        let rest = shown.strip_prefix(&self.at).ok()?;
        Some(Path::new("/").join(rest))
    }

    /// The file `path` names in the process's tree once its directories' symlinks are
    /// followed (and the last component's, when `follow`), with its metadata when it exists.
    /// Landlock grants on where a file is, not on the links that led there.
    fn resolve(&self, path: &Path, follow: bool) -> (PathBuf, Option<std::fs::Metadata>) {
        let open = |p: &Path| {
            sys::fs::open_in_root(self.root.as_fd(), p, libc::O_PATH | libc::O_CLOEXEC)
                .ok()
                .map(std::fs::File::from)
        };
        let real = |f: &std::fs::File| {
            std::fs::read_link(format!("/proc/self/fd/{}", f.as_raw_fd()))
                .ok()
                .filter(|p| p.is_absolute())
                .and_then(|p| self.inside(&p))
        };
        if follow {
            if let Some(f) = open(path) {
                if let Some(r) = real(&f) {
                    return (r, f.metadata().ok());
                }
            }
        }
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return (path.to_path_buf(), None);
        };
        let dir = open(parent)
            .and_then(|f| real(&f))
            .unwrap_or_else(|| parent.to_path_buf());
        let path = dir.join(name);
        let meta = sys::fs::open_in_root(
            self.root.as_fd(),
            &path,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
        .ok()
        .and_then(|f| std::fs::File::from(f).metadata().ok());
        (path, meta)
    }
}

/// A NUL-terminated path at `addr` in the process (at most PATH_MAX bytes).
fn read_path(mem: &std::fs::File, addr: u64) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    while out.len() < libc::PATH_MAX as usize {
        let got = mem.read_at(&mut chunk, addr + out.len() as u64).ok()?;
        if got == 0 {
            return None;
        }
        if let Some(end) = chunk[..got].iter().position(|b| *b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return (!out.is_empty()).then(|| std::ffi::OsString::from_vec(out).into());
        }
        out.extend_from_slice(&chunk[..got]);
    }
    None
}

/// The files the kernel also executes when `path` is: a script's interpreter (`#!`), an ELF
/// program's (PT_INTERP), one level each, where their symlinks lead. Read in the process's
/// root (openat2 RESOLVE_IN_ROOT), not following magic links, never blocking.
fn interpreters(tree: &Tree, path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut next = Some(path.to_path_buf());
    for _ in 0..2 {
        let Some(p) = next.take() else { break };
        let Ok(fd) = sys::fs::open_in_root(
            tree.root.as_fd(),
            &p,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY,
        ) else {
            break;
        };
        let file = std::fs::File::from(fd);
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            break;
        }
        let mut head = [0u8; 4096];
        let Ok(len) = file.read_at(&mut head, 0) else {
            break;
        };
        // Where the interpreter named is once its symlinks are followed.
        next = interpreter_of(&file, &head[..len]).map(|i| tree.resolve(&i, true).0);
        out.extend(next.clone());
    }
    out
}

/// The interpreter a file's first bytes name: `#!PATH` or an ELF64 PT_INTERP.
fn interpreter_of(file: &std::fs::File, head: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(rest) = head.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next()?;
        let path = line
            .split(|b| *b == b' ' || *b == b'\t')
            .find(|w| !w.is_empty())?;
        return Some(Path::new(std::ffi::OsStr::from_bytes(path)).to_path_buf());
    }
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]);
    let u64_at = |b: &[u8], o: usize| -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    };
    let phoff = u64_at(head, 32)?;
    let (size, count) = (usize::from(u16_at(54)), u16_at(56).min(64));
    for i in 0..u64::from(count) {
        let mut ph = vec![0u8; size.max(56)];
        file.read_exact_at(&mut ph, phoff + i * size as u64).ok()?;
        if u32::from_le_bytes([ph[0], ph[1], ph[2], ph[3]]) == 3 {
            let (off, len) = (u64_at(&ph, 8)?, u64_at(&ph, 32)?);
            let mut name = vec![0u8; usize::try_from(len.min(4096)).ok()?];
            file.read_exact_at(&mut name, off).ok()?;
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            return Some(Path::new(std::ffi::OsStr::from_bytes(&name[..end])).to_path_buf());
        }
    }
    None
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
fn tcp_port(listener: BorrowedFd<'_>, n: &Notification) -> Option<u16> {
    use nix::sys::socket::{getsockopt, sockopt, SockType};
    if n.args[2] < 4 {
        return None;
    }
    let mem = std::fs::File::open(format!("/proc/{}/mem", n.pid)).ok()?;
    let mut head = [0u8; 4];
    mem.read_exact_at(&mut head, n.args[1]).ok()?;
    let family = i32::from(u16::from_ne_bytes([head[0], head[1]]));
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return None;
    }
    let pidfd = sys::proc::pidfd_open(i32::try_from(n.pid).ok()?).ok()?;
    let sock = sys::seccomp::pidfd_getfd(&pidfd, i32::try_from(n.args[0]).ok()?).ok()?;
    // An IPv4 or IPv6 stream socket is TCP (or MPTCP, which Landlock treats alike).
    let tcp = getsockopt(&sock, sockopt::SockType).ok()? == SockType::Stream;
    sys::seccomp::notif_id_valid(listener, n.id).ok()?;
    tcp.then(|| u16::from_be_bytes([head[2], head[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_of_scripts_and_elf_programs() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("s");
        std::fs::write(&script, "#!/bin/sh -e\necho hi\n").unwrap();
        let f = std::fs::File::open(&script).unwrap();
        let head = std::fs::read(&script).unwrap();
        assert_eq!(interpreter_of(&f, &head), Some(PathBuf::from("/bin/sh")));
        // A dynamically linked program of the host names its loader; garbage names none.
        let ls = std::fs::File::open("/bin/ls").unwrap();
        let mut head = [0u8; 4096];
        let n = ls.read_at(&mut head, 0).unwrap();
        let interp = interpreter_of(&ls, &head[..n]).expect("/bin/ls is dynamically linked");
        assert!(interp.to_string_lossy().contains("ld-linux"), "{interp:?}");
        assert_eq!(interpreter_of(&f, b"\x7fELF\x02garbage"), None);
    }
}
