//! cpuset: cpu.cpus and cpu.mems into cpuset.cpus and cpuset.mems (v1 and v2 alike).

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::{dir_of, need, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy};

pub struct Cpuset;

impl Controller for Cpuset {
    fn field(&self) -> &'static str {
        "cpu"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.cpu().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        if res
            .cpu()
            .as_ref()
            .is_some_and(|c| c.cpus().is_some() || c.mems().is_some())
        {
            need(hierarchies, "cpu.cpus/mems", "cpuset")?;
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(c) = res.cpu() else {
            return Ok(());
        };
        if c.cpus().is_none() && c.mems().is_none() {
            return Ok(());
        }
        let (_, dir) = dir_of(cg, "cpu.cpus/mems", "cpuset")?;
        if let Some(cpus) = c.cpus() {
            write(dir, "cpuset.cpus", cpus)?;
        }
        if let Some(mems) = c.mems() {
            write(dir, "cpuset.mems", mems)?;
        }
        Ok(())
    }
}

/// A new v1 cpuset cgroup starts with empty cpus and mems: copy them from the nearest
/// ancestor that has them, or nothing could join it.
pub fn inherit(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let mut chain = Vec::new();
    let mut cur = dir.to_path_buf();
    while cur.starts_with(mount) && cur != mount {
        chain.push(cur.clone());
        cur.pop();
    }
    for d in chain.into_iter().rev() {
        let parent = d.parent().unwrap_or(mount);
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(d.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                write(&d, f, theirs.trim())?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::cgroups::Version;
    use serde_json::json;

    #[test]
    fn files() {
        let (_t, cg) = fake(Version::V2, &["cpuset"]);
        applies(
            &cg,
            json!({"cpu": {"cpus": "0", "mems": "0"}}),
            &[("cpuset.cpus", "0"), ("cpuset.mems", "0")],
        );
    }

    #[test]
    fn a_new_v1_cgroup_inherits_cpus_and_mems() {
        let (t, cg) = fake(Version::V1, &["cpuset"]);
        std::fs::write(t.path().join("cpuset.cpus"), "0-1\n").unwrap();
        std::fs::write(t.path().join("cpuset.mems"), "0\n").unwrap();
        let leaf = cg.dirs[0].1.join("leaf");
        std::fs::create_dir(&leaf).unwrap();
        super::inherit(t.path(), &leaf).unwrap();
        for d in [&cg.dirs[0].1, &leaf] {
            assert_eq!(
                std::fs::read_to_string(d.join("cpuset.cpus")).unwrap(),
                "0-1"
            );
            assert_eq!(std::fs::read_to_string(d.join("cpuset.mems")).unwrap(), "0");
        }
    }

    #[test]
    fn refused_without_the_controller() {
        refused(
            &hierarchy(Version::V2, &["cpu"]),
            json!({"cpu": {"cpus": "0"}}),
            "cpu.cpus/mems: this host has no cpuset controller",
        );
    }
}
