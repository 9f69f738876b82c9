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
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use super::channel::{self, Decoder, Frame};

/// The signals the relay passes on to the guest process.
const RELAYED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

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

/// Start `process` in the guest of the container whose state directory is `dir`; the pid
/// of the relay (a child of this process) standing in for it.
pub fn exec(dir: &Path, process: &oci_spec::runtime::Process) -> Result<i32, String> {
    if process.terminal().unwrap_or(false) {
        return Err(
            "a terminal for a process exec'd into a microVM guest is not supported yet: run it \
             without --tty"
                .into(),
        );
    }
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
    match receive(&mut s, &mut d)? {
        Some(f) if f.kind == channel::STARTED => {}
        Some(f) if f.kind == channel::ERROR => {
            return Err(format!(
                "in the guest: {}",
                String::from_utf8_lossy(&f.data)
            ))
        }
        Some(f) => return Err(format!("the guest agent answered {} to exec", f.kind)),
        None => return Err("the guest agent ended the control channel".into()),
    }
    s.set_read_timeout(None)
        .map_err(|e| format!("the control channel: {e}"))?;
    let one = crate::sys::SingleThreaded::check().map_err(|e| format!("fork: {e}"))?;
    match crate::sys::fork(&one).map_err(|e| format!("fork: {e}"))? {
        crate::sys::Forked::Parent(pid) => Ok(pid),
        crate::sys::Forked::Child(_) => {
            let status = relay(s, d);
            crate::sys::exit_now(status)
        }
    }
}

/// The relay: stdin to the guest process, its output back, signals on; its status.
fn relay(mut s: UnixStream, mut d: Decoder) -> i32 {
    let mut set = SigSet::empty();
    for sig in RELAYED {
        set.add(sig);
    }
    if set.thread_block().is_err() {
        return LOST;
    }
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
    else {
        return LOST;
    };
    let stdin = std::io::stdin();
    let mut stdin_open = true;
    let mut buf = vec![0u8; channel::FRAME_MAX];
    loop {
        // Whole frames already read first.
        loop {
            match d.next_frame() {
                Ok(Some(f)) => match f.kind {
                    channel::STDOUT => {
                        let _ = std::io::stdout().write_all(&f.data);
                        let _ = std::io::stdout().flush();
                    }
                    channel::STDERR => {
                        let _ = std::io::stderr().write_all(&f.data);
                    }
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
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return LOST,
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
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
                let _ = send(&mut s, channel::SIGNAL, &info.ssi_signo.to_le_bytes());
            }
        }
        if ready.get(2).copied().unwrap_or(false) {
            let n = match stdin.lock().read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
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
    match receive(&mut s, &mut Decoder::default())? {
        Some(f) if f.kind == channel::SIGNALLED => Ok(()),
        Some(f) if f.kind == channel::ERROR => Err(format!(
            "in the guest: {}",
            String::from_utf8_lossy(&f.data)
        )),
        Some(f) => Err(format!("the guest agent answered {} to kill", f.kind)),
        None => Err("the guest agent ended the control channel".into()),
    }
}
