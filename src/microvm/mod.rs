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

#[cfg(feature = "microvm")]
pub mod acpi;
pub mod agent;
#[cfg(feature = "microvm")]
pub mod boot;
pub mod channel;
pub mod client;
#[cfg(feature = "microvm")]
mod cpu;
#[cfg(feature = "microvm")]
pub mod devices;
#[cfg(not(feature = "microvm"))]
mod disabled;
pub mod erofs;
#[cfg(feature = "microvm")]
mod hostnet;
pub mod initramfs;
#[cfg(feature = "microvm")]
mod machine;
#[cfg(feature = "microvm")]
pub mod mptable;
#[cfg(feature = "microvm")]
pub mod virtio;
#[cfg(feature = "microvm")]
mod vmm;

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

#[cfg(not(feature = "microvm"))]
pub use disabled::{guest_initramfs, prepare, Machine, Prepared};
#[cfg(feature = "microvm")]
pub use machine::{guest_initramfs, prepare, Prepared};
#[cfg(feature = "microvm")]
pub use vmm::{enter_filter, install_sigsys_handler, Machine};

/// What can go wrong in the stage, from its plan to the built VM.
#[derive(Debug, thiserror::Error)]
pub enum MicrovmError {
    /// config.json's annotations or resources, or the policy's microvm defaults, ask for what
    /// the stage cannot do.
    #[error("{0}")]
    Config(String),
    /// /dev/kvm cannot be used, or this build has no VMM.
    #[error("{0}")]
    Unavailable(String),
    /// A guest image (kernel, initramfs) cannot be read or is not one the VMM boots.
    #[error("{0}")]
    Image(String),
    /// The container's rootfs cannot be packed into the guest's initramfs.
    #[error("{0}")]
    Initramfs(String),
    /// A KVM ioctl or another system call failed: the step, and its errno.
    #[error(transparent)]
    Sys(#[from] crate::sys::StepError),
    /// What goes into guest memory (the kernel, the boot information, the tables) does not
    /// fit there or cannot be written.
    #[error("{0}")]
    Guest(String),
    /// A VMM thread's own seccomp filter does not compile.
    #[error("the {thread} thread's seccomp filter: {source}")]
    Filter {
        thread: &'static str,
        source: crate::seccomp::SeccompError,
    },
}

/// The longest kernel command line (the boot protocol's COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;
/// The most vCPUs a microVM has (the MP table's bound).
pub const MAX_CPUS: u8 = 32;
/// The port the guest agent writes its exit status to.
pub const EXIT_PORT: u16 = 0xf4;
/// The port the guest agent writes where the process's stdio is: [`STDIO_SERIAL`] or
/// [`STDIO_CHANNEL`]. Until it does, the VMM holds the container's stdin back.
pub const STDIO_PORT: u16 = 0xf5;
/// The process's stdio is the serial console (a terminal, or a guest kernel without the
/// virtio console): the UART carries it to the container's stdout, stdin to the UART.
pub const STDIO_SERIAL: u8 = 1;
/// The process's stdio is stream 0 of the control channel: its stdout and stderr reach the
/// container's own, apart, and the serial console (the kernel's and the agent's messages)
/// goes to the container's stderr.
pub const STDIO_CHANNEL: u8 = 2;

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
/// How a Linux guest gets the rootfs: `initramfs` (the default: copied into the agent's
/// initramfs) or `block` (an erofs disk over virtio-blk; see [`RootfsMode`]).
pub const ROOTFS_ANNOTATION: &str = "io.contain.microvm.rootfs";
/// A directory of the guest kernel's modules (a tree such as /lib/modules/VERSION, or the
/// .ko files side by side), from which the agent's initramfs takes those the guest's devices
/// need (GUEST_MODULES).
pub const MODULES_ANNOTATION: &str = "io.contain.microvm.modules";

/// The devices a guest's machine has, as `features` and `audit --host` list them.
pub const DEVICES: &str = "COM1 (8250: kernel console; stdio of bare guests, of a terminal, \
     of guests without virtio_console), exit port 0xf4, stdio port 0xf5, CMOS clock; Linux \
     guests with the agent: virtio-mmio virtio-console (control channel: the process's stdio, \
     exec, kill), virtio-net (the network namespace's interface, when it has one) and, with \
     io.contain.microvm.rootfs=block, virtio-blk (read-only erofs rootfs)";

/// The modules the guest's devices need (the block rootfs's disk, the control channel's
/// console, the network device), in the order they are loaded (a module's dependencies first). One the
/// directory does not hold is taken to be built into the kernel.
pub const GUEST_MODULES: [&str; 12] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "virtio_console",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
    "crc32c_generic",
    "libcrc32c",
    "erofs",
    "overlay",
];

/// How a Linux guest without an initramfs of its own gets the container's rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    /// Copied into the agent's initramfs (bounded by half of guest RAM, built at each create).
    #[default]
    Initramfs,
    /// A read-only erofs disk of the rootfs on a virtio-blk device (built from the tree's
    /// metadata; large files are read from the rootfs when the guest reads them), with a
    /// tmpfs overlay in the guest for the container's writes (none when root.readonly).
    Block,
}

/// Guest RAM when linux.resources.memory.limit is unset.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// The least guest RAM accepted (the layout needs the first MiB and room for a kernel).
pub const MIN_MEMORY: u64 = 4 << 20;
/// The most: RAM is one region below the 32-bit device hole (3 GiB).
pub const MAX_MEMORY: u64 = 3 << 30;
/// The default command line: the console on COM1, no reboot on panic, no PCI probe (the
/// machine has no PCI bus: its devices are virtio-mmio), and only the kernel's warnings and
/// errors among the container's output. Modules are not refused here (`nomodule` would make
/// the block rootfs's modules unloadable): the guest agent disables module loading itself
/// once it has loaded the ones its initramfs carries.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 pci=off quiet";

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
    /// How a Linux guest with the agent's initramfs gets the rootfs.
    pub rootfs: RootfsMode,
    /// Where the guest kernel's modules are (for a block rootfs).
    pub modules: Option<Image>,
    pub cmdline: String,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// vCPUs (from the CPU quota, 1 to MAX_CPUS; a bare guest runs one).
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
    pub rootfs: Option<RootfsMode>,
    #[serde(default)]
    pub modules: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: Option<String>,
}

/// The stage's plan for `spec` (pure): annotations first, then the policy's defaults.
pub fn plan(spec: &Spec, defaults: &Defaults) -> Result<Plan, MicrovmError> {
    plan_of(spec, defaults).map_err(MicrovmError::Config)
}

fn plan_of(spec: &Spec, defaults: &Defaults) -> Result<Plan, String> {
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
    let rootfs = match ann(ROOTFS_ANNOTATION).as_deref() {
        None => defaults.rootfs.unwrap_or_default(),
        Some("initramfs") => RootfsMode::Initramfs,
        Some("block") => RootfsMode::Block,
        Some(other) => {
            return Err(format!(
            "annotation {ROOTFS_ANNOTATION}: {other:?}: the values are \"initramfs\" and \"block\""
        ))
        }
    };
    if rootfs == RootfsMode::Block && (guest != Guest::Linux || initramfs.is_some()) {
        return Err(format!(
            "annotation {ROOTFS_ANNOTATION}: block is for a Linux guest booted with the agent's \
             initramfs (no {INITRAMFS_ANNOTATION})"
        ));
    }
    let modules = image(MODULES_ANNOTATION, &defaults.modules)?;
    let mut cmdline = ann(CMDLINE_ANNOTATION)
        .or_else(|| defaults.cmdline.clone())
        .unwrap_or_else(|| DEFAULT_CMDLINE.into());
    if guest == Guest::Linux && initramfs.is_none() && !cmdline.contains(initramfs::AGENT_CMDLINE) {
        cmdline = format!("{cmdline} {}", initramfs::AGENT_CMDLINE);
    }
    if cmdline.len() >= CMDLINE_MAX {
        return Err(format!(
            "annotation {CMDLINE_ANNOTATION}: {} bytes, at most {}",
            cmdline.len(),
            CMDLINE_MAX - 1
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
    if vcpus > MAX_CPUS.into() {
        return Err(format!(
            "linux.resources.cpu: the quota asks for {vcpus} vCPUs; a microVM runs at most {}",
            MAX_CPUS
        ));
    }
    Ok(Plan {
        guest,
        kernel,
        initramfs,
        rootfs,
        modules,
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
    #[cfg(not(feature = "microvm"))]
    let kvm = Err(disabled::WHY.to_string());
    #[cfg(feature = "microvm")]
    let kvm = kvm_ioctls::Kvm::new()
        .map_err(|e| format!("/dev/kvm: {e}"))
        .and_then(|k| match k.get_api_version() {
            12 => Ok(()),
            v => Err(format!("/dev/kvm speaks API {v}, not 12")),
        });
    Support { kvm, pvm: on_pvm() }
}

/// Whether the host's KVM is kvm_pvm (nested, paravirtual).
pub(crate) fn on_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// The largest kernel or initramfs read (a bound on what a config makes the runtime read).
const MAX_IMAGE: u64 = 512 << 20;

/// The initramfs of a Linux guest without one of its own: `rootfs`, `config`'s process and
/// this binary (which must be statically linked) as the guest agent; at most half of
/// `memory` (the kernel unpacks it into RAM beside the archive).
pub fn agent_initramfs(
    rootfs: &Path,
    config: &initramfs::GuestConfig,
    modules: &[(String, Vec<u8>)],
    memory: u64,
) -> Result<Vec<u8>, MicrovmError> {
    initramfs::build(
        rootfs,
        config,
        &agent_binary()?,
        modules,
        (memory / 2).min(MAX_IMAGE),
    )
    .map_err(MicrovmError::Initramfs)
}

/// The initramfs of a Linux guest whose rootfs is a disk: the agent, `config` and the kernel
/// `modules` the agent loads to reach the disk.
pub fn agent_block_initramfs(
    config: &initramfs::GuestConfig,
    modules: &[(String, Vec<u8>)],
    memory: u64,
) -> Result<Vec<u8>, MicrovmError> {
    initramfs::build_for_block(
        config,
        &agent_binary()?,
        modules,
        (memory / 2).min(MAX_IMAGE),
    )
    .map_err(MicrovmError::Initramfs)
}

/// This binary, which must be statically linked to be the guest agent.
fn agent_binary() -> Result<Vec<u8>, MicrovmError> {
    let agent = std::fs::read("/proc/self/exe")
        .map_err(crate::sys::during("read this binary for the guest agent"))?;
    if !initramfs::is_static(&agent) {
        return Err(MicrovmError::Initramfs(
            "the guest agent is this binary, which is not statically linked: build contain \
             with the repository's .cargo/config.toml (-C target-feature=+crt-static)"
                .into(),
        ));
    }
    Ok(agent)
}

/// The two kinds of thread of the VMM, each with a seccomp filter of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    Vmm,
    Vcpu,
    /// The virtio-blk device's I/O (a Linux guest with a block rootfs).
    Block,
    /// The control channel: the runtime's clients relayed to the guest agent's console.
    Control,
    /// The virtio-net device's frames (a Linux guest in a network namespace with an interface).
    Net,
}

/// The compiled filter of a thread kind. Every syscall not listed takes the default action
/// (a trap), newer ones too: no ENOSYS stub.
pub fn thread_filter(kind: ThreadKind) -> Result<crate::seccomp::Compiled, MicrovmError> {
    let (name, json) = match kind {
        ThreadKind::Vmm => ("vmm", VMM_FILTER),
        ThreadKind::Vcpu => ("vcpu", VCPU_FILTER),
        ThreadKind::Block => ("block", BLOCK_FILTER),
        ThreadKind::Control => ("control", CONTROL_FILTER),
        ThreadKind::Net => ("net", NET_FILTER),
    };
    crate::seccomp::Profile::from_slice(json)
        .and_then(|p| {
            crate::seccomp::compile_with(
                &p,
                crate::seccomp::Options {
                    enosys_stub: false,
                    ..Default::default()
                },
            )
        })
        .map_err(|source| MicrovmError::Filter {
            thread: name,
            source,
        })
}

/// The VMM thread's syscalls (OCI seccomp JSON, compiled by contain's own compiler).
const VMM_FILTER: &[u8] = include_bytes!("../../policies/microvm/vmm.json");
/// The vCPU thread's syscalls.
const VCPU_FILTER: &[u8] = include_bytes!("../../policies/microvm/vcpu.json");
/// The block I/O thread's filter.
const BLOCK_FILTER: &[u8] = include_bytes!("../../policies/microvm/block.json");
/// The control thread's filter.
const CONTROL_FILTER: &[u8] = include_bytes!("../../policies/microvm/control.json");
/// The network thread's filter.
const NET_FILTER: &[u8] = include_bytes!("../../policies/microvm/net.json");

#[cfg(test)]
mod tests {
    use super::{plan, Defaults, MicrovmError, GUEST_ANNOTATION, KERNEL_ANNOTATION};

    #[test]
    fn what_the_config_asks_wrongly_is_a_config_error() {
        let mut spec = oci_spec::runtime::Spec::default();
        let ann = |guest: &str| {
            Some(
                [(KERNEL_ANNOTATION, "vmlinux"), (GUEST_ANNOTATION, guest)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        spec.set_annotations(ann("windows"));
        let e = plan(&spec, &Defaults::default()).unwrap_err();
        assert!(
            matches!(&e, MicrovmError::Config(m) if m.contains("\"linux\" and \"bare\"")),
            "{e:?}"
        );
        spec.set_annotations(ann("bare"));
        assert!(plan(&spec, &Defaults::default()).is_ok());
    }
}
