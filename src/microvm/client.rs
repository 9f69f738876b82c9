//! The runtime's end of the control channel ([`super::channel`]): `exec` of a process in a
//! microVM guest, and signals for the guest's processes.
//!
//! `exec` asks the agent to start the process and waits for its answer (so that a process
//! that cannot start fails `exec` itself, with the agent's reason); then a relay process,
//! the host's stand-in for the guest process, carries this process's stdin to the guest and
//! the guest process's stdout and stderr back, forwards the signals it gets to it, and exits
//! with its status. Its pid is what `exec` reports (and writes to --pid-file): a supervisor
//! waiting for it gets the guest process's status, as for a process runc starts.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::channel::{self, Decoder, Frame};

/// The status a relay exits with when the channel ends before the guest process's status
/// came (the VM ended, or the agent dropped the stream): runc's status for exec's own failure.
pub const LOST: i32 = 255;

/// How long `exec` waits for the agent to answer (a guest that was just started may still
/// be booting), and `kill` before it signals the VMM instead.
const EXEC_ANSWER: std::time::Duration = std::time::Duration::from_secs(60);
const KILL_ANSWER: std::time::Duration = std::time::Duration::from_secs(10);

fn connect(dir: &Path, wait: std::time::Duration) -> Result<UnixStream, String> {
    let s = channel::connect(dir).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            return "its guest does not run contain's guest agent (a bare guest, or an \
                    initramfs of its own): nothing in it can start a process"
                .to_string();
        }
        format!(
            "the guest's control channel ({}): {e} (the guest kernel needs virtio_console, \
             built in or in io.contain.microvm.modules)",
            channel::SOCKET
        )
    })?;
    s.set_read_timeout(Some(wait))
        .map_err(|e| format!("the control channel: {e}"))?;
    Ok(s)
}

/// Send one request frame on a client's stream.
fn send(s: &mut UnixStream, kind: u8, data: &[u8]) -> std::io::Result<()> {
    s.write_all(&channel::frames(0, kind, data))
}

/// The next frame from the agent (blocking); None when the channel ended.
fn receive(s: &mut UnixStream, d: &mut Decoder) -> Result<Option<Frame>, String> {
    let mut buf = [0u8; 16 << 10];
    loop {
        if let Some(f) = d.next_frame()? {
            return Ok(Some(f));
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => d.push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(
                    "the guest agent did not answer (is virtio_console in the guest kernel?)"
                        .into(),
                )
            }
            Err(e) => return Err(format!("the control channel: {e}")),
        }
    }
}

/// A host pty for a process with a terminal: its master goes to the caller's console socket
/// (as runc sends it); the relay keeps the slave, in raw mode (the guest's pty does the
/// line discipline), as its controlling terminal.
fn host_terminal(console: &Path) -> Result<std::os::fd::OwnedFd, String> {
    let sock = UnixStream::connect(console)
        .map_err(|e| format!("connect to the console socket {}: {e}", console.display()))?;
    let (master, slave) =
        crate::sys::tty::open_pty().map_err(|e| format!("a pty (/dev/ptmx): {e}"))?;
    let _ = crate::sys::tty::make_raw(slave.as_fd());
    crate::sys::socket::send_fd(sock.as_fd(), master.as_raw_fd(), b"/dev/ptmx")
        .map_err(|e| format!("send the pty master to the console socket: {e}"))?;
    Ok(slave)
}

/// The agent's answer to a request: Ok for `want`, its reason for an ERROR, else what went
/// wrong (`what` names the request).
fn answer(f: Option<Frame>, want: u8, what: &str) -> Result<(), String> {
    match f {
        Some(f) if f.kind == want => Ok(()),
        Some(f) if f.kind == channel::ERROR => Err(format!(
            "in the guest: {}",
            String::from_utf8_lossy(&f.data)
        )),
        Some(f) => Err(format!("the guest agent answered {} to {what}", f.kind)),
        None => Err("the guest agent ended the control channel".into()),
    }
}

/// Ask the agent to start `process` (no terminal); the stream once it has started.
fn start(
    dir: &Path,
    process: &oci_spec::runtime::Process,
) -> Result<(UnixStream, Decoder), String> {
    let mut s = connect(dir, EXEC_ANSWER)?;
    let req = serde_json::to_vec(&channel::ExecRequest {
        process: process.clone(),
    })
    .map_err(|e| format!("the exec request: {e}"))?;
    if req.len() > channel::FRAME_MAX {
        return Err(format!(
            "the process (args, env) is {} bytes as JSON: at most {} reach the guest",
            req.len(),
            channel::FRAME_MAX
        ));
    }
    send(&mut s, channel::EXEC, &req).map_err(|e| format!("the control channel: {e}"))?;
    let mut d = Decoder::default();
    answer(receive(&mut s, &mut d)?, channel::STARTED, "exec")?;
    Ok((s, d))
}

/// The most of a process's output [`run_to_end`] keeps (each of stdout and stderr).
const OUTPUT_MAX: usize = 16 << 20;

/// What a process run to its end in the guest left: its status, stdout and stderr.
pub struct Ended {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Run `process` in the guest of the container whose state directory is `dir` to its end,
/// with no stdin and no relay (for `ps`); each output past 16 MiB is cut.
pub fn run_to_end(dir: &Path, process: &oci_spec::runtime::Process) -> Result<Ended, String> {
    let (mut s, mut d) = start(dir, process)?;
    send(&mut s, channel::STDIN_EOF, &[]).map_err(|e| format!("the control channel: {e}"))?;
    let mut ended = Ended {
        status: LOST,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    loop {
        let Some(f) = receive(&mut s, &mut d)? else {
            return Err("the guest agent ended the control channel before the process".into());
        };
        let keep = |v: &mut Vec<u8>, data: &[u8]| {
            let room = OUTPUT_MAX.saturating_sub(v.len());
            v.extend_from_slice(&data[..data.len().min(room)]);
        };
        match f.kind {
            channel::STDOUT => keep(&mut ended.stdout, &f.data),
            channel::STDERR => keep(&mut ended.stderr, &f.data),
            channel::EXIT => {
                ended.status = f.u32().map_or(LOST, |v| v as i32);
                return Ok(ended);
            }
            channel::ERROR => {
                return Err(format!(
                    "in the guest: {}",
                    String::from_utf8_lossy(&f.data)
                ))
            }
            _ => {}
        }
    }
}

/// Start `process` in the guest of the container whose state directory is `dir` (with a
/// terminal, its master sent to `console`, which the caller gives exactly when the process
/// asks for a terminal); the pid of the relay (a child of this process) standing in for it.
pub fn exec(
    dir: &Path,
    process: &oci_spec::runtime::Process,
    console: Option<&Path>,
) -> Result<i32, String> {
    let (s, d) = start(dir, process)?;
    // The pty is handed out once the process has started (a failed exec hands out none);
    // should this fail, the stream's end makes the agent kill the process.
    let terminal = console.map(host_terminal).transpose()?;
    s.set_read_timeout(None)
        .map_err(|e| format!("the control channel: {e}"))?;
    let one = crate::sys::SingleThreaded::check().map_err(|e| format!("fork: {e}"))?;
    match crate::sys::fork(&one).map_err(|e| format!("fork: {e}"))? {
        crate::sys::Forked::Parent(pid) => Ok(pid),
        crate::sys::Forked::Child(_) => {
            let status = relay(s, d, terminal.map(std::fs::File::from));
            crate::sys::exit_now(status)
        }
    }
}

/// The terminal's size as a RESIZE frame's payload.
fn size_of(tty: &std::fs::File) -> Option<[u8; 4]> {
    let (rows, cols) = crate::sys::tty::window_size(tty.as_fd()).ok()?;
    let [r0, r1] = rows.to_le_bytes();
    let [c0, c1] = cols.to_le_bytes();
    (rows > 0 && cols > 0).then_some([r0, r1, c0, c1])
}

/// The relay: stdin to the guest process, its output back, signals on (with a terminal,
/// its slave is both, and a window change is sent as the guest pty's new size); its status.
fn relay(mut s: UnixStream, mut d: Decoder, tty: Option<std::fs::File>) -> i32 {
    let mut set = SigSet::empty();
    for sig in crate::sys::FORWARDED_SIGNALS {
        set.add(sig);
    }
    if set.thread_block().is_err() {
        return LOST;
    }
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return LOST;
    };
    if let Some(t) = &tty {
        // The slave as the relay's controlling terminal: its size changes reach it (SIGWINCH).
        let _ = nix::unistd::setsid();
        let _ = crate::sys::tty::set_controlling_terminal(t.as_fd());
        if let Some(size) = size_of(t) {
            let _ = send(&mut s, channel::RESIZE, &size);
        }
    }
    let stdin = std::io::stdin();
    let input = match &tty {
        Some(t) => t.as_fd(),
        None => stdin.as_fd(),
    };
    let write_out = |data: &[u8], err: bool| match &tty {
        Some(t) => {
            let _ = (&*t).write_all(data);
        }
        None if err => {
            let _ = std::io::stderr().write_all(data);
        }
        None => {
            let mut out = std::io::stdout();
            let _ = out.write_all(data);
            let _ = out.flush();
        }
    };
    let mut stdin_open = true;
    let mut buf = vec![0u8; channel::FRAME_MAX];
    loop {
        // Whole frames already read first.
        loop {
            match d.next_frame() {
                Ok(Some(f)) => match f.kind {
                    channel::STDOUT => write_out(&f.data, false),
                    channel::STDERR => write_out(&f.data, true),
                    channel::EXIT => {
                        return f
                            .data
                            .as_slice()
                            .try_into()
                            .map(i32::from_le_bytes)
                            .unwrap_or(LOST)
                    }
                    channel::ERROR => {
                        crate::log::error(&format!(
                            "exec: in the guest: {}",
                            String::from_utf8_lossy(&f.data)
                        ));
                    }
                    _ => {}
                },
                Ok(None) => break,
                Err(_) => return LOST,
            }
        }
        let mut fds = vec![
            PollFd::new(s.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(input, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return LOST,
        }
        let ready = crate::sys::poll_ready(&fds);
        drop(fds);
        if ready[0] {
            match s.read(&mut buf) {
                Ok(0) => return LOST,
                Ok(n) => d.push(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return LOST,
            }
        }
        if ready[1] {
            while let Ok(Some(info)) = signals.read_signal() {
                let resized = info.ssi_signo == Signal::SIGWINCH as u32;
                match (&tty, resized) {
                    (Some(t), true) => {
                        if let Some(size) = size_of(t) {
                            let _ = send(&mut s, channel::RESIZE, &size);
                        }
                    }
                    _ => {
                        let _ = send(&mut s, channel::SIGNAL, &info.ssi_signo.to_le_bytes());
                    }
                }
            }
        }
        if ready.get(2).copied().unwrap_or(false) {
            let n = match nix::unistd::read(input.as_raw_fd(), &mut buf) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => 0,
            };
            let sent = if n == 0 {
                stdin_open = false;
                send(&mut s, channel::STDIN_EOF, &[])
            } else {
                send(&mut s, channel::STDIN, &buf[..n])
            };
            if sent.is_err() {
                return LOST;
            }
        }
    }
}

/// Send `sig` to the container's own process in the guest of the container whose state
/// directory is `dir` (not to the VMM: the workload's handler runs, as in a container).
pub fn signal_init(dir: &Path, sig: i32) -> Result<(), String> {
    let mut s = connect(dir, KILL_ANSWER)?;
    send(&mut s, channel::SIGNAL_INIT, &(sig as u32).to_le_bytes())
        .map_err(|e| format!("the control channel: {e}"))?;
    answer(
        receive(&mut s, &mut Decoder::default())?,
        channel::SIGNALLED,
        "kill",
    )
}
