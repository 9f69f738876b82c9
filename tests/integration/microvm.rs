//! The microVM stage, end to end through `contain run` with probe guests the tests build
//! (tests/integration/probes/guest): each boot protocol, what the VMM hands over, the serial
//! console both ways, the exit port, kill, guests that halt, fault or flood, and the VMM's jail
//! read back from the host (its /proc status, its id map, and the seccomp programs the kernel
//! holds for each of its threads, run against the syscalls a hijacked VMM would make).

use std::io::Write;
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
        "microvm::guest_that_halts_faults_or_times_out_ends",
        halts_and_faults,
    ),
    ("microvm::flooding_guest_is_contained", flood),
    ("microvm::bad_kernels_and_sizes_refused_cleanly", bad_input),
    ("microvm::podman_runs_a_microvm_unchanged", podman),
];

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
    let b = Bundle::new();
    let image = format!("localhost/contain-vm-{}:latest", std::process::id());
    podman_import(&podman, &b, &image)?;
    let o = std::process::Command::new(&podman)
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
        .args(["--annotation", "io.contain.microvm.cmdline=probe.exit=5"])
        .args([&image, "/bin/true"])
        .out();
    let _ = std::process::Command::new(&podman)
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

/// A bundle that asks for the microVM stage with `kernel`, `cmdline` and `memory` bytes.
fn vm_bundle(kernel: &std::path::Path, cmdline: &str, memory: u64) -> Bundle {
    let mut b = Bundle::new();
    b.set(|c| {
        c["annotations"] = json!({
            "io.contain.isolation": "microvm",
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

fn boot_test(kind: Guest, what: &[&str]) -> R {
    let kernel = match guest(kind) {
        Ok(k) => k,
        Err(why) => return skip(why),
    };
    let initrd = tempfile::NamedTempFile::new()?;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    std::fs::write(initrd.path(), &data)?;
    let memory = 48 * MIB;
    let mut b = vm_bundle(&kernel, "console=ttyS0 probe.exit=42 probe.badio", memory);
    b.set(|c| c["annotations"]["io.contain.microvm.initramfs"] = json!(initrd.path()));
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
    ensure!(
        o.stdout
            .contains("probe: cmdline=console=ttyS0 probe.exit=42 probe.badio"),
        "{}",
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
        &["probe: boot=pvh", "probe: start_info version=1 modules=1"],
    )
}

fn bzimage_boot() -> R {
    boot_test(
        Guest::BzImage,
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
const KILL_PROCESS: u32 = 0x8000_0000;
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
    let b = vm_bundle(&kernel, "probe.loop", 16 * MIB);
    let rt = Runtime::new();
    let o = rt.create(&b, "vm");
    ensure!(o.code == 0, "create: {}", o.stderr);
    let state = rt.state("vm").ok_or("no state")?;
    let iso = state["annotations"]["io.contain.isolation"]
        .as_str()
        .unwrap_or("");
    ensure!(iso.starts_with("microvm: bzImage"), "state says {iso:?}");
    ensure!(
        state["annotations"]["io.contain.seccomp"]
            .as_str()
            .is_some_and(|s| s.contains("vcpu thread")),
        "{state}"
    );
    ensure!(rt.exec(&["start", "vm"]).code == 0, "start");
    // exec would put a process on the host kernel beside the VMM: refused.
    let o = rt.exec(&["exec", "vm", "/bin/true"]);
    fails_with(&o, "runs in the microVM stage")?;
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
            "vcpu0" => "vcpu",
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
        for (name, nr) in [
            ("openat", libc::SYS_openat),
            ("execve", libc::SYS_execve),
            ("socket", libc::SYS_socket),
            ("mmap", libc::SYS_mmap),
            ("mprotect", libc::SYS_mprotect),
            ("clone", libc::SYS_clone),
            ("ptrace", libc::SYS_ptrace),
        ] {
            let got = v(nr, [0; 6])?;
            ensure!(
                got == KILL_PROCESS,
                "{kind} thread: {name} is not fatal ({}); program:\n{}",
                bpf::action_name(got),
                bpf::disassemble(&prog)
            );
        }
        ensure!(
            verdict(&prog, AUDIT_ARCH_I386, 11, [0; 6])? == KILL_PROCESS,
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
                    ensure!(
                        ioctl(cmd)? == KILL_PROCESS,
                        "vcpu thread: ioctl {cmd:#x} allowed"
                    );
                }
            }
            _ => {
                ensure!(ioctl(KVM_RUN)? == KILL_PROCESS, "vmm thread: ioctl allowed");
                ensure!(
                    v(libc::SYS_read, [0; 6])? == ALLOW,
                    "vmm thread: read refused"
                );
            }
        }
        kinds.push(kind);
    }
    kinds.sort();
    ensure!(kinds == ["vcpu", "vmm"], "threads seen: {kinds:?}");
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
    let not_kernel = tempfile::NamedTempFile::new()?;
    std::fs::write(not_kernel.path(), b"#!/bin/sh\necho not a kernel\n")?;
    let big = tempfile::NamedTempFile::new()?;
    big.as_file().set_len(6 << 20)?;
    let truncated = tempfile::NamedTempFile::new()?;
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
            "/nonexistent/vmlinux: No such file",
        ),
        (
            "relative kernel",
            Box::new(|c| c["annotations"]["io.contain.microvm.kernel"] = json!("vmlinux")),
            "absolute host path",
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
            o.code == 1 && o.stderr.contains(needle),
            "{what}: exit {}, stderr {:?} (want {needle:?})",
            o.code,
            o.stderr
        );
        ensure!(!o.stderr.contains("panicked"), "{what}: panic");
        rt.assert_clean(&b, "bad")?;
    }
    pass()
}
