//! Pods: containers that join the namespaces of another container by path (containerd's CRI
//! and podman make every container of a pod join its sandbox's network, IPC and UTS
//! namespaces). When the namespaces joined are owned by the user namespace the policy added to
//! a container of the same state root, the pod is the unit of the user namespace: the new
//! container joins that user namespace too, with the sandbox's id range.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::store::{parse_state, Store};
use super::ContainerError;
use crate::policy::{ns_name, Pod};
use crate::sys::{nsfs, proc};

/// The namespaces config.json joins by path, each checked to exist and to be a namespace of
/// the type named, with the user namespace that owns it (None: the host's, the runtime's own
/// or one above it).
pub struct Joined {
    /// config.json has a user namespace entry of its own.
    own_user: bool,
    list: Vec<(LinuxNamespaceType, PathBuf, Option<NsId>)>,
}

/// A namespace's identity (nsfs device, inode).
type NsId = (u64, u64);

/// Look at every namespace config.json joins by path (see [`Joined`]).
pub fn joined(spec: &Spec) -> Result<Joined, ContainerError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let own = std::fs::File::open("/proc/self/ns/user")
        .and_then(|f| nsfs::id(f.as_fd()))
        .map_err(|e| ContainerError::Preflight(format!("/proc/self/ns/user: {e}")))?;
    let mut list = Vec::new();
    for n in &namespaces {
        let Some(path) = n.path() else { continue };
        let owner = owner_of(n.typ(), path)?;
        list.push((n.typ(), path.clone(), owner.filter(|o| *o != own)));
    }
    Ok(Joined {
        own_user: namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User),
        list,
    })
}

impl Joined {
    /// The pod the joined namespaces belong to: None when config.json has a user namespace
    /// of its own, joins nothing, joins namespaces of the host's only or of a user namespace
    /// contain did not add, or joins namespaces of more than one.
    pub fn pod(&self, store: &Store) -> Option<Pod> {
        if self.own_user {
            return None;
        }
        let mut pods = self
            .list
            .iter()
            .filter_map(|(_, _, o)| *o)
            .collect::<Vec<_>>();
        pods.sort_unstable();
        pods.dedup();
        let [userns] = pods[..] else {
            return None;
        };
        // A joined namespace that is the host's (CNI's network namespace, made before the
        // sandbox; the host's UTS namespace of a hostNetwork pod; hostIPC, hostPID) is joined
        // before the pod's user namespace, as host root, since from inside it no namespace of
        // the host could be entered. Not a mount namespace: the rootfs is set up in it, from
        // inside.
        let mut host_owned = Vec::new();
        for (t, _, o) in &self.list {
            match o {
                Some(o) if *o == userns => {}
                None if *t != LinuxNamespaceType::Mount => host_owned.push(*t),
                _ => return None,
            }
        }
        sandbox_of(store, userns).map(|p| Pod { host_owned, ..p })
    }

    /// The joined namespaces that are the host's and that a container in a user namespace
    /// the policy adds can still join, first, as host root (container root then holds no
    /// capability in them): hostNetwork, hostIPC, hostPID and UTS of a pod with no namespace
    /// of its own to find it by, `--ipc container:` of a container without one. Not a mount
    /// namespace (the rootfs is set up in it, from inside), and a pid namespace only when it
    /// is the runtime's own (the container's /proc is the runtime's instance). Empty when
    /// config.json has a user namespace of its own.
    pub fn host_joins(&self) -> Vec<LinuxNamespaceType> {
        if self.own_user {
            return Vec::new();
        }
        self.list
            .iter()
            .filter(|(t, path, owner)| {
                owner.is_none()
                    && match t {
                        LinuxNamespaceType::Mount => false,
                        LinuxNamespaceType::Pid => crate::ns::is_own(LinuxNamespaceType::Pid, path),
                        _ => true,
                    }
            })
            .map(|(t, _, _)| *t)
            .collect()
    }
}

/// The identity of the user namespace owning the namespace at `path` (None: outside ours,
/// the host's), after checking that `path` is a namespace of type `t`.
fn owner_of(t: LinuxNamespaceType, path: &Path) -> Result<Option<(u64, u64)>, ContainerError> {
    let name = ns_name(t);
    let fail = |what: String| {
        ContainerError::Preflight(format!(
            "linux.namespaces: the {name} namespace {}: {what}",
            path.display()
        ))
    };
    let f = std::fs::File::open(path).map_err(|e| {
        fail(if e.kind() == std::io::ErrorKind::NotFound {
            "no such file (the process or pod that held it is gone)".into()
        } else {
            e.to_string()
        })
    })?;
    let kind = nsfs::ns_type(f.as_fd()).map_err(|e| {
        fail(if e.raw_os_error() == Some(libc::ENOTTY) {
            "not a namespace file".into()
        } else {
            format!("cannot read its type: {e}")
        })
    })?;
    let want = crate::ns::clone_flag(t).bits();
    if kind != want {
        let actual = crate::ns::JOIN_ORDER
            .into_iter()
            .chain([LinuxNamespaceType::User])
            .find(|a| crate::ns::clone_flag(*a).bits() == kind)
            .map_or("unknown", ns_name);
        return Err(fail(format!("it is a {actual} namespace")));
    }
    match nsfs::owner(f.as_fd()) {
        Ok(owner) => nsfs::id(owner.as_fd())
            .map(Some)
            .map_err(|e| fail(format!("its owner: {e}"))),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(None),
        Err(e) => Err(fail(format!("its owner: {e}"))),
    }
}

/// The container of `store` whose init lives in the user namespace `userns` (its id and
/// that init's namespace path), checked to be that init still after the namespace was read.
fn container_in(store: &Store, userns: (u64, u64)) -> Option<(String, String)> {
    store.list().ok()?.into_iter().find_map(|id| {
        // Read without the lock: a sandbox's `run` holds it as long as the sandbox runs.
        let data = std::fs::read(store.root().join(&id).join("state.json")).ok()?;
        let state = parse_state(&id, &data).ok()?;
        let path = format!("/proc/{}/ns/user", state.pid);
        let found = std::fs::File::open(&path)
            .and_then(|f| nsfs::id(f.as_fd()))
            .ok()?;
        // Still the container's init (not a reused pid) after the namespace was read.
        let alive = proc::stat(state.pid).map(|s| s.start_time) == Some(state.start_time);
        (state.pid > 0 && alive && found == userns).then_some((id, path))
    })
}

/// The container of `store` whose init lives in the user namespace `userns`, which the
/// policy added to it (it holds a range of the pool).
fn sandbox_of(store: &Store, userns: (u64, u64)) -> Option<Pod> {
    let (id, path) = container_in(store, userns)?;
    let range = crate::ns::idmap::reserved_range(store.root(), &id)?;
    Some(Pod {
        sandbox: id,
        userns: path.into(),
        userns_id: userns,
        range,
        host_owned: Vec::new(),
    })
}

/// The namespaces config.json joins by path that are not owned by the user namespace it also
/// joins by path (a client-given pod user namespace, with CNI's network namespace made by the
/// host): joined first, as host root, since from inside that user namespace they could not be.
/// Empty when config.json joins no user namespace. Not a mount namespace: the rootfs is set up
/// in it, from inside.
pub fn joined_before_userns(spec: &Spec) -> Result<Vec<LinuxNamespaceType>, ContainerError> {
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let Some(user) = namespaces
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().clone())
    else {
        return Ok(Vec::new());
    };
    let userns = std::fs::File::open(&user)
        .and_then(|f| nsfs::id(f.as_fd()))
        .map_err(|e| {
            ContainerError::Preflight(format!(
                "linux.namespaces: the user namespace {}: {e}",
                user.display()
            ))
        })?;
    let mut first = Vec::new();
    for n in &namespaces {
        let (t, Some(path)) = (n.typ(), n.path()) else {
            continue;
        };
        if matches!(t, LinuxNamespaceType::User | LinuxNamespaceType::Mount) {
            continue;
        }
        if owner_of(t, path)? != Some(userns) {
            first.push(t);
        }
    }
    Ok(first)
}

/// The container of `store` whose user namespace config.json joins by path (a pod whose
/// client gives the user namespace, as containerd 2 for `hostUsers: false`), if any.
pub fn joined_userns_holder(store: &Store, spec: &Spec) -> Option<String> {
    let path = spec
        .linux()
        .as_ref()?
        .namespaces()
        .as_ref()?
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::User)?
        .path()
        .clone()?;
    let userns = std::fs::File::open(path)
        .and_then(|f| nsfs::id(f.as_fd()))
        .ok()?;
    container_in(store, userns).map(|(id, _)| id)
}
