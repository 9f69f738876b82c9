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
    if res.block_io().is_some() {
        return un("blockIO");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        return un("hugepageLimits");
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
