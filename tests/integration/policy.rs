//! Policies, the user namespace contain adds, and Landlock: each attack run from inside the
//! container, and, where a layer is what stops it, the same attack shown to work under the
//! `runc` policy (so that the test can fail).

use std::os::linux::net::SocketAddrExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::ensure;
use crate::util::*;

pub const TESTS: &[(&str, crate::TestFn)] = &[
    (
        "policy::default_userns_disjoint_ranges_idmapped_rootfs",
        userns_default,
    ),
    ("policy::landlock_scopes_abstract_socket_and_signal", scopes),
    (
        "policy::bundles_cannot_weaken_below_the_operators_floor",
        operator_floor,
    ),
    (
        "policy::host_ranges_disjoint_across_state_roots_and_configs",
        ranges_host_wide,
    ),
    ("policy::default_limits_stop_a_fork_bomb", default_limits),
    (
        "policy::exec_is_confined_by_the_containers_landlock",
        exec_confined,
    ),
    (
        "policy::strict_no_exec_from_writable_mount",
        no_exec_writable,
    ),
    (
        "policy::readonly_mount_holds_against_dac_override_and_remount",
        readonly_mount,
    ),
    (
        "policy::readonly_mount_holds_against_every_mount_api",
        mount_apis,
    ),
    (
        "policy::setuid_planted_on_a_volume_gives_nothing",
        planted_setuid,
    ),
    ("policy::strict_refuses_naming_the_field", strict_refuses),
    ("policy::config_landlock_section_enforced", config_landlock),
    ("policy::state_shows_what_holds", state_annotations),
    ("policy::bad_policies_and_ranges_refused_cleanly", bad_input),
    ("policy::rootless_run_as_an_unprivileged_user", rootless),
    (
        "policy::overlay_rootfs_gets_idmapped_layers",
        overlay_rootfs,
    ),
    (
        "policy::joined_network_namespace_keeps_the_user_namespace",
        joined_netns,
    ),
];

/// An overlay mounted by the test (as engines mount theirs), unmounted when dropped.
struct OverlayMount {
    merged: std::path::PathBuf,
}

impl OverlayMount {
    fn new(lower: &Path, dir: &Path, extra: &str) -> Result<OverlayMount, String> {
        let (up, work, merged) = (dir.join("diff"), dir.join("work"), dir.join("merged"));
        for d in [&up, &work, &merged] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}{extra}",
            lower.display(),
            up.display(),
            work.display()
        );
        let o = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(&merged)
            .out();
        if o.code != 0 {
            return Err(format!("mount overlay: {}", o.stderr));
        }
        Ok(OverlayMount { merged })
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A rootfs that is an overlay's root (as podman's and containerd's are) cannot be idmapped;
/// the default policy idmaps its layers and mounts a second overlay of them. Inside: root is
/// not host root, the image's files are root's, a write works and lands in the upper layer
/// owned by host root (as without a user namespace). A volatile overlay (podman's for --rm)
/// works too, with a work directory of contain's own.
fn overlay_rootfs() -> R {
    let mut b = Bundle::new();
    let layers = tempfile::tempdir()?;
    let ovl = match OverlayMount::new(&b.rootfs(), layers.path(), "") {
        Ok(m) => m,
        Err(e) => return skip(format!("cannot mount an overlay here: {e}")),
    };
    let merged = ovl.merged.clone();
    b.set(|c| {
        c["root"] = json!({"path": merged, "readonly": false});
    });
    b.sh(
        "awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map; \
          stat -c %u:%g /bin/busybox /etc/passwd; echo new > /etc/new && stat -c %u:%g /etc/new",
    );
    let o = run_with("default", &b);
    ok(&o, "default on an overlay")?;
    ensure!(
        o.stdout == "mapped\n0:0\n0:0\n0:0\n",
        "inside: {:?}",
        o.stdout
    );
    use std::os::unix::fs::MetadataExt;
    let written = std::fs::metadata(layers.path().join("diff/etc/new"))?;
    ensure!(
        (written.uid(), written.gid()) == (0, 0),
        "the upper layer got {}:{}",
        written.uid(),
        written.gid()
    );
    ensure!(
        !b.rootfs().join("etc/new").exists(),
        "the write reached the lower layer"
    );
    ensure!(
        host_mounts_under(layers.path()).len() == 1,
        "mounts left: {:?}",
        host_mounts_under(layers.path())
    );
    drop(ovl);

    let layers = tempfile::tempdir()?;
    let _ovl = match OverlayMount::new(&b.rootfs(), layers.path(), ",volatile") {
        Ok(m) => m,
        Err(e) => return skip(format!("cannot mount a volatile overlay here: {e}")),
    };
    let merged = layers.path().join("merged");
    b.set(|c| c["root"] = json!({"path": merged, "readonly": false}));
    for round in 0..2 {
        let o = run_with("default", &b);
        ok(&o, "default on a volatile overlay")?;
        ensure!(
            o.stdout == "mapped\n0:0\n0:0\n0:0\n",
            "volatile, run {round}: {:?}",
            o.stdout
        );
    }
    ensure!(
        layers.path().join("contain-work").is_dir() && layers.path().join("diff/etc/new").is_file(),
        "no own work directory, or the write went elsewhere"
    );
    pass()
}

/// `contain --policy P run` of a bundle in a fresh state root.
fn run_with(policy: &str, b: &Bundle) -> Out {
    Runtime::new().with_policy(policy, "run", b, "p")
}

fn ok(o: &Out, what: &str) -> Result<(), libtest_mimic::Failed> {
    ensure!(o.code == 0, "{what}: exit {}: {}", o.code, o.stderr);
    Ok(())
}

/// The host uid range ("start size") of a process's user namespace.
fn host_range(pid: i64) -> Option<(u64, u64)> {
    let m = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).ok()?;
    let f: Vec<u64> = m
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.len() == 3).then(|| (f[1], f[2]))
}

fn userns_default() -> R {
    // Inside: root maps to a non-zero host uid; the image's files still show as root's and
    // the rootfs is writable as root, and what root writes is owned by root on the host.
    let mut b = Bundle::new();
    b.set(|c| c["root"]["readonly"] = json!(false));
    b.sh(
        "tr -s ' ' < /proc/self/uid_map; stat -c '%u:%g' /bin/busybox /etc/passwd; \
          echo hi > /etc/written && stat -c '%u:%g' /etc/written",
    );
    let o = Runtime::new().run(&b, "u");
    ok(&o, "run")?;
    let l: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    let host: Vec<&str> = l[0].split(' ').collect();
    ensure!(
        host.len() == 3 && host[0] == "0" && host[1] != "0",
        "root is not mapped to an unprivileged host uid: {:?}",
        l[0]
    );
    ensure!(
        l[1] == "0:0" && l[2] == "0:0" && l[3] == "0:0",
        "ownership inside: {l:?}"
    );
    let md = std::fs::metadata(b.rootfs().join("etc/written"))?;
    ensure!(
        std::os::unix::fs::MetadataExt::uid(&md) == 0,
        "written as host uid {}",
        std::os::unix::fs::MetadataExt::uid(&md)
    );

    // Two containers at once get disjoint ranges (seen from the host).
    let rt = Runtime::new();
    let (a, c) = (Bundle::new(), Bundle::new());
    ok(&rt.create(&a, "a"), "create a")?;
    ok(&rt.create(&c, "c"), "create c")?;
    let pid = |id: &str| rt.state(id).and_then(|s| s["pid"].as_i64()).unwrap_or(0);
    let (ra, rc) = (host_range(pid("a")), host_range(pid("c")));
    let (Some((sa, na)), Some((sc, nc))) = (ra, rc) else {
        return Err(format!("no uid maps: {ra:?} {rc:?}").into());
    };
    ensure!(
        sa != 0 && sc != 0 && (sa + na <= sc || sc + nc <= sa),
        "ranges overlap: {sa}+{na} and {sc}+{nc}"
    );
    for id in ["a", "c"] {
        ok(&rt.exec(&["delete", "--force", id]), "delete")?;
    }
    pass()
}

/// A copy of the built-in default policy with `f` applied, as a file.
fn custom_policy(dir: &Path, f: impl FnOnce(&mut Value)) -> String {
    let text =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.json")).unwrap();
    let mut v: Value = serde_json::from_slice(&text).unwrap();
    v["name"] = json!("test");
    f(&mut v);
    let p = dir.join("policy.json");
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    p.to_string_lossy().into_owned()
}

fn scopes() -> R {
    let probe = match build_probe("abstract") {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    // A host process listening on an abstract unix socket, and one to signal.
    let name = format!("contain-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    let mut sleeper = std::process::Command::new("sleep").arg("30").spawn()?;
    let mut b = Bundle::new();
    std::fs::copy(&probe, b.rootfs().join("bin/abstract"))?;
    // The host's network and pid namespaces are shared.
    b.set(|c| {
        c["linux"]["namespaces"] = json!([{"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    });
    b.sh(&format!(
        "/bin/abstract {name}; kill -0 {} && echo signal-ok || echo signal-refused",
        sleeper.id()
    ));
    // The default policy without its user namespace: Landlock's scopes are all that stop
    // these (an abstract socket has no owner to check, and container root is host root).
    let dir = tempfile::tempdir()?;
    let no_userns = custom_policy(dir.path(), |v| v["userNamespace"]["add"] = json!(false));
    let mut results = Vec::new();
    for policy in [no_userns.as_str(), "default", "runc"] {
        let o = run_with(policy, &b);
        results.push((policy, o.code, o.stdout.trim().replace('\n', " "), o.stderr));
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    for (policy, code, out, err) in &results {
        ensure!(*code == 0, "{policy}: exit {code}: {err}");
        let want = if *policy == "runc" {
            "ok signal-ok"
        } else {
            "errno 1 signal-refused"
        };
        ensure!(out == want, "{policy}: want {want:?}, got {out:?}");
    }
    pass()
}

fn no_exec_writable() -> R {
    let mut b = Bundle::new();
    // /dev is a writable tmpfs without noexec: only Landlock keeps a copied binary from
    // running there under strict.
    b.sh("cp /bin/busybox /dev/echo && (/dev/echo exec-ok 2>/dev/null || echo exec-refused); \
          /bin/busybox echo image-exec-ok; touch /newfile 2>/dev/null && echo root-written || echo root-readonly");
    let strict = run_with("strict", &b);
    ok(&strict, "strict")?;
    let runc = run_with("runc", &b);
    ok(&runc, "runc")?;
    ensure!(
        strict.stdout == "exec-refused\nimage-exec-ok\nroot-readonly\n",
        "strict: {:?}",
        strict.stdout
    );
    ensure!(
        runc.stdout.starts_with("exec-ok\nimage-exec-ok\n"),
        "runc: {:?}",
        runc.stdout
    );
    pass()
}

fn readonly_mount() -> R {
    let host = tempfile::tempdir()?;
    let mut b = Bundle::new();
    b.set(|c| {
        let caps = json!(["CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN", "CAP_KILL"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        // No seccomp filter in the way: what stops the remount must be another layer.
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/ro", "type": "bind",
            "source": host.path(), "options": ["rbind", "ro"]
        }));
    });
    b.sh("touch /ro/x 2>&1 | grep -q 'Read-only' && echo erofs; \
          mount -o remount,bind,rw /ro 2>/dev/null && echo remounted || echo remount-refused; \
          touch /ro/y 2>/dev/null && echo written || echo not-written");
    let def = run_with("default", &b);
    ok(&def, "default")?;
    ensure!(
        def.stdout == "erofs\nremount-refused\nnot-written\n",
        "default: {:?}",
        def.stdout
    );
    ensure!(
        std::fs::read_dir(host.path())?.count() == 0,
        "the host directory was written"
    );
    let runc = run_with("runc", &b);
    ok(&runc, "runc")?;
    ensure!(
        runc.stdout == "erofs\nremounted\nwritten\n",
        "runc: {:?}",
        runc.stdout
    );
    pass()
}

/// Issue 18, item 4: with CAP_SYS_ADMIN (and a profile that allows everything), every way to
/// make a read-only bind writable — mount(2) remount, mount_setattr(2) on it, a detached
/// open_tree(2) copy made writable and written through, the copy attached with
/// move_mount(2), open_tree_attr(2), fspick(2) reconfigure, a fresh fsmount(2) of the disk —
/// fails under `default`, in the init and in an exec'd process; under `runc` most succeed
/// (so the probe can fail). The bind sits inside a writable tmpfs, where Landlock's rule for
/// the parent grants writing beneath it.
fn mount_apis() -> R {
    let probe = match build_probe("mountflags") {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    let host = tempfile::tempdir()?;
    std::fs::set_permissions(
        host.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )?;
    let fs = std::process::Command::new("findmnt")
        .args(["-n", "-o", "FSTYPE,SOURCE", "-T"])
        .arg(host.path())
        .output()?;
    let fs = String::from_utf8_lossy(&fs.stdout).to_string();
    let (fstype, device) = fs.trim().split_once(' ').unwrap_or(("ext4", "/dev/vda"));
    let mut b = Bundle::new();
    std::fs::copy(&probe, b.rootfs().join("bin/mountflags"))?;
    let args = json!(["/bin/mountflags", "/tmp/ro", fstype, device.trim()]);
    b.set(|c| {
        let caps = json!(["CAP_DAC_OVERRIDE", "CAP_SYS_ADMIN", "CAP_KILL"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        mounts.push(json!({
            "destination": "/tmp/ro", "type": "bind",
            "source": host.path(), "options": ["rbind", "ro"]
        }));
        c["process"]["args"] = args.clone();
    });
    let written = || {
        std::fs::read_dir(host.path())
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let held = |o: &Out, what: &str| -> Result<(), libtest_mimic::Failed> {
        ensure!(o.code == 0, "{what}: exit {}: {}", o.code, o.stderr);
        ensure!(
            o.stdout.lines().count() == 7 && !o.stdout.contains("wrote"),
            "{what}: {:?}",
            o.stdout
        );
        ensure!(written() == 0, "{what}: the host directory was written");
        Ok(())
    };
    held(&run_with("default", &b), "default, init")?;

    b.set(|c| c["process"]["args"] = json!(["sleep", "30"]));
    let rt = Runtime::new();
    let o = rt.run_detached("default", &b, "lk");
    ensure!(o.code == 0, "run -d: {}", o.stderr);
    let argv: Vec<String> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect();
    let mut exec = vec!["exec".to_string(), "lk".to_string()];
    exec.extend(argv);
    let exec: Vec<&str> = exec.iter().map(String::as_str).collect();
    held(&rt.exec(&exec), "default, exec")?;
    rt.exec(&["delete", "--force", "lk"]);

    b.set(|c| c["process"]["args"] = args.clone());
    let runc = run_with("runc", &b);
    ok(&runc, "runc")?;
    ensure!(
        runc.stdout.contains("setattr wrote") && runc.stdout.contains("detached wrote"),
        "runc: {:?}",
        runc.stdout
    );
    pass()
}

/// Issue 18, item 6: container root copies a binary to a read-write volume and makes it
/// setuid (and setgid). Inside, a non-root process running it gains nothing under `default`
/// and `strict` (binds are nosuid,nodev) and becomes root under `runc`. On the host, under
/// `strict` (binds not idmapped) the file belongs to the container's own host range, so a
/// host user running it becomes that unprivileged uid; under `default` and `runc` it is host
/// root's (the documented choice: volumes behave as with runc and the engines).
fn planted_setuid() -> R {
    let probe = match build_probe("euid") {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    for (policy, inside, host_owner_root) in [
        ("default", Some("euid 1000 egid 1000"), true),
        ("strict", None, false),
        ("runc", Some("euid 0 egid 0"), true),
    ] {
        let host = tempfile::tempdir()?;
        std::fs::set_permissions(
            host.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
        let mut b = Bundle::new();
        std::fs::copy(&probe, b.rootfs().join("bin/euid"))?;
        b.set(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/vol", "type": "bind",
                "source": host.path(), "options": ["rbind", "rw"]
            }));
            // no_new_privs would stop the setuid bit on its own.
            c["process"]["noNewPrivileges"] = json!(false);
            c["process"]["args"] = json!([
                "sh",
                "-c",
                "cp /bin/euid /vol/euid && chmod 6755 /vol/euid && touch /vol/planted; sleep 30"
            ]);
        });
        let rt = Runtime::new();
        let o = rt.run_detached(policy, &b, "su");
        ensure!(o.code == 0, "{policy}: run -d: {}", o.stderr);
        let planted = host.path().join("planted");
        for _ in 0..100 {
            if planted.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ensure!(
            planted.exists(),
            "{policy}: the container did not plant the file"
        );
        if let Some(want) = inside {
            let e = rt.exec(&["exec", "--user", "1000:1000", "su", "/vol/euid"]);
            ensure!(
                e.code == 0 && e.stdout.trim() == want,
                "{policy}: inside: exit {} {:?} {}",
                e.code,
                e.stdout,
                e.stderr
            );
        }
        rt.exec(&["delete", "--force", "su"]);
        let md = std::fs::metadata(host.path().join("euid"))?;
        use std::os::unix::fs::MetadataExt;
        ensure!(
            md.mode() & 0o6000 == 0o6000,
            "{policy}: mode {:o}",
            md.mode()
        );
        ensure!(
            (md.uid() == 0) == host_owner_root,
            "{policy}: the planted file belongs to host uid {}",
            md.uid()
        );
        // A host user runs it.
        let o = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(host.path().join("euid"))
            .out();
        let want = format!("euid {} egid {}", md.uid(), md.gid());
        ensure!(
            o.code == 0 && o.stdout.trim() == want,
            "{policy}: on the host: {:?} {}",
            o.stdout,
            o.stderr
        );
        if !host_owner_root {
            ensure!(
                md.uid() >= 65536 && md.gid() >= 65536,
                "{policy}: owner {}",
                md.uid()
            );
        }
    }
    pass()
}

fn strict_refuses() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    });
    let o = rt.with_policy("strict", "create", &b, "s");
    fails_with(
        &o,
        "process.capabilities.bounding: CAP_SYS_ADMIN not allowed",
    )?;
    rt.assert_clean(&b, "s")?;
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"},
            {"type": "mount"}, {"type": "cgroup"}]);
    });
    let o = rt.with_policy("strict", "create", &b, "s");
    fails_with(
        &o,
        "linux.namespaces: the network namespace is shared with the host",
    )?;
    rt.assert_clean(&b, "s")?;
    pass()
}

fn config_landlock() -> R {
    let mut b = Bundle::new();
    b.sh(
        "cat /etc/passwd > /dev/null 2>&1 && echo etc-read || echo etc-refused; \
          cat /bin/busybox > /dev/null && echo bin-read",
    );
    let o = run_with("runc", &b);
    ok(&o, "without the section")?;
    ensure!(
        o.stdout == "etc-read\nbin-read\n",
        "without: {:?}",
        o.stdout
    );
    b.set(|c| {
        c["process"]["landlock"] = json!({
            "ruleset": {"handledAccessFS": ["read_file"]},
            "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/bin"]}]},
            "disableBestEffort": true
        });
    });
    for policy in ["runc", "default"] {
        let o = run_with(policy, &b);
        ok(&o, policy)?;
        ensure!(
            o.stdout == "etc-refused\nbin-read\n",
            "{policy}: {:?}",
            o.stdout
        );
    }
    pass()
}

fn state_annotations() -> R {
    let rt = Runtime::new();
    let b = Bundle::new();
    ok(&rt.create(&b, "st"), "create")?;
    let st = rt.state("st").ok_or("no state")?;
    let ann = &st["annotations"];
    let get = |k: &str| ann[k].as_str().unwrap_or("").to_string();
    ensure!(get("io.contain.policy") == "default", "{ann}");
    ensure!(
        get("io.contain.userns").starts_with("added by the policy"),
        "{ann}"
    );
    ensure!(get("io.contain.landlock").contains("mounts: fs"), "{ann}");
    ensure!(
        get("io.contain.seccomp").starts_with("contain default profile"),
        "{ann}"
    );
    ok(&rt.exec(&["delete", "--force", "st"]), "delete")?;
    pass()
}

fn bad_input() -> R {
    let rt = Runtime::new();
    let dir = tempfile::tempdir()?;
    let b = Bundle::new();
    let create = |policy: &str, b: &Bundle, id: &str| rt.with_policy(policy, "create", b, id);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"name\": ")?;
    fails_with(&create(bad.to_str().unwrap(), &b, "x"), "policy ")?;
    rt.assert_clean(&b, "x")?;
    fails_with(&create("lenient", &b, "x"), "unknown policy \"lenient\"")?;
    rt.assert_clean(&b, "x")?;
    let mut ann = Bundle::new();
    ann.set(|c| c["annotations"] = json!({"io.contain.policy": "/etc/passwd"}));
    fails_with(&rt.create(&ann, "x"), "only be chosen with --policy")?;
    rt.assert_clean(&ann, "x")?;

    // A pool of one range: the second container finds it exhausted.
    let one = custom_policy(dir.path(), |v| {
        v["userNamespace"]["pool"] =
            json!({"start": 1610612736u32, "size": 65536, "rangeSize": 65536});
    });
    ok(&create(&one, &b, "first"), "first in a pool of one")?;
    let second = Bundle::new();
    fails_with(&create(&one, &second, "second"), "pool exhausted")?;
    rt.assert_clean(&second, "second")?;
    // A config whose own mappings overlap that container's range.
    let mut overlap = Bundle::new();
    overlap.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 1610612800u32, "size": 10}]);
        c["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 1610612800u32, "size": 10}]);
    });
    fails_with(&rt.create(&overlap, "ov"), "held by container \"first\"")?;
    rt.assert_clean(&overlap, "ov")?;
    ok(&rt.exec(&["delete", "--force", "first"]), "delete")?;

    // A workload that asks for the microVM stage without a kernel is refused, not run as a
    // plain container.
    let mut vm = Bundle::new();
    vm.set(|c| c["annotations"] = json!({"io.contain.isolation": "microvm"}));
    fails_with(
        &rt.create(&vm, "vm"),
        "the microVM stage needs a guest kernel",
    )?;
    rt.assert_clean(&vm, "vm")?;

    // A Landlock rule that climbs out of the rootfs.
    let mut climb = Bundle::new();
    climb.set(|c| {
        c["process"]["landlock"] = json!({
            "ruleset": {"handledAccessFS": ["read_file"]},
            "rules": {"pathBeneath": [{"allowedAccess": ["read_file"], "paths": ["/bin/../../etc"]}]}
        });
    });
    fails_with(&rt.create(&climb, "l"), "process.landlock")?;
    rt.assert_clean(&climb, "l")?;
    pass()
}

/// A copy of the binary that uid 65534 can run wherever the checkout lives.
fn public_binary() -> Result<(tempfile::TempDir, std::path::PathBuf), std::io::Error> {
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let bin = dir.path().join("contain");
    std::fs::copy(CONTAIN, &bin)?;
    Ok((dir, bin))
}

/// Run `bin` as the unprivileged uid 65534 (setpriv) with a private state root.
fn as_nobody(bin: &Path, root: &Path, args: &[&str], bundle: &Path, id: &str) -> Out {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .arg("--bundle")
        .arg(bundle)
        .arg(id)
        .stdin(std::process::Stdio::null())
        .out()
}

fn rootless() -> R {
    if which("setpriv").is_none() {
        return skip("setpriv is not installed (util-linux)");
    }
    let chown = |p: &Path| std::os::unix::fs::chown(p, Some(65534), Some(65534));
    let (_bin_dir, bin) = public_binary()?;
    // `contain spec --rootless` as the user: its own uid mapped to root, no network namespace.
    let spec_dir = tempfile::tempdir()?;
    chown(spec_dir.path())?;
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["spec", "--rootless", "--bundle"])
        .arg(spec_dir.path())
        .out();
    ok(&o, "spec --rootless as uid 65534")?;
    let rootless: Value =
        serde_json::from_slice(&std::fs::read(spec_dir.path().join("config.json"))?)?;
    let mut b = Bundle::new();
    b.set(|c| {
        let args = c["process"]["args"].clone();
        let cgroups = c["linux"]["cgroupsPath"].clone();
        *c = rootless.clone();
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = args;
        c["linux"]["cgroupsPath"] = cgroups;
    });
    b.sh("tr -s ' ' < /proc/self/uid_map; id -u; grep '^Seccomp:' /proc/self/status");
    std::fs::set_permissions(
        b.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let state = tempfile::tempdir()?;
    chown(state.path())?;
    let o = as_nobody(&bin, state.path(), &["run"], b.path(), "rl");
    ok(&o, "rootless run")?;
    ensure!(
        o.stdout == " 0 65534 1\n0\nSeccomp:\t2\n",
        "inside: {:?}",
        o.stdout
    );
    ensure!(
        std::fs::read_dir(state.path())?.count() == 0,
        "state left behind"
    );
    // A limit needs a cgroup the user cannot create: refused, naming the field.
    b.set(|c| c["linux"]["resources"]["memory"] = json!({"limit": 67108864}));
    let o = as_nobody(&bin, state.path(), &["run"], b.path(), "rl");
    ensure!(
        o.code == 1 && o.stderr.contains("linux.resources.memory: rootless"),
        "limit without a cgroup: exit {}: {}",
        o.code,
        o.stderr
    );
    ensure!(
        std::fs::read_dir(state.path())?.count() == 0,
        "state left behind after the refusal"
    );
    pass()
}

/// A network namespace joined by path (as rootful podman gives one): the default policy still
/// adds the user namespace, joining the network namespace first. Inside: root is mapped, sysfs
/// shows that namespace's devices (only lo, not the host's), config.json's net sysctl is set
/// in it, port 80 can be bound, and `exec` gets in.
fn joined_netns() -> R {
    let dir = tempfile::tempdir()?;
    let ns = dir.path().join("net");
    std::fs::write(&ns, "")?;
    let o = std::process::Command::new("unshare")
        .arg(format!("--net={}", ns.display()))
        .arg("true")
        .out();
    if o.code != 0 {
        return skip(format!("unshare --net=FILE: {}", o.stderr));
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let _guard = Unmount(&ns);
    let mut b = Bundle::new();
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(json!({"type": "network", "path": ns}));
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    let rt = Runtime::new();
    let o = rt.create(&b, "jn");
    ok(&o, "create joining a network namespace")?;
    ok(&rt.exec(&["start", "jn"]), "start")?;
    let o = rt.exec(&[
        "exec",
        "jn",
        "sh",
        "-c",
        "awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map; \
         ls /sys/class/net | tr '\\n' ' '; echo; cat /proc/sys/net/ipv4/ip_forward; \
         (sleep 60 | nc -l -p 80 >/dev/null 2>&1 &); \
         for i in $(seq 100); do netstat -ln | grep -q ':80 ' && break; sleep 0.05; done; \
         netstat -ln | grep -c ':80 '",
    ]);
    ensure!(
        o.code == 0 && o.stdout == "mapped\nlo \n1\n1\n",
        "inside: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let st = rt.state("jn").ok_or("no state")?;
    let userns = st["annotations"]["io.contain.userns"]
        .as_str()
        .unwrap_or("");
    ensure!(userns.starts_with("added"), "io.contain.userns: {userns:?}");
    ok(&rt.exec(&["delete", "--force", "jn"]), "delete")?;
    rt.assert_clean(&b, "jn")?;

    // The host's own network namespace joined by path: nothing of it is widened, and a net
    // sysctl for it is refused.
    let host_ns = format!("/proc/{}/ns/net", std::process::id());
    let knob = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
    let before = std::fs::read_to_string(knob)?;
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(json!({"type": "network", "path": host_ns}));
        c["linux"]["sysctl"] = json!({});
        c["process"]["args"] = json!(["true"]);
    });
    ok(&rt.run(&b, "hn"), "run in the host's network namespace")?;
    ensure!(
        std::fs::read_to_string(knob)? == before,
        "the host's {knob} changed"
    );
    b.set(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    fails_with(&rt.run(&b, "hn2"), "is the host's")?;
    rt.assert_clean(&b, "hn2")?;
    pass()
}

/// The attack of the security review (issue 18, medium): a process started by `contain exec`
/// (kubectl exec, a health check: binaries the image controls) must be held by the container's
/// Landlock ruleset like the init. With the host's network namespace shared, it cannot reach
/// a host abstract unix socket the init cannot reach; it cannot write outside what the mounts
/// grant; under default (onExec off) it may still signal the container's own processes
/// (`kill -HUP 1`), under strict not even that.
fn exec_confined() -> R {
    let probe = match build_probe("abstract") {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    let name = format!("contain-exec-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr)?;
    let mut b = Bundle::new();
    std::fs::copy(&probe, b.rootfs().join("bin/abstract"))?;
    b.set(|c| {
        c["linux"]["namespaces"] =
            json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "trap 'echo hup >> /dev/shm/log' HUP; while :; do sleep 0.1; done"
        ]);
    });
    let dir = tempfile::tempdir()?;
    let no_userns = custom_policy(dir.path(), |v| v["userNamespace"]["add"] = json!(false));
    for (policy, signal) in [
        (no_userns.as_str(), "signal-ok"),
        ("strict", "signal-refused"),
    ] {
        let rt = Runtime::new();
        let o = rt.run_detached(policy, &b, "ex");
        if policy == "strict" && o.code != 0 {
            // strict refuses a shared network namespace outright: nothing to exec into.
            ensure!(o.messages().contains("namespace"), "strict: {}", o.stderr);
            continue;
        }
        ensure!(o.code == 0, "{policy}: run -d: {}", o.stderr);
        let e = rt.exec(&[
            "exec",
            "ex",
            "sh",
            "-c",
            &format!("/bin/abstract {name}; kill -HUP 1 && echo signal-ok || echo signal-refused"),
        ]);
        let out = e.stdout.trim().replace('\n', " ");
        ensure!(
            out == format!("errno 1 {signal}"),
            "{policy}: exec: {:?} {}",
            e.stdout,
            e.stderr
        );
        let st = rt.state("ex").ok_or("no state")?;
        ensure!(
            st["annotations"]["io.contain.landlock"]
                .as_str()
                .is_some_and(|s| s.contains("exec'd processes confined")),
            "state: {}",
            st["annotations"]["io.contain.landlock"]
        );
        rt.exec(&["delete", "--force", "ex"]);
        rt.assert_clean(&b, "ex")?;
    }
    pass()
}

/// The security review (issue 18, low): a config without limits could exhaust the host's
/// pids. The default policy adds a pids limit (4096) where config.json sets none, strict a
/// pids and a memory limit, runc nothing; config.json's own limit wins; `state` says what
/// was added. The attack, under a policy whose default is 16: a fork bomb stops there.
fn default_limits() -> R {
    let mut b = Bundle::new();
    b.sh("cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
          cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max");
    let unlimited = |v: &str| v == "max" || v.parse::<u64>().is_ok_and(|n| n >= 1 << 62);
    for (policy, pids, memory) in [
        ("default", Some("4096"), None),
        ("strict", Some("1024"), Some("1073741824")),
        ("runc", None, None),
    ] {
        let o = run_with(policy, &b);
        ok(&o, policy)?;
        let l: Vec<&str> = o.stdout.lines().collect();
        ensure!(
            l.len() == 2
                && pids.map_or(unlimited(l[0]), |p| l[0] == p)
                && memory.map_or(unlimited(l[1]), |m| l[1] == m),
            "{policy}: pids.max and memory limit inside: {l:?}"
        );
    }
    // config.json's own limit wins, and state says whose it is.
    b.set(|c| c["linux"]["resources"] = json!({"pids": {"limit": 40}}));
    b.set(|c| c["process"]["args"] = json!(["sleep", "30"]));
    let rt = Runtime::new();
    let o = rt.create(&b, "lim");
    ok(&o, "create")?;
    let st = rt.state("lim").ok_or("no state")?;
    ensure!(
        st["annotations"]["io.contain.limits"] == "config.json's (the policy added none)",
        "state: {}",
        st["annotations"]["io.contain.limits"]
    );
    rt.exec(&["delete", "--force", "lim"]);
    b.set(|c| c["linux"]["resources"] = json!(null));
    let o = rt.create(&b, "lim2");
    ok(&o, "create")?;
    let st = rt.state("lim2").ok_or("no state")?;
    ensure!(
        st["annotations"]["io.contain.limits"] == "added by the policy: pids.limit 4096",
        "state: {}",
        st["annotations"]["io.contain.limits"]
    );
    rt.exec(&["delete", "--force", "lim2"]);
    // The fork bomb.
    let dir = tempfile::tempdir()?;
    let tight = custom_policy(dir.path(), |v| v["defaultLimits"] = json!({"pids": 16}));
    b.sh("(for i in $(seq 1 40); do sleep 5 & done) 2>/dev/null; \
          read n < /sys/fs/cgroup/pids/pids.current; echo $n");
    let o = run_with(&tight, &b);
    ok(&o, "fork bomb")?;
    let n: u32 = o.stdout.trim().parse()?;
    ensure!(n <= 16, "the fork bomb reached {n} processes");
    pass()
}

/// The security review (issue 18, medium): two containers in two state roots (`--root`) got
/// the same host range, and so did a config mapping itself onto the pool and a default
/// container beside it; a process in one could then signal the other's init. Ranges are
/// reserved host-wide: both pairs are disjoint now, the config that overlaps a held range is
/// refused with the field named, and the attack — a kill from one container to the other's
/// init, container root to container root — fails.
fn ranges_host_wide() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["process"]["args"] = json!(["sleep", "60"]));
    // r2 shares the host's pid namespace, so that it sees r1's init to attack it.
    let mut b2 = Bundle::new();
    b2.set(|c| {
        c["process"]["args"] = json!(["sleep", "60"]);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "pid");
    });
    let (rt1, rt2) = (Runtime::new(), Runtime::new());
    ok(&rt1.create(&b, "r1"), "create r1")?;
    ok(&rt2.create(&b2, "r2"), "create r2")?;
    let pid = |rt: &Runtime, id: &str| rt.state(id).and_then(|s| s["pid"].as_i64()).unwrap_or(0);
    let (p1, p2) = (pid(&rt1, "r1"), pid(&rt2, "r2"));
    let (r1, r2) = (
        host_range(p1).ok_or("r1 map")?,
        host_range(p2).ok_or("r2 map")?,
    );
    ensure!(
        r1.0 + r1.1 <= r2.0 || r2.0 + r2.1 <= r1.0,
        "two state roots share host ids: {r1:?} {r2:?}"
    );
    // A config whose own mapping lands on r1's range is refused, naming the field.
    let mut own = Bundle::new();
    own.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": r1.0, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": r1.0, "size": 65536}]);
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    let rt3 = Runtime::new();
    let o = rt3.with_policy("runc", "create", &own, "own");
    fails_with(&o, "linux.uidMappings")?;
    rt3.assert_clean(&own, "own")?;
    // A config that maps itself first onto the next free range holds it: a default container
    // created after it gets another.
    let free = r1.0.max(r2.0) + 65536 * 4;
    own.set(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": free, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": free, "size": 65536}]);
    });
    ok(
        &rt3.with_policy("runc", "create", &own, "own"),
        "create own",
    )?;
    let rt4 = Runtime::new();
    let mut later = Vec::new();
    let mut bundles = Vec::new();
    for i in 0..6 {
        let id = format!("l{i}");
        let mut bl = Bundle::new();
        bl.set(|c| c["process"]["args"] = json!(["sleep", "60"]));
        ok(&rt4.create(&bl, &id), "create a later container")?;
        later.push(host_range(pid(&rt4, &id)).ok_or("later map")?);
        bundles.push(bl);
    }
    ensure!(
        later
            .iter()
            .all(|r| r.0 + r.1 <= free || free + 65536 <= r.0),
        "a default container got the config's ids {free}: {later:?}"
    );
    // The attack: root of r2 signals r1's init (both would be the same host uid if shared).
    ensure!(rt2.exec(&["start", "r2"]).code == 0, "start r2");
    let o = rt2.exec(&[
        "exec",
        "r2",
        "sh",
        "-c",
        &format!("kill -STOP {p1} 2>&1; echo done"),
    ]);
    let st = std::fs::read_to_string(format!("/proc/{p1}/stat")).unwrap_or_default();
    ensure!(
        !st.contains(") T "),
        "r2 stopped r1's init: {} {}",
        o.stdout,
        o.stderr
    );
    for (rt, ids) in [(&rt1, vec!["r1"]), (&rt2, vec!["r2"]), (&rt3, vec!["own"])] {
        for id in ids {
            rt.exec(&["delete", "--force", id]);
        }
    }
    for i in 0..6 {
        rt4.exec(&["delete", "--force", &format!("l{i}")]);
    }
    pass()
}

/// The security review (issue 18, medium): a bundle chose its own policy. Its annotations
/// `io.contain.policy: runc` and `io.contain.userns: host` (which podman --annotation,
/// Kubernetes pod annotations and images can set) would have made container root host root.
/// They are refused with the field named; they make a container stricter only; the
/// operator's configuration may allow them by name, set the default policy and the floor;
/// `state` says who chose the policy.
fn operator_floor() -> R {
    let mut b = Bundle::new();
    b.sh("awk '$1 == 0 {print ($2 == 0 ? \"host-root\" : \"mapped\")}' /proc/self/uid_map");
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.json");
    let run = |b: &Bundle, cfg: Option<&Path>| {
        let rt = Runtime::new();
        let mut c = rt.cmd();
        if let Some(p) = cfg {
            c.env("CONTAIN_CONFIG", p);
        }
        let o = c.args(["run", "--bundle"]).arg(b.path()).arg("f").out();
        (o, rt)
    };
    for (key, value) in [("io.contain.policy", "runc"), ("io.contain.userns", "host")] {
        b.set(|c| c["annotations"] = json!({key: value}));
        let (o, rt) = run(&b, None);
        ensure!(
            o.code == 1 && o.messages().contains(key),
            "{key}={value}: {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
        rt.assert_clean(&b, "f")?;
        // Allowed by the operator, by name.
        std::fs::write(
            &config,
            json!({"allowAnnotations": [format!("{key}={value}")]}).to_string(),
        )?;
        let (o, _) = run(&b, Some(&config));
        ensure!(
            o.code == 0 && o.stdout == "host-root\n",
            "{key}={value} allowed: {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
    }
    // Stricter is always fine.
    b.set(|c| c["annotations"] = json!({"io.contain.policy": "strict"}));
    let (o, _) = run(&b, None);
    ensure!(
        o.code == 0 && o.stdout == "mapped\n",
        "strict by annotation: {} {}",
        o.code,
        o.stderr
    );
    // The operator's default policy and floor; state says who chose.
    std::fs::write(
        &config,
        json!({"policy": "runc", "floor": "runc"}).to_string(),
    )?;
    b.set(|c| {
        c["annotations"] = json!({});
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    let rt = Runtime::new();
    let o = rt
        .cmd()
        .env("CONTAIN_CONFIG", &config)
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("g")
        .out();
    ensure!(
        o.code == 0,
        "create under the operator's policy: {}",
        o.stderr
    );
    let st = rt.state("g").ok_or("no state")?;
    let by = st["annotations"]["io.contain.policy.chosen-by"]
        .as_str()
        .unwrap_or("");
    ensure!(
        st["annotations"]["io.contain.policy"] == "runc" && by.contains(&*config.to_string_lossy()),
        "state: {}",
        st["annotations"]
    );
    rt.exec(&["delete", "--force", "g"]);
    let o = rt.with_policy("default", "create", &b, "h");
    ensure!(o.code == 0, "create --policy: {}", o.stderr);
    let st = rt.state("h").ok_or("no state")?;
    ensure!(
        st["annotations"]["io.contain.policy.chosen-by"]
            .as_str()
            .unwrap_or("")
            .contains("--policy"),
        "state: {}",
        st["annotations"]
    );
    rt.exec(&["delete", "--force", "h"]);
    // A malformed operator configuration fails closed, naming the file.
    std::fs::write(&config, "{\"floor\": \"lenient\"}")?;
    let (o, rt) = run(&b, Some(&config));
    ensure!(
        o.code == 1 && o.messages().contains("operator configuration"),
        "malformed: {}",
        o.stderr
    );
    rt.assert_clean(&b, "f")?;
    pass()
}
