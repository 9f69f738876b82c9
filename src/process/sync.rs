//! Typed messages between the runtime and the processes it forks, over a SOCK_SEQPACKET pair
//! (one message per packet, never an ad-hoc byte protocol).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

/// Largest message accepted.
const MAX_MSG: usize = 256 * 1024;

/// Everything the runtime and its children say to each other.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub enum Msg {
    /// Runtime -> stage 1, then -> init: go on.
    Go,
    /// Stage 1 -> runtime: I have unshared the user namespace; write my id maps.
    WriteIdMaps,
    /// Stage 1 -> runtime: I have joined the pod's user namespace (its maps are written);
    /// prepare the mounts as for WriteIdMaps.
    PrepareMounts,
    /// Runtime -> stage 1: the maps are written; detached mounts made by the runtime follow,
    /// one descriptor per packet, for these mounts (index in config.json's mounts; -1: the
    /// rootfs): idmapped copies, and the /dev tmpfs with the device nodes.
    IdMapsWritten { prepared: Vec<i64> },
    /// Stage 1 -> runtime: the container's init has this pid (in the runtime's pid namespace).
    InitPid(i32),
    /// Runtime -> init: the rootfs directory, opened in the init's mount namespace, follows
    /// (one descriptor): the init attaches the idmapped rootfs on it.
    RootfsDir,
    /// Init -> runtime: the mounts are made; run the prestart and createRuntime hooks.
    RunCreateRuntimeHooks,
    /// Runtime -> init: the hooks ran; here is the container state for the init's own hooks.
    HooksDone { state: String },
    /// Init (or exec'd process) -> runtime: the notifying filter I am about to install will
    /// give its listener this descriptor number; take it once it is there (pidfd_getfd), hand
    /// it to the agent, then say Go.
    SeccompListener(i32),
    /// Init -> runtime: everything is set up; the init now waits for `start`.
    Ready,
    /// Either side: the named step failed; the sender exits after this.
    Error(String),
}

/// One end of the sync socket.
pub struct Channel {
    fd: OwnedFd,
}

impl AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Channel {
    pub fn new(fd: OwnedFd) -> Channel {
        Channel { fd }
    }

    pub fn send(&self, msg: &Msg) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        if data.len() > MAX_MSG {
            return Err(io::Error::other(format!(
                "a sync message of {} bytes is larger than the {MAX_MSG} accepted",
                data.len()
            )));
        }
        let n = nix::unistd::write(self.fd.as_fd(), &data)?;
        if n != data.len() {
            return Err(io::Error::other("short write on sync socket"));
        }
        Ok(())
    }

    /// Receive one message; end of stream (the peer exited) is an error.
    pub fn recv(&self) -> io::Result<Msg> {
        self.recv_at_most(MAX_MSG)
    }

    /// Receive one message of at most `max` bytes: a longer packet (cut short by the kernel,
    /// MSG_TRUNC reports its real length) is an error, never parsed as what was left of it.
    fn recv_at_most(&self, max: usize) -> io::Result<Msg> {
        use nix::sys::socket::{recv, MsgFlags};
        let mut buf = vec![0u8; max];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other?,
            }
        };
        if n > max {
            return Err(io::Error::other(format!(
                "a sync message of {n} bytes was cut to the {max} accepted"
            )));
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the container's init exited before reporting",
            ));
        }
        serde_json::from_slice(&buf[..n]).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let (a, b) = crate::sys::socket::seqpacket_pair().unwrap();
        let (a, b) = (Channel::new(a), Channel::new(b));
        a.send(&Msg::InitPid(42)).unwrap();
        a.send(&Msg::Error("boom".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Msg::InitPid(42));
        assert_eq!(b.recv().unwrap(), Msg::Error("boom".into()));
        drop(a);
        assert!(b.recv().is_err());
    }

    #[test]
    fn a_truncated_message_is_an_error() {
        let (a, b) = crate::sys::socket::seqpacket_pair().unwrap();
        let (a, b) = (Channel::new(a), Channel::new(b));
        a.send(&Msg::Error("x".repeat(100))).unwrap();
        let e = b.recv_at_most(16).unwrap_err();
        assert!(e.to_string().contains("was cut to the 16 accepted"), "{e}");
        // The next message is whole again.
        a.send(&Msg::Go).unwrap();
        assert_eq!(b.recv_at_most(16).unwrap(), Msg::Go);
    }
}
