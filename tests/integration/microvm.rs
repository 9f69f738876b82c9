//! The microVM stage, end to end through `contain run` with probe guests the tests build
//! (tests/integration/probes/guest): each boot protocol, what the VMM hands over, the serial
//! console both ways, the exit port, kill, guests that halt, fault or flood, and the VMM's jail
//! read back from the host (its /proc status, its id map, and the seccomp programs the kernel
//! holds for each of its threads, run against the syscalls a hijacked VMM would make).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use contain::seccomp::bpf::{self, SeccompData};
use serde_json::{json, Value};

use crate::ensure;
use crate::util::*;

pub const TESTS: Tests = &[
    ("microvm::pvh_boot_hands_over_start_info", pvh_boot),
    ("microvm::bzimage_boot_hands_over_zero_page", bzimage_boot),
    ("microvm::serial_input_reaches_the_guest", serial_input),
    ("microvm::guest_uses_all_its_memory_in_its_cgroup", memory),
    (
        "microvm::vmm_is_jailed_and_kill_stops_it",
        jailed_and_killed,
    ),
    (
        "microvm::thread_filters_trap_with_a_status_and_let_the_allocator_work",
        thread_filters_trap,
    ),
    (
        "microvm::guest_that_halts_faults_or_times_out_ends",
        halts_and_faults,
    ),
    ("microvm::flooding_guest_is_contained", flood),
    ("microvm::bad_kernels_and_sizes_refused_cleanly", bad_input),
    ("microvm::podman_runs_a_microvm_unchanged", podman),
    (
        "microvm::linux_guest_agent_runs_the_process_under_qemu",
        agent_under_qemu,
    ),
    (
        "microvm::linux_guest_agent_runs_the_process_in_contain_vm",
        agent_in_vm,
    ),
    (
        "microvm::linux_guest_boots_through_contains_vmm_nested",
        nested_vmm,
    ),
    (
        "microvm::guest_disk_is_the_rootfs_as_linux_mounts_it",
        guest_disk,
    ),
];

/// `contain guest-disk` writes the erofs disk a block-rootfs guest reads; this host's kernel
/// mounts it (read-only, in a mount namespace of the test's own) and sees the bundle's rootfs:
/// the same bytes for a file served from its descriptor (busybox), owners, a symlink kept as
/// a link to a host file the disk does not hold, a device node, a FIFO, a large directory.
fn guest_disk() -> R {
    if !std::fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .contains("erofs")
    {
        return skip("this kernel has no erofs to mount the disk with");
    }
    let b = Bundle::new();
    let r = b.rootfs();
    std::os::unix::fs::symlink("/etc/shadow", r.join("host-link"))?;
    std::fs::write(r.join("etc/owned"), "owned\n")?;
    std::os::unix::fs::chown(r.join("etc/owned"), Some(1000), Some(44))?;
    std::fs::create_dir(r.join("many"))?;
    for i in 0..500 {
        std::fs::write(r.join(format!("many/entry-{i:04}")), "")?;
    }
    let o = std::process::Command::new("mknod")
        .arg(r.join("dev/null"))
        .args(["c", "1", "3"])
        .out();
    ensure!(o.code == 0, "mknod: {}", o.stderr);
    let o = std::process::Command::new("mkfifo")
        .arg(r.join("fifo"))
        .out();
    ensure!(o.code == 0, "mkfifo: {}", o.stderr);
    let disk = b.path().join("disk.img");
    let o = std::process::Command::new(CONTAIN)
        .args(["guest-disk", "--bundle"])
        .arg(b.path())
        .arg("--output")
        .arg(&disk)
        .out();
    ensure!(o.code == 0, "contain guest-disk: {} {}", o.code, o.stderr);
    let mnt = b.path().join("mnt");
    std::fs::create_dir(&mnt)?;
    let script = format!(
        "mount -t erofs -o loop,ro {disk} {mnt} || exit 10; cd {mnt}; \
         cmp bin/busybox {root}/bin/busybox && echo same-busybox; \
         stat -c 'owned %u:%g %s' etc/owned; readlink host-link; stat -c 'null %F %t:%T' dev/null; \
         stat -c 'fifo %F' fifo; echo many=$(ls many | wc -l); ls many | sort -c && echo sorted; \
         readlink bin/sh; touch x 2>&1 | grep -q Read-only && echo read-only",
        disk = disk.display(),
        mnt = mnt.display(),
        root = r.display()
    );
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .out();
    for want in [
        "same-busybox",
        "owned 1000:44 6",
        "/etc/shadow",
        "null character special file 1:3",
        "fifo fifo",
        "many=500",
        "sorted",
        "busybox",
        "read-only",
    ] {
        ensure!(
            o.stdout.lines().any(|l| l == want),
            "missing {want:?} from the mounted disk: {} {}",
            o.stdout,
            o.stderr
        );
    }
    pass()
}

/// What the microVM stage gives a Linux guest whose initramfs is the agent's, as a kernel
/// command line (DEFAULT_CMDLINE and the agent's words).
const AGENT_CMDLINE: &str =
    "console=ttyS0 reboot=t panic=-1 pci=off quiet rdinit=/.contain/init -- guest-agent";

/// A bundle whose process reports, from inside a Linux guest, what the agent gave it; its
/// rootfs holds a symlink to the host file `secret`, which must be archived as a link.
fn agent_bundle(secret: &std::path::Path) -> Result<Bundle, String> {
    let mut b = Bundle::new();
    std::os::unix::fs::symlink(secret, b.rootfs().join("host-secret"))
        .map_err(|e| e.to_string())?;
    b.set(|c| {
        c["hostname"] = json!("agentguest");
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [44]});
        c["process"]["cwd"] = json!("/tmp");
        c["process"]["env"] = json!(["PATH=/bin", "PROBE=agent"]);
        let kill = json!(["CAP_KILL"]);
        c["process"]["capabilities"] = json!({"bounding": kill, "permitted": kill});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64}]);
    });
    b.sh(AGENT_SCRIPT);
    Ok(b)
}

/// What agent_bundle's process runs in the guest.
const AGENT_SCRIPT: &str =
    "echo host=$(hostname) ids=$(id -u):$(id -g):$(id -G | tr ' ' ,) cwd=$(pwd) env=$PROBE \
     nofile=$(ulimit -n); grep CapBnd /proc/self/status; \
     echo init=$(tr '\\0' ' ' < /proc/1/cmdline); ls /.contain 2>&1 | head -1; \
     cat /host-secret 2>&1; echo devtmpfs=$(grep -c '^devtmpfs /dev ' /proc/mounts); exit 7";

/// What agent_bundle's process must report (the console may add carriage returns).
fn check_agent_output(out: &str) -> Result<(), libtest_mimic::Failed> {
    let out = out.replace('\r', "");
    for want in [
        "host=agentguest ids=1000:1000:1000,44 cwd=/tmp env=agent nofile=64",
        "CapBnd:\t0000000000000020",
        "init=/.contain/init guest-agent",
        "/.contain: No such file or directory",
        "devtmpfs=1",
    ] {
        ensure!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The link was archived as a link: in the guest it names a file the guest does not have.
    ensure!(!out.contains("host secret"), "the host file leaked:\n{out}");
    ensure!(
        out.contains("can't open '/host-secret': No such file or directory"),
        "{out}"
    );
    Ok(())
}

/// Boot `kernel` with `initrd` under QEMU's software emulation, with its isa-debug-exit
/// device on the exit port; the guest's status N comes back as QEMU's (N << 1) | 1.
fn qemu_boot(
    qemu: &std::path::Path,
    kernel: &std::path::Path,
    initrd: &std::path::Path,
) -> Result<(i32, String), String> {
    let o = std::process::Command::new("timeout")
        .arg("300")
        .arg(qemu)
        .args(["-accel", "tcg", "-m", "256", "-nodefaults", "-no-reboot"])
        .args(["-display", "none", "-serial", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x01"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", AGENT_CMDLINE])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", qemu.display()))?;
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    Ok((o.status.code().unwrap_or(-1), text))
}

/// The agent on a real Linux kernel: `contain guest-initramfs` builds the archive the stage
/// boots, and QEMU (software emulation, so any machine) boots it with Debian's kernel.
fn agent_under_qemu() -> R {
    let Some(qemu) = which("qemu-system-x86_64") else {
        return skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    };
    let kernel = match linux_kernel() {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "host secret\n")?;
    let mut b = agent_bundle(secret.path())?;
    let initrd = b.path().join("guest.cpio");
    let build = |b: &Bundle| -> Result<(), String> {
        let o = std::process::Command::new(CONTAIN)
            .args(["guest-initramfs", "--bundle"])
            .arg(b.path())
            .arg("--output")
            .arg(&initrd)
            .out();
        if o.code == 0 {
            Ok(())
        } else {
            Err(format!("contain guest-initramfs: {} {}", o.code, o.stderr))
        }
    };
    build(&b)?;
    let (code, out) = qemu_boot(&qemu, &kernel, &initrd)?;
    ensure!(
        code == (7 << 1) | 1,
        "QEMU exit {code} (want 15, the guest's 7):\n{out}"
    );
    check_agent_output(&out)?;
    // A process that cannot start: the agent says why and reports 127, as runc's init would.
    b.set(|c| c["process"]["args"] = json!(["no-such-program"]));
    build(&b)?;
    let (code, out) = qemu_boot(&qemu, &kernel, &initrd)?;
    ensure!(
        code == (127 << 1) | 1 && out.contains("no-such-program"),
        "QEMU exit {code} (want 255, the agent's 127):\n{out}"
    );
    pass()
}

/// The same guest through `contain run`, where KVM can boot Linux.
fn agent_in_vm() -> R {
    if let Some(why) = kvm_missing() {
        return skip(why);
    }
    let kernel = match linux_kernel() {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    // Decided from the host, not from `contain features` (the product under test).
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        return skip_known(
            "/dev/kvm is kvm_pvm (nested paravirtual KVM), which cannot boot an unmodified Linux; \
             linux_guest_agent_runs_the_process_under_qemu boots this guest one level down instead",
        );
    }
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "host secret\n")?;
    let mut b = agent_bundle(secret.path())?;
    b.set(|c| {
        c["annotations"] = json!({
            "io.contain.isolation": "microvm",
            "io.contain.microvm.kernel": kernel,
            "io.contain.microvm.timeout": "120",
        });
        c["linux"]["resources"] = json!({"memory": {"limit": 256 * MIB}});
    });
    let rt = Runtime::new();
    let o = rt.run(&b, "agent");
    ensure!(
        o.code == 7,
        "exit {} (want 7): {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    check_agent_output(&o.stdout)?;
    rt.assert_clean(&b, "agent")?;
    pass()
}

/// podman (through conmon) drives the stage with nothing but annotations and --memory: the
/// guest's output is the container's, its exit status podman's.
fn podman() -> R {
    let kernel = match guest(Guest::Pvh) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let Some(podman) = which("podman") else {
        return skip("podman is not installed (apt-get install podman)");
    };
    // podman hands contain no environment of ours: the guest goes where an operator puts
    // guests, the default guest directory, under a name of this run's own.
    let installed = Path::new(contain::microvm::GUEST_DIR)
        .join(format!("contain-test-{}-guest.elf", std::process::id()));
    std::fs::create_dir_all(contain::microvm::GUEST_DIR)?;
    std::fs::copy(&kernel, &installed)?;
    let result = podman_with_guest(&podman, &installed);
    let _ = std::fs::remove_file(&installed);
    result
}

fn podman_with_guest(podman: &Path, kernel: &Path) -> R {
    let b = Bundle::new();
    let image = format!("localhost/contain-vm-{}:latest", std::process::id());
    podman_import(podman, &b, &image)?;
    let o = std::process::Command::new(podman)
        .args([
            "--runtime",
            CONTAIN,
            "--cgroup-manager",
            "cgroupfs",
            "run",
            "--rm",
        ])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "-m",
            "32m",
        ])
        .args(["--annotation", "io.contain.isolation=microvm"])
        .arg(format!(
            "--annotation=io.contain.microvm.kernel={}",
            kernel.display()
        ))
        .args(["--annotation", "io.contain.microvm.guest=bare"])
        .args(["--annotation", "io.contain.microvm.cmdline=probe.exit=5"])
        .args([&image, "/bin/true"])
        .out();
    let _ = std::process::Command::new(podman)
        .args(["rmi", "-f", &image])
        .out();
    ensure!(
        o.code == 5
            && o.stdout.contains("probe: boot=pvh")
            && o.stdout
                .contains(&format!("probe: e820 0x100000 {:#x} 1", 32 * MIB - MIB)),
        "podman run: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    pass()
}

const MIB: u64 = 1 << 20;

/// A bundle that asks for the microVM stage with the probe `kernel` (a bare guest),
/// `cmdline` and `memory` bytes.
fn vm_bundle(kernel: &std::path::Path, cmdline: &str, memory: u64) -> Bundle {
    let mut b = Bundle::new();
    b.set(|c| {
        c["annotations"] = json!({
            "io.contain.isolation": "microvm",
            "io.contain.microvm.guest": "bare",
            "io.contain.microvm.kernel": kernel,
            "io.contain.microvm.cmdline": cmdline,
        });
        c["linux"]["resources"] = json!({"memory": {"limit": memory}});
    });
    b
}

/// The guest, or why this test cannot run.
fn guest(kind: Guest) -> Result<std::path::PathBuf, String> {
    if let Some(why) = kvm_missing() {
        return Err(why);
    }
    build_guest(kind)
}

fn fnv1a(data: &[u8]) -> u32 {
    data.iter().fold(2_166_136_261u32, |h, b| {
        (h ^ *b as u32).wrapping_mul(16_777_619)
    })
}

/// What every probe reports about memory: the e820 map the VMM built for `memory` bytes.
fn check_memory(out: &str, memory: u64) -> Result<(), libtest_mimic::Failed> {
    let want = [
        "probe: e820 0x0 0x9fc00 1".to_string(),
        "probe: e820 0x9fc00 0x60400 2".to_string(),
        format!("probe: e820 0x100000 {:#x} 1", memory - MIB),
        format!("probe: ram={}", 0x9fc00 + memory - MIB),
    ];
    for w in &want {
        ensure!(out.lines().any(|l| l == w), "missing {w:?} in:\n{out}");
    }
    Ok(())
}

/// Boot the probe `kind` as a `machine` guest (bare, or linux: with an interrupt controller
/// and a PIT) with an initramfs of its own, and check what it reports.
fn boot_test(kind: Guest, machine: &str, what: &[&str]) -> R {
    let kernel = match guest(kind) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let initrd = guest_file()?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    std::fs::write(initrd.path(), &data)?;
    let memory = 48 * MIB;
    let cmdline = "console=ttyS0 probe.exit=42 probe.badio probe.pit probe.smp";
    let mut b = vm_bundle(&kernel, cmdline, memory);
    b.set(|c| {
        c["annotations"]["io.contain.microvm.initramfs"] = json!(initrd.path());
        c["annotations"]["io.contain.microvm.guest"] = json!(machine);
        // Two vCPUs asked for: a linux machine has them (in its MP table), a bare one runs one.
        c["linux"]["resources"]["cpu"] = json!({"quota": 150000, "period": 100000});
    });
    let rt = Runtime::new();
    let o = rt.run(&b, "vm");
    ensure!(
        o.code == 42,
        "exit {} (want the guest's 42): {}{}",
        o.code,
        o.stdout,
        o.stderr
    );
    for w in what {
        ensure!(o.stdout.contains(w), "missing {w:?} in:\n{}", o.stdout);
    }
    check_memory(&o.stdout, memory)?;
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("probe: initramfs"))
        .ok_or("no initramfs line")?;
    let want = format!("size={} fnv={:#x}", data.len(), fnv1a(&data));
    ensure!(line.ends_with(&want), "{line:?}, want {want:?}");
    // The initramfs sits page-aligned at the top of RAM, above the kernel.
    let addr = line
        .split("addr=0x")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or("no initramfs address")?;
    ensure!(
        addr % 4096 == 0 && addr + data.len() as u64 <= memory && addr > MIB,
        "initramfs at {addr:#x}"
    );
    // The command line is the one given: an initramfs of the guest's own means no agent.
    ensure!(
        o.stdout.contains(&format!("probe: cmdline={cmdline}\n")),
        "{}",
        o.stdout
    );
    // A linux machine has KVM's PIT counting down from what the probe loaded; a bare one
    // has none, and the port reads as all ones.
    let pit = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("probe: pit counter=0x"))
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or("no pit line")?;
    let mptable = match machine {
        "linux" => {
            ensure!(pit > 0 && pit <= 0x1234, "PIT counter {pit:#x}");
            "probe: mptable cpus=2 bsp=0 ioapic=0xfec00000 irqs=16 checksums=ok\nprobe: smp started=1 of 1"
        }
        _ => {
            ensure!(pit == 0xffff, "a bare machine answered the PIT: {pit:#x}");
            "probe: mptable none"
        }
    };
    ensure!(
        o.stdout.contains(mptable),
        "missing {mptable:?} in:\n{}",
        o.stdout
    );
    // Unknown ports and MMIO read as all ones and the VMM goes on.
    ensure!(
        o.stdout.contains("probe: port 0x60 reads 0xff"),
        "{}",
        o.stdout
    );
    ensure!(
        o.stdout.contains("probe: mmio reads 0xffffffff"),
        "{}",
        o.stdout
    );
    rt.assert_clean(&b, "vm")?;
    pass()
}

fn pvh_boot() -> R {
    boot_test(
        Guest::Pvh,
        "bare",
        &["probe: boot=pvh", "probe: start_info version=1 modules=1"],
    )
}

fn bzimage_boot() -> R {
    boot_test(
        Guest::BzImage,
        "linux",
        &[
            "probe: boot=linux64",
            "probe: boot_protocol=0x20f loader=0xff",
        ],
    )
}

fn serial_input() -> R {
    let kernel = match guest(Guest::Pvh) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let b = vm_bundle(&kernel, "probe.echo", 16 * MIB);
    let rt = Runtime::new();
    let mut child = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("vm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or("stdin")?
        .write_all(b"hello from the host\n")?;
    let o: Out = child.wait_with_output()?.into();
    ensure!(o.code == 0, "exit {}: {}", o.code, o.stderr);
    ensure!(
        o.stdout.contains("hello from the host\nprobe: echoed"),
        "the guest did not read the input back:\n{}",
        o.stdout
    );
    pass()
}

fn memory() -> R {
    let kernel = match guest(Guest::Pvh) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let memory = 40 * MIB;
    let b = vm_bundle(&kernel, "probe.touch", memory);
    let rt = Runtime::new();
    let o = rt.create(&b, "vm");
    ensure!(o.code == 0, "create: {}", o.stderr);
    // The cgroup holds the guest's RAM and the VMM's allowance (v1 or v2, whichever has memory).
    let rel = b.cgroup_rel();
    let limit = [
        "memory/{}/memory.limit_in_bytes",
        "unified/{}/memory.max",
        "{}/memory.max",
    ]
    .iter()
    .map(|f| format!("/sys/fs/cgroup/{}", f.replace("{}", &rel)))
    .find_map(|f| std::fs::read_to_string(f).ok())
    .ok_or("no memory cgroup for the container")?;
    let want = memory + contain::microvm::VMM_ALLOWANCE as u64;
    ensure!(
        limit.trim() == want.to_string(),
        "cgroup limit {limit:?}, want {want}"
    );
    let out = tempfile::NamedTempFile::new()?;
    ensure!(rt.exec(&["delete", "--force", "vm"]).code == 0, "delete");
    let st = rt
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg("vm")
        .stdout(out.reopen()?)
        .status()?;
    let text = std::fs::read_to_string(out.path())?;
    let pages = (memory - 4 * MIB) / 4096;
    ensure!(
        st.code() == Some(0) && text.contains(&format!("probe: touched {pages} pages, 0 bad")),
        "exit {:?}:\n{text}",
        st.code()
    );
    rt.assert_clean(&b, "vm")?;
    pass()
}

/// The seccomp program the kernel holds for thread `tid` (the newest one), read with
/// PTRACE_SECCOMP_GET_FILTER.
fn installed_filter(tid: i32) -> Result<Vec<bpf::Insn>, String> {
    const PTRACE_SEIZE: libc::c_uint = 0x4206;
    const PTRACE_INTERRUPT: libc::c_uint = 0x4207;
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    let err = |what: &str| format!("{what} {tid}: {}", std::io::Error::last_os_error());
    // SAFETY: ptrace requests on a thread id, no memory passed.
    if unsafe { libc::ptrace(PTRACE_SEIZE, tid, 0, 0) } != 0 {
        return Err(err("PTRACE_SEIZE"));
    }
    let result = (|| {
        // SAFETY: as above.
        if unsafe { libc::ptrace(PTRACE_INTERRUPT, tid, 0, 0) } != 0 {
            return Err(err("PTRACE_INTERRUPT"));
        }
        let mut st = 0;
        // SAFETY: waits for the thread we seized; `st` outlives the call.
        unsafe { libc::waitpid(tid, &mut st, libc::__WALL) };
        // SAFETY: with a null buffer the kernel returns the program's length only.
        let n = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, 0, 0) };
        if n <= 0 {
            return Err(err("PTRACE_SECCOMP_GET_FILTER"));
        }
        let mut prog = vec![
            bpf::Insn {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0
            };
            n as usize
        ];
        // SAFETY: `prog` has room for the `n` sock_filter-layout instructions the kernel writes.
        let m = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, tid, 0, prog.as_mut_ptr()) };
        if m != n {
            return Err(err("PTRACE_SECCOMP_GET_FILTER"));
        }
        Ok(prog)
    })();
    // SAFETY: detaching a thread we seized.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, tid, 0, 0) };
    result
}

const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const TRAP: u32 = 0x0003_0000;
const ALLOW: u32 = 0x7fff_0000;
const KVM_RUN: u64 = 0xae80;
const KVM_CREATE_VM: u64 = 0xae01;
const KVM_SET_USER_MEMORY_REGION: u64 = 0x4020_ae46;

fn verdict(prog: &[bpf::Insn], arch: u32, nr: i64, args: [u64; 6]) -> Result<u32, String> {
    bpf::run(
        prog,
        &SeccompData {
            nr: nr as u32,
            arch,
            ip: 0,
            args,
        },
    )
}

fn jailed_and_killed() -> R {
    let kernel = match guest(Guest::BzImage) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    // A linux machine (interrupt controller, PIT) with two vCPUs: a thread and a filter each.
    let initrd = guest_file()?;
    std::fs::write(initrd.path(), b"initramfs")?;
    let mut b = vm_bundle(&kernel, "probe.loop", 16 * MIB);
    b.set(|c| {
        c["annotations"]["io.contain.microvm.guest"] = json!("linux");
        c["annotations"]["io.contain.microvm.initramfs"] = json!(initrd.path());
        c["linux"]["resources"]["cpu"] = json!({"quota": 200000, "period": 100000});
    });
    let rt = Runtime::new();
    let o = rt.create(&b, "vm");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let state = rt.state("vm").ok_or("no state")?;
    let iso = state["annotations"]["io.contain.isolation"]
        .as_str()
        .unwrap_or("");
    ensure!(
        iso.starts_with("microvm: linux guest, bzImage") && iso.contains("16 MiB, 2 vCPUs"),
        "state says {iso:?}"
    );
    ensure!(
        state["annotations"]["io.contain.seccomp"]
            .as_str()
            .is_some_and(|s| s.contains("vcpu thread")),
        "{state}"
    );
    ensure!(rt.exec(&["start", "vm"]).code == 0, "start");
    // A guest of its own runs no agent: exec has nothing to start a process with (and never
    // puts one on the host kernel beside the VMM).
    let o = rt.exec(&["exec", "vm", "/bin/true"]);
    exec_fails_with(&o, "does not run contain's guest agent")?;
    let pid = state["pid"].as_i64().ok_or("no pid")? as i32;
    // The guest is running once it has said so; it never exits by itself.
    std::thread::sleep(std::time::Duration::from_millis(300));
    ensure!(rt.status("vm") == "running", "{}", rt.status("vm"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for (field, want) in [
        ("Seccomp", "2"),
        ("NoNewPrivs", "1"),
        ("CapEff", "0000000000000000"),
        ("CapPrm", "0000000000000000"),
        ("CapBnd", "0000000000000000"),
    ] {
        ensure!(
            status_field(&status, field) == Some(want),
            "VMM {field}: {:?}, want {want}",
            status_field(&status, field)
        );
    }
    let uid_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map"))?;
    let host_uid: u64 = uid_map
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("uid_map")?;
    ensure!(host_uid != 0, "the VMM's root is host root: {uid_map}");
    // Each thread kind's program, as the kernel holds it, against what a hijacked VMM does.
    let mut kinds = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let t = t?;
        let tid: i32 = t.file_name().to_string_lossy().parse()?;
        let comm = std::fs::read_to_string(t.path().join("comm"))?;
        let kind = match comm.trim() {
            "vcpu0" | "vcpu1" => "vcpu",
            "contain" => "vmm",
            _ => continue, // KVM's own kernel workers
        };
        let tstatus = std::fs::read_to_string(t.path().join("status"))?;
        ensure!(
            status_field(&tstatus, "Seccomp_filters") == Some("1"),
            "{kind} thread: {:?} filters",
            status_field(&tstatus, "Seccomp_filters")
        );
        let prog = installed_filter(tid)?;
        let v = |nr: i64, args: [u64; 6]| verdict(&prog, AUDIT_ARCH_X86_64, nr, args);
        let exec = libc::PROT_READ as u64 | libc::PROT_EXEC as u64;
        for (name, nr, args) in [
            ("openat", libc::SYS_openat, [0; 6]),
            ("execve", libc::SYS_execve, [0; 6]),
            ("socket", libc::SYS_socket, [0; 6]),
            ("mmap PROT_EXEC", libc::SYS_mmap, [0, 4096, exec, 0, 0, 0]),
            (
                "mprotect PROT_EXEC",
                libc::SYS_mprotect,
                [0, 4096, exec, 0, 0, 0],
            ),
            ("clone", libc::SYS_clone, [0; 6]),
            ("ptrace", libc::SYS_ptrace, [0; 6]),
            ("file_setattr (the newest in the table)", 469, [0; 6]),
            ("a syscall newer than the table", 600, [0; 6]),
        ] {
            let got = v(nr, args)?;
            ensure!(
                got == TRAP,
                "{kind} thread: {name} does not trap ({}); program:\n{}",
                bpf::action_name(got),
                bpf::disassemble(&prog)
            );
        }
        ensure!(
            verdict(&prog, AUDIT_ARCH_I386, 11, [0; 6])? == TRAP,
            "{kind} thread: the 32-bit ABI is not fatal"
        );
        let ioctl = |cmd| v(libc::SYS_ioctl, [5, cmd, 0, 0, 0, 0]);
        match kind {
            "vcpu" => {
                ensure!(ioctl(KVM_RUN)? == ALLOW, "vcpu thread: KVM_RUN refused");
                ensure!(
                    v(libc::SYS_write, [1, 0, 0, 0, 0, 0])? == ALLOW,
                    "vcpu: write"
                );
                for cmd in [KVM_CREATE_VM, KVM_SET_USER_MEMORY_REGION, KVM_RUN | 1 << 32] {
                    ensure!(ioctl(cmd)? == TRAP, "vcpu thread: ioctl {cmd:#x} allowed");
                }
            }
            _ => {
                ensure!(ioctl(KVM_RUN)? == TRAP, "vmm thread: ioctl allowed");
                ensure!(
                    v(libc::SYS_read, [0; 6])? == ALLOW,
                    "vmm thread: read refused"
                );
            }
        }
        kinds.push(kind);
    }
    kinds.sort();
    ensure!(kinds == ["vcpu", "vcpu", "vmm"], "threads seen: {kinds:?}");
    // The live audit names the stage.
    let o = rt.exec(&["audit", "vm", "--format", "json"]);
    ensure!(o.code == 0, "audit: {}", o.stderr);
    let report: Value = serde_json::from_str(&o.stdout)?;
    ensure!(
        report["enforced"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["layer"] == "isolation")),
        "live audit: {report}"
    );
    // The guest still runs after the inspection; SIGTERM ends the VM.
    ensure!(rt.status("vm") == "running", "stopped by the inspection");
    ensure!(rt.exec(&["kill", "vm", "TERM"]).code == 0, "kill");
    ensure!(rt.wait_status("vm", "stopped"), "{}", rt.status("vm"));
    ensure!(rt.exec(&["delete", "vm"]).code == 0, "delete");
    rt.assert_clean(&b, "vm")?;
    pass()
}

fn halts_and_faults() -> R {
    let kernel = match guest(Guest::Pvh) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let rt = Runtime::new();
    let o = rt.run(&vm_bundle(&kernel, "probe.halt", 16 * MIB), "h");
    ensure!(o.code == 112, "halt: exit {} {}", o.code, o.stderr);
    // A guest that never ends is ended at io.contain.microvm.timeout.
    let mut b = vm_bundle(&kernel, "probe.loop", 16 * MIB);
    b.set(|c| c["annotations"]["io.contain.microvm.timeout"] = json!("1"));
    let t = std::time::Instant::now();
    let o = rt.run(&b, "l");
    ensure!(
        o.code == 124 && o.stderr.contains("timeout passed") && t.elapsed().as_secs_f64() < 5.0,
        "timeout: exit {} after {:?}: {}",
        o.code,
        t.elapsed(),
        o.stderr
    );
    // A triple fault is a shutdown (113); kvm_pvm reports it as an emulation failure, which
    // is the VMM-failed status (114), with the reason on stderr.
    let o = rt.run(&vm_bundle(&kernel, "probe.triple", 16 * MIB), "t");
    let pvm = std::path::Path::new("/sys/module/kvm_pvm").exists();
    ensure!(
        o.code == 113 || (pvm && o.code == 114 && o.stderr.contains("KVM internal error")),
        "triple fault: exit {} {}",
        o.code,
        o.stderr
    );
    pass()
}

fn flood() -> R {
    let kernel = match guest(Guest::Pvh) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let b = vm_bundle(&kernel, "probe.flood", 16 * MIB);
    let rt = Runtime::new();
    let mut c = rt.cmd();
    c.args(["create", "--bundle"]).arg(b.path()).arg("vm");
    // The console goes nowhere as fast as it can (stderr in a file: a pipe would stay open
    // in the VMM).
    let err = tempfile::NamedTempFile::new()?;
    let st = c.stdout(Stdio::null()).stderr(err.reopen()?).status()?;
    ensure!(
        st.success(),
        "create: {}",
        std::fs::read_to_string(err.path())?
    );
    ensure!(rt.exec(&["start", "vm"]).code == 0, "start");
    let pid = rt
        .state("vm")
        .and_then(|s| s["pid"].as_i64())
        .ok_or("pid")?;
    let rss = || -> Result<u64, libtest_mimic::Failed> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Ok(status_field(&s, "VmRSS")
            .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
            .ok_or("VmRSS")?)
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let first = rss()?;
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let second = rss()?;
    ensure!(rt.status("vm") == "running", "{}", rt.status("vm"));
    ensure!(
        second <= first + 256,
        "the VMM grew from {first} kB to {second} kB while the guest flooded the console"
    );
    ensure!(rt.exec(&["kill", "vm", "KILL"]).code == 0, "kill");
    ensure!(rt.wait_status("vm", "stopped"), "{}", rt.status("vm"));
    ensure!(rt.exec(&["delete", "vm"]).code == 0, "delete");
    rt.assert_clean(&b, "vm")?;
    pass()
}

fn bad_input() -> R {
    if let Some(why) = kvm_missing() {
        return skip(why);
    }
    let elf_without_note = build_probe("syscalls").map_err(|e| e.to_string())?;
    let pvh = build_guest(Guest::Pvh)?;
    let not_kernel = guest_file()?;
    std::fs::write(not_kernel.path(), b"#!/bin/sh\necho not a kernel\n")?;
    let big = guest_file()?;
    big.as_file().set_len(6 << 20)?;
    let truncated = guest_file()?;
    std::fs::write(truncated.path(), &std::fs::read(&pvh)?[..200])?;
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "no kernel",
            Box::new(|c| {
                c["annotations"]
                    .as_object_mut()
                    .unwrap()
                    .remove("io.contain.microvm.kernel");
            }),
            "needs a guest kernel",
        ),
        (
            "missing kernel",
            Box::new(|c| {
                c["annotations"]["io.contain.microvm.kernel"] = json!("/nonexistent/vmlinux")
            }),
            "outside the operator's guest directory",
        ),
        (
            "kernel not in the guest directory",
            Box::new(|c| c["annotations"]["io.contain.microvm.kernel"] = json!("no-such-vmlinux")),
            "no-such-vmlinux (named by the bundle): No such file",
        ),
        (
            "not a kernel",
            Box::new(move |c| {
                c["annotations"]["io.contain.microvm.kernel"] = json!(not_kernel.path())
            }),
            "not a kernel this VMM boots",
        ),
        (
            "ELF without a PVH note",
            Box::new(move |c| {
                c["annotations"]["io.contain.microvm.kernel"] = json!(elf_without_note)
            }),
            "no PVH entry note",
        ),
        (
            "truncated ELF",
            Box::new(move |c| {
                c["annotations"]["io.contain.microvm.kernel"] = json!(truncated.path())
            }),
            "load the ELF (PVH entry) kernel",
        ),
        (
            "memory too large",
            Box::new(|c| c["linux"]["resources"]["memory"]["limit"] = json!(4u64 << 30)),
            "guest memory must be between",
        ),
        (
            "initramfs too large for memory",
            Box::new(move |c| {
                c["linux"]["resources"]["memory"]["limit"] = json!(4u64 << 20);
                c["annotations"]["io.contain.microvm.initramfs"] = json!(big.path());
            }),
            "does not fit in guest memory",
        ),
        (
            "Linux guest's rootfs and agent larger than half its memory",
            Box::new(|c| {
                c["linux"]["resources"]["memory"]["limit"] = json!(8u64 << 20);
                c["annotations"]["io.contain.microvm.guest"] = json!("linux");
            }),
            "the initramfs would exceed 4 MiB",
        ),
        (
            "unknown guest kind",
            Box::new(|c| c["annotations"]["io.contain.microvm.guest"] = json!("windows")),
            "the values are \"linux\" and \"bare\"",
        ),
        (
            "bad timeout",
            Box::new(|c| c["annotations"]["io.contain.microvm.timeout"] = json!("soon")),
            "not a whole number of seconds",
        ),
        (
            "unknown isolation",
            Box::new(|c| c["annotations"]["io.contain.isolation"] = json!("vm")),
            "the values are \"container\" and \"microvm\"",
        ),
    ];
    for (what, change, needle) in cases {
        let mut b = vm_bundle(&pvh, "probe.exit=0", 16 * MIB);
        b.set(|c| change(c));
        let rt = Runtime::new();
        let o = rt.run(&b, "bad");
        ensure!(
            o.code == 1 && o.messages().contains(needle),
            "{what}: exit {}, stderr {:?} (want {needle:?})",
            o.code,
            o.stderr
        );
        ensure!(!o.stderr.contains("panicked"), "{what}: panic");
        rt.assert_clean(&b, "bad")?;
    }
    pass()
}

/// The environment variable that makes the test binary run [`filtered_thread`].
pub const FILTERED_THREAD_ENV: &str = "CONTAIN_TEST_VMM_THREAD";

/// In a child process of the test binary ("KIND ACTION"): put the main thread under the VMM's
/// filter of KIND as the VMM does (SIGSYS handler, allocate, install), allocate 64 MiB (mmap
/// and munmap), then ACTION: `none`, `open` (openat), `abort`, or `exec-map` (mmap with
/// PROT_EXEC). Never returns.
pub fn filtered_thread(spec: &str) -> ! {
    let (kind, action) = spec.split_once(' ').unwrap_or((spec, "none"));
    let kind = if kind == "vcpu" {
        contain::microvm::ThreadKind::Vcpu
    } else {
        contain::microvm::ThreadKind::Vmm
    };
    let filter = contain::microvm::thread_filter(kind).expect("filter");
    contain::microvm::install_sigsys_handler().expect("handler");
    contain::microvm::enter_filter(&filter).expect("install");
    let big = std::hint::black_box(vec![1u8; 64 << 20]);
    drop(big);
    match action {
        "open" => drop(std::fs::File::open("/etc/hostname")),
        "abort" => std::process::abort(),
        "exec-map" => {
            // SAFETY: an anonymous mapping nobody uses; the filter traps the call.
            unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_EXEC,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
        }
        _ => {}
    }
    std::process::exit(0)
}

/// Issue 22, defect 4: each thread kind's filter, installed as the VMM installs it, lets the
/// allocator work (64 MiB mapped and unmapped) and abort(3) end the process with SIGABRT;
/// a refused syscall (openat, an executable mapping) is not executed and ends the process
/// with status 115 and its number on stderr, instead of a silent SIGSYS.
fn thread_filters_trap() -> R {
    use std::os::unix::process::ExitStatusExt;
    let me = std::env::current_exe()?;
    for kind in ["vcpu", "vmm"] {
        let run = |action: &str| {
            std::process::Command::new(&me)
                .env(FILTERED_THREAD_ENV, format!("{kind} {action}"))
                .output()
        };
        let o = run("none")?;
        ensure!(
            o.status.code() == Some(0),
            "{kind}: allocating under the filter: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        let o = run("abort")?;
        ensure!(
            o.status.signal() == Some(libc::SIGABRT),
            "{kind}: abort: {:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        for (action, nr) in [("open", libc::SYS_openat), ("exec-map", libc::SYS_mmap)] {
            let o = run(action)?;
            let err = String::from_utf8_lossy(&o.stderr);
            ensure!(
                o.status.code() == Some(115)
                    && err.contains(&format!("syscall {nr} refused by the VMM's seccomp filter")),
                "{kind}: {action}: {:?} {err:?}",
                o.status
            );
        }
    }
    pass()
}

/// The outer VM's init for [`nested_vmm`]: move to a tmpfs (pivot_root cannot leave an
/// initramfs), load KVM for the emulated AMD SVM, and run the two bundles in the microVM
/// stage: /bundle with the rootfs in the agent's initramfs, /block with it on virtio-blk
/// (a 1 GiB file added to its rootfs here: the archive stays small).
const NESTED_INIT: &str = r#"#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin
if [ ! -e /stage2 ]; then
  mount -t tmpfs -o size=1200m tmpfs /mnt
  for d in bin contain modules guest bundle block exec plain net init usr lib lib64 etc podman.tar; do cp -a /$d /mnt/; done
  mkdir -p /mnt/proc /mnt/sys /mnt/dev /mnt/tmp /mnt/run /mnt/mnt /mnt/var/tmp /mnt/var/lib
  touch /mnt/stage2
  exec switch_root /mnt /init
fi
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts -o ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
echo "+memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
(while true; do sleep 20; echo heartbeat; done) &
# kvm-amd without vGIF: QEMU's emulation of it was suspected when the VM hung (see outer_vm).
for m in irqbypass ccp kvm kvm-amd veth llc stp bridge; do
  opt=; [ $m = kvm-amd ] && opt=vgif=0
  insmod /modules/$m.ko $opt || echo "NESTED: insmod $m failed"
done
echo "NESTED: $(ls /dev/kvm 2>&1)"
truncate -s 1G /block/rootfs/big
export CONTAIN_GUEST_DIR=/guest
up() { cut -d' ' -f1 /proc/uptime; }
ms() { echo "$1 $2" | awk '{printf "%d", ($2 - $1) * 1000}'; }
# Run bundle $1 with stdin from $2; its stdout and stderr apart (the text before a
# process's bulk output of zeros, the size of that output).
runb() {
  start=$(up)
  timeout -s KILL 200 /contain --root /run/contain --policy runc run --bundle /$1 $1 < $2 > /tmp/$1.out 2> /tmp/$1.err &
  pid=$!
  (while kill -0 $pid 2>/dev/null; do sleep 10; echo "progress: $1 $(stat -c %s /tmp/$1.out) $(stat -c %s /tmp/$1.err)"; done) &
  while [ ! -s /tmp/$1.out ] && [ ! -s /tmp/$1.err ] && kill -0 $pid 2>/dev/null; do usleep 5000; done
  first=$(up)
  wait $pid
  code=$?
  end=$(up)
  head -c 100000 /tmp/$1.out | tr -d '\0'
  sed 's/^/stderr: /' /tmp/$1.err
  echo "NESTED: $1: stdout $(stat -c %s /tmp/$1.out) bytes"
  echo "NESTED: $1: contain exited $code after $end s (started at $start s)"
  echo "NESTED: $1: boot: run to the guest's first console line $(ms $start $first) ms, run to exit $(ms $start $end) ms"
}
# Three network namespaces, each with a veth of one bridge as a CNI bridge leaves them
# (10.0.0.N/24, default route via .254): the exec guest joins n1, the net guest n2, podman's
# guest n3, containerd's n4.
ip link add br0 type bridge && ip link set br0 up
mkdir -p /run/netns
for n in 1 2 3 4; do
  touch /run/netns/n$n; unshare --net=/run/netns/n$n true
  nsenter --net=/run/netns/n$n sh -c "ip link add vh$n type veth && ip link set vh$n netns 1 && ip link set veth0 name eth0 && ip addr add 10.0.0.$n/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.0.254" || echo "NESTED: netns n$n failed"
  ip link set vh$n master br0 && ip link set vh$n up
done
# podman with contain as its runtime: a microVM container (block rootfs, n3's network, its
# guest images in the default guest directory: conmon does not pass the environment on)
# started, exec'd into and stopped by podman; `--policy runc` as for the other guests here
# (this kernel's tmpfs cannot be idmapped).
g=/var/lib/contain/guests
podman_stage() {
  mkdir -p $g && mount --bind /guest $g
  p="/usr/bin/podman --runtime /contain --runtime-flag policy=runc --cgroup-manager cgroupfs --storage-driver vfs --events-backend file"
  $p import -q /podman.tar img > /dev/null || echo "NESTED: podman import failed"
  a=; for kv in isolation=microvm microvm.kernel=$g/kernels/vmlinuz microvm.rootfs=block microvm.modules=$g/modules microvm.timeout=300; do a="$a --annotation io.contain.$kv"; done
  $p run -d --name pm --log-driver k8s-file --network ns:/run/netns/n3 --memory 256m $a img /entry > /tmp/pm.out 2>&1 || { echo "NESTED: podman run failed:"; cat /tmp/pm.out; return; }
  i=0; while ! $p logs pm 2>/dev/null | grep -q '^up' && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done
  $p logs pm 2>/dev/null | grep -q '^up' || { echo "NESTED: the podman guest is not up:"; $p logs pm; $p ps -a; }
  o=$($p exec pm sh -c 'echo pexec init=$(tr "\0" " " < /proc/1/cmdline) $(ip -4 addr show eth0 | grep -o "inet [0-9./]*"); exit 6' 2>&1); st=$?
  echo "NESTED: podman exec: [$o status=$st]"
  o=$($p stop -t 60 pm 2>&1); st=$?
  echo "NESTED: podman stop: [status=$st exit=$($p inspect -f '{{.State.ExitCode}}' pm) logs=$($p logs pm | tr '\n' ' ')] $o"
  $p rm pm > /dev/null; echo "NESTED: podman rm status=$? left=$(ps -o args | grep -v grep | grep -c contain)"
}
# containerd (its runc shim, contain as the runc binary, `--policy runc` by a wrapper) runs
# the same workload in a microVM on a rootfs directory, in n4: ctr run, task exec, task kill
# (TERM), the run's status the workload's.
containerd_stage() {
  printf '#!/bin/sh\nexec /contain --policy runc "$@"\n' > /contain-runc && chmod 755 /contain-runc
  mkdir -p /etc/containerd /cdroot && tar -xf /podman.tar -C /cdroot
  printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' > /etc/containerd/config.toml
  PATH=/bin:/usr/bin /usr/bin/containerd > /tmp/containerd.log 2>&1 & cdd=$!
  i=0; while [ ! -S /run/containerd/containerd.sock ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done
  k="/usr/bin/ctr -n nested"
  # The shim passes containerd's environment on: CONTAIN_GUEST_DIR (/guest) holds.
  a=; for kv in isolation=microvm microvm.kernel=/guest/kernels/vmlinuz microvm.rootfs=block microvm.modules=/guest/modules microvm.timeout=300; do a="$a --annotation io.contain.$kv"; done
  $k run --rm --rootfs --runc-binary /contain-runc --memory-limit 268435456 --with-ns network:/run/netns/n4 $a /cdroot cd /entry > /tmp/cd.out 2> /tmp/cd.err & run=$!
  i=0; while ! grep -q '^up' /tmp/cd.out && kill -0 $run 2>/dev/null && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done
  grep -q '^up' /tmp/cd.out || { echo "NESTED: the containerd guest is not up:"; cat /tmp/cd.out /tmp/cd.err; tail -20 /tmp/containerd.log; }
  o=$($k task exec --exec-id e1 cd sh -c 'echo cexec init=$(tr "\0" " " < /proc/1/cmdline) $(ip -4 addr show eth0 | grep -o "inet [0-9./]*"); exit 6' 2>&1); st=$?
  echo "NESTED: containerd exec: [$o status=$st]"
  $k task kill cd; wait $run; st=$?
  echo "NESTED: containerd run: [status=$st out=$(tr '\n' ' ' < /tmp/cd.out)] left=[$($k c ls -q)]"
  kill $cdd
}
echo piped-to-run > /tmp/stdin
runb bundle /dev/null
runb block /tmp/stdin
# The same bulk output from a plain container (no microVM), for the throughput's ratio.
/contain --root /run/contain --policy runc run --bundle /plain plain < /dev/null > /dev/null 2> /tmp/plain.err
echo "NESTED: plain: status=$? $(cat /tmp/plain.err)"
# exec into a running block-rootfs guest, then kill its process (it runs a TERM handler).
c="/contain --root /run/contain"
$c --policy runc run -d --bundle /exec ex > /tmp/ex.out 2>&1 < /dev/null
i=0; while ! grep -q '^up' /tmp/ex.out && [ $i -lt 1500 ]; do usleep 100000; i=$((i+1)); done
grep -q '^up' /tmp/ex.out || { echo "NESTED: the exec guest is not up:"; cat /tmp/ex.out; }
o=$($c exec ex sh -c 'echo out init=$(tr "\0" " " < /proc/1/cmdline); echo err >&2; exit 5' 2>/tmp/ex.err); st=$?
echo "NESTED: exec: [$o status=$st stderr=$(cat /tmp/ex.err)]"
echo "NESTED: exec stdin: [$(echo piped-in | $c exec ex cat)]"
o=$($c exec ex /nonexistent 2>&1); st=$?
echo "NESTED: exec missing: [$o status=$st]"
$c exec -d --pid-file /tmp/ex.pid ex sh -c 'exit 3'; st=$?
echo "NESTED: exec detached: [status=$st relay=$(cat /tmp/ex.pid)]"
o=$($c exec -t ex sh -c 'tty; exit 4' < /dev/null); st=$?; o=$(echo "$o" | tr -d '\r')
echo "NESTED: exec tty: [$o status=$st]"
# A client that does not read for 20 s: its 4 MiB wait (in the guest, past the channel's
# window), and another exec meanwhile is not held up.
($c exec ex head -c 4194304 /dev/zero | (sleep 20; wc -c) > /tmp/slow.out) & slow=$!
sleep 3; t0=$(up); o=$($c exec ex echo quick); t1=$(up)
echo "NESTED: beside a slow client: [$o] in $(ms $t0 $t1) ms"
wait $slow; echo "NESTED: the slow client read: [$(tr -d ' ' < /tmp/slow.out)]"
$c exec -d --pid-file /tmp/sl.pid ex sleep 1000 < /dev/null > /dev/null 2>&1; relay=$(cat /tmp/sl.pid)
i=0; while ! $c exec ex ps -o args | grep -q '^sleep 1000' && [ $i -lt 100 ]; do usleep 100000; i=$((i+1)); done
kill -9 $relay; usleep 500000
echo "NESTED: relay killed: [$($c exec ex ps -o args | grep -c '^sleep 1000')]"
echo "NESTED: exec ps: [$($c exec ex ps -o comm | tr '\n' ' ')]"
echo "NESTED: ps: [$($c ps ex | tr '\n' ' ')] json=$($c ps --format json ex)"
# The exec guest has n1's interface: it serves TCP to the net guest, of n2, over the bridge.
echo "NESTED: net1: [$($c exec ex /netinfo | tr '\n' ' ')] netns=[$(nsenter --net=/run/netns/n1 ip -4 addr show eth0 | grep -c inet)]"
$c exec -d ex /serve < /dev/null > /dev/null 2>&1
/contain --root /run/contain --policy runc run --bundle /net net < /dev/null > /tmp/net.out 2> /tmp/net.err; echo "NESTED: net status=$?"
echo "NESTED: net2: [$(tr '\n' ' ' < /tmp/net.out)] served=[$($c exec ex cat /tmp/served)]"
$c kill ex TERM
i=0; while ! $c state ex | grep -q '"stopped"' && [ $i -lt 300 ]; do usleep 100000; i=$((i+1)); done
echo "NESTED: kill: [$(tr '\n' ' ' < /tmp/ex.out)] state=$($c state ex | grep -o '"status": "[a-z]*"')"
$c delete ex; echo "NESTED: delete status=$?"
podman_stage
containerd_stage
poweroff -f
"#;

/// What the exec guest says of its network (exec'd into it): the address, default route and
/// MTU the agent gave its interface from the network namespace's.
const NETINFO_SCRIPT: &str = "ip -4 addr show eth0 | grep inet; ip route | grep default; \
     echo mtu=$(cat /sys/class/net/eth0/mtu)";

/// The exec guest's TCP server (exec'd into it): one connection on port 7000, what it
/// received kept in /tmp/served.
const SERVE_SCRIPT: &str = "echo from-guest-1 | nc -l -p 7000 > /tmp/served";

/// The net guest's process: connect to the exec guest (over the bridge of the two network
/// namespaces) until it answers.
const CLIENT_SCRIPT: &str = "i=0; r=; while [ $i -lt 60 ]; do \
     r=$( (echo from-guest-2; sleep 2) | nc -w 3 10.0.0.1 7000 2>/dev/null); \
     [ -n \"$r\" ] && break; sleep 1; i=$((i+1)); done; \
     echo got=$r; ip -4 addr show eth0 | grep inet";

/// Make `b` join the network namespace at `path` (instead of a new one).
fn join_netns(b: &mut Bundle, path: &str) {
    b.set(|c| {
        let ns = c["linux"]["namespaces"]
            .as_array_mut()
            .expect("the bundle lists namespaces");
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network", "path": path}));
    });
}

/// How long the outer VM may write nothing to its console before it is taken to have hung
/// (its init writes a heartbeat every 20 s).
const HUNG: std::time::Duration = std::time::Duration::from_secs(90);

/// Boot the outer VM of [`nested_vmm`] (at most 900 s) with its console streamed to `log`:
/// QEMU's exit code, the console and QEMU's stderr, and whether it was killed for having hung.
/// Under load, QEMU's emulation of nested SVM has been seen to stop delivering the outer
/// kernel's interrupts (the VM then sits idle for good); the caller boots it again once.
fn outer_vm(
    qemu: &std::path::Path,
    kernel: &std::path::Path,
    archive: &std::path::Path,
    log: &std::path::Path,
) -> Result<(Option<i32>, String, bool), Box<dyn std::error::Error>> {
    let mut child = std::process::Command::new("timeout")
        .arg("900")
        .arg(qemu)
        .args(["-accel", "tcg", "-cpu", "max", "-m", "1536", "-smp", "1"])
        .args([
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(archive)
        .args(["-append", "console=ttyS0 panic=-1 quiet rdinit=/init"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log)?)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().ok_or("QEMU's stderr")?;
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let (mut size, mut since) = (0, std::time::Instant::now());
    let mut hung = false;
    let code = loop {
        if let Some(st) = child.try_wait()? {
            break st.code();
        }
        let now = std::fs::metadata(log).map_or(0, |m| m.len());
        if now != size {
            (size, since) = (now, std::time::Instant::now());
        } else if since.elapsed() > HUNG {
            hung = true;
            let _ = std::process::Command::new("pkill")
                .args(["-KILL", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            break child.wait()?.code();
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    };
    let err = reader.join().unwrap_or_default();
    let out = (String::from_utf8_lossy(&std::fs::read(log)?).into_owned()
        + &String::from_utf8_lossy(&err))
        .replace('\r', "");
    Ok((code, out, hung))
}

/// The exec guest's process: it says it is up, and answers SIGTERM by name.
const EXEC_SCRIPT: &str =
    "trap 'echo got-term; exit 42' TERM; echo up; while true; do sleep 1; done";

/// What the block-rootfs guest's process reports: its root is an overlay on the read-only
/// disk, the 1 GiB file is there at its size while the guest has less RAM than that, writes
/// land (in the overlay), and no module can be loaded after the agent's. Its stdio is the
/// control channel's: it reads a line of the container's stdin, writes to stderr apart, and
/// ends with [`CHANNEL_BYTES`] on stdout, timed ([`THROUGHPUT`]).
const BLOCK_SCRIPT: &str = "echo root=$(awk '$2 == \"/\" {print $3}' /proc/mounts) \
     disk-ro=$(cat /sys/block/vda/ro); \
     echo big=$(stat -c %s /big); echo written > /etc/new && echo new=$(cat /etc/new); \
     echo memkb=$(awk '/^MemTotal/ {print $2}' /proc/meminfo); \
     echo modules_disabled=$(cat /proc/sys/kernel/modules_disabled); \
     read line; echo stdin=$line; echo to-stderr >&2; \
     THROUGHPUT channel 8388608; exit 9";

/// What the block guest writes to stdout in bulk (8 MiB: about 17 s in the nested tier).
const CHANNEL_BYTES: usize = 8 << 20;

/// A shell function the throughput scripts start with: `THROUGHPUT KIND BYTES` writes BYTES
/// zeros to stdout and reports on stderr how long that took (the guest's uptime, in s).
const THROUGHPUT: &str = "THROUGHPUT() { t0=$(cut -d' ' -f1 /proc/uptime); \
     head -c $2 /dev/zero; t1=$(cut -d' ' -f1 /proc/uptime); \
     echo \"throughput: $1 $2 $t0 $t1\" >&2; }; ";

/// The microVM stage end to end with a real Linux guest, one level down (this host's
/// /dev/kvm, kvm_pvm, cannot boot Linux): QEMU emulates a machine with AMD SVM, whose Debian
/// kernel loads kvm-amd; in it `contain run` boots the same kernel as the guest through
/// contain's own VMM, and the guest agent runs the process, whose status is contain's.
fn nested_vmm() -> R {
    let Some(qemu) = which("qemu-system-x86_64") else {
        return skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
    };
    let Some(busybox) = busybox() else {
        return skip("busybox is not installed (apt-get install busybox-static)");
    };
    // The clients the tier drives a microVM container with, copied into the outer VM.
    let mut clients = Vec::new();
    for (tool, package) in [
        ("podman", "podman"),
        ("containerd", "containerd"),
        ("containerd-shim-runc-v2", "containerd"),
        ("ctr", "containerd"),
    ] {
        match which(tool) {
            Some(p) => clients.push(p),
            None => {
                return skip(format!(
                    "{tool} is not installed (apt-get install {package})"
                ))
            }
        }
    }
    let kernel = match linux_kernel() {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let modules = match test_kernel_modules(&KVM_MODULES) {
        Ok(m) => m,
        Err(why) => return skip(why),
    };
    let block_modules = match test_kernel_modules(&GUEST_MODULE_FILES) {
        Ok(m) => m,
        Err(why) => return skip(why),
    };
    let work = tempfile::Builder::new().prefix("nested-").tempdir()?;
    let root = work.path().join("root");
    for d in ["bin", "modules", "guest/kernels", "guest/modules", "mnt"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(&busybox, root.join("bin/busybox"))?;
    std::fs::copy(CONTAIN, root.join("contain"))?;
    for m in &modules {
        std::fs::copy(
            m,
            root.join("modules").join(m.file_name().unwrap_or_default()),
        )?;
    }
    for m in &block_modules {
        std::fs::copy(
            m,
            root.join("guest/modules")
                .join(m.file_name().unwrap_or_default()),
        )?;
    }
    std::fs::copy(&kernel, root.join("guest/kernels/vmlinuz"))?;
    copy_clients(&clients, &root)?;
    std::fs::write(root.join("init"), NESTED_INIT)?;
    std::fs::set_permissions(
        root.join("init"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let secret = tempfile::NamedTempFile::new()?;
    std::fs::write(secret.path(), "host secret\n")?;
    let mut b = agent_bundle(secret.path())?;
    b.set(|c| {
        c["annotations"] = json!({
            "io.contain.isolation": "microvm",
            "io.contain.microvm.kernel": "/guest/kernels/vmlinuz",
            "io.contain.microvm.timeout": "300",
        });
        c["linux"]["resources"] = json!({"memory": {"limit": 256 * MIB}});
    });
    // The guest found KVM (the hypervisor bit) and keeps time with kvm-clock.
    // Its stdio is the serial console (the guest has no modules, so no virtio console).
    b.sh(&format!(
        "{THROUGHPUT}echo clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource); \
         THROUGHPUT serial 4096; {AGENT_SCRIPT}"
    ));
    let mut block = nested_block_bundle();
    block.sh(&format!("{THROUGHPUT}{BLOCK_SCRIPT}"));
    let mut plain = Bundle::new();
    plain.sh(&format!("{THROUGHPUT}THROUGHPUT plain {CHANNEL_BYTES}"));
    let mut exec = nested_block_bundle();
    exec.set(|c| c["hostname"] = json!("execguest"));
    join_netns(&mut exec, "/run/netns/n1");
    exec.sh(EXEC_SCRIPT);
    for (name, script) in [("netinfo", NETINFO_SCRIPT), ("serve", SERVE_SCRIPT)] {
        let at = exec.path().join("rootfs").join(name);
        std::fs::write(&at, format!("#!/bin/sh\n{script}\n"))?;
        std::fs::set_permissions(&at, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    // The image podman runs (a busybox rootfs with the exec guest's script as /entry).
    let image = Bundle::new();
    let entry = image.rootfs().join("entry");
    std::fs::write(&entry, format!("#!/bin/sh\n{EXEC_SCRIPT}\n"))?;
    std::fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    tar_dir(&image.rootfs(), &root.join("podman.tar"))?;
    let mut net = nested_block_bundle();
    join_netns(&mut net, "/run/netns/n2");
    net.set(|c| c["linux"]["resources"] = json!({"memory": {"limit": 128 * MIB}}));
    net.sh(CLIENT_SCRIPT);
    for (from, to) in [
        (b.path(), "bundle"),
        (block.path(), "block"),
        (exec.path(), "exec"),
        (plain.path(), "plain"),
        (net.path(), "net"),
    ] {
        let o = std::process::Command::new("cp")
            .arg("-a")
            .arg(from)
            .arg(root.join(to))
            .out();
        ensure!(o.code == 0, "copy the bundle {to}: {}", o.stderr);
    }
    let archive = work.path().join("outer.cpio");
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd {} && find . | cpio -o -H newc --quiet > {}",
            root.display(),
            archive.display()
        ))
        .out();
    ensure!(o.code == 0, "cpio: {}", o.stderr);
    let t = std::time::Instant::now();
    // The whole console goes to CONTAIN_TEST_NESTED_LOG as it comes, for a look at what the
    // guests do (the test prints only a summary), else to a file of the test's own.
    let log = std::env::var_os("CONTAIN_TEST_NESTED_LOG")
        .map_or_else(|| work.path().join("console"), std::path::PathBuf::from);
    let mut out = String::new();
    let mut status = None;
    for attempt in 1..=2 {
        let (code, text, hung) = outer_vm(&qemu, &kernel, &archive, &log)?;
        (out, status) = (text, code);
        if !hung {
            break;
        }
        ensure!(
            attempt == 1,
            "the outer VM hung twice (no console output, not even its heartbeat, for {} s):\n{out}",
            HUNG.as_secs()
        );
        println!(
            "nested: the outer VM hung (no console output, not even its heartbeat, for {} s: \
             QEMU's emulation stopped delivering interrupts); booting it again",
            HUNG.as_secs()
        );
    }
    println!(
        "nested: QEMU ran {:.0} s; {}",
        t.elapsed().as_secs_f64(),
        out.lines()
            .filter(|l| l.starts_with("NESTED:"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    ensure!(
        out.contains("NESTED: bundle: contain exited 7 "),
        "contain did not exit with the guest's 7 (QEMU exit {status:?}):\n{out}"
    );
    check_agent_output(&out)?;
    ensure!(
        out.contains("clocksource=kvm-clock"),
        "the guest does not use kvm-clock:\n{out}"
    );
    // The block-rootfs guest.
    ensure!(
        out.contains("NESTED: block: contain exited 9 "),
        "the block-rootfs guest did not exit with its 9:\n{out}"
    );
    for want in [
        "root=overlay disk-ro=1",
        "big=1073741824",
        "new=written",
        "modules_disabled=1",
        // Its stdio is the control channel's: stdin read, stderr apart from stdout.
        "\nstdin=piped-to-run\n",
        "\nstderr: to-stderr\n",
    ] {
        ensure!(
            out.contains(want),
            "block rootfs: missing {want:?} in:\n{out}"
        );
    }
    ensure!(
        !out.contains("\nto-stderr"),
        "the block guest's stderr reached its stdout:\n{out}"
    );
    // Its stdout is exactly its text lines and the bulk output: the kernel's messages (the
    // serial console, such as the "PCI: Fatal" line of this kernel) went to stderr.
    let section = out
        .split("NESTED: bundle: boot:")
        .nth(1)
        .and_then(|o| o.split("NESTED: block: stdout").next())
        .unwrap_or_default();
    let text: usize = [
        "root=",
        "big=",
        "new=",
        "memkb=",
        "modules_disabled=",
        "stdin=",
    ]
    .iter()
    .filter_map(|p| section.lines().find(|l| l.starts_with(p)))
    .map(|l| l.len() + 1)
    .sum();
    let bytes: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("NESTED: block: stdout "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .ok_or_else(|| format!("no stdout size of the block guest:\n{out}"))?;
    ensure!(
        bytes == CHANNEL_BYTES + text,
        "the block guest's stdout is {bytes} bytes, not its text ({text}) and {CHANNEL_BYTES}:\n{section}"
    );
    ensure!(
        section
            .lines()
            .filter(|l| l.contains("PCI: Fatal"))
            .all(|l| l.starts_with("stderr: ")),
        "a guest kernel message in the block guest's stdout:\n{section}"
    );
    throughput(&out)?;
    // exec runs in the guest (its PID 1 is the agent), with its stdout, stderr, stdin and
    // status; a program that is not there fails exec itself (255, the agent's reason); a
    // detached exec's relay is its pid; the guest's process list is the guest's; kill TERM
    // reaches the workload's handler in the guest, and delete cleans up.
    for want in [
        "NESTED: exec: [out init=/.contain/init guest-agent status=5 stderr=err]",
        "NESTED: exec stdin: [piped-in]",
        "NESTED: exec tty: [/dev/pts/0 status=4]",
        "NESTED: relay killed: [0]",
        "status=255]",
        "up got-term ] state=\"status\": \"stopped\"",
        "NESTED: delete status=0",
    ] {
        ensure!(out.contains(want), "exec: missing {want:?} in:\n{out}");
    }
    ensure!(
        out.contains("executable file not found") || out.contains("no such executable"),
        "exec of a missing program: no reason given:\n{out}"
    );
    ensure!(
        out.contains("NESTED: exec detached: [status=0 relay="),
        "exec -d:\n{out}"
    );
    // Flow control: a client that does not read holds up only its own stream.
    let beside = out
        .lines()
        .find_map(|l| l.strip_prefix("NESTED: beside a slow client: [quick] in "))
        .and_then(|l| l.strip_suffix(" ms")?.parse::<u64>().ok())
        .ok_or_else(|| format!("no exec beside the slow client:\n{out}"))?;
    ensure!(
        beside < 10_000,
        "an exec beside a client that did not read took {beside} ms:\n{out}"
    );
    ensure!(
        out.contains("NESTED: the slow client read: [4194304]"),
        "the slow client did not get all its output:\n{out}"
    );
    let ps = out
        .lines()
        .find(|l| l.starts_with("NESTED: exec ps:"))
        .unwrap_or_default();
    ensure!(
        ps.contains("init") && ps.contains("sleep") && ps.contains("ps"),
        "the guest's processes: {ps}"
    );
    // Networking: the exec guest has n1's address, route and MTU (taken off the namespace's
    // own stack), and the net guest, in n2, exchanged a line each way with it over TCP.
    for want in [
        "inet 10.0.0.1/24",
        "default via 10.0.0.254",
        "mtu=1500 ] netns=[0]",
        "NESTED: net status=0",
        "NESTED: net2: [got=from-guest-1 ",
        "inet 10.0.0.2/24",
        "served=[from-guest-2]",
    ] {
        ensure!(out.contains(want), "network: missing {want:?} in:\n{out}");
    }
    // podman ran the exec guest's workload in a microVM: exec reached the guest (its PID 1 the
    // agent, n3's address on its interface), stop's TERM reached the workload's handler, whose
    // status podman reports, and rm left no process of contain behind.
    for want in [
        "NESTED: podman exec: [pexec init=/.contain/init guest-agent inet 10.0.0.3/24 status=6]",
        "NESTED: podman stop: [status=0 exit=42 logs=up got-term ]",
        "NESTED: podman rm status=0 left=0",
    ] {
        ensure!(out.contains(want), "podman: missing {want:?} in:\n{out}");
    }
    // containerd's runc shim the same: exec in the guest, kill's TERM reaching the handler,
    // `ctr run` ending with the workload's status, the container deleted (--rm).
    for want in [
        "NESTED: containerd exec: [cexec init=/.contain/init guest-agent inet 10.0.0.4/24 status=6]",
        "NESTED: containerd run: [status=42 out=up got-term ] left=[]",
    ] {
        ensure!(out.contains(want), "containerd: missing {want:?} in:\n{out}");
    }
    // `contain ps`: the table is the guest's own ps (its PID 1 the agent, the workload's
    // sleep); the JSON, the host's pids (the VMM).
    let table = out
        .lines()
        .find(|l| l.starts_with("NESTED: ps:"))
        .unwrap_or_default();
    ensure!(
        table.contains("PID")
            && table.contains("/.contain/init guest-agent")
            && table.contains("sleep 1")
            && table.contains("json=["),
        "contain ps of a microVM container: {table}"
    );
    let memkb: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("memkb="))
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| format!("no MemTotal from the block guest:\n{out}"))?;
    ensure!(
        memkb < 256 * 1024,
        "the block guest has {memkb} KiB: the 1 GiB file cannot have been copied into RAM"
    );
    pass()
}

/// The nested tier's stdout throughput: 8 MiB from the microVM's process over the control
/// channel (virtio-console) and from a plain container, 4 KiB over the UART (one VM exit a
/// byte), each timed inside; the rates and their ratios are printed, and the channel must
/// beat the UART by far.
fn throughput(out: &str) -> R {
    let rate = |kind: &str| -> Result<f64, String> {
        let line = out
            .lines()
            .find_map(|l| {
                l.split_once("throughput: ")
                    .map(|(_, t)| t)
                    .filter(|t| t.starts_with(&format!("{kind} ")))
            })
            .ok_or_else(|| format!("no {kind} throughput in:\n{out}"))?;
        let v: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|w| w.parse().ok())
            .collect();
        let [bytes, t0, t1] = v[..] else {
            return Err(format!("a throughput line: {line}"));
        };
        // uptime has 10 ms steps: a transfer that took less counts as 10 ms.
        Ok(bytes / (t1 - t0).max(0.01) / f64::from(1 << 20))
    };
    let (serial, chan, plain) = (rate("serial")?, rate("channel")?, rate("plain")?);
    println!(
        "nested stdout throughput (MiB/s): microVM UART {serial:.4}, microVM virtio-console channel {chan:.1}, plain container {plain:.1}; channel/UART {:.0}x, channel/plain {:.2}",
        chan / serial,
        chan / plain
    );
    ensure!(
        (chan / serial).total_cmp(&10.0).is_gt(),
        "the channel ({chan:.2} MiB/s) is not ten times the UART ({serial:.3} MiB/s)"
    );
    pass()
}

/// Put the `clients`, podman's conmon, the libraries they load and podman's configuration
/// into the outer VM's root at the host's paths (with a root user and empty name resolution).
fn copy_clients(clients: &[std::path::PathBuf], root: &Path) -> R {
    let conmon = ["/usr/libexec/podman/conmon", "/usr/bin/conmon"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or("conmon is not installed (apt-get install conmon)")?;
    let mut bins = clients.to_vec();
    bins.push(conmon.to_path_buf());
    let mut files = bins.clone();
    for bin in &bins {
        let o = std::process::Command::new("ldd").arg(bin).out();
        ensure!(o.code == 0, "ldd {}: {}", bin.display(), o.stderr);
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux... (0x...)"
        files.extend(o.stdout.lines().filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/')
                .then(|| std::path::PathBuf::from(path))
        }));
    }
    for dir in ["/etc/containers", "/usr/share/containers"] {
        for e in std::fs::read_dir(dir)?.flatten() {
            if e.file_type()?.is_file() {
                files.push(e.path());
            }
        }
    }
    for f in &files {
        let to = root.join(f.strip_prefix("/")?);
        std::fs::create_dir_all(to.parent().ok_or("a file at /")?)?;
        std::fs::copy(f, &to)?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    std::fs::write(root.join("etc/resolv.conf"), "")?;
    pass()
}

/// A bundle for the nested tier's inner microVM with its rootfs on virtio-blk (the guest
/// directory's kernel and modules, a writable root, 256 MiB of RAM).
fn nested_block_bundle() -> Bundle {
    let mut b = Bundle::new();
    b.set(|c| {
        c["annotations"] = json!({
            "io.contain.isolation": "microvm",
            "io.contain.microvm.kernel": "/guest/kernels/vmlinuz",
            "io.contain.microvm.rootfs": "block",
            "io.contain.microvm.modules": "/guest/modules",
            "io.contain.microvm.timeout": "300",
        });
        c["root"]["readonly"] = json!(false);
        c["process"]["terminal"] = json!(false);
        c["linux"]["resources"] = json!({"memory": {"limit": 256 * MIB}});
    });
    b
}

/// The modules that give the outer VM a /dev/kvm under QEMU's emulated AMD SVM, and its
/// bridge and veths.
const KVM_MODULES: [&str; 8] = [
    "virt/lib/irqbypass.ko",
    "drivers/crypto/ccp/ccp.ko",
    "arch/x86/kvm/kvm.ko",
    "arch/x86/kvm/kvm-amd.ko",
    // The two guests' network: a bridge and a veth for each.
    "drivers/net/veth.ko",
    "net/llc/llc.ko",
    "net/802/stp.ko",
    "net/bridge/bridge.ko",
];

/// The modules a block-rootfs guest loads (the runtime's GUEST_MODULES, by path).
const GUEST_MODULE_FILES: [&str; 12] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_mmio.ko",
    "drivers/char/virtio_console.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
    "drivers/block/virtio_blk.ko",
    "crypto/crc32c_generic.ko",
    "lib/libcrc32c.ko",
    "fs/erofs/erofs.ko",
    "fs/overlayfs/overlay.ko",
];

/// Modules of the test kernel, by path under its kernel/ (scripts/test-kernel.sh unpacks
/// them beside it).
fn test_kernel_modules(want: &[&str]) -> Result<Vec<std::path::PathBuf>, String> {
    let k = std::env::var_os("CONTAIN_TEST_KERNEL")
        .map(std::path::PathBuf::from)
        .ok_or("CONTAIN_TEST_KERNEL is not set (scripts/test.sh sets it)")?;
    let version = k
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("CONTAIN_TEST_KERNEL is not a vmlinuz-VERSION")?;
    let base = k
        .parent()
        .and_then(Path::parent)
        .ok_or("CONTAIN_TEST_KERNEL has no parent directory")?
        .join("lib/modules")
        .join(version)
        .join("kernel");
    want.iter()
        .map(|m| {
            let p = base.join(m);
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!(
                    "{}: missing (scripts/test-kernel.sh unpacks it)",
                    p.display()
                ))
            }
        })
        .collect()
}
