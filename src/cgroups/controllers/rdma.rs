//! rdma: "DEVICE hca_handle=N hca_object=M" into rdma.max (v1 and v2 alike).

use oci_spec::runtime::LinuxResources;

use super::{dir_of, need, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy};

pub struct Rdma;

impl Controller for Rdma {
    fn field(&self) -> &'static str {
        "rdma"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.rdma().as_ref().is_some_and(|r| !r.is_empty())
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        if self.named(res) {
            need(hierarchies, "rdma", "rdma")?;
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(r) = res.rdma().as_ref().filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        let (_, dir) = dir_of(cg, "rdma", "rdma")?;
        let mut devices: Vec<_> = r.iter().collect();
        devices.sort_by(|a, b| a.0.cmp(b.0));
        for (dev, l) in devices {
            let mut line = dev.clone();
            if let Some(h) = l.hca_handles() {
                line += &format!(" hca_handle={h}");
            }
            if let Some(o) = l.hca_objects() {
                line += &format!(" hca_object={o}");
            }
            write(dir, "rdma.max", &line)?;
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
    fn files() {
        let (_t, cg) = fake(Version::V2, &["rdma"]);
        applies(
            &cg,
            json!({"rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 2000}}}),
            &[("rdma.max", "mlx4_0 hca_handle=2 hca_object=2000")],
        );
    }
}
