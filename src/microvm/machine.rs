//! The VMM's side of the stage (cargo feature `microvm`): open /dev/kvm, read the guest
//! images, build the VM and run it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use kvm_ioctls::Kvm;

use super::{
    agent_block_initramfs, agent_initramfs, boot, erofs, guest_dir, hostnet, initramfs, status,
    thread_filter, vmm, Guest, Image, Machine, MicrovmError, Plan, RootfsMode, Support, ThreadKind,
    MAX_IMAGE,
};

/// Everything the init needs, gathered by the runtime before it forks.
pub struct Prepared {
    kvm: Kvm,
    kernel: Vec<u8>,
    initramfs: Option<Vec<u8>>,
    plan: Plan,
    format: boot::Format,
    /// The rootfs disk, until the VM is built with it.
    disk: std::sync::Mutex<Option<erofs::Disk>>,
    vmm_filter: crate::seccomp::Compiled,
    vcpu_filter: crate::seccomp::Compiled,
    block_filter: crate::seccomp::Compiled,
    control_filter: crate::seccomp::Compiled,
    /// The control channel's socket (bound by [`Prepared::listen`]), until the VMM runs.
    listener: std::sync::Mutex<Option<std::os::unix::net::UnixListener>>,
    net_filter: crate::seccomp::Compiled,
    /// The network namespace's interface, taken for the guest by [`Prepared::attach_network`].
    net: std::sync::Mutex<Option<hostnet::Attached>>,
}

/// Read a guest image. One named by the bundle is opened beneath the operator's guest
/// directory (an absolute name must lie in it): `..`, symlinks out of it and magic links are
/// refused by openat2(RESOLVE_BENEATH), so a bundle cannot make the runtime read a host file
/// (/etc/shadow, /proc/self/...) into guest memory. Every image is opened non-blocking (a
/// FIFO cannot stall create) and must be a regular file of at most MAX_IMAGE bytes.
fn read_image(what: &str, image: &Image) -> Result<Vec<u8>, MicrovmError> {
    let err =
        |e: &dyn std::fmt::Display| MicrovmError::Image(format!("microvm {what} {image}: {e}"));
    let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = open_image(what, image, flags)?;
    read_file(fd).map_err(|e| err(&e))
}

/// A regular file of at most MAX_IMAGE bytes, read whole.
fn read_file(fd: OwnedFd) -> Result<Vec<u8>, String> {
    let f = std::fs::File::from(fd);
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.len() > MAX_IMAGE {
        return Err(format!(
            "not a regular file of at most {} MiB",
            MAX_IMAGE >> 20
        ));
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_IMAGE), &mut data)
        .map_err(|e| e.to_string())?;
    Ok(data)
}

/// Open a guest image or directory as [`read_image`] describes.
fn open_image(what: &str, image: &Image, flags: i32) -> Result<OwnedFd, MicrovmError> {
    let err =
        |e: &dyn std::fmt::Display| MicrovmError::Image(format!("microvm {what} {image}: {e}"));
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
    Ok(fd)
}

/// The guest's device modules found in `dir` (searched to a depth of 8, without following
/// links), in load order: (name, image). A module not found is taken to be built in.
fn guest_modules(dir: &Image) -> Result<Vec<(String, Vec<u8>)>, MicrovmError> {
    let root = open_image("modules", dir, libc::O_RDONLY | libc::O_DIRECTORY)?;
    let mut found: std::collections::HashMap<String, OwnedFd> = Default::default();
    let mut stack = vec![(root, 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let names = initramfs::list(std::os::fd::AsFd::as_fd(&d))
            .map_err(|e| MicrovmError::Image(format!("microvm modules {dir}: {e}")))?;
        for name in names {
            let n = name.to_string_lossy().into_owned();
            let module = n.strip_suffix(".ko").map(|m| m.replace('-', "_"));
            match module {
                Some(m)
                    if super::GUEST_MODULES.contains(&m.as_str()) && !found.contains_key(&m) =>
                {
                    if let Ok(f) = initramfs::openat(
                        std::os::fd::AsFd::as_fd(&d),
                        &name,
                        libc::O_RDONLY | libc::O_NONBLOCK,
                    ) {
                        found.insert(m, f);
                    }
                }
                Some(_) => {}
                None if depth < 8 => {
                    if let Ok(sub) = initramfs::openat(
                        std::os::fd::AsFd::as_fd(&d),
                        &name,
                        libc::O_RDONLY | libc::O_DIRECTORY,
                    ) {
                        stack.push((sub, depth + 1));
                    }
                }
                None => {}
            }
        }
    }
    super::GUEST_MODULES
        .iter()
        .filter_map(|m| found.remove(*m).map(|f| (m.to_string(), f)))
        .map(|(m, f)| {
            read_file(f)
                .map(|image| (m.clone(), image))
                .map_err(|e| MicrovmError::Image(format!("microvm modules {dir}: {m}.ko: {e}")))
        })
        .collect()
}

/// The agent's initramfs for a Linux guest of `plan`: with the rootfs in it (or, for a block
/// rootfs, without), and the kernel modules the agent loads for the guest's devices.
pub fn guest_initramfs(
    plan: &Plan,
    rootfs: &Path,
    config: &initramfs::GuestConfig,
) -> Result<Vec<u8>, MicrovmError> {
    let modules = match &plan.modules {
        Some(dir) => guest_modules(dir)?,
        None => Vec::new(),
    };
    match plan.rootfs {
        RootfsMode::Block => agent_block_initramfs(config, &modules, plan.memory),
        RootfsMode::Initramfs => agent_initramfs(rootfs, config, &modules, plan.memory),
    }
}

/// Open /dev/kvm, read the images (or build a Linux guest's initramfs from `rootfs` and
/// `config`), check the kernel's format and compile the filters.
pub fn prepare(
    plan: &Plan,
    rootfs: &Path,
    config: &initramfs::GuestConfig,
) -> Result<Prepared, MicrovmError> {
    let kvm = Kvm::new().map_err(|e| {
        MicrovmError::Unavailable(format!(
            "the microVM stage needs /dev/kvm: {e} (is KVM available and is contain root?)"
        ))
    })?;
    let kernel = read_image("kernel", &plan.kernel)?;
    let format = boot::detect(&kernel)
        .map_err(|e| MicrovmError::Image(format!("microvm kernel {}: {e}", plan.kernel)))?;
    if plan.guest == Guest::Linux {
        // /dev/kvm is open already: only the kind of KVM is left to know.
        let here = Support {
            kvm: Ok(()),
            pvm: super::on_pvm(),
        };
        if let Err(why) = here.linux_boots() {
            crate::log::warn(&format!(
                "microvm: a Linux guest may not boot here: {why} (a kernel built as a PVM guest \
                 does)"
            ));
        }
    }
    let disk = match (&plan.initramfs, plan.guest, plan.rootfs) {
        (None, Guest::Linux, RootfsMode::Block) => Some(
            erofs::Disk::build(rootfs, erofs::files_allowed())
                .map_err(|e| MicrovmError::Initramfs(format!("the rootfs disk: {e}")))?,
        ),
        _ => None,
    };
    let initramfs = match (&plan.initramfs, plan.guest) {
        (Some(p), _) => Some(read_image("initramfs", p)?),
        (None, Guest::Linux) => Some(guest_initramfs(plan, rootfs, config)?),
        (None, Guest::Bare) => None,
    };
    Ok(Prepared {
        kvm,
        kernel,
        initramfs,
        plan: plan.clone(),
        format,
        disk: std::sync::Mutex::new(disk),
        vmm_filter: thread_filter(ThreadKind::Vmm)?,
        vcpu_filter: thread_filter(ThreadKind::Vcpu)?,
        block_filter: thread_filter(ThreadKind::Block)?,
        control_filter: thread_filter(ThreadKind::Control)?,
        listener: std::sync::Mutex::new(None),
        net_filter: thread_filter(ThreadKind::Net)?,
        net: std::sync::Mutex::new(None),
    })
}

impl Prepared {
    /// Whether the guest runs the agent, which the control channel reaches.
    fn has_agent(&self) -> bool {
        self.plan.guest == Guest::Linux && self.plan.initramfs.is_none()
    }

    /// Bind the control channel's socket in the container's state directory `dir` (mode
    /// 0600: the runtime's clients, as root, connect to it), for a guest that runs the agent.
    pub fn listen(&self, dir: &Path) -> Result<(), MicrovmError> {
        if !self.has_agent() {
            return Ok(());
        }
        let l = super::channel::bind(dir).map_err(|e| {
            MicrovmError::Unavailable(format!("the control socket in {}: {e}", dir.display()))
        })?;
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(l);
        Ok(())
    }

    /// Take the current network namespace's interface for the guest (a Linux guest with the
    /// agent): called once by the container's init process, in the container's network
    /// namespace while still privileged there (never in the runtime's own namespace).
    pub fn attach_network(&self) -> Result<(), MicrovmError> {
        if !self.has_agent() {
            return Ok(());
        }
        let attached = hostnet::attach()?;
        if let Some(a) = &attached {
            crate::log::debug(&format!("microvm: the guest's network: {}", a.describe()));
        }
        *self.net.lock().unwrap_or_else(|p| p.into_inner()) = attached;
        Ok(())
    }

    /// The descriptors the init must keep open across the runtime's descriptor cleanup
    /// (/dev/kvm, the files the rootfs disk reads, the control socket).
    pub fn keep_fds(&self) -> Vec<i32> {
        let mut v = vec![self.kvm.as_raw_fd()];
        if let Some(d) = self.disk.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            v.extend(d.fds());
        }
        v.extend(self.listener_fd());
        v
    }

    fn listener_fd(&self) -> Option<i32> {
        self.listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(AsRawFd::as_raw_fd)
    }

    /// The descriptors the VMM runs on (/dev/kvm, the VM, the vCPU, the devices' eventfds,
    /// the control socket).
    pub fn machine_fds(&self, m: &Machine) -> Vec<i32> {
        let mut v = m.fds();
        v.push(self.kvm.as_raw_fd());
        v.extend(self.listener_fd());
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
        if let Some(d) = self.disk.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            s.push_str(&format!(
                ", rootfs on virtio-blk (erofs, {} MiB, {} files served from the rootfs)",
                d.size() >> 20,
                d.fds().len()
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
            "microvm VMM: vmm thread ({} instructions), vcpu thread ({} instructions), block thread ({} instructions), control thread ({} instructions), net thread ({} instructions); the workload's own profile belongs to the guest",
            self.vmm_filter.program.len(),
            self.vcpu_filter.program.len(),
            self.block_filter.program.len(),
            self.control_filter.program.len(),
            self.net_filter.program.len()
        )
    }

    /// Create the VM and load the guest (in the init, before it reports ready).
    pub fn build(&self) -> Result<Machine, MicrovmError> {
        let disk = self.disk.lock().unwrap_or_else(|p| p.into_inner()).take();
        let net = self.net.lock().unwrap_or_else(|p| p.into_inner()).take();
        let cmdline = match &net {
            Some(n) => hostnet::with_word(&self.plan.cmdline, &n.cmdline()),
            None => self.plan.cmdline.clone(),
        };
        vmm::build(
            &self.kvm,
            self.plan.guest,
            self.plan.vcpus,
            self.plan.memory,
            &boot::Payload {
                kernel: &self.kernel,
                initramfs: self.initramfs.as_deref(),
                cmdline: &cmdline,
            },
            vmm::Attachments {
                disk,
                control: self.has_agent(),
                net,
            },
        )
    }

    /// Run `machine` with the container's stdio (on the serial console, or the control
    /// channel's stream 0); never returns.
    pub fn run(&self, machine: Machine) -> ! {
        let dup = |fd: i32| {
            nix::unistd::dup(fd)
                // SAFETY: dup returned a new descriptor that nobody else owns.
                .map(|d| std::fs::File::from(unsafe { OwnedFd::from_raw_fd(d) }))
        };
        let [out, err] = [1, 2].map(|fd| match dup(fd) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("contain: microvm: the container's stdio (fd {fd}): {e}");
                crate::sys::exit_now(status::VMM_FAILED)
            }
        });
        let control = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        vmm::run(
            machine,
            vmm::Stdio {
                out,
                err,
                input: dup(0).ok(),
            },
            control,
            &vmm::Filters {
                vmm: &self.vmm_filter,
                vcpu: &self.vcpu_filter,
                block: &self.block_filter,
                control: &self.control_filter,
                net: &self.net_filter,
            },
            self.plan.timeout,
        )
    }
}
