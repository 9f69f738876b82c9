//! Unix sockets: sequenced-packet pairs for the runtime's typed sync messages, and passing
//! descriptors with SCM_RIGHTS (console pty masters, pidfds).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// A connected SOCK_SEQPACKET pair with close-on-exec set: message boundaries are kept.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)
}

/// Send one descriptor with a small payload over a unix socket.
pub fn send_fd(sock: BorrowedFd<'_>, fd: RawFd, payload: &[u8]) -> io::Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(())
}

/// Receive one descriptor sent with `send_fd`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    recv_fd_and_data(sock).map(|(fd, _)| fd)
}

/// Receive one descriptor sent with `send_fd`, and the bytes that came with it (up to 64 KiB;
/// on a stream socket the rest of a longer payload follows as plain data).
pub fn recv_fd_and_data(sock: BorrowedFd<'_>) -> io::Result<(OwnedFd, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let len = msg.bytes;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for &fd in &fds {
                // SAFETY: the kernel installed these descriptors in our table for us; each is
                // owned once (the first is kept, any other closed on drop).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                got.get_or_insert(owned);
            }
        }
    }
    let fd = got.ok_or_else(|| io::Error::other("no descriptor received"))?;
    buf.truncate(len);
    Ok((fd, buf))
}
