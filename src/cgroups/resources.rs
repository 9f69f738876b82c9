//! `linux.resources` -> cgroup files. Every field contain cannot enforce on this host is
//! refused (`check_supported`) before anything is created, never ignored.

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{Cgroup, CgroupError, Hierarchy, Version};

/// Refuse the parts of `res` this version does not enforce (pure).
pub fn check_supported(res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
    let un = |f: &str| Err(CgroupError::Unsupported(f.to_string()));
    let has = |c: &str| {
        hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|x| x == c))
    };
    let v1_has = |c: &str| {
        hierarchies
            .iter()
            .any(|h| h.version == Version::V1 && h.controllers.iter().any(|x| x == c))
    };
    if let Some(b) = res.block_io() {
        if !has("blkio") && !has("io") {
            return un("blockIO (no blkio or io controller)");
        }
        if b.leaf_weight().is_some()
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some())
        {
            return un("blockIO.leafWeight (only the CFQ scheduler, gone since Linux 5.0, had it)");
        }
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
        && !has("hugetlb")
    {
        return un("hugepageLimits (no hugetlb controller)");
    }
    if res.network().is_some() {
        return un("network");
    }
    if res.rdma().is_some() {
        return un("rdma");
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return un("unified");
    }
    if let Some(m) = res.memory() {
        if m.limit().is_some() && !has("memory") {
            return un("memory.limit");
        }
        if m.reservation().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
        {
            return un("memory (only limit and swap are supported)");
        }
        if m.swap().is_some() && !v1_has("memory") {
            return un("memory.swap");
        }
    }
    if let Some(c) = res.cpu() {
        if (c.shares().is_some() || c.quota().is_some() || c.period().is_some()) && !v1_has("cpu") {
            return un("cpu (shares, quota and period need the cgroup v1 cpu controller)");
        }
        if (c.cpus().is_some() || c.mems().is_some()) && !v1_has("cpuset") {
            return un("cpu.cpus/mems");
        }
        if c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some()
            || c.burst().is_some()
        {
            return un("cpu (realtime, idle and burst)");
        }
    }
    if res.pids().is_some() && !has("pids") {
        return un("pids");
    }
    let has_v2 = hierarchies.iter().any(|h| h.version == Version::V2);
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) && !v1_has("devices") && !has_v2 {
        return un("devices (no v1 devices controller and no cgroup v2 hierarchy)");
    }
    Ok(())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    std::fs::write(dir.join(file), value).map_err(|source| CgroupError::Write {
        path: dir.to_path_buf(),
        file: format!("{file}={value}"),
        source,
    })
}

/// A new v1 cpuset cgroup starts with empty cpus and mems: copy them from the nearest
/// ancestor that has them, or nothing could join it.
pub fn cpuset_inherit(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
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

/// The devices every container needs, allowed after a deny-all (as runc does).
fn default_allowed() -> Vec<String> {
    [
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
        "c *:* m",
        "b *:* m",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let typ = match d.typ() {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => "c",
        Some(LinuxDeviceType::B) => "b",
        Some(LinuxDeviceType::P) => "p",
        Some(LinuxDeviceType::A) | None => "a",
    };
    let num = |n: Option<i64>| n.map_or_else(|| "*".to_string(), |v| v.to_string());
    let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
    if typ == "a" {
        format!("a *:* {access}")
    } else {
        format!("{typ} {}:{} {access}", num(d.major()), num(d.minor()))
    }
}

pub fn apply(cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(m) = res.memory() {
        if let Some(limit) = m.limit() {
            let (h, dir) = cg
                .dir_for("memory")
                .ok_or_else(|| CgroupError::Unsupported("memory".into()))?;
            match h.version {
                Version::V1 => {
                    write(dir, "memory.limit_in_bytes", &limit.to_string())?;
                    if let Some(swap) = m.swap() {
                        write(dir, "memory.memsw.limit_in_bytes", &swap.to_string())?;
                    }
                }
                Version::V2 => {
                    let v = if limit < 0 {
                        "max".to_string()
                    } else {
                        limit.to_string()
                    };
                    write(dir, "memory.max", &v)?;
                }
            }
        }
    }
    if let Some(p) = res.pids() {
        let (h, dir) = cg
            .dir_for("pids")
            .ok_or_else(|| CgroupError::Unsupported("pids".into()))?;
        let _ = h;
        let v = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        write(dir, "pids.max", &v)?;
    }
    if let Some(c) = res.cpu() {
        if let Some((_, dir)) = cg.dir_for("cpu") {
            if let Some(s) = c.shares() {
                write(dir, "cpu.shares", &s.to_string())?;
            }
            if let Some(p) = c.period() {
                write(dir, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                write(dir, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if let Some((_, dir)) = cg.dir_for("cpuset") {
            if let Some(cpus) = c.cpus() {
                write(dir, "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(dir, "cpuset.mems", mems)?;
            }
        }
    }
    if let Some(b) = res.block_io() {
        apply_block_io(cg, b)?;
    }
    if let Some(l) = res.hugepage_limits().as_ref().filter(|l| !l.is_empty()) {
        apply_hugetlb(cg, l)?;
    }
    if let Some(devs) = res.devices().as_ref().filter(|d| !d.is_empty()) {
        // Config rules in order; a leading deny-all is followed by the defaults runc allows.
        let mut rules: Vec<(bool, String)> = Vec::new();
        for d in devs {
            let rule = device_rule(d);
            let deny_all = !d.allow() && rule.starts_with("a ");
            rules.push((d.allow(), rule));
            if deny_all {
                rules.extend(default_allowed().into_iter().map(|r| (true, r)));
            }
        }
        let v1 = cg.dirs.iter().find(|(h, _)| {
            h.version == Version::V1 && h.controllers.iter().any(|c| c == "devices")
        });
        if let Some((_, dir)) = v1 {
            for (allow, rule) in &rules {
                write(
                    dir,
                    if *allow {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    },
                    rule,
                )?;
            }
        }
        // cgroup v2 has no device files: a BPF program attached to the cgroup decides. On a
        // hybrid host it holds beside the v1 controller (both must allow).
        if let Some((_, dir)) = cg.dirs.iter().find(|(h, _)| h.version == Version::V2) {
            super::devices::attach(dir, &rules).map_err(|e| CgroupError::Write {
                path: dir.clone(),
                file: "device program".into(),
                source: std::io::Error::other(e),
            })?;
        } else if v1.is_none() {
            return Err(CgroupError::Unsupported("devices".into()));
        }
    }
    Ok(())
}

/// blockIO: throttles (v1 blkio.throttle.*, v2 io.max) and weights (v1 blkio.weight or the
/// BFQ scheduler's blkio.bfq.weight; v2 io.weight or io.bfq.weight, the v1 scale converted
/// as runc does). A weight no file here can take is refused, not dropped.
fn apply_block_io(cg: &Cgroup, b: &oci_spec::runtime::LinuxBlockIo) -> Result<(), CgroupError> {
    let un = |what: String| Err(CgroupError::Unsupported(what));
    let (h, dir) = match cg.dir_for("blkio").or_else(|| cg.dir_for("io")) {
        Some(x) => x,
        None => return un("blockIO".into()),
    };
    let v1 = h.version == Version::V1;
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
            if v1 {
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
    if wants_weight {
        let file = [plain, bfq]
            .into_iter()
            .find(|f| dir.join(f).exists())
            .ok_or_else(|| {
                CgroupError::Unsupported(format!(
                    "blockIO.weight: neither {plain} nor {bfq} exists here (no I/O scheduler with weights)"
                ))
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
    }
    Ok(())
}

/// hugepageLimits: v1 hugetlb.<size>.limit_in_bytes, v2 hugetlb.<size>.max; a page size this
/// host does not have is refused.
fn apply_hugetlb(
    cg: &Cgroup,
    limits: &[oci_spec::runtime::LinuxHugepageLimit],
) -> Result<(), CgroupError> {
    let (h, dir) = cg
        .dir_for("hugetlb")
        .ok_or_else(|| CgroupError::Unsupported("hugepageLimits".into()))?;
    for l in limits {
        let size = l.page_size();
        let file = match h.version {
            Version::V1 => format!("hugetlb.{size}.limit_in_bytes"),
            Version::V2 => format!("hugetlb.{size}.max"),
        };
        if !dir.join(&file).exists() {
            return Err(CgroupError::Unsupported(format!(
                "hugepageLimits: page size {size:?} (no {file} on this host)"
            )));
        }
        write(dir, &file, &l.limit().to_string())?;
    }
    Ok(())
}

/// The first limit of `res` that needs a cgroup of the container's own (the device list
/// does not: without a cgroup the caller's applies, and a rootless container cannot make
/// device nodes anyway). None when there is none.
pub fn limits_named(res: &LinuxResources) -> Option<&'static str> {
    if res.memory().is_some() {
        Some("memory")
    } else if res.cpu().is_some() {
        Some("cpu")
    } else if res.pids().is_some() {
        Some("pids")
    } else if res.block_io().is_some() {
        Some("blockIO")
    } else if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        Some("hugepageLimits")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules() {
        let d: LinuxDeviceCgroup =
            serde_json::from_value(serde_json::json!({"allow": false, "access": "rwm"})).unwrap();
        assert_eq!(device_rule(&d), "a *:* rwm");
        let d: LinuxDeviceCgroup = serde_json::from_value(
            serde_json::json!({"allow": true, "type": "c", "major": 10, "access": "rw"}),
        )
        .unwrap();
        assert_eq!(device_rule(&d), "c 10:* rw");
    }

    #[test]
    fn refuses_unenforced() {
        let h = vec![Hierarchy {
            version: Version::V2,
            mount: "/x".into(),
            controllers: vec!["memory".into()],
        }];
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"blockIO": {"weight": 10}})).unwrap();
        assert!(check_supported(&r, &h)
            .unwrap_err()
            .to_string()
            .contains("blockIO"));
        // Devices: the v2 program on a v2 host; refused where neither v1 nor v2 can hold them.
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"devices": [{"allow": false}]})).unwrap();
        check_supported(&r, &h).unwrap();
        let v1_without_devices = vec![Hierarchy {
            version: Version::V1,
            mount: "/y".into(),
            controllers: vec!["memory".into()],
        }];
        assert!(check_supported(&r, &v1_without_devices).is_err());
        let r: LinuxResources =
            serde_json::from_value(serde_json::json!({"memory": {"limit": 1000000}})).unwrap();
        check_supported(&r, &h).unwrap();
    }
}
