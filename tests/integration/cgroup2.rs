//! A pure cgroup2 host, made by the test: each `contain` command runs in a private mount
//! namespace where the v1 hierarchies are unmounted and the cgroup2 tree is mounted alone at
//! /sys/fs/cgroup, so contain sees what it would see on a cgroup2-only distribution. Limits
//! are observed from inside the container.
//!
//! The kernel's cgroup2 tree is one per host: controllers bound to v1 hierarchies elsewhere
//! (on this hybrid host memory, pids, cpu, ...) cannot appear in it. The test asks the tree
//! which controllers it has: those it has must be enforced, those it lacks must be refused
//! with the field and the controller named, and nothing left behind.

use std::process::Command;

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("cgroup2::pure_tree_limits_from_inside", limits_from_inside),
    ("cgroup2::pure_tree_pause_resume", pause_resume),
    (
        "cgroup2::pure_tree_missing_controllers",
        missing_controllers,
    ),
];

/// Unmount every cgroup hierarchy and mount the cgroup2 tree alone, then run the command.
const PURE_V2: &str = r#"set -e
mount --make-rprivate /
for m in $(awk '$5 ~ "^/sys/fs/cgroup/" {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
umount -l /sys/fs/cgroup 2>/dev/null || true
mount -t cgroup2 none /sys/fs/cgroup
exec "$@""#;

/// The cgroup2 tree's mount point on the host and the controllers it offers, or why the test
/// cannot run.
fn tree() -> Result<(std::path::PathBuf, Vec<String>), String> {
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.contains("cgroup2") {
        return Err("the kernel has no cgroup2 filesystem".into());
    }
    let hs = contain::cgroups::hierarchies().map_err(|e| e.to_string())?;
    let v2 = hs
        .iter()
        .find(|h| h.version == contain::cgroups::Version::V2)
        .ok_or("no cgroup2 tree is mounted on this host")?;
    Ok((v2.mount.clone(), v2.controllers.clone()))
}

/// `contain --root R ARGS...` with only the cgroup2 tree mounted.
fn pure(rt: &Runtime, args: &[&str]) -> Out {
    Command::new("unshare")
        .args(["-m", "sh", "-c", PURE_V2, "sh", CONTAIN, "--root"])
        .arg(rt.root.path())
        .args(args)
        .stdin(std::process::Stdio::null())
        .out()
}

fn run(rt: &Runtime, b: &Bundle, id: &str) -> Out {
    pure(rt, &["run", "--bundle", &b.path().to_string_lossy(), id])
}

/// Nothing of the container left, the cgroup2 directory included.
fn clean(
    rt: &Runtime,
    b: &Bundle,
    id: &str,
    v2: &std::path::Path,
) -> Result<(), libtest_mimic::Failed> {
    rt.assert_clean(b, id)?;
    let d = v2.join(b.cgroup_rel());
    ensure!(!d.exists(), "cgroup {} left behind", d.display());
    Ok(())
}

fn limits_from_inside() -> R {
    let (v2, controllers) = match tree() {
        Ok(t) => t,
        Err(why) => return skip(why),
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let hugetlb = controllers.iter().any(|c| c == "hugetlb") && v2.join("hugetlb.2MB.max").exists();
    b.set(|c| {
        // Deny everything, then runc's defaults are allowed, then /dev/zero denied again.
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "rwm"}
        ]);
        c["linux"]["resources"]["unified"] = json!({"cgroup.max.descendants": "3"});
        if hugetlb {
            c["linux"]["resources"]["hugepageLimits"] =
                json!([{"pageSize": "2MB", "limit": 4194304}]);
        }
    });
    b.sh("awk '$2 == \"/sys/fs/cgroup\" {print $3}' /proc/mounts; cat /proc/self/cgroup | grep '^0::'; \
          cat /sys/fs/cgroup/cgroup.max.descendants; \
          echo x > /dev/null && echo null-ok; \
          head -c1 /dev/zero 2>&1 > /dev/null && echo zero-ok; \
          cat /sys/fs/cgroup/hugetlb.2MB.max 2>/dev/null || echo no-hugetlb");
    let o = run(&rt, &b, "v2");
    ensure!(
        o.code == 0,
        "run on the cgroup2 tree: {} {}",
        o.code,
        o.stderr
    );
    let l: Vec<&str> = o.stdout.lines().collect();
    ensure!(l.len() == 6, "output: {:?}", o.stdout);
    ensure!(l[0] == "cgroup2", "/sys/fs/cgroup inside is {:?}", l[0]);
    ensure!(l[1] == "0::/", "cgroup namespace root expected: {:?}", l[1]);
    ensure!(l[2] == "3", "unified cgroup.max.descendants: {:?}", l[2]);
    ensure!(l[3] == "null-ok", "/dev/null refused: {:?}", l);
    // The v1 devices cgroup is gone from this view: only the BPF device program refuses.
    ensure!(
        l[4].contains("Operation not permitted"),
        "/dev/zero opened on a pure cgroup2 host: {:?}",
        l[4]
    );
    if hugetlb {
        ensure!(l[5] == "4194304", "hugetlb.2MB.max inside: {:?}", l[5]);
    }
    clean(&rt, &b, "v2", &v2)?;
    pass()
}

/// Freeze through cgroup.freeze: a counter the container advances stops while paused.
fn pause_resume() -> R {
    let (v2, _) = match tree() {
        Ok(t) => t,
        Err(why) => return skip(why),
    };
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let out = tempfile::tempdir()?;
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )?;
    let bundle = b.path().to_string_lossy().into_owned();
    b.set(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind", "rw"]
        }));
    });
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /out/n; usleep 10000; done");
    let o = pure(&rt, &["create", "--bundle", &bundle, "p"]);
    ensure!(o.code == 0, "create: {}", o.stderr);
    let o = pure(&rt, &["start", "p"]);
    ensure!(o.code == 0, "start: {}", o.stderr);
    let count = || {
        std::fs::read_to_string(out.path().join("n"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Advancing: it moves within 5 s (a loaded machine is slow); stalled: not for 500 ms.
    let advancing = || {
        let a = count();
        (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            count() > a
        })
    };
    let stalled = || {
        let a = count();
        std::thread::sleep(std::time::Duration::from_millis(500));
        count() == a
    };
    let result = (|| -> R {
        ensure!(advancing(), "the counter does not run");
        let o = pure(&rt, &["pause", "p"]);
        ensure!(o.code == 0, "pause: {}", o.stderr);
        let st = pure(&rt, &["state", "p"]);
        ensure!(st.stdout.contains("\"paused\""), "state: {}", st.stdout);
        let freeze = std::fs::read_to_string(v2.join(b.cgroup_rel()).join("cgroup.freeze"))?;
        ensure!(freeze.trim() == "1", "cgroup.freeze {freeze:?}");
        ensure!(stalled(), "the counter runs while paused");
        let o = pure(&rt, &["resume", "p"]);
        ensure!(o.code == 0, "resume: {}", o.stderr);
        ensure!(advancing(), "the counter does not run after resume");
        pass()
    })();
    let k = pure(&rt, &["delete", "--force", "p"]);
    ensure!(k.code == 0, "delete --force: {}", k.stderr);
    result?;
    clean(&rt, &b, "p", &v2)?;
    pass()
}

/// A limit whose controller is in the tree is enforced (seen inside); one whose controller is
/// not is refused, naming the field and what the tree offers, with nothing left behind.
fn missing_controllers() -> R {
    let (v2, controllers) = match tree() {
        Ok(t) => t,
        Err(why) => return skip(why),
    };
    let rt = Runtime::new();
    let cases = [
        (
            "memory",
            json!({"memory": {"limit": 33554432}}),
            "memory.max",
            "33554432",
        ),
        ("pids", json!({"pids": {"limit": 16}}), "pids.max", "16"),
        (
            "cpu",
            json!({"cpu": {"quota": 20000, "period": 100000}}),
            "cpu.max",
            "20000 100000",
        ),
    ];
    let mut refused = Vec::new();
    for (controller, res, file, want) in cases {
        let mut b = Bundle::new();
        b.set(|c| c["linux"]["resources"] = res.clone());
        b.sh(&format!("cat /sys/fs/cgroup/{file}"));
        let o = run(&rt, &b, controller);
        if controllers.iter().any(|c| c == controller) {
            ensure!(
                o.code == 0 && o.stdout.trim() == want,
                "{controller} in the tree: {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
        } else {
            ensure!(
                o.code == 1,
                "{controller}: ran without its controller: {:?}",
                o.stdout
            );
            ensure!(
                o.stderr
                    .contains(&format!("this host has no {controller} controller"))
                    && o.stderr.contains("cgroup2: "),
                "{controller}: {}",
                o.stderr
            );
            refused.push(controller);
        }
        clean(&rt, &b, controller, &v2)?;
    }
    if !refused.is_empty() {
        // Checked, not skipped: say which controllers this kernel keeps on v1.
        eprintln!(
            "cgroup2 tree offers {controllers:?}: {} refused as expected (bound to v1 here)",
            refused.join(", ")
        );
    }
    pass()
}
