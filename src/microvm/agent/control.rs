//! The agent's end of the control channel ([`crate::microvm::channel`]): the runtime's
//! clients reach it on /dev/hvc0 (the virtio-console device), each as a stream of its own.
//! A stream asks to run a process (`exec`: its stdio relayed as frames, its status sent when
//! it ends) or to signal the container's process (`kill`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::poll::PollFlags;

use crate::microvm::channel::{self, Decoder, Frame};

/// The console device the VMM relays the clients through.
const CONSOLE: &str = "/dev/hvc0";
/// Where the virtio console's driver shows it is in the kernel (built in or loaded).
pub const CONSOLE_DRIVER: &str = "/sys/bus/virtio/drivers/virtio_console";
/// The stream of the container's own process (its stdio, when it is not the serial console).
const PROCESS_STREAM: u32 = 0;
/// The most of the ended process's output relayed after it ended.
const DRAIN_MAX: usize = 1 << 20;

/// What a descriptor the agent polls belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    Console,
    Stdout(u32),
    Stderr(u32),
    Stdin(u32),
}

/// A process started for a stream.
struct Exec {
    pid: i32,
    /// The pty master of a process with a terminal (its stdin and stdout are the master).
    pty: Option<OwnedFd>,
    stdin: Option<File>,
    /// Bytes for stdin the process has not taken yet.
    stdin_pending: Vec<u8>,
    stdin_eof: bool,
    stdout: Option<File>,
    stderr: Option<File>,
    /// Its status, once reaped (sent when its output has ended too).
    status: Option<i32>,
}

#[derive(Default)]
struct Stream {
    decoder: Decoder,
    exec: Option<Exec>,
    /// Bytes sent on the stream that the VMM has not acknowledged (see [`channel::ACK`]):
    /// at [`channel::WINDOW`], the process's output is not read.
    unacked: usize,
}

pub struct Control {
    console: File,
    decoder: Decoder,
    streams: BTreeMap<u32, Stream>,
    /// The container's process (what SIGNAL_INIT reaches).
    init: i32,
}

impl Control {
    /// The channel, if the console device is there (its driver may still be probing).
    pub fn open(init: i32) -> Option<Control> {
        let console = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(CONSOLE)
            .ok()?;
        // Raw: the frames' bytes pass unchanged (no echo, no line discipline).
        let _ = crate::sys::tty::make_raw(console.as_fd());
        Some(Control {
            console,
            decoder: Decoder::default(),
            streams: BTreeMap::new(),
            init,
        })
    }

    /// The descriptors to poll, with what each is.
    pub fn fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Token)> {
        let mut v = vec![(self.console.as_fd(), PollFlags::POLLIN, Token::Console)];
        for (id, s) in &self.streams {
            let Some(e) = &s.exec else { continue };
            let open = s.unacked < channel::WINDOW;
            if let (Some(f), true) = (&e.stdout, open) {
                v.push((f.as_fd(), PollFlags::POLLIN, Token::Stdout(*id)));
            }
            if let (Some(f), true) = (&e.stderr, open) {
                v.push((f.as_fd(), PollFlags::POLLIN, Token::Stderr(*id)));
            }
            if let (Some(f), false) = (&e.stdin, e.stdin_pending.is_empty()) {
                v.push((f.as_fd(), PollFlags::POLLOUT, Token::Stdin(*id)));
            }
        }
        v
    }

    /// The container's process, its stdio the parent's ends of its pipes: stream 0 (the VMM
    /// writes its output to the container's stdout and stderr and sends the container's stdin).
    pub fn adopt(&mut self, pid: i32, stdin: OwnedFd, stdout: OwnedFd, stderr: OwnedFd) {
        self.init = pid;
        let exec = piped(pid, None, stdin, stdout, Some(stderr));
        self.streams.entry(PROCESS_STREAM).or_default().exec = Some(exec);
    }

    /// After the container's process ended: relay what its pipes still hold (bounded: a
    /// process it left behind may go on writing), then wait until the VMM has taken it all.
    pub fn drain_process(&mut self) {
        let mut left = DRAIN_MAX;
        for stderr in [false, true] {
            while left > 0 {
                match self.relay_output(PROCESS_STREAM, stderr) {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
        }
        // The console driver hands each buffer to the device and waits until it was used.
        let _ = nix::sys::termios::tcdrain(&self.console);
    }

    /// Send `kind` with `data` to the client of `stream`.
    fn reply(&mut self, stream: u32, kind: u8, data: &[u8]) {
        let inner = channel::frames(0, kind, data);
        if let Some(s) = self.streams.get_mut(&stream) {
            s.unacked += inner.len();
        }
        let _ = self
            .console
            .write_all(&channel::frames(stream, channel::DATA, &inner));
    }

    /// End `stream` (the VMM closes its client).
    fn close(&mut self, stream: u32) {
        self.streams.remove(&stream);
        let _ = self
            .console
            .write_all(&channel::frames(stream, channel::CLOSE, &[]));
    }

    /// The process `stream` started, if any.
    fn exec_mut(&mut self, stream: u32) -> Option<&mut Exec> {
        self.streams.get_mut(&stream).and_then(|s| s.exec.as_mut())
    }

    /// A descriptor is ready.
    pub fn ready(&mut self, token: Token) {
        match token {
            Token::Console => self.read_console(),
            Token::Stdout(id) => {
                self.relay_output(id, false);
            }
            Token::Stderr(id) => {
                self.relay_output(id, true);
            }
            Token::Stdin(id) => self.feed_stdin(id),
        }
    }

    /// A child was reaped: a stream's process, whose status goes to its client once its
    /// output has ended.
    pub fn reaped(&mut self, pid: i32, status: i32) {
        let found = self.streams.iter_mut().find_map(|(id, s)| {
            s.exec.as_mut().filter(|e| e.pid == pid).map(|e| {
                e.status = Some(status);
                *id
            })
        });
        if let Some(id) = found {
            self.finish_if_done(id);
        }
    }

    fn finish_if_done(&mut self, id: u32) {
        let done = self
            .streams
            .get(&id)
            .and_then(|s| s.exec.as_ref())
            .and_then(|e| {
                (e.stdout.is_none() && e.stderr.is_none())
                    .then_some(e.status)
                    .flatten()
            });
        if let Some(status) = done {
            self.reply(id, channel::EXIT, &status.to_le_bytes());
            self.close(id);
        }
    }

    fn read_console(&mut self) {
        let mut buf = [0u8; 16 << 10];
        let n = match self.console.read(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        self.decoder.push(&buf[..n]);
        loop {
            match self.decoder.next_frame() {
                Ok(Some(f)) => self.mux_frame(f),
                Ok(None) => break,
                Err(e) => {
                    // The VMM sends only whole frames: nothing more can be routed.
                    super::say(&format!("control channel: {e}"));
                    self.decoder = Decoder::default();
                    break;
                }
            }
        }
    }

    /// A frame from the VMM: a client's bytes, or its end.
    fn mux_frame(&mut self, f: Frame) {
        match f.kind {
            channel::DATA => {
                let s = self.streams.entry(f.stream).or_default();
                s.decoder.push(&f.data);
                while let Some(next) = self
                    .streams
                    .get_mut(&f.stream)
                    .map(|s| s.decoder.next_frame())
                {
                    match next {
                        Ok(Some(req)) => self.request(f.stream, req),
                        Ok(None) => break,
                        Err(e) => {
                            self.reply(f.stream, channel::ERROR, e.as_bytes());
                            self.close(f.stream);
                            break;
                        }
                    }
                }
            }
            channel::ACK => {
                if let (Some(s), Some(n)) = (self.streams.get_mut(&f.stream), f.u32()) {
                    s.unacked = s.unacked.saturating_sub(n as usize);
                }
            }
            channel::CLOSE => {
                // The client left: its relay, the host's stand-in for the process, is gone
                // (killed, as a supervisor kills the pid `exec` gave it): so is the process,
                // as when runc's exec'd process is killed.
                if let Some(e) = self.streams.remove(&f.stream).and_then(|s| s.exec) {
                    if e.status.is_none() {
                        let _ = kill(e.pid, libc::SIGKILL);
                    }
                }
            }
            _ => {}
        }
    }

    /// A client's request.
    fn request(&mut self, id: u32, req: Frame) {
        let has_exec = self.streams.get(&id).is_some_and(|s| s.exec.is_some());
        match req.kind {
            channel::EXEC if !has_exec => match self.exec(&req.data) {
                Ok(e) => {
                    let pid = e.pid as u32;
                    if let Some(s) = self.streams.get_mut(&id) {
                        s.exec = Some(e);
                    }
                    self.reply(id, channel::STARTED, &pid.to_le_bytes());
                }
                Err(msg) => {
                    self.reply(id, channel::ERROR, msg.as_bytes());
                    self.close(id);
                }
            },
            channel::STDIN => {
                if let Some(e) = self.exec_mut(id) {
                    if e.stdin.is_some() {
                        e.stdin_pending.extend_from_slice(&req.data);
                    }
                }
                self.feed_stdin(id);
            }
            channel::RESIZE => {
                let pty = self
                    .streams
                    .get(&id)
                    .and_then(|s| s.exec.as_ref())
                    .and_then(|e| e.pty.as_ref());
                if let (Some(m), [r0, r1, c0, c1]) = (pty, req.data.as_slice()) {
                    let _ = crate::sys::tty::set_window_size(
                        m.as_fd(),
                        u16::from_le_bytes([*r0, *r1]),
                        u16::from_le_bytes([*c0, *c1]),
                    );
                }
            }
            channel::STDIN_EOF => {
                if let Some(e) = self.exec_mut(id) {
                    e.stdin_eof = true;
                }
                self.feed_stdin(id);
            }
            channel::SIGNAL | channel::SIGNAL_INIT => {
                let target = if req.kind == channel::SIGNAL_INIT {
                    Some(self.init)
                } else {
                    self.streams
                        .get(&id)
                        .and_then(|s| s.exec.as_ref())
                        .map(|e| e.pid)
                };
                let sent = match (target, req.u32()) {
                    (Some(pid), Some(sig)) => kill(pid, sig as i32).map_err(|e| e.to_string()),
                    (None, _) => Err("no process to signal on this stream".to_string()),
                    (_, None) => Err("a signal is a u32".to_string()),
                };
                match sent {
                    Ok(()) if req.kind == channel::SIGNAL_INIT => {
                        self.reply(id, channel::SIGNALLED, &[]);
                        self.close(id);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        self.reply(id, channel::ERROR, format!("kill: {e}").as_bytes());
                        if req.kind == channel::SIGNAL_INIT {
                            self.close(id);
                        }
                    }
                }
            }
            _ => {
                self.reply(id, channel::ERROR, b"a request the agent does not know");
                self.close(id);
            }
        }
    }

    /// Start a process as `exec` asks: pipes for its stdio (or a pty: `terminal`), its own
    /// session, then the
    /// process's user, capabilities, rlimits, cwd and env as for the container's process.
    /// Failures before execve come back on a status pipe, as the request's error.
    fn exec(&mut self, json: &[u8]) -> Result<Exec, String> {
        let req: channel::ExecRequest =
            serde_json::from_slice(json).map_err(|e| format!("the exec request: {e}"))?;
        let p = req.process;
        let pipe =
            || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
        // With a terminal, the process's stdio is a pty's slave; the agent keeps the master.
        let (pty, child_io, ours) = if p.terminal().unwrap_or(false) {
            let (master, slave) =
                crate::sys::tty::open_pty().map_err(|e| format!("a terminal: {e}"))?;
            if let Some(size) = p.console_size() {
                let _ = crate::sys::tty::set_window_size(
                    master.as_fd(),
                    size.height() as u16,
                    size.width() as u16,
                );
            }
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
            let child_io = [dup(&slave)?, dup(&slave)?, slave];
            let ours = (dup(&master)?, dup(&master)?, None);
            (Some(master), child_io, ours)
        } else {
            let (in_r, in_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            (None, [in_r, out_w, err_w], (in_w, out_r, Some(err_r)))
        };
        let (st_r, st_w) = pipe()?;
        let one = crate::sys::SingleThreaded::check().map_err(|e| format!("fork: {e}"))?;
        match crate::sys::fork(&one).map_err(|e| format!("fork: {e}"))? {
            crate::sys::Forked::Child(_) => {
                let [i, o, e] = &child_io;
                let msg = exec_child(&p, [i, o, e], pty.is_some());
                let _ = File::from(st_w).write_all(msg.as_bytes());
                crate::sys::exit_now(super::AGENT_FAILED.into())
            }
            crate::sys::Forked::Parent(pid) => {
                drop((child_io, st_w));
                let (in_w, out_r, err_r) = ours;
                let mut why = String::new();
                let _ = File::from(st_r).read_to_string(&mut why);
                if !why.is_empty() {
                    // Reaped by the main loop; nobody waits for its status.
                    return Err(why);
                }
                Ok(piped(pid, pty, in_w, out_r, err_r))
            }
        }
    }

    /// Relay what one of `id`'s output pipes holds; the bytes relayed (0: nothing now, or
    /// its end).
    fn relay_output(&mut self, id: u32, stderr: bool) -> usize {
        let mut buf = [0u8; 16 << 10];
        let Some(e) = self.exec_mut(id) else {
            return 0;
        };
        let pipe = if stderr { &mut e.stderr } else { &mut e.stdout };
        let n = match pipe.as_mut().map(|f| f.read(&mut buf)) {
            Some(Ok(n)) => n,
            Some(Err(err)) if err.kind() == std::io::ErrorKind::WouldBlock => return 0,
            _ => 0,
        };
        if n == 0 {
            *pipe = None;
            self.finish_if_done(id);
            return 0;
        }
        let kind = if stderr {
            channel::STDERR
        } else {
            channel::STDOUT
        };
        self.reply(id, kind, &buf[..n]);
        n
    }

    fn feed_stdin(&mut self, id: u32) {
        let Some(e) = self.exec_mut(id) else {
            return;
        };
        while !e.stdin_pending.is_empty() {
            match e.stdin.as_mut().map(|f| f.write(&e.stdin_pending)) {
                Some(Ok(n)) => {
                    e.stdin_pending.drain(..n);
                }
                Some(Err(err)) if err.kind() == std::io::ErrorKind::WouldBlock => return,
                _ => {
                    // The process closed its stdin: what it did not take is dropped.
                    e.stdin = None;
                    e.stdin_pending.clear();
                }
            }
        }
        if e.stdin_eof {
            e.stdin = None;
        }
    }
}

/// A started process's ends of its pipes (or its pty's master), non-blocking.
fn piped(
    pid: i32,
    pty: Option<OwnedFd>,
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: Option<OwnedFd>,
) -> Exec {
    let nonblocking = |fd: OwnedFd| {
        let _ = nix::fcntl::fcntl(
            fd.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        File::from(fd)
    };
    Exec {
        pid,
        pty,
        stdin: Some(nonblocking(stdin)),
        stdin_pending: Vec::new(),
        stdin_eof: false,
        stdout: Some(nonblocking(stdout)),
        stderr: stderr.map(nonblocking),
        status: None,
    }
}

/// kill(2) of any signal number (a guest process may be sent a real-time one).
fn kill(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) with plain integers; no memory involved.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// In the exec'd child: its stdio from the pipes (or the pty's slave, then its controlling
/// terminal), a session of its own, then the process; returns only why it could not start.
fn exec_child(p: &oci_spec::runtime::Process, stdio: [&OwnedFd; 3], terminal: bool) -> String {
    for (fd, target) in stdio.iter().zip(0..) {
        if let Err(e) = nix::unistd::dup2(fd.as_raw_fd(), target) {
            return format!("stdio: {e}");
        }
    }
    if let Err(e) = nix::unistd::setsid() {
        return format!("setsid: {e}");
    }
    if terminal {
        // SAFETY: fd 0 is the pty's slave (dup'ed above); the borrow ends with the call.
        let slave = unsafe { BorrowedFd::borrow_raw(0) };
        if let Err(e) = crate::sys::tty::set_controlling_terminal(slave) {
            return format!("the terminal: {e}");
        }
    }
    if let Err(e) = crate::process::rlimits::apply(p.rlimits().as_deref().unwrap_or_default()) {
        return e.to_string();
    }
    let caps = match crate::caps::CapPlan::new(p.capabilities().as_ref()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    match crate::process::exec::become_process(p, &caps) {
        Ok(program) => {
            crate::process::exec::reset_signals();
            // The status pipe closes on exec (CLOEXEC): the agent reads an empty message.
            program.exec()
        }
        Err(crate::process::exec::NotReady::NotFound(e))
        | Err(crate::process::exec::NotReady::Failed(e)) => e.to_string(),
    }
}
