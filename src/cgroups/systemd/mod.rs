//! The systemd cgroup driver (`--systemd-cgroup`), as runc's: cgroupsPath is
//! `slice:prefix:name`; systemd creates a transient scope `prefix-name.scope` in the slice
//! (StartTransientUnit over the D-Bus system bus, Delegate=yes) holding the container's
//! processes, with the limits it can express as unit properties, so that a later
//! `systemctl daemon-reload` re-applies them instead of resetting them. contain then writes
//! every limit to the scope's cgroup files itself, in each hierarchy, as with cgroupfs.
//!
//! The D-Bus connection runs on a current-thread tokio runtime. zbus still asks tokio's
//! blocking pool for a thread (to read the socket's peer credentials), and the runtime's forks
//! need it single-threaded: a connection lives only as long as one call, its runtime is shut
//! down with it (which joins that thread), and `create` checks that it is alone again before it
//! forks. It goes through the system bus (as crun's and youki's do), not systemd's private
//! socket (runc's): on that socket systemd signs its messages with its well-known name, which
//! zbus cannot parse.

use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;

use super::devices::{self, BLOCK, CHAR};
use super::CgroupError;

#[cfg(feature = "systemd")]
mod dbus;
#[cfg(feature = "systemd")]
pub use dbus::Systemd;

fn bad_path(path: &str, why: &str) -> CgroupError {
    CgroupError::Systemd(format!(
        "cgroupsPath {path:?}: {why} (with --systemd-cgroup it is \"slice:prefix:name\")"
    ))
}

/// A container's unit: the slice it goes in and its scope's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub slice: String,
    pub name: String,
}

/// Unit names: systemd's character set and length.
fn valid_unit_chars(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":-_.\\@".contains(&b))
}

impl Unit {
    /// Parse cgroupsPath (`slice:prefix:name`; empty: `:contain:<id>`). An empty slice is
    /// system.slice, `-` the root slice.
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Unit, CgroupError> {
        let path = cgroups_path.unwrap_or_default();
        let (slice, prefix, name) = if path.is_empty() {
            ("", "contain", id)
        } else {
            let parts: Vec<&str> = path.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(bad_path(path, "not three fields"));
            };
            (slice, prefix, name)
        };
        let slice = match slice {
            "" => "system.slice".to_string(),
            "-" => "-.slice".to_string(),
            s => s.to_string(),
        };
        expand_slice(&slice).map_err(|why| bad_path(path, &why))?;
        if name.is_empty() {
            return Err(bad_path(path, "the name is empty"));
        }
        if name.ends_with(".slice") {
            return Err(bad_path(
                path,
                "a name ending in .slice asks for a slice unit; contain creates scopes only",
            ));
        }
        let name = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if !valid_unit_chars(&name) {
            return Err(bad_path(
                path,
                &format!("{name:?} is not a valid systemd unit name"),
            ));
        }
        Ok(Unit { slice, name })
    }

    /// The scope's cgroup, relative to each hierarchy's root.
    pub fn cgroup_path(&self) -> PathBuf {
        let mut p = expand_slice(&self.slice).unwrap_or_default();
        p.push(&self.name);
        p
    }
}

/// `a-b-c.slice` -> `a.slice/a-b.slice/a-b-c.slice`; `-.slice` -> the root.
fn expand_slice(slice: &str) -> Result<PathBuf, String> {
    let bad = |why: &str| format!("slice {slice:?}: {why}");
    let stem = slice
        .strip_suffix(".slice")
        .ok_or_else(|| bad("does not end in .slice"))?;
    if stem == "-" {
        return Ok(PathBuf::new());
    }
    if !valid_unit_chars(slice) || slice.contains('/') {
        return Err(bad("not a valid slice name"));
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(bad("dashes separate non-empty parent slice names"));
    }
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    Ok(path)
}

/// Whether systemd runs in unified mode here (only the cgroup2 tree): it then takes the v2
/// property names.
pub fn unified(hierarchies: &[super::Hierarchy]) -> bool {
    hierarchies.iter().all(|h| h.version == super::Version::V2)
}

/// One unit property.
pub type Property = (&'static str, Value);

/// A unit property's value, as the D-Bus client sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    U64(u64),
    Bool(bool),
    Str(String),
    /// PIDs: au.
    Pids(Vec<u32>),
    /// DeviceAllow: a(ss).
    DeviceAllow(Vec<(String, String)>),
}

/// The unit properties that carry `res` (as runc translates them; `unified`: a pure cgroup2
/// host, whose systemd uses the v2 names). Limits systemd cannot express are only written
/// to the cgroup files.
pub fn resource_properties(res: &LinuxResources, unified: bool) -> Vec<Property> {
    let mut p: Vec<Property> = Vec::new();
    let max = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = res.memory() {
        if let Some(limit) = m.limit().filter(|&l| l != 0) {
            p.push((
                if unified { "MemoryMax" } else { "MemoryLimit" },
                Value::U64(max(limit)),
            ));
            if unified {
                if let Some(swap) = m.swap().filter(|&s| s > 0 && limit > 0 && s >= limit) {
                    p.push(("MemorySwapMax", Value::U64((swap - limit) as u64)));
                }
            }
        }
        if let Some(low) = m.reservation().filter(|&l| unified && l > 0) {
            p.push(("MemoryLow", Value::U64(low as u64)));
        }
    }
    if let Some(pids) = res.pids() {
        let limit = if pids.limit() <= 0 {
            u64::MAX
        } else {
            pids.limit() as u64
        };
        p.push(("TasksMax", Value::U64(limit)));
    }
    if let Some(c) = res.cpu() {
        if let Some(shares) = c.shares().filter(|&s| s > 0) {
            if unified {
                let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                p.push(("CPUWeight", Value::U64(weight)));
            } else {
                p.push(("CPUShares", Value::U64(shares)));
            }
        }
        let period = c.period().filter(|&p| p > 0).unwrap_or(100_000);
        if let Some(quota) = c.quota().filter(|&q| q > 0) {
            // systemd keeps the quota per second in 1% (10 ms) steps: round up, as runc does.
            let per_sec = (quota as u64 * 1_000_000 / period).div_ceil(10_000) * 10_000;
            p.push(("CPUQuotaPerSecUSec", Value::U64(per_sec)));
            p.push(("CPUQuotaPeriodUSec", Value::U64(period)));
        }
    }
    if let Some(w) = res.block_io().as_ref().and_then(|b| b.weight()) {
        if unified {
            let weight = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
            p.push(("IOWeight", Value::U64(weight)));
        } else {
            p.push(("BlockIOWeight", Value::U64(u64::from(w))));
        }
    }
    p.extend(device_properties(res));
    p
}

/// The device rules as DevicePolicy/DeviceAllow, when they reduce to "deny all but these"
/// (systemd has no deny list: an allow-by-default set stays with the cgroup files alone).
fn device_properties(res: &LinuxResources) -> Vec<Property> {
    let Some(rules) = super::controllers::device_rules(res) else {
        return Vec::new();
    };
    let parsed: Result<Vec<_>, _> = rules
        .iter()
        .map(|(allow, r)| devices::parse_rule(r).map(|r| (*allow, r)))
        .collect();
    let Ok(parsed) = parsed else {
        return Vec::new();
    };
    let effective = devices::emulate(&parsed);
    if effective.default_allow {
        return Vec::new();
    }
    let mut allow: Vec<(String, String)> = Vec::new();
    for r in &effective.exceptions {
        let mut access = String::new();
        for (bit, c) in [
            (devices::READ, 'r'),
            (devices::WRITE, 'w'),
            (devices::MKNOD, 'm'),
        ] {
            if r.access & bit != 0 {
                access.push(c);
            }
        }
        let kind = match r.typ {
            Some(BLOCK) => "block",
            Some(CHAR) => "char",
            _ => continue,
        };
        let node = match (r.major, r.minor) {
            (Some(major), Some(minor)) => format!("/dev/{kind}/{major}:{minor}"),
            (None, _) => format!("{kind}-*"),
            // A whole major: systemd names it as /proc/devices does.
            (Some(major), None) => match device_class(kind, major) {
                Some(name) => format!("{kind}-{name}"),
                None => continue,
            },
        };
        allow.push((node, access));
    }
    vec![
        ("DevicePolicy", Value::Str("strict".into())),
        ("DeviceAllow", Value::DeviceAllow(allow)),
    ]
}

/// The name /proc/devices gives major `major` of `kind` ("char" or "block").
fn device_class(kind: &str, major: u32) -> Option<String> {
    let text = std::fs::read_to_string("/proc/devices").ok()?;
    let header = if kind == "char" {
        "Character devices:"
    } else {
        "Block devices:"
    };
    let mut lines = text.lines().skip_while(|l| l.trim() != header).skip(1);
    lines
        .by_ref()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (num, name) = l.trim().split_once(' ')?;
            (num.parse() == Ok(major)).then(|| name.trim().to_string())
        })
}

/// A paused child that holds the scope open until the container's init has joined it:
/// systemd refuses a scope with no process, and the init must enter its cgroups before it
/// does anything (it is forked into them), so the scope has to exist first.
pub struct Placeholder {
    pub pid: i32,
}

impl Placeholder {
    pub fn spawn() -> Result<Placeholder, CgroupError> {
        let one = crate::sys::SingleThreaded::check()
            .map_err(|e| CgroupError::Systemd(format!("fork the scope's placeholder: {e}")))?;
        match crate::sys::fork(&one) {
            Ok(crate::sys::Forked::Parent(pid)) => Ok(Placeholder { pid }),
            Ok(crate::sys::Forked::Child(_)) => {
                let _ = crate::sys::set_parent_death_signal(libc::SIGKILL);
                loop {
                    nix::unistd::pause();
                }
            }
            Err(e) => Err(CgroupError::Systemd(format!(
                "fork the scope's placeholder: {e}"
            ))),
        }
    }
}

impl Drop for Placeholder {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// Built without the `systemd` feature: `--systemd-cgroup` is refused, saying so.
#[cfg(not(feature = "systemd"))]
pub struct Systemd;

#[cfg(not(feature = "systemd"))]
impl Systemd {
    pub fn connect() -> Result<Systemd, CgroupError> {
        Err(CgroupError::Systemd(
            "--systemd-cgroup: this contain was built without its systemd driver (cargo feature `systemd`); omit the flag (cgroupfs) or use a build with it".into(),
        ))
    }

    pub fn start_scope(
        &self,
        _: &Unit,
        _: &str,
        _: i32,
        _: bool,
        _: Vec<Property>,
    ) -> Result<(), CgroupError> {
        Self::connect().map(drop)
    }

    pub fn set_properties(&self, _: &str, _: Vec<Property>) -> Result<(), CgroupError> {
        Self::connect().map(drop)
    }

    pub fn stop(&self, _: &str) -> Result<(), CgroupError> {
        Self::connect().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_and_paths() {
        let u = Unit::parse(Some("system.slice:docker:abc"), "x").unwrap();
        assert_eq!(u.name, "docker-abc.scope");
        assert_eq!(
            u.cgroup_path(),
            PathBuf::from("system.slice/docker-abc.scope")
        );
        let u = Unit::parse(None, "c1").unwrap();
        assert_eq!(u.name, "contain-c1.scope");
        assert_eq!(u.slice, "system.slice");
        let u = Unit::parse(Some("kubepods-besteffort-pod1.slice:cri:x"), "x").unwrap();
        assert_eq!(
            u.cgroup_path(),
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-x.scope"
            )
        );
        let u = Unit::parse(Some("-::name"), "x").unwrap();
        assert_eq!(u.name, "name.scope");
        assert_eq!(u.cgroup_path(), PathBuf::from("name.scope"));
        assert_eq!(
            Unit::parse(Some(":p:n"), "x").unwrap().slice,
            "system.slice"
        );
    }

    #[test]
    fn bad_paths_refused() {
        for bad in [
            "/contain/x",
            "a:b",
            "a:b:c:d",
            "system.slice/x.slice:p:n",
            "../x.slice:p:n",
            "a--b.slice:p:n",
            "-a.slice:p:n",
            "notaslice:p:n",
            "system.slice:p:",
            "system.slice:p:../../x",
            "system.slice:p:a/b",
            "system.slice:p:inner.slice",
        ] {
            let e = Unit::parse(Some(bad), "x").unwrap_err().to_string();
            assert!(e.contains("cgroupsPath"), "{bad}: {e}");
        }
    }

    fn res(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    fn find<'a>(p: &'a [Property], name: &str) -> Option<&'a Value> {
        p.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn resources_become_properties() {
        let r = res(serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 32},
            "cpu": {"shares": 512, "quota": 15000, "period": 100000},
        }));
        let v1 = resource_properties(&r, false);
        assert_eq!(find(&v1, "MemoryLimit"), Some(&Value::U64(67_108_864)));
        assert_eq!(find(&v1, "TasksMax"), Some(&Value::U64(32)));
        assert_eq!(find(&v1, "CPUShares"), Some(&Value::U64(512)));
        // 15 ms per 100 ms = 150 ms per second, already a multiple of 10 ms.
        assert_eq!(find(&v1, "CPUQuotaPerSecUSec"), Some(&Value::U64(150_000)));
        let v2 = resource_properties(&r, true);
        assert_eq!(find(&v2, "MemoryMax"), Some(&Value::U64(67_108_864)));
        assert!(find(&v2, "CPUShares").is_none());
        assert!(find(&v2, "CPUWeight").is_some());
        let odd = res(serde_json::json!({"cpu": {"quota": 12345, "period": 100000}}));
        assert_eq!(
            find(&resource_properties(&odd, false), "CPUQuotaPerSecUSec"),
            Some(&Value::U64(130_000))
        );
    }

    #[test]
    fn device_rules_become_an_allow_list() {
        let r = res(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 7, "minor": 0, "access": "r"},
        ]}));
        let p = resource_properties(&r, false);
        assert_eq!(find(&p, "DevicePolicy"), Some(&Value::Str("strict".into())));
        let Some(Value::DeviceAllow(entries)) = find(&p, "DeviceAllow") else {
            panic!("no DeviceAllow in {p:?}");
        };
        assert!(entries.contains(&("/dev/char/1:3".into(), "rwm".into())));
        assert!(entries.contains(&("/dev/block/7:0".into(), "r".into())));
        assert!(entries.contains(&("char-*".into(), "m".into())));
        // 136 is the pty slaves' major.
        assert!(
            entries.contains(&("char-pts".into(), "rwm".into())),
            "{entries:?}"
        );
        // An allow-by-default set cannot be said to systemd: only the cgroup files carry it.
        let open = res(serde_json::json!({"devices": [
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        ]}));
        assert!(find(&resource_properties(&open, false), "DevicePolicy").is_none());
    }
}
