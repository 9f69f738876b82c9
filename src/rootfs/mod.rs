//! The container's filesystem view, built inside its mount namespace by the init process:
//! mounts, /dev, masked and read-only paths, then pivot_root. The rootfs is hostile: every
//! path in it is resolved with `sys::fs::open_in_root` and every mount is made on the
//! resulting descriptor.

pub(crate) mod devices;
mod mounts;
pub mod options;
pub mod overlay;
mod paths;
mod syscalls;
#[cfg(test)]
mod tests;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use thiserror::Error;

use crate::cgroups::Cgroup;

pub use devices::create_devices;
pub use paths::{mask_paths, readonly_paths, remount_readonly};
pub use syscalls::{Real, Source, Stat, Syscalls};

#[derive(Debug, Error)]
pub enum RootfsError {
    #[error("{step}: {source}")]
    Step { step: String, source: io::Error },
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn step(what: impl Into<String>) -> impl FnOnce(io::Error) -> RootfsError {
    let step = what.into();
    move |source| RootfsError::Step { step, source }
}

/// What the init needs to build the rootfs.
pub struct RootfsPlan<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub cgroup: Option<&'a Cgroup>,
    /// Detached mounts made by the runtime, attached instead of what the init would mount:
    /// (index in config.json's mounts, -1 for the rootfs; the mount). Idmapped copies of the
    /// rootfs and bind sources, and the /dev tmpfs with its device nodes.
    pub prepared: Vec<(i64, OwnedFd)>,
    /// The rootfs directory in this mount namespace, opened by the runtime (see
    /// `Msg::RootfsDir`), where the idmapped rootfs is attached.
    pub rootfs_dir: Option<OwnedFd>,
}

impl RootfsPlan<'_> {
    pub(crate) fn prepared(&self, index: i64) -> Option<&OwnedFd> {
        self.prepared
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, fd)| fd)
    }
}

/// Make the mount namespace private to the container, bind the rootfs onto itself (so that it
/// is a mount point for pivot_root) and make every mount of config.json. Returns an O_PATH
/// descriptor of the new root.
pub fn prepare(sys: &dyn Syscalls, plan: &RootfsPlan<'_>) -> Result<OwnedFd, RootfsError> {
    // Nothing we mount may propagate back to the host.
    sys.mount_path(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
    )
    .map_err(step("make / a recursive slave"))?;
    let root = if let (Some(idmapped), Some(dir)) = (plan.prepared(-1), &plan.rootfs_dir) {
        sys.attach(idmapped.as_fd(), dir.as_fd())
            .map_err(step(format!(
                "attach the idmapped rootfs on {}",
                plan.rootfs.display()
            )))?;
        // Attached, the detached mount's descriptor is the new root: no path walk (its
        // parents may not be searchable from the user namespace).
        sys.duplicate(idmapped.as_fd())
            .map_err(step("duplicate the rootfs descriptor"))?
    } else {
        sys.mount_path(
            Some(plan.rootfs),
            plan.rootfs,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
        )
        .map_err(step(format!("bind the rootfs {}", plan.rootfs.display())))?;
        sys.open_host(plan.rootfs, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(step(format!("open the rootfs {}", plan.rootfs.display())))?
    };
    for (i, m) in plan.spec.mounts().iter().flatten().enumerate() {
        mounts::mount_one(sys, root.as_fd(), m, i as i64, plan)?;
    }
    Ok(root)
}

/// Masked and read-only paths, then the read-only rootfs (under the root, before the switch).
pub fn protect(sys: &dyn Syscalls, root: BorrowedFd<'_>, spec: &Spec) -> Result<(), RootfsError> {
    let linux = spec.linux().as_ref();
    mask_paths(
        sys,
        root,
        linux
            .and_then(|l| l.masked_paths().as_deref())
            .unwrap_or_default(),
    )?;
    readonly_paths(
        sys,
        root,
        linux
            .and_then(|l| l.readonly_paths().as_deref())
            .unwrap_or_default(),
    )?;
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        let top = sys
            .open_in_root(root, Path::new("/"), libc::O_PATH)
            .map_err(step("reopen the rootfs"))?;
        remount_readonly(sys, top.as_fd(), Path::new("/"))?;
    }
    Ok(())
}

/// Whether /dev comes from a bind mount (then the runtime creates no device nodes).
pub fn dev_is_bind(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// Whether config.json's /dev is a tmpfs asked read-only (`ro`): it is made writable, so that
/// its device nodes and the console can be made, and read-only by [`seal_dev`] (as runc does).
pub fn dev_tmpfs_readonly(spec: &Spec) -> bool {
    spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && m.typ().as_deref() == Some("tmpfs")
            && options::parse(m.options().as_deref().unwrap_or_default())
                .is_ok_and(|o| o.flags.contains(nix::mount::MsFlags::MS_RDONLY))
    })
}

/// Make the container's /dev read-only (`root`: the container's root), once its nodes and the
/// console are in place: for a /dev tmpfs asked read-only ([`dev_tmpfs_readonly`]).
pub fn seal_dev(sys: &dyn Syscalls, root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let dev = sys
        .open_in_root(root, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY)
        .map_err(step("open /dev"))?;
    remount_readonly(sys, dev.as_fd(), Path::new("/dev"))
}

/// Switch the root: pivot_root (the old root is detached) or, with `--no-pivot`, MS_MOVE +
/// chroot (weaker: the old root stays reachable to a process with CAP_SYS_CHROOT).
pub fn switch_root(
    sys: &dyn Syscalls,
    root: BorrowedFd<'_>,
    no_pivot: bool,
) -> Result<(), RootfsError> {
    sys.fchdir(root).map_err(step("chdir to the rootfs"))?;
    let here = Path::new(".");
    if no_pivot {
        hide_full_kernel_mounts(sys, root)?;
        sys.mount_path(Some(here), Path::new("/"), None, MsFlags::MS_MOVE)
            .map_err(step("move the rootfs to /"))?;
        sys.chroot_here().map_err(step("chroot to the rootfs"))?;
    } else {
        sys.pivot_root_here().map_err(step("pivot_root"))?;
        // The old root is now stacked on "."; keep its unmount from propagating, drop it.
        sys.mount_path(None, here, None, MsFlags::MS_SLAVE | MsFlags::MS_REC)
            .map_err(step("make the old root a slave"))?;
        sys.umount(here, MntFlags::MNT_DETACH)
            .map_err(step("detach the old root"))?;
    }
    sys.chdir_root().map_err(step("chdir to /"))?;
    Ok(())
}

/// `--no-pivot` keeps the host's mounts in the container's mount namespace, beneath the
/// chroot. A whole procfs or sysfs among them would let a process that makes a user namespace
/// of its own mount a fresh, unmasked one (the kernel allows it when a fully visible instance
/// exists in the namespace): detach every such mount outside the rootfs, or cover it with an
/// empty tmpfs where it cannot be detached (runc's rule: "--no-pivot must not expose bare
/// /proc").
fn hide_full_kernel_mounts(sys: &dyn Syscalls, root: BorrowedFd<'_>) -> Result<(), RootfsError> {
    let rootfs = sys.path_of(root).map_err(step("find the rootfs's path"))?;
    let text = sys.mountinfo().map_err(step("read /proc/self/mountinfo"))?;
    let mut points: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?;
            let (root_of, point) = (f.get(3)?, f.get(4)?);
            let point = PathBuf::from(crate::cgroups::unescape_mountinfo(point));
            (*root_of == "/"
                && (fstype == "proc" || fstype == "sysfs")
                && !point.starts_with(&rootfs))
            .then_some(point)
        })
        .collect();
    // Deepest first, so that a mount is detached before the one it sits on.
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        // `prepare` made / a recursive slave: the detach does not reach the host.
        match sys.umount(&p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(e) => match e.raw_os_error() {
                Some(libc::ENOENT) => {}
                Some(libc::EINVAL | libc::EPERM) => {
                    sys.mount_path(
                        Some(Path::new("tmpfs")),
                        &p,
                        Some("tmpfs"),
                        MsFlags::MS_RDONLY,
                    )
                    .map_err(step(format!("cover {}", p.display())))?;
                }
                _ => return Err(step(format!("detach {}", p.display()))(e)),
            },
        }
    }
    Ok(())
}

/// Apply linux.rootfsPropagation to the new root (after the switch: pivot_root refuses a
/// shared root).
pub fn set_root_propagation(sys: &dyn Syscalls, spec: &Spec) -> Result<(), RootfsError> {
    let name = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    if let Some(flags) = options::propagation_flags(&name) {
        sys.mount_path(None, Path::new("/"), None, flags)
            .map_err(step(format!("set rootfs propagation {name}")))?;
    }
    Ok(())
}
