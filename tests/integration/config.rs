//! Each part of config.json, observed from inside the container.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    (
        "config::process_user_env_cwd_umask",
        process_user_env_cwd_umask,
    ),
    ("config::hostname_domainname_uts", hostname_domainname),
    ("config::readonly_rootfs", readonly_rootfs),
    (
        "config::masked_and_readonly_paths",
        masked_and_readonly_paths,
    ),
    ("config::tmpfs_and_bind_mounts", tmpfs_and_bind_mounts),
    (
        "config::recursive_mount_attributes",
        recursive_mount_attributes,
    ),
    ("config::personality_domain", personality_domain),
    ("config::memory_policy", memory_policy),
    (
        "config::mount_namespace_joined_by_path",
        mount_namespace_joined,
    ),
    ("config::devices_default_and_config", devices),
    ("config::sysctls_in_own_namespaces", sysctls),
    ("config::rlimits", rlimits),
    ("config::capabilities_five_sets", capabilities),
    ("config::no_new_privileges", no_new_privileges),
    ("config::oom_score_adj", oom_score_adj),
    ("config::user_namespace_maps", user_namespace),
    ("config::namespaces_new_and_joined", namespaces),
    ("config::network_namespace_loopback_up", loopback),
    ("config::time_namespace_offsets", time_namespace),
    ("config::hooks_all_six_kinds", hooks),
    (
        "config::hook_timeout_unread_stdin_and_failing_poststart",
        hook_timeout,
    ),
    ("config::console_socket_receives_pty", console_socket),
    ("config::preserve_fds_and_nothing_else", preserve_fds),
    (
        "config::preserve_fds_range_holds_only_the_callers",
        preserve_fds_range,
    ),
    ("config::memory_and_cpu_knobs", memory_cpu_knobs),
    ("config::cgroup_limits_observed", cgroup_limits),
    ("config::blkio_throttle_slows_direct_reads", blkio_throttle),
    ("config::hugetlb_limit_set_and_bad_size_refused", hugetlb),
    ("config::cpu_quota_throttles", cpu_quota),
    (
        "config::run_terminal_relays_and_resets_signals",
        run_terminal,
    ),
    (
        "config::no_pivot_and_rootfs_propagation",
        no_pivot_and_propagation,
    ),
    (
        "config::no_pivot_does_not_expose_bare_proc",
        no_pivot_bare_proc,
    ),
    ("config::tmpcopyup_and_pidfd_socket", tmpcopyup_and_pidfd),
    (
        "config::idmapped_mounts_show_a_volumes_owners",
        idmapped_mounts,
    ),
];

/// `run` with process.terminal and no console socket: contain relays the pty itself, and
/// /dev/console is that pty. The
/// workload starts with no blocked or ignored signals although the runtime blocks and ignores
/// some.
fn run_terminal() -> R {
    use std::io::Write;
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["sh"]);
    });
    let mut child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"tty; [ /dev/console -ef /proc/self/fd/0 ] && echo console-is-the-$(echo pty); grep -E 'SigBlk|SigIgn' /proc/self/status | tr -d '\\t'; exit 3\n")?;
    let o: Out = child.wait_with_output()?.into();
    ensure!(o.code == 3, "exit {} (want 3): {}", o.code, o.stderr);
    ensure!(o.stdout.contains("/dev/pts/0"), "no pty: {:?}", o.stdout);
    // The runtime spec: /dev/console is the pty, bound there by the runtime. (The pty echoes
    // the input, so the answer is one the input does not spell.)
    ensure!(
        o.stdout.contains("console-is-the-pty"),
        "/dev/console: {:?}",
        o.stdout
    );
    ensure!(
        o.stdout.contains("SigBlk:0000000000000000")
            && o.stdout.contains("SigIgn:0000000000000000"),
        "signals: {:?}",
        o.stdout
    );
    rt.assert_clean(&b, "t")?;
    pass()
}

fn no_pivot_and_propagation() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["rootfsPropagation"] = json!("rshared"));
    b.sh("grep -E '^[0-9]+ [0-9]+ [0-9:]+ [^ ]+ / ' /proc/self/mountinfo | grep -o 'shared:[0-9]*' | head -c 7");
    ensure!(
        run_ok(&b)? == "shared:",
        "rootfsPropagation rshared not applied"
    );
    let rt = Runtime::new();
    b.sh("cat /proc/self/mountinfo | wc -l; ls /");
    let o: Out = rt
        .cmd()
        .args(["run", "--no-pivot", "--bundle"])
        .arg(b.path())
        .arg("np")
        .out();
    ensure!(
        o.code == 0 && o.stdout.contains("bin"),
        "--no-pivot: {} {} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&b, "np")?;
    pass()
}

/// runc's rule "--no-pivot must not expose bare /proc": a process that makes a user namespace
/// of its own may mount a fresh procfs only while a fully visible one is mounted in its mount
/// namespace, and --no-pivot keeps the host's mounts (its /proc among them) beneath the chroot.
/// The probe tries the mount; it must fail under both policies, with and without --no-pivot.
fn no_pivot_bare_proc() -> R {
    let probe = match build_probe("bareproc") {
        Ok(p) => p,
        Err(e) => return skip(&e),
    };
    let mut b = Bundle::new();
    std::fs::copy(&probe, b.rootfs().join("bin/bareproc"))?;
    b.set(|c| {
        c["process"]["args"] = json!(["/bin/bareproc"]);
        let caps = json!(["CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_SETFCAP"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    });
    let rt = Runtime::new();
    for policy in ["runc", "default"] {
        for no_pivot in [true, false] {
            let mut cmd = rt.cmd();
            cmd.args(["--policy", policy, "run"]);
            if no_pivot {
                cmd.arg("--no-pivot");
            }
            let o: Out = cmd.arg("--bundle").arg(b.path()).arg("bp").out();
            ensure!(
                o.stdout.contains("mount proc errno") && !o.stdout.contains("bare proc"),
                "{policy} --no-pivot={no_pivot}: the container mounted a bare /proc: {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
            rt.assert_clean(&b, "bp")?;
        }
    }
    pass()
}

fn tmpcopyup_and_pidfd() -> R {
    let mut b = Bundle::new();
    std::fs::create_dir_all(b.rootfs().join("data"))?;
    std::fs::write(b.rootfs().join("data/seed"), "from image\n")?;
    b.set(|c| {
        c["root"]["readonly"] = json!(false);
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]}));
    });
    b.sh("cat /data/seed > /copied; echo new > /data/new; grep ' /data ' /proc/mounts | cut -d' ' -f3 >> /copied; sleep 1000");
    let dir = tempfile::tempdir()?;
    let sock = dir.path().join("pidfd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock)?;
    let rt = Runtime::new();
    let o: Out = rt
        .cmd()
        .args(["create", "--pidfd-socket"])
        .arg(&sock)
        .arg("--bundle")
        .arg(b.path())
        .arg("p")
        .out();
    ensure!(o.code == 0, "create: {}", o.stderr);
    let (conn, _) = listener.accept()?;
    let pidfd = recv_fd(conn.as_raw_fd())?;
    // The pidfd refers to the init: signal it through the pidfd and see it die.
    ensure!(rt.exec(&["start", "p"]).code == 0, "start");
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: pidfd_send_signal on a pidfd we own, null siginfo.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<u8>(),
            0,
        )
    };
    ensure!(r == 0, "pidfd_send_signal failed");
    let stopped = rt.wait_status("p", "stopped");
    ensure!(stopped, "the pidfd did not refer to the init");
    ensure!(
        !b.rootfs().join("data/new").exists(),
        "tmpcopyup wrote to the image"
    );
    let copied = std::fs::read_to_string(b.rootfs().join("copied"))?;
    ensure!(copied == "from image\ntmpfs\n", "tmpcopyup: {copied:?}");
    ensure!(rt.exec(&["delete", "p"]).code == 0, "delete");
    rt.assert_clean(&b, "p")?;
    pass()
}

/// Issue 17, class 4: linux.memoryPolicy is the process's NUMA policy, read back from inside
/// (/proc/self/numa_maps shows it on every mapping without one of its own), under the default
/// and runc policies; nodes the host does not have are refused naming the field.
fn memory_policy() -> R {
    for policy in ["default", "runc"] {
        for (mode, want) in [("MPOL_BIND", "bind:0"), ("MPOL_INTERLEAVE", "interleave:0")] {
            let mut b = Bundle::new();
            b.set(|c| c["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": "0"}));
            b.sh("head -1 /proc/self/numa_maps | cut -d' ' -f2");
            let o = Runtime::new().with_policy(policy, "run", &b, "m");
            ensure!(
                o.code == 0 && o.stdout.trim() == want,
                "{policy} {mode}: exit {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
        }
        let mut b = Bundle::new();
        b.set(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "1000"}));
        b.sh("true");
        let rt = Runtime::new();
        let o = rt.with_policy(policy, "run", &b, "m");
        fails_with(&o, "linux.memoryPolicy")?;
        rt.assert_clean(&b, "m")?;
    }
    pass()
}

/// Issue 17, class 4/7: a mount namespace joined by path is where the rootfs is set up, as
/// runc does it (the namespace's holder sees the container's mounts afterwards), under the
/// default (which then adds no user namespace, and says so) and runc policies; the runtime's
/// own mount namespace, and none at all, are refused with the reason.
fn mount_namespace_joined() -> R {
    for policy in ["default", "runc"] {
        let mut holder = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sleep", "60"])
            .spawn()?;
        let ns = format!("/proc/{}/ns/mnt", holder.id());
        // unshare has exec'd sleep once the namespace differs from ours.
        for _ in 0..100 {
            if std::fs::read_link(&ns).ok() != std::fs::read_link("/proc/self/ns/mnt").ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut b = Bundle::new();
        b.set(|c| {
            let list = c["linux"]["namespaces"].as_array_mut().unwrap();
            list.retain(|n| n["type"] != "mount");
            list.push(json!({"type": "mount", "path": ns}));
        });
        b.sh("grep -c . /proc/self/mountinfo >/dev/null && echo in-its-rootfs; [ -x /bin/busybox ] && echo ok");
        let o = Runtime::new().with_policy(policy, "run", &b, "j");
        let _ = holder.kill();
        let _ = holder.wait();
        ensure!(
            o.code == 0 && o.stdout == "in-its-rootfs\nok\n",
            "{policy}: exit {} {:?} {}",
            o.code,
            o.stdout,
            o.stderr
        );
    }
    let mut b = Bundle::new();
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "mount");
        list.push(json!({"type": "mount", "path": "/proc/self/ns/mnt"}));
    });
    b.sh("true");
    let rt = Runtime::new();
    let o = rt.with_policy("runc", "run", &b, "j");
    fails_with(&o, "is the runtime's own")?;
    rt.assert_clean(&b, "j")?;
    // No mount namespace at all (runtime-tools' linux_ns_itype): refused under every policy,
    // with the reason, before anything is made.
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "mount");
    });
    for policy in ["default", "runc"] {
        let o = rt.with_policy(policy, "run", &b, "j");
        fails_with(&o, "no mount namespace is asked for")?;
        ensure!(
            o.stderr.contains("chroot alone") && o.stderr.contains("slave"),
            "{policy}: the refusal does not say why: {}",
            o.stderr
        );
        rt.assert_clean(&b, "j")?;
    }
    pass()
}

fn run_ok(b: &Bundle) -> Result<String, libtest_mimic::Failed> {
    let rt = Runtime::new();
    let o = rt.run(b, "c");
    ensure!(
        o.code == 0,
        "run exited {}: {}\nstdout: {}",
        o.code,
        o.stderr,
        o.stdout
    );
    rt.assert_clean(b, "c")?;
    Ok(o.stdout)
}

fn process_user_env_cwd_umask() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["user"] =
            json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 63});
        c["process"]["env"] = json!(["PATH=/bin", "GREETING=hi there"]);
        c["process"]["cwd"] = json!("/tmp");
    });
    b.sh("id -u; id -g; id -G; echo \"$GREETING\"; pwd; umask; env | sort | tr '\\n' ' '");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().collect();
    ensure!(l[0] == "1000" && l[1] == "1000", "uid/gid {l:?}");
    ensure!(
        l[2].split(' ').collect::<Vec<_>>().contains(&"10") && l[2].contains("20"),
        "groups {}",
        l[2]
    );
    ensure!(
        l[3] == "hi there" && l[4] == "/tmp" && l[5] == "0077",
        "env/cwd/umask {l:?}"
    );
    ensure!(
        !l[6].contains("RUST") && !l[6].contains("CARGO"),
        "the runtime's environment leaked: {}",
        l[6]
    );
    pass()
}

fn hostname_domainname() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["hostname"] = json!("box-1");
        c["domainname"] = json!("example.test");
    });
    b.sh("hostname; cat /proc/sys/kernel/domainname");
    let out = run_ok(&b)?;
    ensure!(out == "box-1\nexample.test\n", "got {out:?}");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    ensure!(host.trim() != "box-1", "the host's hostname changed");
    pass()
}

fn readonly_rootfs() -> R {
    let mut b = Bundle::new();
    b.sh("touch /x 2>/dev/null && echo wrote || echo refused; touch /tmp/y 2>/dev/null && echo wrote || echo refused");
    ensure!(
        run_ok(&b)? == "refused\nrefused\n",
        "readonly root was writable"
    );
    b.set(|c| c["root"]["readonly"] = json!(false));
    ensure!(
        run_ok(&b)? == "wrote\nwrote\n",
        "writable root was not writable"
    );
    ensure!(
        b.rootfs().join("x").exists(),
        "write did not reach the rootfs"
    );
    pass()
}

fn masked_and_readonly_paths() -> R {
    let mut b = Bundle::new();
    b.sh("wc -c < /proc/keys; ls -A /sys/firmware | wc -l; \
          (echo 1 > /proc/sys/vm/drop_caches) 2>&1 | grep -o 'Read-only file system'; \
          grep ' /proc/bus ' /proc/mounts | cut -d' ' -f4 | cut -c1-3; \
          wc -c < /proc/timer_list");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    ensure!(l[0] == "0", "/proc/keys is readable: {l:?}");
    ensure!(l[1] == "0", "/sys/firmware not masked: {l:?}");
    ensure!(
        l[2] == "Read-only file system" && l[3] == "ro,",
        "readonly paths writable: {l:?}"
    );
    ensure!(l[4] == "0", "/proc/timer_list not masked: {l:?}");
    // Relative paths are the rootfs's, as runc resolves them; `..` out of it is refused.
    b.set(|c| {
        c["linux"]["maskedPaths"] = json!(["proc/keys"]);
        c["linux"]["readonlyPaths"] = json!(["proc/bus"]);
    });
    b.sh("wc -c < /proc/keys; grep ' /proc/bus ' /proc/mounts | cut -d' ' -f4 | cut -c1-3");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().map(str::trim).collect();
    ensure!(l == ["0", "ro,"], "relative masked/readonly paths: {l:?}");
    b.set(|c| c["linux"]["maskedPaths"] = json!(["../../etc"]));
    let rt = Runtime::new();
    fails_with(&rt.run(&b, "c"), "linux.maskedPaths")?;
    rt.assert_clean(&b, "c")?;
    pass()
}

fn tmpfs_and_bind_mounts() -> R {
    let host = tempfile::tempdir()?;
    std::fs::write(host.path().join("from-host"), "data\n")?;
    let ro = tempfile::tempdir()?;
    let mut b = Bundle::new();
    b.set(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "size=1m", "mode=700"]}));
        m.push(json!({"destination": "/rw", "type": "bind", "source": host.path(), "options": ["rbind", "rw"]}));
        m.push(json!({"destination": "/ro/deep", "type": "none", "source": ro.path(), "options": ["bind", "ro", "nosuid", "nodev"]}));
    });
    b.sh("grep ' /scratch ' /proc/mounts | cut -d' ' -f3,4; cat /rw/from-host; echo out > /rw/from-container; \
          touch /ro/deep/x 2>/dev/null && echo ro-writable || echo ro-refused; grep ' /ro/deep ' /proc/mounts | cut -d' ' -f4");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().collect();
    ensure!(
        l[0].starts_with("tmpfs rw,nosuid")
            && l[0].contains("size=1024k")
            && l[0].contains("mode=700"),
        "tmpfs {}",
        l[0]
    );
    ensure!(l[1] == "data", "bind read {l:?}");
    ensure!(
        std::fs::read_to_string(host.path().join("from-container"))? == "out\n",
        "bind write did not reach the host"
    );
    ensure!(l[2] == "ro-refused", "ro bind writable");
    ensure!(
        l[3].starts_with("ro,nosuid,nodev"),
        "ro bind options {}",
        l[3]
    );
    ensure!(
        host_mounts_under(host.path()).is_empty() && host_mounts_under(ro.path()).is_empty(),
        "mounts leaked to the host"
    );
    pass()
}

fn devices() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/zero2", "type": "c", "major": 1, "minor": 5, "fileMode": 432, "uid": 0, "gid": 1000}]);
        c["linux"]["resources"]["devices"] = json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"}]);
    });
    b.sh("stat -c '%t:%T %a' /dev/null; stat -c '%t:%T %a %u:%g' /dev/zero2; head -c 4 /dev/zero2 | od -An -tx1; readlink /dev/fd; readlink /dev/ptmx; \
          head -c 1 /dev/urandom > /dev/null 2>&1 && echo urandom-ok; \
          mknod /tmp/mem c 1 1 2>/dev/null && echo mknod-ok || echo mknod-refused");
    // Under `runc` (no user namespace) the init makes the node with mknod; under `default`
    // (a user namespace, where mknod is not allowed) the runtime makes it, as host root, on
    // the /dev tmpfs it hands over. Either way: the config's number, mode and owner.
    for (policy, zero2) in [("runc", "1:5 660 0:1000"), ("default", "1:5 660 0:1000")] {
        let rt = Runtime::new();
        let o = rt.with_policy(policy, "run", &b, "c");
        ensure!(o.code == 0, "{policy}: run exited {}: {}", o.code, o.stderr);
        rt.assert_clean(&b, "c")?;
        let out = o.stdout;
        let l: Vec<&str> = out.lines().map(str::trim).collect();
        ensure!(l[0] == "1:3 666" && l[1] == zero2, "{policy}: nodes {l:?}");
        ensure!(l[2] == "00 00 00 00", "{policy}: zero2 {l:?}");
        ensure!(
            l[3] == "/proc/self/fd" && l[4] == "pts/ptmx",
            "{policy}: links {l:?}"
        );
        ensure!(
            l[5] == "urandom-ok",
            "{policy}: default device denied {l:?}"
        );
        ensure!(
            l[6] == "mknod-refused",
            "{policy}: mknod allowed without CAP_MKNOD {l:?}"
        );
    }
    pass()
}

fn sysctls() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"}));
    b.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni");
    ensure!(run_ok(&b)? == "1\n1234\n", "sysctls not set");
    let host = std::fs::read_to_string("/proc/sys/kernel/shmmni")?;
    ensure!(host.trim() != "1234", "the host's kernel.shmmni changed");
    pass()
}

fn rlimits() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]));
    b.sh("ulimit -n; ulimit -Hn; ulimit -c");
    ensure!(run_ok(&b)? == "256\n512\n0\n", "rlimits not applied");
    pass()
}

fn capabilities() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["capabilities"] = json!({
            "bounding": ["CAP_KILL", "CAP_NET_RAW", "CAP_CHOWN"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": ["CAP_CHOWN"],
            "ambient": ["CAP_CHOWN"]
        });
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    });
    b.sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status | tr -s '\\t' ' '");
    let out = run_ok(&b)?;
    // CAP_CHOWN = bit 0, CAP_KILL = bit 5, CAP_NET_RAW = bit 13. The shell runs as uid 1000 after
    // an exec, so its permitted/effective sets are the ambient set (CAP_CHOWN).
    ensure!(
        status_field(&out, "CapBnd") == Some("0000000000002021"),
        "bounding: {out}"
    );
    ensure!(
        status_field(&out, "CapInh") == Some("0000000000000001"),
        "inheritable: {out}"
    );
    ensure!(
        status_field(&out, "CapAmb") == Some("0000000000000001"),
        "ambient: {out}"
    );
    ensure!(
        status_field(&out, "CapPrm") == Some("0000000000000001"),
        "permitted: {out}"
    );
    b.set(|c| {
        c["process"]["user"] = json!({"uid": 0, "gid": 0});
        c["process"]["capabilities"] =
            json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]});
    });
    let out = run_ok(&b)?;
    ensure!(
        status_field(&out, "CapEff") == Some("0000000000000020"),
        "root effective: {out}"
    );
    ensure!(
        status_field(&out, "CapBnd") == Some("0000000000000020"),
        "root bounding: {out}"
    );
    // A set the process can never hold (inheritable outside the bounding set) fails as under
    // runc, the error naming the capability; under both policies, nothing left behind.
    b.set(|c| {
        c["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"],
            "inheritable": ["CAP_CHOWN", "CAP_KILL"]});
    });
    for policy in ["default", "runc"] {
        let rt = Runtime::new();
        let o = rt.with_policy(policy, "run", &b, "capset");
        fails_with(&o, "CAP_KILL not in the process's bounding set")?;
        rt.assert_clean(&b, "capset")?;
    }
    pass()
}

fn no_new_privileges() -> R {
    let mut b = Bundle::new();
    b.sh("grep NoNewPrivs /proc/self/status | tr -d '\\t '");
    ensure!(
        run_ok(&b)?.trim() == "NoNewPrivs:1",
        "noNewPrivileges true not applied"
    );
    b.set(|c| c["process"]["noNewPrivileges"] = json!(false));
    ensure!(
        run_ok(&b)?.trim() == "NoNewPrivs:0",
        "noNewPrivileges false not honoured"
    );
    pass()
}

fn oom_score_adj() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["process"]["oomScoreAdj"] = json!(500));
    b.sh("cat /proc/self/oom_score_adj");
    ensure!(run_ok(&b)?.trim() == "500", "oomScoreAdj not applied");
    pass()
}

fn user_namespace() -> R {
    let mut b = Bundle::new();
    let base = 200000 + (std::process::id() % 1000) * 65536;
    b.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
        c["root"]["readonly"] = json!(false);
    });
    b.sh("cat /proc/self/uid_map /proc/self/gid_map | tr -s ' '; id -u; ls /dev/null && cat /dev/null && echo devnull-ok; sleep 0.5");
    let rt = Runtime::new();
    let child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("u")
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    // Observe from the host: the init runs as the mapped host uid, not as root.
    let mut host_uid = None;
    for _ in 0..300 {
        if let Some(st) = rt.state("u") {
            if let Some(pid) = st["pid"].as_i64().filter(|p| *p > 0) {
                if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                    if st["status"] == "running" {
                        host_uid = status_field(&s, "Uid")
                            .map(|u| u.split_whitespace().next().unwrap_or("").to_string());
                        break;
                    }
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let o: Out = child.wait_with_output()?.into();
    ensure!(o.code == 0, "run: {}", o.stderr);
    let l: Vec<&str> = o.stdout.lines().map(str::trim).collect();
    ensure!(
        l[0] == format!("0 {base} 65536") && l[1] == format!("0 {base} 65536"),
        "maps {l:?}"
    );
    ensure!(l[2] == "0" && l[4] == "devnull-ok", "inside {l:?}");
    ensure!(
        host_uid.as_deref() == Some(&base.to_string()),
        "host uid of the init: {host_uid:?}"
    );
    pass()
}

fn ns_inode(path: &str) -> String {
    std::fs::read_link(path)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn namespaces() -> R {
    let mut b = Bundle::new();
    b.sh("for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done");
    let out = run_ok(&b)?;
    for (line, n) in out
        .lines()
        .zip(["pid", "net", "ipc", "uts", "mnt", "cgroup"])
    {
        ensure!(
            line != ns_inode(&format!("/proc/self/ns/{n}")),
            "{n} namespace is the host's"
        );
    }
    // Join the network namespace of a running container by path.
    let rt = Runtime::new();
    let mut a = Bundle::new();
    a.sh("sleep 1000");
    ensure!(rt.create(&a, "a").code == 0, "create a");
    let pid = rt.state("a").unwrap()["pid"].as_i64().unwrap();
    let target = ns_inode(&format!("/proc/{pid}/ns/net"));
    b.set(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": format!("/proc/{pid}/ns/net")}));
    });
    b.sh("readlink /proc/self/ns/net");
    let o = rt.run(&b, "b");
    ensure!(o.code == 0, "run b: {}", o.stderr);
    ensure!(
        o.stdout.trim() == target,
        "joined {} want {target}",
        o.stdout.trim()
    );
    pass()
}

fn loopback() -> R {
    let mut b = Bundle::new();
    b.sh("ip -o link | cut -d: -f2 | tr -d ' '; ip link show lo | grep -c 'UP'; ping -c1 -W1 127.0.0.1 >/dev/null 2>&1 && echo ping-ok || echo ping-failed");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().collect();
    ensure!(l[0] == "lo", "interfaces besides lo: {l:?}");
    ensure!(l.contains(&"1"), "lo is not up: {l:?}");
    pass()
}

fn time_namespace() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 864000, "nanosecs": 0}});
    });
    b.sh("cut -d. -f1 /proc/uptime");
    let inside: u64 = run_ok(&b)?.trim().parse()?;
    let host: u64 = std::fs::read_to_string("/proc/uptime")?
        .split('.')
        .next()
        .unwrap()
        .parse()?;
    ensure!(
        inside >= host + 864000 - 5,
        "boottime offset not applied: inside {inside}, host {host}"
    );
    pass()
}

fn hooks() -> R {
    let log = tempfile::tempdir()?;
    // createContainer runs in the container's namespaces, its user namespace included: as
    // the container's root, an unprivileged host uid, which may write here only because
    // the directory lets anyone.
    std::fs::set_permissions(
        log.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )?;
    let l = log.path().to_string_lossy().into_owned();
    let mut b = Bundle::new();
    let host_hook = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {l}/{kind}.json; echo $ARG > {l}/{kind}.env"), "x"], "env": ["ARG=from-env"]});
    b.set(|c| {
        c["root"]["readonly"] = json!(false);
        c["hooks"] = json!({
            "prestart": [host_hook("prestart")],
            "createRuntime": [host_hook("createRuntime")],
            "createContainer": [host_hook("createContainer")],
            "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /startContainer.json"]}],
            "poststart": [host_hook("poststart")],
            "poststop": [host_hook("poststop")]
        });
    });
    b.sh("test -f /startContainer.json && echo seen-before-exec");
    let out = run_ok(&b)?;
    ensure!(
        out.trim() == "seen-before-exec",
        "startContainer did not run before the process: {out}"
    );
    for kind in [
        "prestart",
        "createRuntime",
        "createContainer",
        "poststart",
        "poststop",
    ] {
        let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
            log.path().join(format!("{kind}.json")),
        )?)?;
        ensure!(
            s["id"] == "c" && s["pid"].as_i64().unwrap_or(0) > 0 && s["bundle"].is_string(),
            "{kind} state {s}"
        );
        ensure!(
            std::fs::read_to_string(log.path().join(format!("{kind}.env")))?.trim() == "from-env",
            "{kind} env"
        );
    }
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        b.rootfs().join("startContainer.json"),
    )?)?;
    ensure!(s["id"] == "c", "startContainer state {s}");
    let status = |k: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(log.path().join(format!("{k}.json"))).unwrap(),
        )
        .unwrap();
        v["status"].as_str().unwrap_or("").to_string()
    };
    ensure!(
        status("createRuntime") == "creating"
            && status("poststart") == "running"
            && status("poststop") == "stopped",
        "hook statuses"
    );
    pass()
}

fn hook_timeout() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}));
    let start = std::time::Instant::now();
    let o = rt.create(&b, "c");
    fails_with(&o, "timed out")?;
    ensure!(start.elapsed().as_secs() < 10, "timeout not enforced");
    rt.assert_clean(&b, "c")?;
    // A hook that never reads its stdin, with a state larger than a pipe holds (a 256 KiB
    // annotation): the timeout still applies, instead of create blocking on the write.
    b.set(|c| c["annotations"] = json!({"big": "x".repeat(256 << 10)}));
    let start = std::time::Instant::now();
    let o = rt.create(&b, "c");
    fails_with(&o, "timed out")?;
    ensure!(
        start.elapsed().as_secs() < 10,
        "a hook that does not read its stdin hung create for {:?}",
        start.elapsed()
    );
    rt.assert_clean(&b, "c")?;
    // poststart: a failing hook fails `start` (exit 1, as runc) and ends the container; a
    // hook that succeeds reads the state on its stdin (status running, the init's pid).
    let out = tempfile::tempdir()?;
    let seen = out.path().join("state.json");
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["args"] = json!(["sleep", "30"]);
        c["hooks"] = json!({"poststart": [
            {"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {}", seen.display())]},
            {"path": "/bin/false"}]});
    });
    let o = rt.create(&b, "ps");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let pid = rt.state("ps").ok_or("no state")?["pid"]
        .as_i64()
        .unwrap_or(0);
    let o = rt.exec(&["start", "ps"]);
    fails_with(
        &o,
        "error running hook #1 (poststart /bin/false): exit status 1",
    )?;
    ensure!(
        rt.wait_status("ps", "stopped"),
        "the container runs on: {}",
        rt.status("ps")
    );
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&seen)?)?;
    ensure!(
        state["status"] == "running" && state["pid"] == pid && state["id"] == "ps",
        "the poststart hook's stdin: {state}"
    );
    ensure!(rt.exec(&["delete", "ps"]).code == 0, "delete");
    rt.assert_clean(&b, "ps")?;
    pass()
}

fn console_socket() -> R {
    let dir = tempfile::tempdir()?;
    let sock_path = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path)?;
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.set(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    });
    b.sh("tty; stty size; echo done");
    let o: Out = rt
        .cmd()
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg("--console-socket")
        .arg(&sock_path)
        .arg("c")
        .out();
    ensure!(o.code == 0, "create: {}", o.stderr);
    let (conn, _) = listener.accept()?;
    let master = recv_fd(conn.as_raw_fd())?;
    ensure!(rt.exec(&["start", "c"]).code == 0, "start");
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 1024];
    use std::io::Read;
    while !text.contains("done") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    ensure!(
        text.contains("/dev/pts/0") && text.contains("30 100") && text.contains("done"),
        "pty output {text:?}"
    );
    pass()
}

fn recv_fd(sock: i32) -> Result<OwnedFd, libtest_mimic::Failed> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([i32; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty())
        .map_err(|e| e.to_string())?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel installed this descriptor for us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    Err("no fd received".into())
}

fn preserve_fds() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    // List our own descriptors from a child process (ls opens the directory itself).
    b.sh("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; cat <&3");
    let data = tempfile::NamedTempFile::new()?;
    std::fs::write(data.path(), "through fd 3\n")?;
    let f = std::fs::File::open(data.path())?;
    let leak = std::fs::File::open("/etc/hostname")?;
    let (src, leak_fd) = (f.as_raw_fd(), leak.as_raw_fd());
    let mut cmd = rt.cmd();
    cmd.args(["run", "--preserve-fds", "1", "--bundle"])
        .arg(b.path())
        .arg("c");
    let dup = move || {
        // fd 3 is meant for the container; fd 9 is an accidental leak that must not reach it.
        // SAFETY: dup2 is async-signal-safe and only duplicates descriptors we own.
        unsafe { libc::dup2(src, 3) };
        // SAFETY: as above.
        unsafe { libc::dup2(leak_fd, 9) };
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec and only calls dup2.
    unsafe { cmd.pre_exec(dup) };
    let o: Out = cmd.out();
    ensure!(o.code == 0, "run: {}", o.stderr);
    let l: Vec<&str> = o.stdout.lines().collect();
    // 0 1 2 and 3, plus the directory ls itself opened (4).
    ensure!(l[0].trim() == "0 1 2 3 4", "descriptors inside: {:?}", l[0]);
    ensure!(l[1] == "through fd 3", "fd 3 content {l:?}");
    pass()
}

fn cgroup_limits() -> R {
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 32});
    });
    b.sh("cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
          (for i in $(seq 1 40); do sleep 5 & done) 2>/dev/null; read cur < /sys/fs/cgroup/pids/pids.current; \
          read ev < /sys/fs/cgroup/pids/pids.events; echo $cur; echo $ev");
    let out = run_ok(&b)?;
    let l: Vec<&str> = out.lines().collect();
    ensure!(
        l[0] == "67108864" && l[1] == "32",
        "limits seen inside: {l:?}"
    );
    let n: u32 = l[2].parse()?;
    ensure!(n <= 32, "pids.max not enforced: {n} processes");
    let refused: u32 = l[3].trim_start_matches("max ").parse()?;
    ensure!(refused > 0, "no fork was refused at pids.max: {}", l[3]);
    pass()
}

/// The memory and cpu knobs beyond limits (cgroup v1 here): soft limit, swappiness, TCP
/// buffer limit, OOM killer off, CFS burst and idle, as the container's cgroup shows them.
fn memory_cpu_knobs() -> R {
    let v1 = |c: &str| {
        contain::cgroups::hierarchies().is_ok_and(|hs| {
            hs.iter().any(|h| {
                h.version == contain::cgroups::Version::V1 && h.controllers.iter().any(|x| x == c)
            })
        })
    };
    if !v1("memory") || !v1("cpu") {
        return skip("memory and cpu are not v1 controllers here (their v2 files are unit-tested)");
    }
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["resources"]["memory"] = json!({
            "limit": 67108864, "reservation": 33554432, "swappiness": 10,
            "kernelTCP": 16777216, "disableOOMKiller": true
        });
        c["linux"]["resources"]["cpu"] =
            json!({"quota": 50000, "period": 100000, "burst": 10000, "idle": 1});
    });
    b.sh(
        "cd /sys/fs/cgroup/memory; cat memory.soft_limit_in_bytes memory.swappiness \
          memory.kmem.tcp.limit_in_bytes; head -1 memory.oom_control; \
          cat /sys/fs/cgroup/cpu/cpu.cfs_burst_us /sys/fs/cgroup/cpu/cpu.idle",
    );
    let out = run_ok(&b)?;
    ensure!(
        out == "33554432\n10\n16777216\noom_kill_disable 1\n10000\n1\n",
        "seen inside: {out:?}"
    );
    pass()
}

/// The whole disk under `path` as "major:minor" (blk-throttle takes disks, not partitions).
fn disk_of(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path).ok()?.dev();
    let (ma, mi) = (libc::major(dev) as u64, libc::minor(dev) as u64);
    let sys = std::path::PathBuf::from(format!("/sys/dev/block/{ma}:{mi}"));
    let sys = std::fs::canonicalize(sys).ok()?;
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    let text = std::fs::read_to_string(disk.join("dev")).ok()?;
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// blockIO.throttleReadBpsDevice: direct reads of a file on the bundle's disk take as long as
/// the rate says (384 KiB at 128 KiB/s), against the same read unthrottled.
fn blkio_throttle() -> R {
    let mut b = Bundle::new();
    let Some((major, minor)) = disk_of(b.path()) else {
        return skip("the bundle is not on a block device (tmpfs, overlay?)");
    };
    let data = b.path().join("data");
    std::fs::create_dir(&data)?;
    let bytes: Vec<u8> = (0..384 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("f"), &bytes)?;
    let script = "dd if=/data/f of=/dev/null bs=64k iflag=direct 2>/dev/null && echo read-done";
    b.set(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": data, "options": ["bind", "ro"]
        }));
        c["process"]["args"] = json!(["sh", "-c", script]);
    });
    let timed = |b: &Bundle| -> Result<(f64, String), libtest_mimic::Failed> {
        let t = std::time::Instant::now();
        let out = run_ok(b)?;
        Ok((t.elapsed().as_secs_f64(), out))
    };
    let (free, out) = timed(&b)?;
    ensure!(out.trim() == "read-done", "unthrottled: {out:?}");
    b.set(|c| {
        c["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 131072}]
        });
        c["process"]["args"] = json!([
            "sh",
            "-c",
            format!(
                "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device 2>/dev/null; {script}"
            )
        ]);
    });
    let (slow, out) = timed(&b)?;
    ensure!(out.contains("read-done"), "throttled: {out:?}");
    ensure!(
        slow >= 2.0 && slow > free * 2.0,
        "384 KiB at 128 KiB/s took {slow:.2} s (unthrottled {free:.2} s)"
    );
    if out.lines().count() > 1 {
        ensure!(
            out.starts_with(&format!("{major}:{minor} 131072")),
            "seen inside: {out:?}"
        );
    }
    pass()
}

/// hugepageLimits: the limit lands in the container's hugetlb cgroup (read by the host while
/// the container exists); a page size the host lacks is refused before anything runs.
fn hugetlb() -> R {
    let hierarchies = contain::cgroups::hierarchies().map_err(|e| e.to_string())?;
    let Some(h) = hierarchies
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "hugetlb"))
    else {
        return skip("no hugetlb controller on this host");
    };
    let file = match h.version {
        contain::cgroups::Version::V1 => "hugetlb.2MB.limit_in_bytes",
        contain::cgroups::Version::V2 => "hugetlb.2MB.max",
    };
    if !h.mount.join(file).exists()
        && !std::path::Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists()
    {
        return skip("no 2 MB huge pages on this host");
    }
    let mut b = Bundle::new();
    b.set(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    });
    let rt = Runtime::new();
    let o = rt.create(&b, "h");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let rel = b.cgroup_rel();
    let seen = std::fs::read_to_string(h.mount.join(rel).join(file))?;
    ensure!(seen.trim() == "4194304", "{file}: {seen:?}");
    ensure!(rt.exec(&["delete", "--force", "h"]).code == 0, "delete");
    rt.assert_clean(&b, "h")?;
    b.set(|c| {
        c["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "3MB", "limit": 4194304}]);
    });
    fails_with(&rt.create(&b, "bad"), "page size \"3MB\"")?;
    rt.assert_clean(&b, "bad")?;
    pass()
}

/// A busy loop for 1 s of wall time under a 20% CPU quota gets about 0.2 s of CPU (measured
/// inside, from the container's own cpuacct counter).
fn cpu_quota() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100000}));
    b.sh("f=/sys/fs/cgroup/cpuacct/cpuacct.usage; s=$(cat $f); timeout 1 sh -c 'while :; do :; done'; e=$(cat $f); echo $((e - s))");
    let used: u64 = run_ok(&b)?.trim().parse()?;
    ensure!(used > 50_000_000, "the loop hardly ran: {used} ns");
    ensure!(
        used < 400_000_000,
        "a 20% quota let 1 s of busy loop use {used} ns of CPU"
    );
    pass()
}

/// `--preserve-fds 100` while the caller passes only fd 3: the rest of 3..102 is where the
/// runtime's own files (the state directory's lock, the log) land, and none of them may reach
/// the container: inside only 0, 1, 2 and 3 are open; `state`, `list`, `start` and `delete`
/// of the same state root do not block on a lock the init holds; `exec --preserve-fds 50`
/// likewise.
fn preserve_fds_range() -> R {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let out = tempfile::tempdir()?;
    let out_dir = out.path().to_string_lossy().into_owned();
    b.set(|c| {
        c["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/out", "type": "bind", "source": out_dir, "options": ["rbind", "rw"]}),
        )
    });
    b.sh("ls /proc/self/fd | sort -n | tr '\\n' ' ' > /out/fds; echo >> /out/fds; sleep 30");
    let data = tempfile::NamedTempFile::new()?;
    std::fs::write(data.path(), "through fd 3\n")?;
    let f = std::fs::File::open(data.path())?;
    let src = f.as_raw_fd();
    let log = rt.root.path().join("log.json");
    let with_fd3 = |cmd: &mut std::process::Command| {
        let dup = move || {
            // SAFETY: dup2 is async-signal-safe and only duplicates a descriptor we own.
            unsafe { libc::dup2(src, 3) };
            // The caller passes 0-3 and nothing else (whatever this test process inherited).
            // SAFETY: close_range takes plain integers and only closes descriptors.
            unsafe { libc::syscall(libc::SYS_close_range, 4, u32::MAX, 0) };
            Ok(())
        };
        // SAFETY: the hook runs between fork and exec and only calls dup2 and close_range.
        unsafe { cmd.pre_exec(dup) };
    };
    // Each command gets 10 s: one that blocks on a lock the container holds fails the test.
    let within =
        |mut c: std::process::Command, args: String| -> Result<Out, libtest_mimic::Failed> {
            let started = std::time::Instant::now();
            let child = std::thread::spawn(move || c.out());
            for _ in 0..200 {
                if child.is_finished() {
                    return child
                        .join()
                        .map_err(|_| libtest_mimic::Failed::from("panicked"));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(libtest_mimic::Failed::from(format!(
                "contain {args} still blocks after {:?} (a lock held by the container's init?)",
                started.elapsed()
            )))
        };
    let timed = |args: &[&str]| {
        let mut c = rt.cmd();
        c.args(args);
        within(c, format!("{args:?}"))
    };
    let mut cmd = rt.cmd();
    cmd.arg("--log")
        .arg(&log)
        .args(["create", "--preserve-fds", "100", "--bundle"])
        .arg(b.path())
        .arg("pf");
    with_fd3(&mut cmd);
    let o = within(cmd, "create --preserve-fds 100".into())?;
    ensure!(o.code == 0, "create --preserve-fds 100: {}", o.stderr);
    let o = timed(&["state", "pf"])?;
    ensure!(o.code == 0, "state: {}", o.stderr);
    let o = timed(&["list"])?;
    ensure!(o.code == 0 && o.stdout.contains("pf"), "list: {}", o.stderr);
    let o = timed(&["start", "pf"])?;
    ensure!(o.code == 0, "start: {}", o.stderr);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = std::fs::read_to_string(out.path().join("fds")).unwrap_or_default();
        if seen.contains('\n') {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    ensure!(seen.trim() == "0 1 2 3 4", "descriptors inside: {seen:?}");
    let mut cmd = rt.cmd();
    cmd.args([
        "exec",
        "--preserve-fds",
        "50",
        "pf",
        "sh",
        "-c",
        "ls /proc/self/fd | sort -n | tr '\\n' ' '; cat <&3",
    ]);
    with_fd3(&mut cmd);
    let o: Out = cmd.out();
    ensure!(
        o.code == 0 && o.stdout == "0 1 2 3 4 through fd 3\n",
        "exec --preserve-fds 50: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let o = timed(&["delete", "--force", "pf"])?;
    ensure!(o.code == 0, "delete: {}", o.stderr);
    rt.assert_clean(&b, "pf")?;
    pass()
}

/// Recursive mount attributes (runc's `rro`, `rnosuid`, `rnoexec`, `rnosymfollow`, ...):
/// applied with mount_setattr(AT_RECURSIVE) to a bind mount and every mount below it, seen
/// from inside (a write and an exec refused in a submount too), under runc and the default
/// policy (its user namespace), and `rbind,rro` as runc's bats test writes it.
fn recursive_mount_attributes() -> R {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let host = tempfile::tempdir()?;
    let sub = host.path().join("sub");
    std::fs::create_dir(&sub)?;
    // A submount on the host side, which only a recursive attribute reaches.
    mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| format!("mount a tmpfs on {}: {e}", sub.display()))?;
    let result = (|| {
        std::fs::write(sub.join("run.sh"), "#!/bin/sh\necho ran\n")?;
        std::fs::set_permissions(
            sub.join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        std::os::unix::fs::symlink("run.sh", sub.join("link"))?;
        let src = host.path().to_string_lossy().into_owned();
        for policy in ["runc", "default"] {
            let mut b = Bundle::new();
            b.set(|c| {
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/data", "type": "bind", "source": src,
                    "options": ["rbind", "rro", "rnoexec", "rnosymfollow", "rnosuid", "rnodev"]}));
            });
            b.sh("touch /data/sub/x 2>&1 | grep -c 'Read-only'; /data/sub/run.sh 2>/dev/null || echo exec-refused; \
                  cat /data/sub/link 2>/dev/null || echo symlink-refused; \
                  grep ' /data/sub ' /proc/self/mountinfo | cut -d' ' -f6");
            let rt = Runtime::new();
            let o = rt.with_policy(policy, "run", &b, "ra");
            ensure!(o.code == 0, "{policy}: {}", o.stderr);
            let l: Vec<&str> = o.stdout.lines().collect();
            ensure!(
                l.len() == 4
                    && l[0] == "1"
                    && l[1] == "exec-refused"
                    && l[2] == "symlink-refused"
                    && ["ro", "nosuid", "nodev", "noexec", "nosymfollow"]
                        .iter()
                        .all(|f| l[3].split(',').any(|x| x == *f)),
                "{policy}: {:?}",
                o.stdout
            );
            rt.assert_clean(&b, "ra")?;
        }
        pass()
    })();
    let _ = umount2(&sub, MntFlags::MNT_DETACH);
    result
}

/// linux.personality: the LINUX32 domain makes `uname -m` say i686 inside, LINUX keeps
/// x86_64, under runc and the default policy (set before the seccomp filter goes in); flags
/// are refused, naming the field.
fn personality_domain() -> R {
    let mut b = Bundle::new();
    b.sh("uname -m");
    for policy in ["runc", "default"] {
        for (domain, want) in [("LINUX32", "i686"), ("LINUX", "x86_64")] {
            b.set(|c| c["linux"]["personality"] = json!({"domain": domain}));
            let rt = Runtime::new();
            let o = rt.with_policy(policy, "run", &b, "pe");
            ensure!(
                o.code == 0 && o.stdout.trim() == want,
                "{policy} {domain}: {} {:?} {}",
                o.code,
                o.stdout,
                o.stderr
            );
        }
    }
    b.set(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})
    });
    let rt = Runtime::new();
    fails_with(&rt.run(&b, "pe"), "linux.personality.flags")?;
    rt.assert_clean(&b, "pe")?;
    pass()
}

/// Idmapped bind mounts (runtime spec 1.1, runc 1.2; what containerd 2 sends for Kubernetes
/// pods with `hostUsers: false`): a volume whose file belongs to host uid 1234 shows as nobody
/// through a plain bind in a user namespace, as 1234 through `idmap` (the container's user
/// namespace), and as whatever the mount's own uidMappings make of it.
fn idmapped_mounts() -> R {
    use std::os::unix::fs::chown;
    let vol = tempfile::Builder::new().prefix("vol-").tempdir()?;
    std::fs::set_permissions(
        vol.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    std::fs::write(vol.path().join("f"), "x")?;
    chown(vol.path().join("f"), Some(1234), Some(1234))?;
    let bind = |dest: &str, extra: &[&str]| {
        let mut options = vec!["rbind"];
        options.extend(extra);
        json!({"destination": dest, "type": "bind", "source": vol.path(), "options": options})
    };
    let own_map = |host: u32| json!([{"containerID": 1234, "hostID": host, "size": 1}]);
    let rt = Runtime::new();

    // config.json's own user namespace (container 0 = host 100000), under the runc policy.
    let bundle = || -> Result<Bundle, std::io::Error> {
        let b = Bundle::new();
        // Mount points the container's root (an unprivileged host uid) could not create.
        for d in ["plain", "ctr", "own", "m"] {
            std::fs::create_dir_all(b.rootfs().join(d))?;
        }
        Ok(b)
    };
    let mut b = bundle()?;
    b.set(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
        let mut own = bind("/own", &["idmap"]);
        own["uidMappings"] = own_map(100007);
        own["gidMappings"] = own_map(100007);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(bind("/plain", &[]));
        mounts.push(bind("/ctr", &["ridmap"]));
        mounts.push(own);
    });
    b.sh("stat -c %u:%g /plain/f /ctr/f /own/f");
    let o = rt.with_policy("runc", "run", &b, "im");
    ensure!(
        o.code == 0 && o.stdout == "65534:65534\n1234:1234\n7:7\n",
        "runc policy, config's user namespace: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&b, "im")?;

    // A container joining that user namespace by path (as containerd 2 makes a pod's
    // containers join the sandbox's): its idmapped mount goes through the joined namespace.
    b.sh("sleep 60");
    let o = rt.run_detached("runc", &b, "sb");
    ensure!(o.code == 0, "run -d the sandbox: {}", o.stderr);
    let pid = rt.state("sb").ok_or("no state")?["pid"]
        .as_i64()
        .unwrap_or(0);
    let mut j = bundle()?;
    j.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(bind("/ctr", &["idmap"]));
    });
    j.sh("stat -c %u /ctr/f; tr -s ' ' < /proc/self/uid_map");
    let o = rt.with_policy("runc", "run", &j, "joined");
    ensure!(
        o.code == 0 && o.stdout == "1234\n 0 100000 65536\n",
        "joined user namespace: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&j, "joined")?;
    let o = rt.exec(&["delete", "--force", "sb"]);
    ensure!(o.code == 0, "delete: {}", o.stderr);
    rt.assert_clean(&b, "sb")?;

    // The user namespace the default policy adds: `idmap` is what the policy does to binds
    // anyway; the mount's own mappings win over it (host 4242 is not the container's).
    let mut d = bundle()?;
    d.set(|c| {
        let mut own = bind("/own", &["idmap"]);
        own["uidMappings"] = own_map(4242);
        own["gidMappings"] = own_map(4242);
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(bind("/ctr", &["idmap"]));
        mounts.push(own);
    });
    d.sh("stat -c %u /ctr/f /own/f");
    let o = rt.with_policy("default", "run", &d, "id");
    ensure!(
        o.code == 0 && o.stdout == "1234\n65534\n",
        "default policy: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    rt.assert_clean(&d, "id")?;

    // Bad input: mappings without the option, idmap without a user namespace, idmap on a
    // mount that is not a bind.
    let cases: [(&str, serde_json::Value, &str); 3] = [
        (
            "runc",
            {
                let mut m = bind("/m", &[]);
                m["uidMappings"] = own_map(1);
                m["gidMappings"] = own_map(1);
                m
            },
            "need the idmap or ridmap option",
        ),
        ("runc", bind("/m", &["idmap"]), "needs a user namespace"),
        (
            "default",
            json!({"destination": "/m", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
            "only bind mounts",
        ),
    ];
    for (policy, mount, want) in cases {
        let mut bad = bundle()?;
        bad.set(|c| c["mounts"].as_array_mut().unwrap().push(mount));
        fails_with(&rt.with_policy(policy, "run", &bad, "bad"), want)?;
        rt.assert_clean(&bad, "bad")?;
    }
    pass()
}
