//! blockIO: throttles (v1 blkio.throttle.*, v2 io.max) and weights (v1 blkio.weight or the
//! BFQ scheduler's blkio.bfq.weight; v2 io.weight or io.bfq.weight, the v1 scale converted
//! as runc does). A weight no file here can take is refused, not dropped.

use oci_spec::runtime::{LinuxBlockIo, LinuxResources};

use super::{controller_version, dir_of, need, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct BlockIo;

impl Controller for BlockIo {
    fn field(&self) -> &'static str {
        "blockIO"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.block_io().is_some()
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let Some(b) = res.block_io() else {
            return Ok(());
        };
        if controller_version(hierarchies, "blkio").is_none() {
            need(hierarchies, "blockIO", "io")?;
        }
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some())
        {
            return Err(unsupported(
                "blockIO.leafWeight",
                "only the CFQ scheduler, gone since Linux 5.0, had it",
            ));
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(b) = res.block_io() else {
            return Ok(());
        };
        let (v, dir) = dir_of(cg, "blockIO", "blkio").or_else(|_| dir_of(cg, "blockIO", "io"))?;
        throttles(dir, v, b)?;
        weights(dir, v, b)
    }
}

fn throttles(dir: &std::path::Path, v: Version, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    for (list, v1_file, v2_key) in throttles {
        for d in list.iter().flatten() {
            let dev = format!("{}:{}", d.major(), d.minor());
            if v == Version::V1 {
                write(dir, v1_file, &format!("{dev} {}", d.rate()))?;
            } else {
                let rate = if d.rate() == 0 {
                    "max".to_string()
                } else {
                    d.rate().to_string()
                };
                write(dir, "io.max", &format!("{dev} {v2_key}={rate}"))?;
            }
        }
    }
    Ok(())
}

fn weights(dir: &std::path::Path, v: Version, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let v1 = v == Version::V1;
    let (plain, bfq) = if v1 {
        ("blkio.weight", "blkio.bfq.weight")
    } else {
        ("io.weight", "io.bfq.weight")
    };
    let wants_weight = b.weight().is_some()
        || b.weight_device()
            .iter()
            .flatten()
            .any(|d| d.weight().is_some());
    if !wants_weight {
        return Ok(());
    }
    let file = [plain, bfq]
        .into_iter()
        .find(|f| dir.join(f).exists())
        .ok_or_else(|| {
            unsupported(
                "blockIO.weight",
                format_args!(
                    "neither {plain} nor {bfq} exists here (no I/O scheduler with weights)"
                ),
            )
        })?;
    let via_bfq = file == bfq;
    if via_bfq {
        crate::log::warn(&format!(
            "blockIO weights go to {bfq}: they take effect only on devices whose I/O scheduler is bfq"
        ));
    }
    // v1's and BFQ's weights run 10..1000; v2's io.weight 1..10000.
    let value = |w: u16| -> String {
        if v1 || via_bfq {
            w.to_string()
        } else {
            (1 + (u64::from(w).saturating_sub(10)) * 9999 / 990).to_string()
        }
    };
    if let Some(w) = b.weight() {
        let v = if v1 || via_bfq {
            value(w)
        } else {
            format!("default {}", value(w))
        };
        write(dir, file, &v)?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), value(w)),
            )?;
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
    fn v2_throttles_and_weights() {
        let (_t, cg) = fake(Version::V2, &["io"]);
        std::fs::write(cg.dirs[0].1.join("io.weight"), "default 100").unwrap();
        applies(
            &cg,
            json!({"blockIO": {"weight": 500,
                               "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]}}),
            &[
                ("io.max", "8:0 rbps=1048576"),
                ("io.weight", "default 4950"),
            ],
        );
    }

    #[test]
    fn v1_throttles_and_bfq_weights() {
        let (_t, cg) = fake(Version::V1, &["blkio"]);
        std::fs::write(cg.dirs[0].1.join("blkio.bfq.weight"), "100").unwrap();
        applies(
            &cg,
            json!({"blockIO": {"weight": 500,
                               "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]}}),
            &[
                ("blkio.throttle.write_iops_device", "8:0 10"),
                ("blkio.bfq.weight", "500"),
            ],
        );
    }

    #[test]
    fn a_weight_nothing_here_takes_is_refused() {
        let (_t, cg) = fake(Version::V2, &["io"]);
        let r = res(json!({"blockIO": {"weight": 10}}));
        let e = super::super::apply(&cg, &r).unwrap_err().to_string();
        assert!(e.contains("neither io.weight nor io.bfq.weight"), "{e}");
        refused(
            &hierarchy(Version::V2, &["memory"]),
            json!({"blockIO": {"weight": 10}}),
            "blockIO",
        );
        refused(
            &hierarchy(Version::V2, &["io"]),
            json!({"blockIO": {"leafWeight": 10}}),
            "CFQ",
        );
    }
}
