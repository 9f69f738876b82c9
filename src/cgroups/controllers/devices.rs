//! devices: v1 devices.allow/devices.deny (the shortest way from what the cgroup holds), and
//! on cgroup v2 a BPF program attached to the cgroup ([`crate::cgroups::devices`]). On a hybrid
//! host both hold (both must allow).

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{controller_version, unsupported, write, Controller};
use crate::cgroups::{Cgroup, CgroupError, Hierarchy, Version};

pub struct Devices;

/// `linux.resources.devices` as (allow?, v1 rule text) in order, a deny-all followed by the
/// defaults runc allows; None when config.json has no device rules.
pub fn rules(res: &LinuxResources) -> Option<Vec<(bool, String)>> {
    let devs = res.devices().as_ref().filter(|d| !d.is_empty())?;
    let mut rules = Vec::new();
    for d in devs {
        let rule = rule(d);
        let deny_all = !d.allow() && rule.starts_with("a ");
        rules.push((d.allow(), rule));
        if deny_all {
            rules.extend(DEFAULT_ALLOWED.iter().map(|r| (true, r.to_string())));
        }
    }
    Some(rules)
}

/// The devices every container needs, allowed after a deny-all (as runc does).
const DEFAULT_ALLOWED: &[&str] = &[
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
];

fn rule(d: &LinuxDeviceCgroup) -> String {
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

impl Controller for Devices {
    fn field(&self) -> &'static str {
        "devices"
    }

    fn named(&self, res: &LinuxResources) -> bool {
        res.devices().as_ref().is_some_and(|d| !d.is_empty())
    }

    fn needs_own_cgroup(&self) -> bool {
        false
    }

    fn check(&self, res: &LinuxResources, hierarchies: &[Hierarchy]) -> Result<(), CgroupError> {
        let has_v2 = hierarchies.iter().any(|h| h.version == Version::V2);
        if self.named(res) && controller_version(hierarchies, "devices").is_none() && !has_v2 {
            return Err(unsupported(
                "devices",
                "this host has neither a v1 devices controller nor a cgroup2 tree for a device program",
            ));
        }
        Ok(())
    }

    fn apply(&self, cg: &Cgroup, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(rules) = rules(res) else {
            return Ok(());
        };
        let v1 = cg.dirs.iter().find(|(h, _)| {
            h.version == Version::V1 && h.controllers.iter().any(|c| c == "devices")
        });
        if let Some((_, dir)) = v1 {
            // An update goes the shortest way from what the cgroup holds (a new cgroup holds
            // v1's allow-all, so create replays the rules).
            let list = std::fs::read_to_string(dir.join("devices.list")).unwrap_or_default();
            let writes = crate::cgroups::devices::v1_transition(&list, &rules)
                .unwrap_or_else(|| rules.clone());
            for (allow, rule) in &writes {
                let file = if *allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(dir, file, rule)?;
            }
        }
        // cgroup v2 has no device files: a BPF program attached to the cgroup decides.
        if let Some((_, dir)) = cg.dirs.iter().find(|(h, _)| h.version == Version::V2) {
            crate::cgroups::devices::attach(dir, &rules).map_err(|e| CgroupError::Write {
                path: dir.clone(),
                file: "device program".into(),
                source: std::io::Error::other(e),
            })?;
        } else if v1.is_none() {
            return Err(unsupported(
                "devices",
                "this container's cgroup has neither a v1 devices controller nor a cgroup2 directory",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_text() {
        let d: LinuxDeviceCgroup =
            serde_json::from_value(json!({"allow": false, "access": "rwm"})).unwrap();
        assert_eq!(rule(&d), "a *:* rwm");
        let d: LinuxDeviceCgroup = serde_json::from_value(
            json!({"allow": true, "type": "c", "major": 10, "access": "rw"}),
        )
        .unwrap();
        assert_eq!(rule(&d), "c 10:* rw");
        // A deny-all brings runc's defaults after it.
        let r = rules(&res(json!({"devices": [{"allow": false}]}))).unwrap();
        assert_eq!(r[0], (false, "a *:* rwm".to_string()));
        assert_eq!(r.len(), 1 + DEFAULT_ALLOWED.len());
    }

    #[test]
    fn v1_deny_all_then_the_defaults() {
        let (_t, cg) = fake(Version::V1, &["devices"]);
        std::fs::write(cg.dirs[0].1.join("devices.list"), "a *:* rwm\n").unwrap();
        // Each write replaces the fake file: the last of each kind is left.
        applies(
            &cg,
            json!({"devices": [{"allow": false}]}),
            &[("devices.deny", "a *:* rwm"), ("devices.allow", "b *:* m")],
        );
    }

    #[test]
    fn refused_where_nothing_can_hold_them() {
        let r = json!({"devices": [{"allow": false}]});
        crate::cgroups::check_supported(&res(r.clone()), &hierarchy(Version::V2, &["memory"]))
            .unwrap();
        refused(
            &hierarchy(Version::V1, &["memory"]),
            r,
            "neither a v1 devices controller",
        );
    }
}
