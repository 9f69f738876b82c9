//! linux.resources JSON -> `cgroups::check_supported` on v1, hybrid and pure cgroup v2 hosts;
//! what it accepts is applied to a cgroup of plain directories (the files a kernel would
//! have are written as ordinary files). Neither step may panic; an accepted config may only
//! fail to apply where a file is missing (hugetlb page sizes, unified keys) or cannot be
//! written.
#![no_main]
use std::sync::OnceLock;

use contain::cgroups::{check_supported, Cgroup, CgroupError, Hierarchy, Version};
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxResources;

fn hosts() -> &'static [(tempfile::TempDir, Cgroup)] {
    static HOSTS: OnceLock<Vec<(tempfile::TempDir, Cgroup)>> = OnceLock::new();
    HOSTS.get_or_init(|| {
        let v1 = ["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "hugetlb", "net_cls", "net_prio", "rdma"];
        let shapes: [&[(Version, &[&str])]; 3] = [
            &[(Version::V1, &v1)],
            &[(Version::V1, &v1[..8]), (Version::V2, &["hugetlb"])],
            &[(Version::V2, &["cpu", "cpuset", "memory", "pids", "io", "hugetlb", "rdma"])],
        ];
        shapes
            .iter()
            .map(|shape| {
                let t = tempfile::tempdir().unwrap();
                let dirs = shape
                    .iter()
                    .enumerate()
                    .map(|(i, (version, controllers))| {
                        let mount = t.path().join(i.to_string());
                        let dir = mount.join("c");
                        std::fs::create_dir_all(&dir).unwrap();
                        let h = Hierarchy {
                            version: *version,
                            mount,
                            controllers: controllers.iter().map(|c| c.to_string()).collect(),
                        };
                        (h, dir)
                    })
                    .collect();
                (t, Cgroup { dirs })
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(res) = serde_json::from_slice::<LinuxResources>(data) else {
        return;
    };
    for (_, cg) in hosts() {
        let hs: Vec<Hierarchy> = cg.dirs.iter().map(|(h, _)| h.clone()).collect();
        if check_supported(&res, &hs).is_err() {
            continue;
        }
        // Devices on v2 attach a BPF program (a syscall on a real cgroup): not here.
        let mut r = res.clone();
        r.set_devices(None);
        match cg.apply(&r) {
            Ok(()) | Err(CgroupError::Write { .. }) => {}
            Err(CgroupError::Unsupported(why))
                if why.starts_with("hugepageLimits") || why.starts_with("unified") || why.starts_with("blockIO.weight") => {}
            Err(e) => panic!("accepted, then: {e}"),
        }
    }
});
