//! pids: pids.max (v1 and v2 alike; 0 or less is no limit).

use oci_spec::runtime::LinuxResources;

use super::{dir_of, need, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy};

pub struct Pids;

impl Controller for Pids {
    fn field(&self) -> &'static str {
        "pids"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.pids().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        if res.pids().is_some() {
            need(hierarchies, "pids", "pids")?;
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(p) = res.pids() else {
            return Ok(());
        };
        let (_, dir) = dir_of(cg, "pids", "pids")?;
        let limit = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        write(dir, "pids.max", &limit)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::cgroups::Version;
    use serde_json::json;

    #[test]
    fn files() {
        let (_t, cg) = fake(Version::V2, &["pids"]);
        applies(&cg, json!({"pids": {"limit": 10}}), &[("pids.max", "10")]);
        applies(&cg, json!({"pids": {"limit": 0}}), &[("pids.max", "max")]);
    }
}
