//! The container's filesystem view, built inside its mount namespace by the init process:
//! mounts, /dev, masked and read-only paths, then pivot_root. The rootfs is hostile: every
//! path in it is resolved with `sys::fs::open_in_root` and every mount is made on the
//! resulting descriptor.

pub(crate) mod devices;
mod mounts;
pub mod options;
pub mod overlay;
mod paths;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;
use thiserror::Error;

use crate::cgroups::Cgroup;
use crate::sys::fs::{fd_path, open_host};

pub use devices::create_devices;
pub use paths::{mask_paths, readonly_paths, remount_readonly};

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

pub(crate) fn nix_step(what: impl Into<String>) -> impl FnOnce(nix::Error) -> RootfsError {
    let f = step(what);
    move |e| f(io::Error::from(e))
}

/// mount(2) on descriptors given as magic links.
pub(crate) fn mount_at(
    source: Option<&Path>,
    target: &impl std::os::fd::AsRawFd,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> nix::Result<()> {
    mount(source, &fd_path(target), fstype, flags, data)
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
pub fn prepare(plan: &RootfsPlan<'_>) -> Result<OwnedFd, RootfsError> {
    // Nothing we mount may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(nix_step("make / a recursive slave"))?;
    let root = if let (Some(idmapped), Some(dir)) = (plan.prepared(-1), &plan.rootfs_dir) {
        crate::sys::mount::attach(idmapped.as_fd(), dir.as_fd()).map_err(step(format!(
            "attach the idmapped rootfs on {}",
            plan.rootfs.display()
        )))?;
        // Attached, the detached mount's descriptor is the new root: no path walk (its
        // parents may not be searchable from the user namespace).
        idmapped
            .try_clone()
            .map_err(step("duplicate the rootfs descriptor"))?
    } else {
        mount(
            Some(plan.rootfs),
            plan.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nix_step(format!(
            "bind the rootfs {}",
            plan.rootfs.display()
        )))?;
        open_host(plan.rootfs, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(step(format!("open the rootfs {}", plan.rootfs.display())))?
    };
    for (i, m) in plan.spec.mounts().iter().flatten().enumerate() {
        mounts::mount_one(root.as_fd(), m, i as i64, plan)?;
    }
    Ok(root)
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

/// Switch the root: pivot_root (the old root is detached) or, with `--no-pivot`, MS_MOVE +
/// chroot (weaker: the old root stays reachable to a process with CAP_SYS_CHROOT).
pub fn switch_root(root: &OwnedFd, no_pivot: bool) -> Result<(), RootfsError> {
    nix::unistd::fchdir(root.as_raw_fd()).map_err(nix_step("chdir to the rootfs"))?;
    if no_pivot {
        hide_full_kernel_mounts(root)?;
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(nix_step("move the rootfs to /"))?;
        nix::unistd::chroot(".").map_err(nix_step("chroot to the rootfs"))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(nix_step("pivot_root"))?;
        // The old root is now stacked on "."; keep its unmount from propagating, drop it.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(nix_step("make the old root a slave"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(nix_step("detach the old root"))?;
    }
    nix::unistd::chdir("/").map_err(nix_step("chdir to /"))?;
    Ok(())
}

/// `--no-pivot` keeps the host's mounts in the container's mount namespace, beneath the
/// chroot. A whole procfs or sysfs among them would let a process that makes a user namespace
/// of its own mount a fresh, unmasked one (the kernel allows it when a fully visible instance
/// exists in the namespace): detach every such mount outside the rootfs, or cover it with an
/// empty tmpfs where it cannot be detached (runc's rule: "--no-pivot must not expose bare
/// /proc").
fn hide_full_kernel_mounts(root: &OwnedFd) -> Result<(), RootfsError> {
    let rootfs = std::fs::read_link(crate::sys::fs::fd_path(root))
        .map_err(step("find the rootfs's path"))?;
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(step("read /proc/self/mountinfo"))?;
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
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(
                    Some("tmpfs"),
                    &p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None::<&str>,
                )
                .map_err(nix_step(format!("cover {}", p.display())))?;
            }
            Err(e) => return Err(nix_step(format!("detach {}", p.display()))(e)),
        }
    }
    Ok(())
}

/// Apply linux.rootfsPropagation to the new root (after the switch: pivot_root refuses a
/// shared root).
pub fn set_root_propagation(spec: &Spec) -> Result<(), RootfsError> {
    let name = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().clone())
        .unwrap_or_default();
    if let Some(flags) = options::propagation_flags(&name) {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(nix_step(format!("set rootfs propagation {name}")))?;
    }
    Ok(())
}
