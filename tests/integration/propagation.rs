//! Mount propagation: on a systemd host `/` is shared, and nothing a container mounts may
//! reach the host's mount table, whatever the policy, the root switch or the rootfs's own
//! propagation. Each test runs twice: on this machine's private `/`, and on a shared one
//! (`util::on_shared_root`, which also fails the test if the "host's" mount table changed).

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("propagation::default_policy_private_root", default_policy),
    ("propagation::default_policy_shared_root", || {
        on_shared_root(default_policy)
    }),
    ("propagation::runc_policy_private_root", runc_policy),
    ("propagation::runc_policy_shared_root", || {
        on_shared_root(runc_policy)
    }),
    ("propagation::no_pivot_shared_root", || {
        on_shared_root(no_pivot)
    }),
    (
        "propagation::rootfs_propagation_private_root",
        rootfs_propagation,
    ),
    ("propagation::rootfs_propagation_shared_root", || {
        on_shared_root(rootfs_propagation)
    }),
    ("propagation::rootfs_is_a_shared_mount_shared_root", || {
        on_shared_root(rootfs_is_a_shared_mount)
    }),
    ("propagation::create_delete_cycle_shared_root", || {
        on_shared_root(create_delete_cycle)
    }),
];

/// A bundle with a read-write volume at /vol and a tmpfs at /scratch, whose process reports
/// what it sees: root's host uid, the volume written, the tmpfs, the masked paths.
fn volume_bundle() -> (Bundle, tempfile::TempDir) {
    let vol = tempfile::Builder::new()
        .prefix("contain-vol-")
        .tempdir()
        .unwrap();
    let mut b = Bundle::new();
    let src = vol.path().to_string_lossy().into_owned();
    b.set(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/vol", "type": "bind", "source": src,
                           "options": ["rbind", "rw"]}));
        mounts.push(
            json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev"]}),
        );
    });
    b.sh("echo written > /vol/f && cat /vol/f; grep -c ' /scratch ' /proc/self/mountinfo; \
          cat /proc/kcore 2>&1 | head -c 0; [ -s /proc/kcore ] && echo kcore-visible || echo kcore-masked; \
          awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map");
    (b, vol)
}

fn default_policy() -> R {
    let (b, vol) = volume_bundle();
    let rt = Runtime::new();
    let o = rt.run(&b, "p1");
    ensure!(
        o.code == 0 && o.stdout == "written\n1\nkcore-masked\nmapped\n",
        "run: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    ensure!(
        std::fs::read_to_string(vol.path().join("f")).unwrap_or_default() == "written\n",
        "the volume's file is not on the host"
    );
    rt.assert_clean(&b, "p1")?;
    pass()
}

fn runc_policy() -> R {
    let (b, _vol) = volume_bundle();
    let rt = Runtime::new();
    let o = rt.with_policy("runc", "run", &b, "p2");
    ensure!(
        o.code == 0 && o.stdout == "written\n1\nkcore-masked\nhost-root\n",
        "run --policy runc: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&b, "p2")?;
    pass()
}

fn no_pivot() -> R {
    let (b, _vol) = volume_bundle();
    let rt = Runtime::new();
    let o = rt
        .cmd()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg("p3")
        .out();
    ensure!(
        o.code == 0 && o.stdout == "written\n1\nkcore-masked\nmapped\n",
        "run --no-pivot: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&b, "p3")?;
    pass()
}

/// rootfsPropagation as asked, seen from inside (mountinfo's optional fields of `/`), and the
/// attack it must not allow: a container with CAP_SYS_ADMIN whose root is shared mounts a
/// tmpfs; the host's mount table does not get it (on_shared_root checks it, and
/// assert_clean on a private root).
fn rootfs_propagation() -> R {
    // A slave of a private mount has no master: it stays private (as under runc).
    let shared_host = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/") && l.contains(" shared:"));
    let slave = if shared_host { "master" } else { "private" };
    for (mode, want) in [
        ("shared", "shared"),
        ("rshared", "shared"),
        ("slave", slave),
        ("rslave", slave),
        ("private", "private"),
        ("rprivate", "private"),
    ] {
        for policy in ["default", "runc"] {
            let mut b = Bundle::new();
            b.set(|c| {
                c["linux"]["rootfsPropagation"] = json!(mode);
                for set in ["bounding", "effective", "permitted"] {
                    c["process"]["capabilities"][set]
                        .as_array_mut()
                        .unwrap()
                        .push(json!("CAP_SYS_ADMIN"));
                }
            });
            b.sh("awk '$5 == \"/\" { p = \"private\"; for (i = 7; $i != \"-\"; i++) { if ($i ~ /^shared:/) p = \"shared\"; else if ($i ~ /^master:/ && p != \"shared\") p = \"master\" } print p }' /proc/self/mountinfo; \
                  mount -t tmpfs none /tmp 2>/dev/null && echo mounted");
            let rt = Runtime::new();
            let o = rt.with_policy(policy, "run", &b, "pp");
            // The default policy refuses mount(2) itself (seccomp and Landlock); under the
            // runc policy the mount is made, and stays in the container.
            let mounted = if policy == "runc" { "mounted\n" } else { "" };
            ensure!(
                o.stdout == format!("{want}\n{mounted}"),
                "rootfsPropagation {mode} under {policy}: {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
            rt.assert_clean(&b, "pp")?;
        }
    }
    pass()
}

/// The bundle's rootfs is itself a mount point, and a shared one (a volume manager's or an
/// engine's mount): the container still runs, and nothing it mounts reaches the host.
fn rootfs_is_a_shared_mount() -> R {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let (b, _vol) = volume_bundle();
    let rootfs = b.rootfs();
    mount(
        Some(&rootfs),
        &rootfs,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind the rootfs on itself: {e}"))?;
    let result = (|| {
        mount(
            None::<&str>,
            &rootfs,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .map_err(|e| format!("make the rootfs shared: {e}"))?;
        let before = host_mounts_under(b.path());
        let rt = Runtime::new();
        for policy in ["default", "runc"] {
            let o = rt.with_policy(policy, "run", &b, "ps");
            ensure!(
                o.code == 0 && o.stdout.starts_with("written\n1\nkcore-masked\n"),
                "run under {policy}: {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
            let after = host_mounts_under(b.path());
            ensure!(
                after == before,
                "mounts under the bundle after a {policy} container: {after:?}"
            );
        }
        pass()
    })();
    let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
    result
}

/// create, start, exec, kill, delete on a shared root: nothing stays in the host's table at
/// any step, and a failing create (a missing binary) leaves nothing either.
fn create_delete_cycle() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["process"]["args"] = json!(["sleep", "100"]));
    let rt = Runtime::new();
    let o = rt.create(&b, "pc");
    ensure!(o.code == 0, "create: {}", o.stderr);
    ensure!(
        host_mounts_under(b.path()).is_empty(),
        "mounts under the bundle after create: {:?}",
        host_mounts_under(b.path())
    );
    ensure!(rt.exec(&["start", "pc"]).code == 0, "start");
    let o = rt.exec(&["exec", "pc", "sh", "-c", "grep -c sleep /proc/1/cmdline"]);
    ensure!(o.code == 0, "exec: {} {}", o.stdout, o.stderr);
    ensure!(rt.exec(&["kill", "pc", "KILL"]).code == 0, "kill");
    ensure!(rt.wait_status("pc", "stopped"), "not stopped");
    ensure!(rt.exec(&["delete", "pc"]).code == 0, "delete");
    rt.assert_clean(&b, "pc")?;
    b.set(|c| c["process"]["args"] = json!(["/no/such/binary"]));
    let o = rt.run(&b, "pd");
    ensure!(o.code != 0, "a missing binary ran: {:?}", o.stdout);
    let _ = rt.exec(&["delete", "--force", "pd"]);
    rt.assert_clean(&b, "pd")?;
    pass()
}
