//! Namespace files (nsfs): what kind a file is, and which user namespace owns it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// ioctl(NS_GET_USERNS) = _IO(0xb7, 0x1): a descriptor of the owning user namespace.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// ioctl(NS_GET_NSTYPE) = _IO(0xb7, 0x3): the namespace's CLONE_NEW* flag.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The CLONE_NEW* flag of the namespace behind `fd`; ENOTTY when it is not a namespace file.
pub fn ns_type(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument and touches no memory of ours.
    let r = cvt(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) }.into())?;
    Ok(r as i32)
}

/// The user namespace that owns the namespace behind `fd` (EPERM when it lies outside the
/// caller's: the host's own user namespace has no owner we may see).
pub fn owner(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor or -1.
    let r = cvt(unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) }.into())?;
    // SAFETY: the kernel just returned this descriptor (O_CLOEXEC); nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// A namespace's identity: the nsfs device and inode of its file.
pub fn id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = super::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn own_namespaces() {
        let net = std::fs::File::open("/proc/self/ns/net").unwrap();
        assert_eq!(ns_type(net.as_fd()).unwrap(), libc::CLONE_NEWNET);
        let user = std::fs::File::open("/proc/self/ns/user").unwrap();
        // Our network namespace is owned by our user namespace (when we may see it).
        if let Ok(owner) = owner(net.as_fd()) {
            assert_eq!(id(owner.as_fd()).unwrap(), id(user.as_fd()).unwrap());
        }
        let plain = std::fs::File::open("/proc/self/stat").unwrap();
        let e = ns_type(plain.as_fd()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }
}
