//! Namespaces: which to create and which to join (pure planning), joining by path, and the
//! user namespace's id maps (written by the runtime, outside the container).

pub mod idmap;

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::sys::fs::ProcFs;

pub fn clone_flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The order in which namespaces other than the user namespace (always first) are joined:
/// the mount namespace last, so that the other paths still resolve and our root changes last.
pub const JOIN_ORDER: [LinuxNamespaceType; 7] = [
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
    LinuxNamespaceType::Mount,
];

/// What the container's namespaces are to be.
#[derive(Debug, Clone, PartialEq)]
pub struct NsPlan {
    /// Join this user namespace first.
    pub join_user: Option<PathBuf>,
    /// Create a new user namespace (after joining none).
    pub new_user: bool,
    /// Other namespaces to join, in a safe order.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Other namespaces to create.
    pub unshare: CloneFlags,
}

impl NsPlan {
    pub fn from_spec(spec: &Spec) -> NsPlan {
        let mut plan = NsPlan {
            join_user: None,
            new_user: false,
            join: Vec::new(),
            unshare: CloneFlags::empty(),
        };
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in &list {
            match (ns.typ(), ns.path()) {
                (LinuxNamespaceType::User, Some(p)) => plan.join_user = Some(p.clone()),
                (LinuxNamespaceType::User, None) => plan.new_user = true,
                (_, None) => plan.unshare |= clone_flag(ns.typ()),
                (_, Some(_)) => {}
            }
        }
        for t in JOIN_ORDER {
            if let Some(p) = list
                .iter()
                .find(|n| n.typ() == t)
                .and_then(|n| n.path().clone())
            {
                plan.join.push((t, p));
            }
        }
        plan
    }

    pub fn has_new(&self, t: LinuxNamespaceType) -> bool {
        if t == LinuxNamespaceType::User {
            return self.new_user;
        }
        self.unshare.contains(clone_flag(t))
    }
}

/// Join the namespace at `path`.
/// The name of a namespace's file under /proc/PID/ns.
pub fn ns_file(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Whether the namespace at `path` is the one this process is in: joining it shares the
/// runtime's (the host's) namespace.
pub fn is_own(t: LinuxNamespaceType, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata(format!("/proc/self/ns/{}", ns_file(t)));
    match (std::fs::metadata(path), own) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Join the namespace at `path`.
pub fn join(t: LinuxNamespaceType, path: &Path) -> Result<(), String> {
    let f = std::fs::File::open(path)
        .map_err(|e| format!("cannot open {:?} namespace {}: {e}", t, path.display()))?;
    setns(f.as_fd(), clone_flag(t))
        .map_err(|e| format!("cannot join {:?} namespace {}: {e}", t, path.display()))
}

/// The text of a uid_map/gid_map file.
pub fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write the id maps of `pid`'s user namespace (from the runtime, which holds the privilege
/// to map arbitrary ranges). `deny_setgroups` is needed when an unprivileged caller maps.
pub fn write_id_maps(
    proc: &ProcFs,
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
    deny_setgroups: bool,
) -> std::io::Result<()> {
    if deny_setgroups {
        proc.write(Path::new(&format!("{pid}/setgroups")), b"deny")?;
    }
    for (file, maps) in [("uid_map", uid), ("gid_map", gid)] {
        let fd = proc.open_file(Path::new(&format!("{pid}/{file}")), libc::O_WRONLY)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(map_text(maps).as_bytes()).map_err(|e| {
            std::io::Error::new(e.kind(), format!("writing /proc/{pid}/{file}: {e}"))
        })?;
    }
    Ok(())
}

/// A user namespace with exactly these mappings and no process left in it, held by its
/// descriptor: what an idmapped mount with uidMappings/gidMappings of its own is idmapped
/// through. A short-lived child makes it; the runtime (host root) writes its maps.
pub fn detached_userns(
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
) -> Result<std::os::fd::OwnedFd, String> {
    use nix::sys::signal::{kill, Signal};
    use std::os::fd::AsRawFd;
    let one = crate::sys::SingleThreaded::check().map_err(|e| e.to_string())?;
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let pid = match crate::sys::fork(&one).map_err(|e| format!("fork: {e}"))? {
        crate::sys::Forked::Child(_) => {
            let _ = crate::sys::set_parent_death_signal(libc::SIGKILL);
            let made = nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_ok();
            let _ = nix::unistd::write(&wr, &[u8::from(made)]);
            // Killed by the runtime once it holds the namespace.
            loop {
                nix::unistd::pause();
            }
        }
        crate::sys::Forked::Parent(pid) => nix::unistd::Pid::from_raw(pid),
    };
    drop(wr);
    let result = (|| {
        let mut made = [0u8; 1];
        match nix::unistd::read(rd.as_raw_fd(), &mut made) {
            Ok(1) if made[0] == 1 => {}
            _ => return Err("make a user namespace for the mount's mappings".to_string()),
        }
        let procfs = ProcFs::open(Path::new("/proc")).map_err(|e| format!("open /proc: {e}"))?;
        write_id_maps(&procfs, pid.as_raw(), uid, gid, false)
            .map_err(|e| format!("write the mount's id maps: {e}"))?;
        crate::sys::fs::open_host(Path::new(&format!("/proc/{pid}/ns/user")), libc::O_RDONLY)
            .map_err(|e| format!("open the mount's user namespace: {e}"))
    })();
    let _ = kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_orders_and_splits() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "linux": {"namespaces": [
                {"type": "mount", "path": "/proc/1/ns/mnt"},
                {"type": "network", "path": "/proc/1/ns/net"},
                {"type": "pid"}, {"type": "user"}
            ]}
        }))
        .unwrap();
        let plan = NsPlan::from_spec(&spec);
        assert!(plan.new_user);
        assert_eq!(plan.unshare, CloneFlags::CLONE_NEWPID);
        assert_eq!(plan.join[0].0, LinuxNamespaceType::Network);
        assert_eq!(plan.join[1].0, LinuxNamespaceType::Mount);
    }

    #[test]
    fn map_lines() {
        let m: Vec<LinuxIdMapping> = serde_json::from_value(
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]),
        )
        .unwrap();
        assert_eq!(map_text(&m), "0 1000 1\n");
    }
}
