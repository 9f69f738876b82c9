//! Attacks the runtime must stop: hostile rootfs symlinks (runc's CVE-2021-30465,
//! CVE-2025-31133, CVE-2025-52565 families), a swapped /dev/null, escaping cwd and mount
//! destinations, leaked descriptors (CVE-2024-21626), and reaching the runtime's binary
//! through /proc (CVE-2019-5736).

use serde_json::json;

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("security::proc_symlink_to_host_is_refused", proc_symlink),
    ("security::dev_symlink_to_host_is_refused", dev_symlink),
    (
        "security::bind_destination_through_symlink_stays_inside",
        bind_through_symlink,
    ),
    ("security::swapped_dev_null_is_refused", swapped_dev_null),
    ("security::dev_null_symlink_is_refused", dev_null_symlink),
    (
        "security::dev_console_symlink_is_refused",
        dev_console_symlink,
    ),
    (
        "security::sysctl_write_not_redirected_by_mounts",
        sysctl_redirect,
    ),
    ("security::cwd_through_leaked_fd_fails", cwd_leaked_fd),
    ("security::escaping_paths_are_refused", escaping_paths),
    (
        "security::runtime_binary_unreachable_through_proc",
        runtime_binary_unreachable,
    ),
    (
        "security::cgroup_v2_device_program_denies_unlisted_devices",
        v2_device_program,
    ),
    (
        "security::microvm_annotations_cannot_read_host_files",
        microvm_host_files,
    ),
];

/// The cgroup v2 device program on its own: attached to a fresh cgroup2 directory, with the
/// test's v1 devices cgroup (if any) allowing everything, it alone must refuse /dev/zero
/// to a process in that cgroup and let /dev/null through; the same command outside the cgroup
/// opens both.
fn v2_device_program() -> R {
    let hierarchies = contain::cgroups::hierarchies().map_err(|e| e.to_string())?;
    let Some(v2) = hierarchies
        .iter()
        .find(|h| h.version == contain::cgroups::Version::V2)
    else {
        return skip("no cgroup v2 hierarchy on this host");
    };
    let dir = v2
        .mount
        .join(format!("contain-devtest-{}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let result = (|| -> R {
        contain::cgroups::devices::attach(
            &dir,
            &[(false, "a *:* rwm".into()), (true, "c 1:3 rw".into())],
        )?;
        let script = "echo x > /dev/null && echo null-ok; \
                      head -c1 /dev/zero > /dev/null 2>&1 && echo zero-ok || echo zero-denied";
        let procs = dir.join("cgroup.procs");
        let mut inside = std::process::Command::new("sh");
        inside.args(["-c", &format!("echo $$ > {} && {script}", procs.display())]);
        let o = inside.out();
        ensure!(
            o.stdout == "null-ok\nzero-denied\n",
            "in the cgroup: {:?} {}",
            o.stdout,
            o.stderr
        );
        let o = std::process::Command::new("sh").args(["-c", script]).out();
        ensure!(o.stdout == "null-ok\nzero-ok\n", "outside: {:?}", o.stdout);
        pass()
    })();
    // The shell has exited: the cgroup is empty and can go.
    for _ in 0..100 {
        if std::fs::remove_dir(&dir).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    result
}

fn expect_refused(b: &Bundle, what: &str, needle: &str) -> Result<(), libtest_mimic::Failed> {
    let rt = Runtime::new();
    let o = rt.run(b, "evil");
    ensure!(o.code != 0, "{what}: the container ran: {}", o.stdout);
    ensure!(
        o.stderr.contains(needle),
        "{what}: error {:?} does not mention {needle:?}",
        o.stderr
    );
    ensure!(
        o.stderr.lines().count() == 1,
        "{what}: not a one-line error: {:?}",
        o.stderr
    );
    rt.assert_clean(b, "evil")?;
    Ok(())
}

fn proc_symlink() -> R {
    let target = tempfile::tempdir()?;
    let mut b = Bundle::new();
    std::fs::remove_dir(b.rootfs().join("proc"))?;
    std::os::unix::fs::symlink(target.path(), b.rootfs().join("proc"))?;
    b.sh("true");
    expect_refused(&b, "symlinked /proc", "symlink")?;
    assert_untouched(target.path())?;
    pass()
}

fn dev_symlink() -> R {
    let target = tempfile::tempdir()?;
    let b = Bundle::new();
    std::fs::remove_dir(b.rootfs().join("dev"))?;
    std::os::unix::fs::symlink(target.path(), b.rootfs().join("dev"))?;
    expect_refused(&b, "symlinked /dev", "symlink")?;
    assert_untouched(target.path())?;
    pass()
}

fn bind_through_symlink() -> R {
    // /mnt in the image points at a host directory; a bind mount on /mnt/x must land inside
    // the rootfs (the link resolved as if the rootfs were /), never on the host path.
    let host_dir = tempfile::tempdir()?;
    let src = tempfile::tempdir()?;
    std::fs::write(src.path().join("marker"), "bound\n")?;
    let mut b = Bundle::new();
    std::os::unix::fs::symlink(host_dir.path(), b.rootfs().join("mnt"))?;
    b.set(|c| c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/mnt/x", "type": "bind", "source": src.path(), "options": ["bind", "ro"]})));
    b.sh("cat /mnt/x/marker");
    let rt = Runtime::new();
    let o = rt.run(&b, "c");
    ensure!(
        o.code == 0 && o.stdout == "bound\n",
        "run: {} {} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    assert_untouched(host_dir.path())?;
    let inside = b
        .rootfs()
        .join(host_dir.path().strip_prefix("/")?)
        .join("x");
    ensure!(
        inside.is_dir(),
        "mount point not created inside the rootfs at {}",
        inside.display()
    );
    pass()
}

fn without_dev_tmpfs(b: &mut Bundle) {
    b.set(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev")
    });
}

fn swapped_dev_null() -> R {
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "host secret\n")?;
    let mut b = Bundle::new();
    without_dev_tmpfs(&mut b);
    std::fs::write(b.rootfs().join("dev/null"), "not a device\n")?;
    b.sh("cat /proc/kcore");
    expect_refused(&b, "regular-file /dev/null", "not the null device")?;
    pass()
}

fn dev_null_symlink() -> R {
    let mut b = Bundle::new();
    without_dev_tmpfs(&mut b);
    std::os::unix::fs::symlink("/proc/self/attr/current", b.rootfs().join("dev/null"))?;
    b.sh("true");
    expect_refused(&b, "symlinked /dev/null", "not the null device")?;
    pass()
}

/// CVE-2025-52565: the runtime binds the pty on /dev/console; a /dev/console in the image
/// that is a symlink (to /proc/sys/kernel/core_pattern, whose bind would be writable from
/// the container), a directory or a FIFO is refused, not followed or mounted over.
fn dev_console_symlink() -> R {
    for (what, plant) in [("symlink", 0u8), ("directory", 1), ("FIFO", 2)] {
        let mut b = Bundle::new();
        without_dev_tmpfs(&mut b);
        b.set(|c| c["process"]["terminal"] = json!(true));
        let at = b.rootfs().join("dev/console");
        match plant {
            0 => std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", &at)?,
            1 => std::fs::create_dir(&at)?,
            _ => nix::unistd::mkfifo(&at, nix::sys::stat::Mode::from_bits_truncate(0o644))
                .map_err(|e| e.to_string())?,
        }
        b.sh("echo '|/tmp/evil' > /dev/console; cat /proc/sys/kernel/core_pattern");
        expect_refused(&b, &format!("{what} /dev/console"), "/dev/console")?;
    }
    pass()
}

/// CVE-2025-52881: config.json's mounts put a file over the procfs file a sysctl is written
/// to, so that a runtime writing through the container's /proc writes somewhere else (a host
/// file here; /proc/sys/kernel/core_pattern in the attack). A destination inside /proc is
/// refused as runc refuses it, by its path or, through a symlink in the rootfs, by what it
/// resolves to; and the sysctl itself is written through contain's own verified procfs
/// handle, opened before the container's mounts, so even a mount there could not redirect it.
fn sysctl_redirect() -> R {
    let decoy = tempfile::NamedTempFile::new()?;
    std::fs::write(decoy.path(), "decoy\n")?;
    let mut b = Bundle::new();
    let bind = |c: &mut serde_json::Value, dest: &str| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": dest, "type": "bind",
            "source": decoy.path(), "options": ["bind", "rw"]
        }));
        c["linux"]["readonlyPaths"] = json!([]);
    };
    b.set(|c| bind(c, "/proc/sys/net/ipv4/ip_forward"));
    b.sh("sleep 30");
    expect_refused(&b, "bind inside /proc", "inside /proc")?;

    // The same through a symlink in the image: /net -> /proc/sys/net/ipv4.
    let mut b = Bundle::new();
    std::os::unix::fs::symlink("/proc/sys/net/ipv4", b.rootfs().join("net"))?;
    b.set(|c| bind(c, "/net/ip_forward"));
    b.sh("sleep 30");
    expect_refused(&b, "bind through a symlink into /proc", "/proc")?;
    ensure!(
        std::fs::read_to_string(decoy.path())? == "decoy\n",
        "the sysctl was written to the file mounted over it"
    );

    // The sysctl lands in the container's network namespace.
    let mut b = Bundle::new();
    b.set(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    b.sh("sleep 30");
    let rt = Runtime::new();
    let o = rt.create(&b, "fw");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let pid = rt.state("fw").and_then(|s| s["pid"].as_i64()).unwrap_or(0);
    let real = std::process::Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["cat", "/proc/sys/net/ipv4/ip_forward"])
        .out();
    rt.exec(&["delete", "--force", "fw"]);
    ensure!(
        real.stdout.trim() == "1",
        "net.ipv4.ip_forward in the container's namespace: {:?} {}",
        real.stdout,
        real.stderr
    );
    pass()
}

fn cwd_leaked_fd() -> R {
    // CVE-2024-21626: a cwd of /proc/self/fd/N reached a host directory through a descriptor
    // the runtime leaked. No such descriptor exists in a contain init.
    let mut b = Bundle::new();
    for n in 3..10 {
        b.set(|c| c["process"]["cwd"] = json!(format!("/proc/self/fd/{n}")));
        b.sh("pwd; ls ..");
        let rt = Runtime::new();
        let o = rt.run(&b, "c");
        ensure!(o.code != 0, "cwd /proc/self/fd/{n} worked: {}", o.stdout);
        ensure!(
            o.stderr.contains("process.cwd"),
            "error does not name process.cwd: {}",
            o.stderr
        );
        rt.assert_clean(&b, "c")?;
    }
    pass()
}

fn escaping_paths() -> R {
    let mut b = Bundle::new();
    b.set(|c| c["process"]["cwd"] = json!("/../../../etc"));
    expect_refused(&b, "cwd with ..", "process.cwd")?;
    let mut b = Bundle::new();
    b.set(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/../../tmp/evil", "type": "tmpfs", "source": "tmpfs"}))
    });
    expect_refused(
        &b,
        "mount destination with ..",
        "leaves the container's root filesystem",
    )?;
    pass()
}

/// CVE-2019-5736: a process in the container opened /proc/<runtime pid>/exe and overwrote
/// the host's runc. contain never re-executes itself, and its processes are non-dumpable
/// until they exec: a container process that watches /proc while another container's init
/// (still the contain image, waiting for `start`) joins its pid namespace cannot open it.
fn runtime_binary_unreachable() -> R {
    let rt = Runtime::new();
    let mut a = Bundle::new();
    a.set(|c| c["root"]["readonly"] = json!(false));
    a.sh("for i in $(seq 1 40); do for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n = 1 ] && continue; [ $n = $$ ] && continue; \
          if [ -r $p/exe ] && head -c 4 $p/exe >/dev/null 2>&1; then cmp -s $p/exe /bin/busybox || echo LEAK $n >> /watch.log; \
          elif [ -e $p/stat ]; then echo DENIED $n >> /watch.log; fi; done; sleep 0.05; done; echo finished >> /watch.log; sleep 1000");
    ensure!(
        rt.cmd()
            .args(["run", "-d", "--bundle"])
            .arg(a.path())
            .arg("watcher")
            .status()?
            .success(),
        "watcher did not start"
    );
    let pid = rt.state("watcher").unwrap()["pid"].as_i64().unwrap();
    // A second container joins the watcher's pid namespace and stays "created".
    let mut b = Bundle::new();
    b.set(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
        ns.push(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")}));
    });
    b.sh("sleep 1000");
    let o = rt.create(&b, "joiner");
    ensure!(o.code == 0, "create joiner: {}", o.stderr);
    let log = a.rootfs().join("watch.log");
    for _ in 0..600 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("finished")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    ensure!(text.contains("finished"), "watcher did not finish: {text}");
    ensure!(
        !text.contains("LEAK"),
        "a container process opened a non-busybox exe: {text}"
    );
    ensure!(
        text.contains("DENIED"),
        "the watcher never saw the joining init (the test proves nothing): {text}"
    );
    pass()
}

/// The attack of the security review (issue 18, high): a bundle that asks for the microVM
/// stage and names a host file as its kernel or initramfs (a root-only file, /etc/shadow,
/// /proc/self/...) would have the runtime load it into guest memory, where the guest reads
/// it. A bundle may name only files in the operator's guest directory: absolute paths out of
/// it, `..`, symlinks leading out and magic links are refused, under every policy; a FIFO
/// there does not hang create. Each refusal leaves nothing behind.
fn microvm_host_files() -> R {
    if let Some(why) = kvm_missing() {
        return skip(why);
    }
    let pvh = build_guest(Guest::Pvh)?;
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "host secret\n")?;
    std::fs::set_permissions(
        secret.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    // A symlink and a FIFO planted in the guest directory itself.
    let dir = guest_dir();
    let tag = std::process::id();
    let link = dir.join(format!("evil-link-{tag}"));
    let fifo = dir.join(format!("evil-fifo-{tag}"));
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&fifo);
    std::os::unix::fs::symlink(secret.path(), &link)?;
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    let result = (|| {
        let secret_path = secret.path().to_string_lossy().into_owned();
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "kernel",
                "/etc/shadow".into(),
                "outside the operator's guest directory",
            ),
            (
                "initramfs",
                secret_path.clone(),
                "outside the operator's guest directory",
            ),
            (
                "initramfs",
                "/proc/self/cwd/etc/shadow".into(),
                "outside the operator's guest directory",
            ),
            (
                "initramfs",
                format!("../../../../../..{secret_path}"),
                "`..` is not allowed",
            ),
            (
                "initramfs",
                format!("{}/../../../../etc/shadow", dir.display()),
                "`..` is not allowed",
            ),
            (
                "initramfs",
                link.file_name().unwrap().to_string_lossy().into_owned(),
                "without leaving it",
            ),
            (
                "initramfs",
                fifo.to_string_lossy().into_owned(),
                "not a regular file",
            ),
        ];
        for policy in ["default", "strict", "runc"] {
            for (what, value, needle) in &cases {
                let mut b = Bundle::new();
                b.set(|c| {
                    c["annotations"] = serde_json::json!({
                        "io.contain.isolation": "microvm",
                        "io.contain.microvm.guest": "bare",
                        "io.contain.microvm.kernel": pvh,
                        "io.contain.microvm.cmdline": "probe.exit=0",
                    });
                    c["annotations"][format!("io.contain.microvm.{what}")] =
                        serde_json::json!(value);
                    c["linux"]["resources"] = serde_json::json!({"memory": {"limit": 16 << 20}});
                });
                let rt = Runtime::new();
                let started = std::time::Instant::now();
                let o = rt.with_policy(policy, "run", &b, "vmx");
                ensure!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "{policy}: {what} {value}: took {:?}",
                    started.elapsed()
                );
                ensure!(
                    o.code == 1
                        && o.messages().contains(needle)
                        && !o.stdout.contains("host secret"),
                    "{policy}: {what} {value}: exit {} {:?} {:?} (want {needle:?})",
                    o.code,
                    o.stdout,
                    o.stderr
                );
                rt.assert_clean(&b, "vmx")?;
            }
        }
        pass()
    })();
    let _ = std::fs::remove_file(&link);
    let _ = std::fs::remove_file(&fifo);
    result
}
