//! Interface requests on a network namespace's stack: bring loopback up in a new namespace
//! (runc does the same), and the ioctls the microVM stage configures interfaces with.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A socket(2) (close-on-exec) of `domain`, `kind` and `protocol`.
pub fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The IPv4 datagram socket interface requests go through.
pub fn inet_socket() -> io::Result<OwnedFd> {
    socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
}

/// An interface request for `name` (checked to fit, with its terminating NUL).
pub fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} is not a valid one"),
        ));
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(req)
}

/// `addr` as the generic socket address interface requests and routes carry.
pub fn sockaddr_in(addr: Ipv4Addr) -> libc::sockaddr {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from_ne_bytes(addr.octets());
    // SAFETY: sockaddr_in and sockaddr have the same size; the bytes are a valid sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// Structures the interface and routing ioctls read or write in place.
pub trait Request {}
impl Request for libc::ifreq {}
impl Request for libc::rtentry {}

/// The interface or routing ioctl `req` on `arg` through `sock`.
pub fn ioctl<T: Request>(sock: &OwnedFd, req: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    // SAFETY: `arg` is an ifreq or an rtentry (the Request types), the structure these
    // requests read and write, valid and exclusively borrowed for the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), req, arg as *mut T) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Set IFF_UP on interface `name`.
pub fn up(sock: &OwnedFd, name: &str) -> io::Result<()> {
    let mut req = ifreq(name)?;
    ioctl(sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut req)
}

/// Set IFF_UP on `lo` of the calling thread's network namespace.
pub fn loopback_up() -> io::Result<()> {
    up(&inet_socket()?, "lo")
}

#[cfg(test)]
mod tests {
    #[test]
    fn interface_names_must_fit() {
        assert!(super::ifreq("eth0").is_ok());
        assert!(super::ifreq("fifteen-chars-x").is_ok());
        assert!(super::ifreq("sixteen-chars-xx").is_err());
        assert!(super::ifreq("a\0b").is_err());
    }

    #[test]
    fn addresses_are_in_network_order() {
        let sa = super::sockaddr_in("10.0.0.1".parse().unwrap());
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        // sin_port (2 bytes) then sin_addr.
        assert_eq!(&sa.sa_data[2..6], &[10, 0, 0, 1]);
    }
}
