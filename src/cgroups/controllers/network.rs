//! network: v1 net_cls.classid and net_prio.ifpriomap (cgroup v2 has neither).

use oci_spec::runtime::LinuxResources;

use super::{dir_of, need, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy};

pub struct Network;

impl Controller for Network {
    fn field(&self) -> &'static str {
        "network"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.network().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let Some(n) = res.network() else {
            return Ok(());
        };
        if n.class_id().is_some() {
            need(hierarchies, "network.classID", "net_cls")?;
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            need(hierarchies, "network.priorities", "net_prio")?;
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(n) = res.network() else {
            return Ok(());
        };
        if let Some(id) = n.class_id() {
            let (_, dir) = dir_of(cg, "network.classID", "net_cls")?;
            write(dir, "net_cls.classid", &id.to_string())?;
        }
        for p in n.priorities().iter().flatten() {
            let (_, dir) = dir_of(cg, "network.priorities", "net_prio")?;
            write(
                dir,
                "net_prio.ifpriomap",
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::cgroups::Version;
    use serde_json::json;

    #[test]
    fn v1_files() {
        let (_t, cg) = fake(Version::V1, &["net_cls", "net_prio"]);
        applies(
            &cg,
            json!({"network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]}}),
            &[
                ("net_cls.classid", "1048577"),
                ("net_prio.ifpriomap", "eth0 5"),
            ],
        );
    }

    #[test]
    fn cgroup_v2_has_neither() {
        let mut hybrid = hierarchy(Version::V1, &["memory"]);
        hybrid.extend(hierarchy(Version::V2, &["hugetlb"]));
        refused(
            &hybrid,
            json!({"network": {"classID": 1}}),
            "no net_cls controller",
        );
    }
}
