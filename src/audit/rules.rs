//! The catalogue: every rule with a stable id, its severity, the layer it concerns, why it
//! matters, how to fix it, and the Kubernetes Pod Security Standards level it maps to.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Points taken off the score of 100.
    pub fn weight(self) -> u32 {
        match self {
            Severity::Low => 2,
            Severity::Medium => 8,
            Severity::High => 20,
            Severity::Critical => 40,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Userns,
    Capabilities,
    Namespaces,
    Seccomp,
    Landlock,
    Privileges,
    Mounts,
    Devices,
    Resources,
    Kernel,
    Isolation,
    Hooks,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Userns => "user namespace",
            Layer::Capabilities => "capabilities",
            Layer::Namespaces => "namespaces",
            Layer::Seccomp => "seccomp",
            Layer::Landlock => "landlock",
            Layer::Privileges => "privileges",
            Layer::Mounts => "mounts",
            Layer::Devices => "devices",
            Layer::Resources => "resources",
            Layer::Kernel => "kernel knobs",
            Layer::Isolation => "isolation",
            Layer::Hooks => "hooks",
        }
    }
}

/// One rule of the catalogue.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub id: &'static str,
    pub severity: Severity,
    pub layer: Layer,
    pub title: &'static str,
    pub rationale: &'static str,
    pub remediation: &'static str,
    /// The Pod Security Standards level a bundle with this finding fails ("baseline" fails
    /// both levels).
    pub pss: Option<&'static str>,
}

macro_rules! rule {
    ($id:literal, $sev:ident, $layer:ident, $title:literal, $why:literal, $fix:literal, $pss:expr) => {
        Rule {
            id: $id,
            severity: Severity::$sev,
            layer: Layer::$layer,
            title: $title,
            rationale: $why,
            remediation: $fix,
            pss: $pss,
        }
    };
}

pub const RULES: &[Rule] = &[
    rule!("CA-USERNS-001", Critical, Userns, "container root is host root",
        "Without a user namespace (or with uid 0 mapped to host uid 0) a process that escapes the container's other layers is root on the host.",
        "Use the default or strict policy (they add a user namespace), or add a user namespace with uidMappings/gidMappings to an unprivileged host range.",
        Some("restricted")),
    rule!("CA-CAP-001", Critical, Capabilities, "a capability that amounts to root",
        "CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE, CAP_SYS_RAWIO, CAP_DAC_READ_SEARCH, CAP_NET_ADMIN, CAP_BPF, CAP_PERFMON, CAP_SYS_BOOT, CAP_MAC_ADMIN and CAP_SYS_TIME each give ways to reach the host kernel, other processes or the host's files.",
        "Remove it from process.capabilities (every set); use the strict policy to refuse such configs.",
        Some("baseline")),
    rule!("CA-CAP-002", Medium, Capabilities, "capabilities beyond Docker's default set",
        "Every capability widens what a compromised process can do; Docker's default set is what ordinary images need.",
        "Keep process.capabilities within CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID, SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.",
        Some("baseline")),
    rule!("CA-NS-001", High, Namespaces, "the host's pid, network or ipc namespace is shared",
        "A shared pid namespace shows (and with privilege, signals and traces) host processes; a shared network namespace reaches host-only services and abstract unix sockets; a shared ipc namespace reaches host shared memory.",
        "Add {\"type\": \"pid\"}, {\"type\": \"network\"} and {\"type\": \"ipc\"} to linux.namespaces (without a path).",
        Some("baseline")),
    rule!("CA-NS-002", Medium, Namespaces, "the host's uts, cgroup or mount namespace is shared, or a namespace is joined by path",
        "A shared uts namespace lets the container rename the host; a shared cgroup namespace shows the host's cgroup tree; a namespace joined by path is as strong as whatever made it.",
        "Give the container new uts, cgroup and mount namespaces; join namespaces only of containers with the same trust.",
        None),
    rule!("CA-SECCOMP-001", High, Seccomp, "no seccomp filter",
        "The whole syscall surface of the host kernel is reachable; most container escapes go through a syscall a filter would have refused.",
        "Use the default policy (contain's profile applies when config.json has none) or set linux.seccomp.",
        Some("restricted")),
    rule!("CA-SECCOMP-002", High, Seccomp, "the seccomp filter allows a dangerous syscall",
        "The filter lets through a call that escapes or attacks the kernel: new user namespaces (unshare/clone with CLONE_NEWUSER), mount, ptrace, bpf, keyctl, kexec or module loading, open_by_handle_at, userfaultfd, perf_event_open, io_uring, or 32-bit/x32 syscalls.",
        "Use contain's default profile (policies/seccomp/default.json) or deny these calls in linux.seccomp.",
        None),
    rule!("CA-SECCOMP-003", Low, Seccomp, "the seccomp profile names syscalls this host does not know",
        "Rules on unknown names are skipped (as runc does): a misspelt name in a deny rule leaves the syscall it meant allowed. Names of other architectures in Docker's and podman's profiles are harmless.",
        "Check the listed names; fix any misspelling.",
        None),
    rule!("CA-LANDLOCK-001", Medium, Landlock, "no Landlock ruleset",
        "Without Landlock nothing keeps a process that gains privilege from remounting read-only mounts, and abstract unix sockets and signals of shared namespaces stay reachable.",
        "Use the default or strict policy, or add process.landlock.",
        None),
    rule!("CA-LANDLOCK-002", Low, Landlock, "part of the Landlock plan is not enforced",
        "The kernel lacks rights the plan asks for (best effort drops them), or read-only places inside broader rules rely on their mount flags.",
        "Run on a kernel with a newer Landlock ABI, or use a policy that splits rules (strict).",
        None),
    rule!("CA-PRIV-001", Medium, Privileges, "no_new_privs is off",
        "Set-uid and file-capability binaries in the image can raise privileges inside the container.",
        "Set process.noNewPrivileges to true (the strict policy forces it).",
        Some("restricted")),
    rule!("CA-PRIV-002", Low, Privileges, "the process runs as root",
        "Root in the container owns the image's files and holds the configured capabilities.",
        "Set process.user.uid (and gid) to an unprivileged id.",
        Some("restricted")),
    rule!("CA-ROOTFS-001", Low, Mounts, "the rootfs is writable",
        "A writable image lets a compromised process plant binaries and change configuration for whatever runs later.",
        "Set root.readonly to true and mount writable tmpfs or volumes where the workload writes.",
        None),
    rule!("CA-MOUNT-001", Critical, Mounts, "a sensitive host path is mounted",
        "The host's /, /proc, /sys, /dev, /etc, /boot, /lib/modules, /var/lib/kubelet or a container engine's socket (docker, containerd, crio, podman) gives control of the host, writable or not.",
        "Remove the bind mount; mount only the data the workload needs, read-only where possible.",
        Some("baseline")),
    rule!("CA-MOUNT-002", Medium, Mounts, "a writable bind mount of a host path",
        "The container can change host files, and anything on the host that trusts them.",
        "Add \"ro\" to the mount's options unless the workload must write there.",
        Some("baseline")),
    rule!("CA-MOUNT-003", Medium, Mounts, "masked or read-only /proc and /sys paths are missing",
        "/proc/kcore, /proc/keys, /sys/firmware and friends leak host secrets; /proc/sys, /proc/sysrq-trigger and friends change the host kernel.",
        "Keep runc's default linux.maskedPaths and linux.readonlyPaths (contain spec writes them).",
        Some("baseline")),
    rule!("CA-DEV-001", High, Devices, "devices are allowed wholesale or block devices are allowed",
        "Access to every device node, or to a disk, is access to the host's data and hardware.",
        "Deny all in linux.resources.devices and allow only the character devices the workload needs.",
        Some("baseline")),
    rule!("CA-RES-001", Medium, Resources, "no memory limit",
        "One container can exhaust the host's memory and get other workloads killed.",
        "Set linux.resources.memory.limit.",
        None),
    rule!("CA-RES-002", Medium, Resources, "no pids limit",
        "A fork bomb in the container exhausts the host's process table.",
        "Set linux.resources.pids.limit.",
        None),
    rule!("CA-RES-003", Low, Resources, "no rlimits for open files or processes",
        "Without RLIMIT_NOFILE and RLIMIT_NPROC one process can exhaust descriptors or tasks.",
        "Add RLIMIT_NOFILE and RLIMIT_NPROC to process.rlimits.",
        None),
    rule!("CA-SYSCTL-001", High, Kernel, "a sysctl outside the safe set",
        "Sysctls outside the namespaced safe set change kernel behaviour for the whole host or weaken isolation.",
        "Keep linux.sysctl to the Pod Security Standards' safe set (kernel.shm_rmid_forced, net.ipv4.ip_local_port_range, net.ipv4.ip_unprivileged_port_start, net.ipv4.tcp_syncookies, net.ipv4.ping_group_range, ...).",
        Some("baseline")),
    rule!("CA-VM-001", High, Isolation, "the microVM stage is asked for but this host cannot run it",
        "The policy or the annotation io.contain.isolation marks the workload hostile enough for its own kernel; without KVM it would share the host kernel, so create refuses it.",
        "Run it on a host with /dev/kvm (contain audit --host says whether this one has it), or lower the isolation only after weighing the risk (annotation io.contain.isolation: container, a policy without isolation: microvm).",
        None),
    rule!("CA-VM-002", Low, Isolation, "a workload the policy marks hostile shares the host kernel",
        "The policy is meant for hostile code, yet the workload runs as a container: every syscall the filter allows reaches the host kernel, and one kernel bug among them is an escape. The microVM stage puts the workload on a kernel of its own.",
        "Set the annotation io.contain.isolation: microvm with io.contain.microvm.kernel (or a policy with isolation: microvm and a guest kernel) on a host where contain audit --host reports the stage.",
        None),
    rule!("CA-VM-003", Medium, Isolation, "the bundle names the microVM's guest kernel or initramfs",
        "The runtime reads guest images as host root and the guest can read what is loaded into its memory. A bundle may name only files in the operator's guest directory (/var/lib/contain/guests or CONTAIN_GUEST_DIR); create refuses any other path, and whoever writes the bundle still chooses which of the operator's images boots.",
        "Let the policy name the kernel and initramfs (microvm.kernel, microvm.initramfs) and drop the annotations, or check that every image in the guest directory is fit for any bundle.",
        None),
    rule!("CA-HOOK-001", Medium, Hooks, "hooks run host binaries",
        "prestart, createRuntime, poststart and poststop hooks run on the host as the runtime's user (root) with the container's state as input.",
        "Remove the hooks, or make sure each binary and its input are trusted.",
        None),
];

/// The rule with this id.
pub fn rule(id: &str) -> &'static Rule {
    RULES
        .iter()
        .find(|r| r.id == id)
        .unwrap_or_else(|| unreachable!("rule {id} is in the catalogue"))
}
