//! The microVM stage: the container's init becomes a small VMM (one KVM VM, COM1, an exit
//! port) that boots a kernel directly (PVH ELF or bzImage) inside the container's namespaces,
//! user namespace and Landlock ruleset, with a seccomp filter per thread kind.
//!
//! * [`plan`] (pure, shared by create and audit): what the config and policy ask for.
//! * [`prepare`] (the runtime, before it forks): open /dev/kvm, read the kernel and initramfs,
//!   recognise the format, compile the thread filters; every error is reported at create.
//! * [`Prepared::build`] (the init, before it reports ready): create the VM and load the guest.
//! * [`Machine::run`] (the init, after `start`): run it; the process exits with the guest's
//!   status.

#![allow(unsafe_code)]

pub mod agent;
pub mod boot;
mod cpu;
pub mod devices;
pub mod initramfs;
pub mod mptable;
mod vmm;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use kvm_ioctls::Kvm;
use oci_spec::runtime::Spec;

pub use vmm::Machine;

/// The guest kernel (a host path).
pub const KERNEL_ANNOTATION: &str = "io.contain.microvm.kernel";
/// An initramfs handed to the guest (a host path).
pub const INITRAMFS_ANNOTATION: &str = "io.contain.microvm.initramfs";
/// The guest kernel's command line.
pub const CMDLINE_ANNOTATION: &str = "io.contain.microvm.cmdline";
/// Seconds after `start` at which the VMM ends the VM (status::TIMED_OUT).
pub const TIMEOUT_ANNOTATION: &str = "io.contain.microvm.timeout";
/// What the guest is: `linux` (the default) or `bare` (see [`Guest`]).
pub const GUEST_ANNOTATION: &str = "io.contain.microvm.guest";

/// Guest RAM when linux.resources.memory.limit is unset.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// The least guest RAM accepted (the layout needs the first MiB and room for a kernel).
pub const MIN_MEMORY: u64 = 4 << 20;
/// The most: RAM is one region below the 32-bit device hole (3 GiB).
pub const MAX_MEMORY: u64 = 3 << 30;
/// The default command line: the console on COM1, no reboot on panic, and only the kernel's
/// warnings and errors among the container's output.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 nomodule quiet";

/// Exit statuses of a VM that ended without writing the exit port.
pub mod status {
    /// The vCPU halted (HLT with nothing to wake it).
    pub const HALTED: i32 = 112;
    /// The guest shut down or triple-faulted.
    pub const SHUTDOWN: i32 = 113;
    /// The VMM failed (KVM refused to run the vCPU, an internal error).
    pub const VMM_FAILED: i32 = 114;
    /// A thread of the VMM made a syscall its seccomp filter does not allow: the call was
    /// not executed, and its number is on stderr.
    pub const BAD_SYSCALL: i32 = 115;
    /// io.contain.microvm.timeout passed (as timeout(1) reports it).
    pub const TIMED_OUT: i32 = 124;
}

/// The kind of guest, which decides the machine and what the runtime hands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guest {
    /// A Linux kernel: the machine has an interrupt controller and a timer (in-kernel
    /// irqchip and PIT, COM1 on IRQ 4). Without an initramfs of its own, the runtime builds
    /// one from the rootfs with the guest agent as init, which runs process.args and reports
    /// its exit status.
    #[default]
    Linux,
    /// Any other kernel (the test probes): no interrupt controller, so a HLT ends the VM
    /// (status::HALTED); it gets only the initramfs and command line given.
    Bare,
}

impl std::fmt::Display for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Guest::Linux => "linux",
            Guest::Bare => "bare",
        })
    }
}

/// What a container's config and policy ask of the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub guest: Guest,
    pub kernel: Image,
    /// The initramfs given; None for a Linux guest means the agent's, built at create.
    pub initramfs: Option<Image>,
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// vCPUs (from the CPU quota, 1 to mptable::MAX_CPUS; a bare guest runs one).
    pub vcpus: u8,
    /// How long the VM may run after `start`.
    pub timeout: Option<std::time::Duration>,
}

/// A guest image (kernel or initramfs) and who named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// An absolute host path from a policy (an operator-controlled file).
    Operator(PathBuf),
    /// A config.json annotation's value: whoever wrote the bundle named it, so it may only
    /// name a file in the operator's guest directory ([`guest_dir`]).
    Bundle(PathBuf),
}

impl Image {
    pub fn path(&self) -> &Path {
        match self {
            Image::Operator(p) | Image::Bundle(p) => p,
        }
    }
}

impl std::fmt::Display for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Image::Operator(p) => write!(f, "{}", p.display()),
            Image::Bundle(p) => write!(f, "{} (named by the bundle)", p.display()),
        }
    }
}

/// Where the guest images a bundle's annotations may name live: `CONTAIN_GUEST_DIR` in the
/// runtime's environment (set by the operator or the engine, never by a bundle), else
/// /var/lib/contain/guests.
pub fn guest_dir() -> PathBuf {
    std::env::var_os("CONTAIN_GUEST_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| PathBuf::from(GUEST_DIR), PathBuf::from)
}

/// The default guest directory.
pub const GUEST_DIR: &str = "/var/lib/contain/guests";

/// Defaults a policy can give the stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub guest: Option<Guest>,
    #[serde(default)]
    pub kernel: Option<PathBuf>,
    #[serde(default)]
    pub initramfs: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
}

/// The stage's plan for `spec` (pure): annotations first, then the policy's defaults.
pub fn plan(spec: &Spec, defaults: &Defaults) -> Result<Plan, String> {
    let ann = |k: &str| spec.annotations().as_ref().and_then(|a| a.get(k).cloned());
    let image = |annotation: &str, default: &Option<PathBuf>| -> Result<Option<Image>, String> {
        if let Some(v) = ann(annotation) {
            let p = PathBuf::from(v);
            if p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(format!(
                    "annotation {annotation}: {}: `..` is not allowed (a bundle names guest images in the operator's guest directory)",
                    p.display()
                ));
            }
            return Ok(Some(Image::Bundle(p)));
        }
        match default {
            Some(p) if !p.is_absolute() => Err(format!(
                "policy microvm {annotation}: {}: must be an absolute host path",
                p.display()
            )),
            Some(p) => Ok(Some(Image::Operator(p.clone()))),
            None => Ok(None),
        }
    };
    let kernel = image(KERNEL_ANNOTATION, &defaults.kernel)?.ok_or_else(|| {
        format!(
            "the microVM stage needs a guest kernel: set the annotation {KERNEL_ANNOTATION} \
             to a file in the operator's guest directory (or a policy's microvm.kernel)"
        )
    })?;
    let initramfs = image(INITRAMFS_ANNOTATION, &defaults.initramfs)?;
    let guest = match ann(GUEST_ANNOTATION).as_deref() {
        None => defaults.guest.unwrap_or_default(),
        Some("linux") => Guest::Linux,
        Some("bare") => Guest::Bare,
        Some(other) => {
            return Err(format!(
                "annotation {GUEST_ANNOTATION}: {other:?}: the values are \"linux\" and \"bare\""
            ))
        }
    };
    let mut cmdline = ann(CMDLINE_ANNOTATION)
        .or_else(|| defaults.cmdline.clone())
        .unwrap_or_else(|| DEFAULT_CMDLINE.into());
    if guest == Guest::Linux && initramfs.is_none() && !cmdline.contains(initramfs::AGENT_CMDLINE) {
        cmdline = format!("{cmdline} {}", initramfs::AGENT_CMDLINE);
    }
    if cmdline.len() >= boot::CMDLINE_MAX {
        return Err(format!(
            "annotation {CMDLINE_ANNOTATION}: {} bytes, at most {}",
            cmdline.len(),
            boot::CMDLINE_MAX - 1
        ));
    }
    let timeout = match ann(TIMEOUT_ANNOTATION) {
        None => None,
        Some(t) => match t.parse::<u32>() {
            Ok(n) if n > 0 => Some(std::time::Duration::from_secs(n.into())),
            _ => {
                return Err(format!(
                    "annotation {TIMEOUT_ANNOTATION}: {t:?} is not a whole number of seconds \
                     above 0"
                ))
            }
        },
    };
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    let memory = match resources
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
    {
        None => DEFAULT_MEMORY,
        Some(l) if l <= 0 => DEFAULT_MEMORY,
        Some(l) => l as u64,
    };
    if !(MIN_MEMORY..=MAX_MEMORY).contains(&memory) {
        return Err(format!(
            "linux.resources.memory.limit {memory}: guest memory must be between {} MiB and {} \
             MiB",
            MIN_MEMORY >> 20,
            MAX_MEMORY >> 20
        ));
    }
    let vcpus = resources
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| Some((c.quota()?, c.period()?)))
        .filter(|(q, p)| *q > 0 && *p > 0)
        .map(|(q, p)| (q as u64).div_ceil(p))
        .unwrap_or(1);
    if vcpus > mptable::MAX_CPUS.into() {
        return Err(format!(
            "linux.resources.cpu: the quota asks for {vcpus} vCPUs; a microVM runs at most {}",
            mptable::MAX_CPUS
        ));
    }
    Ok(Plan {
        guest,
        kernel,
        initramfs,
        cmdline,
        memory: memory & !0xfff,
        vcpus: vcpus as u8,
        timeout,
    })
}

/// What the cgroup holds beyond the guest's RAM: the VMM's own pages and KVM's structures
/// (the VMM itself stays near 4 MiB; the rest is headroom for page tables and the kernel's
/// per-VM memory, which the cgroup is charged for too).
pub const VMM_ALLOWANCE: i64 = 16 << 20;

/// The memory limit in config.json sizes the guest's RAM; the cgroup, which holds the VMM
/// as well, gets VMM_ALLOWANCE more, so that a guest using all of its RAM is not killed by
/// its own limit (the guest's kernel bounds what the workload gets).
pub fn charge_vmm(spec: &mut Spec) {
    let Some(mut linux) = spec.linux().clone() else {
        return;
    };
    let Some(mut res) = linux.resources().clone() else {
        return;
    };
    let Some(mut mem) = *res.memory() else {
        return;
    };
    let add = |v: Option<i64>| {
        v.map(|l| {
            if l > 0 {
                l.saturating_add(VMM_ALLOWANCE)
            } else {
                l
            }
        })
    };
    mem.set_limit(add(mem.limit()));
    mem.set_swap(add(mem.swap()));
    res.set_memory(Some(mem));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
}

/// Whether this host can run the stage, and what kind of KVM it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// /dev/kvm opened and speaks API 12; else why not.
    pub kvm: Result<(), String>,
    /// The KVM is kvm_pvm (nested, paravirtual): small guests run, an unmodified Linux does not.
    pub pvm: bool,
}

impl Support {
    /// Whether an unmodified Linux guest can boot here; else why not.
    pub fn linux_boots(&self) -> Result<(), String> {
        self.kvm.clone()?;
        if self.pvm {
            return Err(
                "/dev/kvm is kvm_pvm (nested paravirtual KVM): probe guests run, an \
                        unmodified Linux kernel does not boot"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Probe the host.
pub fn support() -> Support {
    let kvm = Kvm::new()
        .map_err(|e| format!("/dev/kvm: {e}"))
        .and_then(|k| match k.get_api_version() {
            12 => Ok(()),
            v => Err(format!("/dev/kvm speaks API {v}, not 12")),
        });
    Support { kvm, pvm: on_pvm() }
}

/// Whether the host's KVM is kvm_pvm (nested, paravirtual).
fn on_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// Everything the init needs, gathered by the runtime before it forks.
pub struct Prepared {
    kvm: Kvm,
    kernel: Vec<u8>,
    initramfs: Option<Vec<u8>>,
    plan: Plan,
    format: boot::Format,
    vmm_filter: crate::seccomp::Compiled,
    vcpu_filter: crate::seccomp::Compiled,
}

/// The largest kernel or initramfs read (a bound on what a config makes the runtime read).
const MAX_IMAGE: u64 = 512 << 20;

/// Read a guest image. One named by the bundle is opened beneath the operator's guest
/// directory (an absolute name must lie in it): `..`, symlinks out of it and magic links are
/// refused by openat2(RESOLVE_BENEATH), so a bundle cannot make the runtime read a host file
/// (/etc/shadow, /proc/self/...) into guest memory. Every image is opened non-blocking (a
/// FIFO cannot stall create) and must be a regular file of at most MAX_IMAGE bytes.
fn read_image(what: &str, image: &Image) -> Result<Vec<u8>, String> {
    let err = |e: &dyn std::fmt::Display| format!("microvm {what} {image}: {e}");
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = match image {
        Image::Operator(p) => crate::sys::fs::open_host(p, flags).map_err(|e| err(&e))?,
        Image::Bundle(p) => {
            let dir = guest_dir();
            let rel = if p.is_absolute() {
                p.strip_prefix(&dir).map_err(|_| {
                    err(&format!(
                        "outside the operator's guest directory {} (CONTAIN_GUEST_DIR): a bundle may name only guest images there",
                        dir.display()
                    ))
                })?
            } else {
                p.as_path()
            };
            let d =
                crate::sys::fs::open_host(&dir, libc::O_PATH | libc::O_DIRECTORY).map_err(|e| {
                    err(&format!(
                        "the operator's guest directory {}: {e}",
                        dir.display()
                    ))
                })?;
            crate::sys::fs::openat2(
                std::os::fd::AsFd::as_fd(&d),
                rel,
                flags,
                0,
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
            )
            .map_err(|e| {
                err(&format!(
                    "{e} (looked up beneath the operator's guest directory {}, without leaving it)",
                    dir.display()
                ))
            })?
        }
    };
    let f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|e| err(&e))?;
    if !meta.is_file() || meta.len() > MAX_IMAGE {
        return Err(err(&format!(
            "not a regular file of at most {} MiB",
            MAX_IMAGE >> 20
        )));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_IMAGE), &mut data)
        .map_err(|e| err(&e))?;
    Ok(data)
}

/// The initramfs of a Linux guest without one of its own: `rootfs`, `config`'s process and
/// this binary (which must be statically linked) as the guest agent; at most half of
/// `memory` (the kernel unpacks it into RAM beside the archive).
pub fn agent_initramfs(
    rootfs: &Path,
    config: &initramfs::GuestConfig,
    memory: u64,
) -> Result<Vec<u8>, String> {
    let agent = std::fs::read("/proc/self/exe")
        .map_err(|e| format!("read this binary for the guest agent: {e}"))?;
    if !initramfs::is_static(&agent) {
        return Err(
            "the guest agent is this binary, which is not statically linked: build contain \
             with the repository's .cargo/config.toml (-C target-feature=+crt-static)"
                .into(),
        );
    }
    initramfs::build(rootfs, config, &agent, (memory / 2).min(MAX_IMAGE))
}

/// Open /dev/kvm, read the images (or build a Linux guest's initramfs from `rootfs` and
/// `config`), check the kernel's format and compile the filters.
pub fn prepare(
    plan: &Plan,
    rootfs: &Path,
    config: &initramfs::GuestConfig,
) -> Result<Prepared, String> {
    let kvm = Kvm::new().map_err(|e| {
        format!("the microVM stage needs /dev/kvm: {e} (is KVM available and is contain root?)")
    })?;
    let kernel = read_image("kernel", &plan.kernel)?;
    let format =
        boot::detect(&kernel).map_err(|e| format!("microvm kernel {}: {e}", plan.kernel))?;
    if plan.guest == Guest::Linux {
        // /dev/kvm is open already: only the kind of KVM is left to know.
        let here = Support {
            kvm: Ok(()),
            pvm: on_pvm(),
        };
        if let Err(why) = here.linux_boots() {
            crate::log::warn(&format!(
                "microvm: a Linux guest may not boot here: {why} (a kernel built as a PVM guest \
                 does)"
            ));
        }
    }
    let initramfs = match (&plan.initramfs, plan.guest) {
        (Some(p), _) => Some(read_image("initramfs", p)?),
        (None, Guest::Linux) => Some(agent_initramfs(rootfs, config, plan.memory)?),
        (None, Guest::Bare) => None,
    };
    Ok(Prepared {
        kvm,
        kernel,
        initramfs,
        plan: plan.clone(),
        format,
        vmm_filter: thread_filter(ThreadKind::Vmm)?,
        vcpu_filter: thread_filter(ThreadKind::Vcpu)?,
    })
}

/// The two kinds of thread of the VMM, each with a seccomp filter of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    Vmm,
    Vcpu,
}

/// The compiled filter of a thread kind. Every syscall not listed takes the default action
/// (a trap), newer ones too: no ENOSYS stub.
pub fn thread_filter(kind: ThreadKind) -> Result<crate::seccomp::Compiled, String> {
    let (name, json) = match kind {
        ThreadKind::Vmm => ("vmm", VMM_FILTER),
        ThreadKind::Vcpu => ("vcpu", VCPU_FILTER),
    };
    crate::seccomp::Profile::from_slice(json)
        .and_then(|p| {
            crate::seccomp::compile_with(&p, crate::seccomp::Options { enosys_stub: false })
        })
        .map_err(|e| format!("the {name} thread's seccomp filter: {e}"))
}

pub use vmm::{enter_filter, install_sigsys_handler};

/// The VMM thread's syscalls (OCI seccomp JSON, compiled by contain's own compiler).
const VMM_FILTER: &[u8] = include_bytes!("../../policies/microvm/vmm.json");
/// The vCPU thread's syscalls.
const VCPU_FILTER: &[u8] = include_bytes!("../../policies/microvm/vcpu.json");

impl Prepared {
    /// The descriptor the init must keep open across the runtime's descriptor cleanup.
    pub fn kvm_fd(&self) -> i32 {
        self.kvm.as_raw_fd()
    }

    /// The descriptors the VMM runs on (/dev/kvm, the VM, the vCPU).
    pub fn machine_fds(&self, m: &Machine) -> Vec<i32> {
        let mut v = m.fds();
        v.push(self.kvm.as_raw_fd());
        v
    }

    /// What `state` shows in the annotation io.contain.isolation.
    pub fn describe(&self) -> String {
        let run = match self.plan.guest {
            Guest::Linux => self.plan.vcpus,
            Guest::Bare => 1,
        };
        let mut s = format!(
            "microvm: {} guest, {} kernel {}, {} MiB, {run} vCPU{}",
            self.plan.guest,
            self.format,
            self.plan.kernel,
            self.plan.memory >> 20,
            if run == 1 { "" } else { "s" }
        );
        if run < self.plan.vcpus {
            s.push_str(&format!(
                " ({} asked; a bare guest runs one)",
                self.plan.vcpus
            ));
        }
        match (&self.plan.initramfs, &self.initramfs) {
            (Some(i), _) => s.push_str(&format!(", initramfs {}", i)),
            (None, Some(built)) => s.push_str(&format!(
                ", initramfs of the rootfs with the guest agent ({} KiB)",
                built.len() >> 10
            )),
            (None, None) => {}
        }
        if let Some(t) = self.plan.timeout {
            s.push_str(&format!(", ended after {} s", t.as_secs()));
        }
        s
    }

    /// What `state` shows in the annotation io.contain.seccomp.
    pub fn seccomp_text(&self) -> String {
        format!(
            "microvm VMM: vmm thread ({} instructions), vcpu thread ({} instructions); the workload's own profile belongs to the guest",
            self.vmm_filter.program.len(),
            self.vcpu_filter.program.len()
        )
    }

    /// Create the VM and load the guest (in the init, before it reports ready).
    pub fn build(&self) -> Result<Machine, String> {
        vmm::build(
            &self.kvm,
            self.plan.guest,
            self.plan.vcpus,
            self.plan.memory,
            &boot::Payload {
                kernel: &self.kernel,
                initramfs: self.initramfs.as_deref(),
                cmdline: &self.plan.cmdline,
            },
        )
    }

    /// Run `machine` with the container's stdio as the serial console; never returns.
    pub fn run(&self, machine: Machine) -> ! {
        let dup = |fd: i32| {
            nix::unistd::dup(fd)
                // SAFETY: dup returned a new descriptor that nobody else owns.
                .map(|d| std::fs::File::from(unsafe { OwnedFd::from_raw_fd(d) }))
        };
        let out = match dup(1) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("contain: microvm: stdout: {e}");
                crate::sys::exit_now(status::VMM_FAILED)
            }
        };
        vmm::run(
            machine,
            out,
            dup(0).ok(),
            &vmm::Filters {
                vmm: &self.vmm_filter,
                vcpu: &self.vcpu_filter,
            },
            self.plan.timeout,
        )
    }
}
