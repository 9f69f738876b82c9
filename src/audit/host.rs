//! `contain audit --host`: what this host can enforce, and what each missing feature means
//! for the guarantees.

use serde::Serialize;

use super::Format;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub feature: &'static str,
    pub available: bool,
    pub detail: String,
    /// What the answer means for containers on this host.
    pub meaning: String,
}

fn check(feature: &'static str, available: bool, detail: String, yes: &str, no: &str) -> Check {
    Check {
        feature,
        available,
        detail,
        meaning: if available { yes } else { no }.to_string(),
    }
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Probe this host (reads /proc and /sys, asks the kernel; creates nothing).
pub fn probe() -> Vec<Check> {
    let mut out = Vec::new();
    let max_userns = read("/proc/sys/user/max_user_namespaces")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    out.push(check(
        "user namespaces",
        max_userns > 0,
        format!("max_user_namespaces {max_userns}"),
        "the default policy can map container root to an unprivileged host range",
        "container root is host root: a breakout is root on the host",
    ));
    let missing: Vec<&str> = [
        (0x8000_0000u32, "KILL_PROCESS"),
        (0x0005_0000, "ERRNO"),
        (0x7fc0_0000, "USER_NOTIF"),
        (0x7ffc_0000, "LOG"),
    ]
    .iter()
    .filter(|(a, _)| !crate::seccomp::action_available(*a))
    .map(|(_, n)| *n)
    .collect();
    out.push(check(
        "seccomp actions",
        missing.is_empty(),
        if missing.is_empty() {
            "KILL_PROCESS, ERRNO, USER_NOTIF, LOG".into()
        } else {
            format!("missing: {}", missing.join(", "))
        },
        "every filter contain compiles can be enforced",
        "profiles using the missing actions are refused at create",
    ));
    let abi = crate::landlock::kernel_abi();
    out.push(check(
        "landlock",
        abi >= 6,
        if abi == 0 {
            "not available".into()
        } else {
            format!("ABI {abi}")
        },
        "filesystem rules, TCP ports and scopes (abstract unix sockets, signals) are enforced",
        "rulesets are weaker or absent (best effort drops what the kernel lacks; strict refuses to run)",
    ));
    let root = crate::ns::idmap::idmappable(std::path::Path::new("/"));
    out.push(check(
        "idmapped mounts",
        root.is_ok(),
        match &root {
            Ok(()) => "the root filesystem can be idmapped".into(),
            Err(e) => e.clone(),
        },
        "a rootfs here keeps its owners inside the added user namespace",
        "rootfs on this filesystem cannot be idmapped: the default policy runs such containers without an added user namespace",
    ));
    let cg = crate::cgroups::hierarchies()
        .map(|h| {
            let v1 = h.iter().any(|x| x.version == crate::cgroups::Version::V1);
            let v2 = h.iter().any(|x| x.version == crate::cgroups::Version::V2);
            match (v1, v2) {
                (true, true) => "hybrid (v1 controllers and a cgroup2 tree)",
                (true, false) => "v1",
                (false, true) => "v2",
                _ => "none",
            }
        })
        .unwrap_or("none");
    out.push(check(
        "cgroups",
        cg != "none",
        cg.to_string(),
        "memory, pids, cpu and device limits are enforced",
        "no resource limits: a container can exhaust the host",
    ));
    let vm = crate::microvm::support();
    out.push(check(
        "microVM stage",
        vm.kvm.is_ok(),
        match (&vm.kvm, vm.linux_boots()) {
            (Err(why), _) => why.clone(),
            (Ok(()), Ok(())) => format!(
                "/dev/kvm: PVH ELF and bzImage kernels boot; devices: {}",
                crate::microvm::DEVICES
            ),
            (Ok(()), Err(why)) => format!("{why}; devices: {}", crate::microvm::DEVICES),
        },
        "io.contain.isolation: microvm runs the workload on its own kernel in a jailed VMM",
        "hostile workloads share the host kernel: create refuses io.contain.isolation: microvm",
    ));
    out
}

pub fn render(checks: &[Check], format: Format) -> String {
    match format {
        Format::Text => {
            let mut s = String::from("contain audit --host: what this host can enforce\n");
            for c in checks {
                s += &format!(
                    "  {:<16} {:<4} {}\n                        {}\n",
                    c.feature,
                    if c.available { "yes" } else { "no" },
                    c.detail,
                    c.meaning
                );
            }
            s
        }
        Format::Json | Format::Sarif => {
            serde_json::to_string_pretty(&serde_json::json!({ "host": checks })).unwrap_or_default()
                + "\n"
        }
    }
}
