//! /dev: the default device nodes, config.json's devices and the standard symlinks. Nodes are
//! created with mknodat in the resolved parent directory; where mknod is not allowed (a user
//! namespace), the host's node is bind-mounted instead.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::{step, RootfsError, Source, Syscalls};
use crate::sys::fs::chown_at;

/// One node to create.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub path: PathBuf,
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

fn default_nodes() -> Vec<Node> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Node {
        path: PathBuf::from("/dev").join(name),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The nodes for a spec: defaults, then config.json's (which win on the same path).
pub fn nodes(spec: &Spec) -> Result<Vec<Node>, RootfsError> {
    let mut out = default_nodes();
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default()
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => {
                return Err(RootfsError::Refused(format!(
                    "linux.devices: {} has type \"a\", which is not a device node type",
                    d.path().display()
                )))
            }
        };
        out.retain(|n| n.path != *d.path());
        out.push(Node {
            path: d.path().clone(),
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

fn cstring(s: &std::ffi::OsStr) -> Result<CString, RootfsError> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(s.as_bytes())
        .map_err(|_| RootfsError::Refused("a device path contains NUL".into()))
}

/// The host's node for the device `n` names: its own path if that is the same device, else
/// the first node of /dev with the same type and number.
pub(crate) fn host_node(n: &Node) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let dev = libc::makedev(n.major as u32, n.minor as u32);
    let same = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            let t = m.file_type();
            let kind_ok = if n.kind == libc::S_IFBLK {
                t.is_block_device()
            } else {
                t.is_char_device()
            };
            kind_ok && m.rdev() == dev
        })
    };
    if same(&n.path) {
        return Some(n.path.clone());
    }
    std::fs::read_dir("/dev")
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| same(p))
}

/// mknod the node `n` as `name` in `dir`.
pub(crate) fn mknod_at(dir: BorrowedFd<'_>, name: &CStr, n: &Node) -> std::io::Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    let dev = nix::sys::stat::makedev(n.major, n.minor);
    nix::sys::stat::mknodat(
        Some(dir.as_raw_fd()),
        name,
        SFlag::from_bits_truncate(n.kind),
        Mode::from_bits_truncate(n.mode),
        dev,
    )
    .map_err(std::io::Error::from)
}

/// Give the node `name` in `dir`, just made by [`mknod_at`], the config's exact mode (mknod
/// applied the umask) and `owner`.
pub(crate) fn set_mode_owner(
    dir: BorrowedFd<'_>,
    name: &CStr,
    n: &Node,
    owner: (u32, u32),
) -> std::io::Result<()> {
    // fchmodat follows links, but the name was just made as a node by us.
    nix::sys::stat::fchmodat(
        Some(dir.as_raw_fd()),
        name,
        nix::sys::stat::Mode::from_bits_truncate(n.mode),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(std::io::Error::from)?;
    chown_at(dir, name, owner)
}

fn make_node(sys: &dyn Syscalls, root: BorrowedFd<'_>, n: &Node) -> Result<(), RootfsError> {
    let parent = n.path.parent().unwrap_or(Path::new("/dev"));
    let name = n
        .path
        .file_name()
        .ok_or_else(|| RootfsError::Refused(format!("bad device path {}", n.path.display())))?;
    let dir = sys
        .mkdir_all_in_root(root, parent, 0o755)
        .map_err(step(format!("create {}", parent.display())))?;
    let cname = cstring(name)?;
    let err = match sys.mknod_at(dir.as_fd(), &cname, n) {
        Ok(()) => {
            return sys
                .set_mode_owner(dir.as_fd(), &cname, n, (n.uid, n.gid))
                .map_err(step(format!("set mode and owner of {}", n.path.display())))
        }
        Err(e) => e,
    };
    match err.raw_os_error() {
        Some(libc::EEXIST) => Ok(()),
        Some(libc::EPERM) if n.kind != libc::S_IFIFO => {
            // In a user namespace: bind the host's node of the same device.
            let (host, host_mode) = sys.host_node(n).ok_or_else(|| {
                RootfsError::Refused(format!(
                    "linux.devices: {}: mknod is not allowed in a user namespace and the host has no node for device {}:{} in /dev to bind instead",
                    n.path.display(),
                    n.major,
                    n.minor
                ))
            })?;
            // Host root shows as the overflow id here: only a mode or an owner other than
            // root that the config asks for is lost.
            if host_mode != n.mode || (n.uid, n.gid) != (0, 0) {
                crate::log::warn(&format!(
                    "linux.devices {}: in a user namespace the host's node {} is bound with its own mode {:o} and owner (config asks {:o} {}:{})",
                    n.path.display(),
                    host.display(),
                    host_mode,
                    n.mode,
                    n.uid,
                    n.gid
                ));
            }
            let target = sys
                .ensure_file_in_root(root, &n.path)
                .map_err(step(format!("create {}", n.path.display())))?;
            let src = sys
                .open_host(&host, libc::O_PATH)
                .map_err(step(format!("open host device {}", host.display())))?;
            sys.mount(
                Source::Fd(src.as_fd()),
                target.as_fd(),
                None,
                MsFlags::MS_BIND,
                None,
            )
            .map_err(step(format!("bind host device {}", n.path.display())))
        }
        _ => Err(step(format!("mknod {}", n.path.display()))(err)),
    }
}

fn symlink(
    sys: &dyn Syscalls,
    dir: BorrowedFd<'_>,
    target: &str,
    name: &str,
) -> Result<(), RootfsError> {
    match sys.symlink_at(target, dir, name) {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
            Err(step(format!("symlink /dev/{name}"))(e))
        }
        _ => Ok(()),
    }
}

/// Create the nodes and the standard symlinks under /dev of `root`.
pub fn create_devices(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    spec: &Spec,
) -> Result<(), RootfsError> {
    for n in nodes(spec)? {
        make_node(sys, root, &n)?;
    }
    let dev = sys
        .mkdir_all_in_root(root, Path::new("/dev"), 0o755)
        .map_err(step("create /dev"))?;
    for (target, name) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ] {
        symlink(sys, dev.as_fd(), target, name)?;
    }
    if sys.host_has(Path::new("/proc/kcore")) {
        symlink(sys, dev.as_fd(), "/proc/kcore", "core")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_devices_override_defaults() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"devices": [
                {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438},
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
            ]}
        }))
        .unwrap();
        let n = nodes(&spec).unwrap();
        assert_eq!(
            n.iter()
                .filter(|n| n.path == Path::new("/dev/null"))
                .count(),
            1
        );
        assert!(n
            .iter()
            .any(|n| n.path == Path::new("/dev/fuse") && n.major == 10));
    }
}
