//! The state store: one directory per container under the root (created exclusively, so two
//! `create`s of the same id cannot both win), locked with flock, holding a JSON state file
//! written atomically (write to a temporary file, then rename) and the exec fifo.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cgroups::Hierarchy;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("container {0:?} does not exist")]
    NotExist(String),
    #[error("container with id {0:?} already exists")]
    Exists(String),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("state of container {id:?} at {path} is corrupt: {msg}")]
    Corrupt {
        id: String,
        path: PathBuf,
        msg: String,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// What is kept about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub oci_version: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Its start time (clock ticks after boot): a reused pid has another.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339.
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup directory in each hierarchy.
    #[serde(default)]
    pub cgroup: Vec<(Hierarchy, PathBuf)>,
    /// Kept for `start` (poststart) and `delete` (poststop): the bundle may be gone by then.
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The container's process, the base of `exec`'s.
    #[serde(default)]
    pub process: Option<oci_spec::runtime::Process>,
    /// The container's namespace types, which `exec` joins.
    #[serde(default)]
    pub namespaces: Vec<oci_spec::runtime::LinuxNamespaceType>,
    /// The resolved seccomp profiles of the container's processes, in the order they are
    /// installed (`exec` compiles them again).
    #[serde(default)]
    pub seccomp: Vec<crate::seccomp::Profile>,
    /// The Landlock plan of the container's processes (`exec` applies it again).
    #[serde(default)]
    pub landlock: Option<crate::landlock::Plan>,
    /// The systemd scope holding the container (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
}

/// Parse a state file of container `id` (pure; the fuzz target's entry point).
pub fn parse_state(id: &str, data: &[u8]) -> Result<State, String> {
    let state: State = serde_json::from_slice(data).map_err(|e| e.to_string())?;
    if state.id != id || state.pid <= 0 {
        return Err("id or pid does not match".into());
    }
    Ok(state)
}

/// The root directory of all containers' state.
pub struct Store {
    root: PathBuf,
}

/// One container's directory, locked for as long as this lives.
const CREATING: &str = "creating.json";

/// What a create in progress has made or is about to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creating {
    /// The cgroup, relative to each hierarchy's root.
    pub cgroup: PathBuf,
    /// The systemd scope unit, with the systemd cgroup driver.
    pub scope: Option<String>,
}

pub struct ContainerDir {
    pub id: String,
    pub path: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

fn lock(path: &Path) -> Result<nix::fcntl::Flock<File>, StoreError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("lock", path)(e.into()))
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the container's directory; fails if the id exists.
    pub fn create(&self, id: &str) -> Result<ContainerDir, StoreError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(io_err("create state root", &self.root))?;
        let path = self.root.join(id);
        match std::fs::DirBuilder::new().mode(0o711).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StoreError::Exists(id.to_string()))
            }
            Err(e) => return Err(io_err("create state directory", &path)(e)),
        }
        let lock = lock(&path)?;
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }

    /// Open and lock an existing container's directory.
    pub fn open(&self, id: &str) -> Result<ContainerDir, StoreError> {
        let path = self.root.join(id);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(StoreError::NotExist(id.to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotExist(id.to_string()))
            }
            Err(e) => return Err(io_err("stat", &path)(e)),
        }
        let lock = lock(&path)?;
        if !path.exists() {
            // Deleted while we waited for the lock.
            return Err(StoreError::NotExist(id.to_string()));
        }
        Ok(ContainerDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }

    /// Ids of all containers, sorted.
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let rd = match std::fs::read_dir(&self.root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io_err("read", &self.root)(e)),
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if let Some(name) = e.file_name().to_str() {
                    ids.push(name.to_string());
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}

impl ContainerDir {
    pub fn state_path(&self) -> PathBuf {
        self.path.join("state.json")
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join("exec.fifo")
    }

    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let tmp = self.path.join("state.json.tmp");
        let data = serde_json::to_vec(state).map_err(|e| StoreError::Corrupt {
            id: self.id.clone(),
            path: tmp.clone(),
            msg: e.to_string(),
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(&data).map_err(io_err("write", &tmp))?;
        let dst = self.state_path();
        std::fs::rename(&tmp, &dst).map_err(io_err("rename", &dst))
    }

    pub fn load(&self) -> Result<State, StoreError> {
        let p = self.state_path();
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Corrupt {
                    id: self.id.clone(),
                    path: p,
                    msg: "no state file (a create was interrupted, or is still running)".into(),
                })
            }
            Err(e) => return Err(io_err("read", &p)(e)),
        };
        parse_state(&self.id, &data).map_err(|msg| StoreError::Corrupt {
            id: self.id.clone(),
            path: p,
            msg,
        })
    }

    /// Record, before they are made, the cgroup and systemd scope a create is about to make,
    /// so that a `delete --force` after the runtime was killed mid-create finds them.
    pub fn record_creating(&self, c: &Creating) -> Result<(), StoreError> {
        let p = self.path.join(CREATING);
        let data = serde_json::to_vec(c).map_err(|e| StoreError::Corrupt {
            id: self.id.clone(),
            path: p.clone(),
            msg: e.to_string(),
        })?;
        std::fs::write(&p, data).map_err(io_err("write", &p))
    }

    /// What an interrupted create recorded (see [`ContainerDir::record_creating`]).
    pub fn creating(&self) -> Option<Creating> {
        let data = std::fs::read(self.path.join(CREATING)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Remove the directory and everything in it.
    pub fn remove(self) -> Result<(), StoreError> {
        std::fs::remove_dir_all(&self.path).map_err(io_err("remove", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str) -> State {
        State {
            id: id.into(),
            oci_version: "1.0.2".into(),
            pid: 1,
            start_time: 5,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "now".into(),
            owner: String::new(),
            annotations: HashMap::new(),
            cgroup: vec![],
            hooks: None,
            process: None,
            namespaces: vec![],
            seccomp: Vec::new(),
            landlock: None,
            systemd_unit: None,
        }
    }

    #[test]
    fn exclusive_create_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let c = store.create("a").unwrap();
        assert!(matches!(store.create("a"), Err(StoreError::Exists(_))));
        c.save(&state("a")).unwrap();
        drop(c);
        let c = store.open("a").unwrap();
        assert_eq!(c.load().unwrap().start_time, 5);
        assert_eq!(store.list().unwrap(), vec!["a"]);
        c.remove().unwrap();
        assert!(matches!(store.open("a"), Err(StoreError::NotExist(_))));
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let c = store.create("b").unwrap();
        std::fs::write(c.state_path(), b"{not json").unwrap();
        assert!(matches!(c.load(), Err(StoreError::Corrupt { .. })));
        let mut s = state("other");
        s.pid = 3;
        c.save(&s).unwrap();
        assert!(matches!(c.load(), Err(StoreError::Corrupt { .. })));
    }
}
