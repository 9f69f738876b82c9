//! cgroups on v1, v2 and hybrid hosts: find the hierarchies, create the container's cgroup in
//! each, move the init into it, apply `linux.resources`, signal and remove it.

mod controllers;
pub mod devices;
mod mountinfo;
pub mod stats;
pub mod systemd;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use controllers::{check_supported, limits_named};
pub use mountinfo::{parse_mountinfo, unescape as unescape_mountinfo, Hierarchy, Version};

#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("cannot read /proc/self/mountinfo: {0}")]
    Mountinfo(io::Error),
    #[error("no cgroup hierarchy is mounted on this host")]
    NoHierarchy,
    #[error("cannot create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot add pid {pid} to cgroup {path}: {source}")]
    Join {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot set {file} in {path}: {source}")]
    Write {
        path: PathBuf,
        file: String,
        source: io::Error,
    },
    /// A limit this host (or this version) cannot enforce: "FIELD: why".
    #[error("linux.resources.{0}")]
    Unsupported(String),
    #[error("cgroup {0} already holds processes (another container's?); refusing to share it")]
    InUse(PathBuf),
    /// The systemd driver: a bad cgroupsPath or what systemd answered.
    #[error("{0}")]
    Systemd(String),
    #[error("cgroup {path} still has processes; cannot remove it: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

/// The host's cgroup hierarchies.
pub fn hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(CgroupError::Mountinfo)?;
    let h = parse_mountinfo(&text);
    if h.is_empty() {
        return Err(CgroupError::NoHierarchy);
    }
    Ok(h)
}

/// The cgroup directories of one container, one per hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub dirs: Vec<(Hierarchy, PathBuf)>,
}

/// The cgroup path of a container: config.json's cgroupsPath, else `/contain/<id>`. Both
/// forms are taken from the root of each hierarchy.
pub fn relative_path(cgroups_path: Option<&Path>, id: &str) -> PathBuf {
    let p = cgroups_path.map_or_else(|| PathBuf::from(format!("contain/{id}")), Path::to_path_buf);
    p.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

/// cgroup v2: a controller's files appear in a cgroup only when every ancestor enables it in
/// `cgroup.subtree_control`; enable each of `controllers` the ancestor offers, from the
/// hierarchy's root down to `dir`'s parent (as runc does). A failure (an ancestor holding
/// processes) is left to surface as the limit's own write error, naming its file.
fn enable_controllers(mount: &Path, dir: &Path, controllers: &[String]) {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return;
    };
    let mut cur = mount.to_path_buf();
    let mut parts: Vec<_> = rel.components().collect();
    parts.pop();
    for next in std::iter::once(None).chain(parts.into_iter().map(Some)) {
        if let Some(c) = next {
            cur.push(c);
        }
        let offered = std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
        let enabled =
            std::fs::read_to_string(cur.join("cgroup.subtree_control")).unwrap_or_default();
        for c in controllers {
            let has = |list: &str| list.split_whitespace().any(|x| x == c);
            if has(&offered) && !has(&enabled) {
                let _ = std::fs::write(cur.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
    }
}

impl Cgroup {
    /// The directories `rel` names in each hierarchy (nothing is created).
    pub fn at(hierarchies: &[Hierarchy], rel: &Path) -> Cgroup {
        Cgroup {
            dirs: hierarchies
                .iter()
                .map(|h| (h.clone(), h.mount.join(rel)))
                .collect(),
        }
    }

    /// A cgroup that already holds processes belongs to someone else: refuse to share it.
    pub fn check_unused(&self) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                return Err(CgroupError::InUse(dir.clone()));
            }
        }
        Ok(())
    }

    /// Create the directories (parents too).
    pub fn create(&self) -> Result<(), CgroupError> {
        for (h, dir) in &self.dirs {
            std::fs::create_dir_all(dir).map_err(|source| CgroupError::Create {
                path: dir.clone(),
                source,
            })?;
            if h.version == Version::V1 && h.controllers.iter().any(|c| c == "cpuset") {
                controllers::cpuset_inherit(&h.mount, dir)?;
            }
            if h.version == Version::V2 {
                enable_controllers(&h.mount, dir, &h.controllers);
            }
        }
        Ok(())
    }

    /// The cgroup v2 directory, if the host has a v2 hierarchy.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(h, _)| h.version == Version::V2)
            .map(|(_, d)| d.as_path())
    }

    /// Move `pid` into the v2 hierarchy only (when it could not be forked into it).
    pub fn join_v2(&self, pid: i32) -> Result<(), CgroupError> {
        let Some(dir) = self.v2_dir() else {
            return Ok(());
        };
        std::fs::write(dir.join("cgroup.procs"), pid.to_string()).map_err(|source| {
            CgroupError::Join {
                pid,
                path: dir.to_path_buf(),
                source,
            }
        })
    }

    /// Move the calling (single-threaded) process into every v1 hierarchy by writing "0" to
    /// `tasks`: a thread moving itself skips the threadgroup lock, whose write side waits for
    /// an RCU grace period (milliseconds) on every `cgroup.procs` write.
    pub fn join_self_v1(&self) -> Result<(), CgroupError> {
        for (h, dir) in &self.dirs {
            if h.version == Version::V1 {
                std::fs::write(dir.join("tasks"), "0").map_err(|source| CgroupError::Join {
                    pid: 0,
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Apply `linux.resources`.
    pub fn apply(&self, res: &oci_spec::runtime::LinuxResources) -> Result<(), CgroupError> {
        controllers::apply(self, res)
    }

    /// The directory of the hierarchy that holds `controller` (v1 first, then v2).
    pub fn dir_for(&self, controller: &str) -> Option<(&Hierarchy, &Path)> {
        self.dirs
            .iter()
            .find(|(h, _)| {
                h.version == Version::V1 && h.controllers.iter().any(|c| c == controller)
            })
            .or_else(|| {
                self.dirs.iter().find(|(h, _)| {
                    h.version == Version::V2 && h.controllers.iter().any(|c| c == controller)
                })
            })
            .map(|(h, d)| (h, d.as_path()))
    }

    /// Every pid in the cgroup (from the first hierarchy that can be read).
    pub fn pids(&self) -> Vec<i32> {
        for (_, dir) in &self.dirs {
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                return text.lines().filter_map(|l| l.trim().parse().ok()).collect();
            }
        }
        Vec::new()
    }

    /// Remove the directories, waiting briefly for exiting processes to leave them.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            let mut tries = 0;
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(source) => {
                        return Err(CgroupError::Remove {
                            path: dir.clone(),
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }
}
