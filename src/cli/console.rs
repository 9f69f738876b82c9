//! `run` in the foreground with process.terminal and no --console-socket: contain receives
//! the pty master itself (through a private socket) and relays it to its own stdio, in raw
//! mode when stdin is a terminal, as runc does.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use nix::sys::termios::{tcsetattr, SetArg, Termios};

use crate::sys::socket::recv_fd;

/// A listening unix socket in a directory of its own (0700, named after `what` and our pid),
/// removed when dropped: where the runtime's children or the runtime itself connect back to
/// this process (the pty master of `run`, `contain learn`'s observer listener).
pub struct PrivateSocket {
    dir: PathBuf,
    pub listener: UnixListener,
    /// Leave the socket in place when dropped (another process serves it).
    kept: bool,
}

impl PrivateSocket {
    pub fn bind(what: &str) -> std::io::Result<PrivateSocket> {
        use std::os::unix::fs::DirBuilderExt;
        // Named after the pid, not the container: a socket path must fit in 108 bytes.
        let dir = std::env::temp_dir().join(format!("contain-{what}-{}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let sock = PrivateSocket {
            listener: UnixListener::bind(dir.join("sock"))?,
            dir,
            kept: false,
        };
        Ok(sock)
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// Close this process's copy but leave the socket for the process that serves it (a
    /// child forked with a copy of its own, which removes it).
    pub fn hand_over(mut self) {
        self.kept = true;
    }
}

impl Drop for PrivateSocket {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The private socket `run` receives the pty master on.
pub struct ConsoleSocket(PrivateSocket);

impl ConsoleSocket {
    pub fn new() -> std::io::Result<ConsoleSocket> {
        PrivateSocket::bind("console").map(ConsoleSocket)
    }

    pub fn path(&self) -> PathBuf {
        self.0.path()
    }

    /// The pty master the init sent (it connected during create).
    pub fn master(&self) -> std::io::Result<OwnedFd> {
        let (conn, _) = self.0.listener.accept()?;
        recv_fd(conn.as_fd())
    }
}

/// Raw mode on stdin while it lives, when stdin is a terminal.
pub struct RawMode(Option<Termios>);

impl RawMode {
    pub fn enter() -> RawMode {
        RawMode(crate::sys::tty::make_raw(std::io::stdin().as_fd()).ok())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(orig) = &self.0 {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, orig);
        }
    }
}

/// Give the pty the size of our own terminal, if we have one.
pub fn copy_window_size(master: &OwnedFd) {
    if let Ok((rows, cols)) = crate::sys::tty::window_size(std::io::stdin().as_fd()) {
        let _ = crate::sys::tty::set_window_size(master.as_fd(), rows, cols);
    }
}

/// Copy what is readable from `from` to `to`; false at end of stream (or EIO: the slave closed).
pub fn pump(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 8192];
    match nix::unistd::read(from.as_raw_fd(), &mut buf) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut off = 0;
            while off < n {
                match nix::unistd::write(to, &buf[off..n]) {
                    Ok(w) if w > 0 => off += w,
                    _ => return false,
                }
            }
            true
        }
    }
}
