//! The monitor: one VM, one vCPU thread running KVM_RUN and the devices, and the VMM thread
//! (the process's main thread) relaying stdin to the UART and signals to the VM's end. Each
//! thread kind installs its own seccomp filter before it touches anything the guest controls.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex};

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use super::boot::{self, Payload};
use super::channel;
use super::devices::{Devices, Effect, Irq};
use super::hostnet::Attached;
use super::virtio::net::{Net, PacketSocket};
use super::virtio::{Access, Backend, Block, Console, Mmio, MMIO_SIZE};
use super::{acpi, cpu, erofs, mptable, status, Guest, MicrovmError};
use crate::sys::during;
use vmm_sys_util::eventfd::EventFd;

/// A VM ready to run: memory mapped, kernel loaded, boot vCPU in its entry state.
pub struct Machine {
    // Declared first so that it is dropped before the memory it maps.
    vm: VmFd,
    /// The processors, the bootstrap one first.
    vcpus: Vec<VcpuFd>,
    /// COM1's interrupt (an irqfd on IRQ 4) when the machine has an interrupt controller.
    serial_irq: Option<EventFd>,
    /// The rootfs disk's virtio-blk device, when the rootfs is a block device.
    block: Option<Device<Block>>,
    /// The control channel's virtio-console device, when the guest runs the agent.
    console: Option<Device<Console>>,
    /// The virtio-net device, when the container's network namespace had an interface.
    net: Option<Device<Net<PacketSocket>>>,
    _mem: GuestMemoryMmap,
}

/// A virtio-mmio device and its two eventfds: the queue notification (an ioeventfd KVM
/// signals on the guest's write to QueueNotify) and the interrupt (an irqfd).
struct Device<B: Backend> {
    dev: Mmio<B>,
    base: u64,
    notify: EventFd,
    irq: EventFd,
}

/// Where the virtio-mmio devices are (above RAM, below the IOAPIC, one page each: the block
/// device, then the console), and their IRQs.
const VIRTIO_BASE: u64 = 0xd000_0000;
const VIRTIO_IRQ: u32 = 5;
const CONSOLE_BASE: u64 = VIRTIO_BASE + MMIO_SIZE;
const CONSOLE_IRQ: u32 = 6;
const NET_BASE: u64 = VIRTIO_BASE + 2 * MMIO_SIZE;
const NET_IRQ: u32 = 7;
/// QueueNotify's offset in a device's registers.
const QUEUE_NOTIFY: u64 = 0x50;

impl Machine {
    pub fn fds(&self) -> Vec<i32> {
        let mut v = vec![self.vm.as_raw_fd()];
        v.extend(self.vcpus.iter().map(|c| c.as_raw_fd()));
        v.extend(self.serial_irq.as_ref().map(|e| e.as_raw_fd()));
        if let Some(b) = &self.block {
            v.extend([b.notify.as_raw_fd(), b.irq.as_raw_fd()]);
            v.extend(b.dev.backend.disk.fds());
        }
        if let Some(c) = &self.console {
            v.extend([c.notify.as_raw_fd(), c.irq.as_raw_fd()]);
        }
        if let Some(n) = &self.net {
            v.extend([
                n.notify.as_raw_fd(),
                n.irq.as_raw_fd(),
                n.dev.backend.link.0.as_raw_fd(),
            ]);
        }
        v
    }
}

/// COM1's interrupt line on the PC's legacy interrupt controller.
const COM1_IRQ: u32 = 4;

/// A Linux guest's platform: the in-kernel interrupt controllers (PIC, IOAPIC, local APIC)
/// and timer (PIT), made before the vCPU, and COM1's interrupt wired to them.
fn linux_platform(vm: &VmFd) -> Result<EventFd, MicrovmError> {
    vm.create_irq_chip().map_err(during("KVM_CREATE_IRQCHIP"))?;
    let pit = kvm_bindings::kvm_pit_config {
        flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(during("KVM_CREATE_PIT2"))?;
    let irq = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(during("eventfd"))?;
    vm.register_irqfd(&irq, COM1_IRQ)
        .map_err(during("KVM_IRQFD"))?;
    Ok(irq)
}

/// The virtio devices a Linux guest gets: the rootfs disk, the control channel's console
/// (for the agent), the network device on the namespace's interface.
pub struct Attachments {
    pub disk: Option<erofs::Disk>,
    pub control: bool,
    pub net: Option<Attached>,
}

/// Create the VM on `kvm`: `guest`'s machine with `vcpus` processors (one for a bare guest)
/// and `mem` bytes of RAM, with the devices `with` names, and boot `payload` into it.
pub fn build(
    kvm: &Kvm,
    guest: Guest,
    vcpus: u8,
    mem: u64,
    payload: &Payload<'_>,
    with: Attachments,
) -> Result<Machine, MicrovmError> {
    let vm = kvm.create_vm().map_err(during("KVM_CREATE_VM"))?;
    let memory = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem as usize)])
        .map_err(|e| MicrovmError::Guest(format!("map {mem} bytes of guest memory: {e}")))?;
    let host = memory
        .get_host_address(GuestAddress(0))
        .map_err(|e| MicrovmError::Guest(format!("guest memory: {e}")))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: mem,
        userspace_addr: host as u64,
    };
    // SAFETY: the region describes `memory`'s one mapping, which lives in the returned Machine
    // as long as the VM (declared before it, so the VM goes first).
    unsafe { vm.set_user_memory_region(region) }.map_err(during("KVM_SET_USER_MEMORY_REGION"))?;
    // Intel needs a TSS area in guest physical space outside RAM for real-mode emulation.
    let _ = vm.set_tss_address(0xfffb_d000);
    let serial_irq = match guest {
        Guest::Linux => Some(linux_platform(&vm)?),
        Guest::Bare => None,
    };
    // A bare guest has no interrupt controller to start other processors with: one vCPU.
    let count = match guest {
        Guest::Linux => vcpus,
        Guest::Bare => 1,
    };
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(during("KVM_GET_SUPPORTED_CPUID"))?;
    // KVM emulates the local APIC's TSC-deadline timer but leaves offering it to the VMM:
    // the hardware-reduced ACPI platform has no PIT to calibrate the APIC timer against.
    let tsc_deadline =
        guest == Guest::Linux && kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
    let mut fds = Vec::with_capacity(count.into());
    for id in 0..count {
        let vcpu = vm
            .create_vcpu(id.into())
            .map_err(during(format!("KVM_CREATE_VCPU {id}")))?;
        // Each processor reads its own APIC id from CPUID, as the MP table lists it. The
        // hypervisor bit (leaf 1, ECX bit 31), which KVM leaves to the VMM, makes a Linux guest
        // look at KVM's leaves (0x40000000..) and use kvm-clock: without it the guest cannot
        // calibrate its TSC and falls back to jiffies.
        let mut own = cpuid.clone();
        for e in own.as_mut_slice() {
            match e.function {
                1 => {
                    e.ebx = (e.ebx & 0x00ff_ffff) | (u32::from(id) << 24);
                    e.ecx |= 1 << 31;
                    if tsc_deadline {
                        e.ecx |= 1 << 24;
                    }
                }
                0xb | 0x1f => e.edx = id.into(),
                _ => {}
            }
        }
        vcpu.set_cpuid2(&own).map_err(during("KVM_SET_CPUID2"))?;
        if guest == Guest::Linux {
            set_lint(&vcpu)?;
        }
        fds.push(vcpu);
    }
    boot::write_tables(&memory)?;
    let entry = boot::load(&memory, mem, payload)?;
    let mut block = None;
    let mut console = None;
    let mut net_dev = None;
    if guest == Guest::Linux {
        mptable::write(&memory, count)?;
        let mut listed = Vec::new();
        if let Some(disk) = with.disk {
            let b = device(&vm, VIRTIO_BASE, VIRTIO_IRQ, Block::new(disk), &mut listed)?;
            block = Some(b);
        }
        if with.control {
            let c = device(
                &vm,
                CONSOLE_BASE,
                CONSOLE_IRQ,
                Console::default(),
                &mut listed,
            )?;
            console = Some(c);
        }
        if let Some(n) = with.net {
            let backend = Net::new(PacketSocket(n.socket), n.mac, n.mtu);
            net_dev = Some(device(&vm, NET_BASE, NET_IRQ, backend, &mut listed)?);
        }
        acpi::write(&memory, count, &listed)?;
    }
    // The bootstrap processor starts at the entry; the others wait in the kernel's irqchip for
    // the guest's INIT and start-up IPIs.
    cpu::setup(&fds[0], entry)?;
    Ok(Machine {
        vm,
        vcpus: fds,
        serial_irq,
        block,
        console,
        net: net_dev,
        _mem: memory,
    })
}

/// A virtio-mmio device at `base` raising `irq`: its notification registered as an
/// ioeventfd on QueueNotify, its interrupt as an irqfd, and its entry for the DSDT added to
/// `listed`.
fn device<B: Backend>(
    vm: &VmFd,
    base: u64,
    irq_line: u32,
    backend: B,
    listed: &mut Vec<acpi::MmioDevice>,
) -> Result<Device<B>, MicrovmError> {
    // Blocking: the block thread waits in read; the control thread reads it after poll.
    let notify = EventFd::new(libc::EFD_CLOEXEC).map_err(during("eventfd"))?;
    let irq = EventFd::new(libc::EFD_NONBLOCK | libc::EFD_CLOEXEC).map_err(during("eventfd"))?;
    vm.register_ioevent(
        &notify,
        &kvm_ioctls::IoEventAddress::Mmio(base + QUEUE_NOTIFY),
        kvm_ioctls::NoDatamatch,
    )
    .map_err(during("KVM_IOEVENTFD"))?;
    vm.register_irqfd(&irq, irq_line)
        .map_err(during("KVM_IRQFD"))?;
    listed.push(acpi::MmioDevice {
        base,
        size: MMIO_SIZE,
        irq: irq_line,
    });
    Ok(Device {
        dev: Mmio::new(backend),
        base,
        notify,
        irq,
    })
}

/// A local APIC's LINT0 takes the 8259's interrupts (ExtINT) and LINT1 the NMI, as a PC's
/// firmware leaves them.
fn set_lint(vcpu: &VcpuFd) -> Result<(), MicrovmError> {
    const LVT_LINT0: usize = 0x350;
    const LVT_LINT1: usize = 0x360;
    const EXTINT: u32 = 0b111;
    const NMI: u32 = 0b100;
    let mut lapic = vcpu.get_lapic().map_err(during("KVM_GET_LAPIC"))?;
    for (off, mode) in [(LVT_LINT0, EXTINT), (LVT_LINT1, NMI)] {
        let reg = &mut lapic.regs[off..off + 4];
        let mut v = u32::from_le_bytes([reg[0] as u8, reg[1] as u8, reg[2] as u8, reg[3] as u8]);
        v = (v & !0x700) | (mode << 8);
        for (r, b) in reg.iter_mut().zip(v.to_le_bytes()) {
            *r = b as _;
        }
    }
    vcpu.set_lapic(&lapic).map_err(during("KVM_SET_LAPIC"))?;
    Ok(())
}

/// The seccomp filters of the thread kinds, compiled by the runtime.
pub struct Filters<'a> {
    pub vmm: &'a crate::seccomp::Compiled,
    pub vcpu: &'a crate::seccomp::Compiled,
    pub block: &'a crate::seccomp::Compiled,
    pub control: &'a crate::seccomp::Compiled,
    pub net: &'a crate::seccomp::Compiled,
}

/// A virtio-mmio device's register page as the vCPU threads use it.
trait Registers: Send {
    fn read(&self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]) -> Access;
}

impl<B: Backend + Send> Registers for Mmio<B> {
    fn read(&self, offset: u64, data: &mut [u8]) {
        Mmio::read(self, offset, data)
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Access {
        Mmio::write(self, offset, data)
    }
}

/// A device as the vCPU threads see it: its register page and where to signal a
/// notification KVM did not turn into an ioeventfd itself (an access of another width).
struct Shared {
    base: u64,
    dev: Arc<Mutex<dyn Registers>>,
    notify: Arc<EventFd>,
}

/// Start `name`'s thread for `device` under `filter`, running `serve` with the device, its
/// notification and its interrupt; the device as the vCPUs share it.
fn start_device<B, F>(
    name: &str,
    device: Device<B>,
    filter: &crate::seccomp::Compiled,
    serve: F,
) -> Shared
where
    B: Backend + Send + 'static,
    F: FnOnce(&Mutex<Mmio<B>>, &EventFd, &EventFd) + Send + 'static,
{
    let dev = Arc::new(Mutex::new(device.dev));
    let notify = Arc::new(device.notify);
    let (thread_dev, thread_notify, filter, irq) = (
        Arc::clone(&dev),
        Arc::clone(&notify),
        filter.clone(),
        device.irq,
    );
    let thread = name.to_string();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Err(e) = enter_filter(&filter) {
                fatal(&format!("install the {thread} seccomp filter: {e}"));
            }
            serve(&thread_dev, &thread_notify, &irq)
        });
    if let Err(e) = spawned {
        fatal(&format!("start the {name} thread: {e}"));
    }
    Shared {
        base: device.base,
        dev,
        notify,
    }
}

/// The container's stdio as the VMM holds it.
pub struct Stdio {
    pub out: File,
    pub err: File,
    pub input: Option<File>,
}

/// The UART's output: the container's stdout, or its stderr while the process's stdio is
/// (or may yet be) the control channel's stream 0 (then the serial console carries only the
/// kernel's and the agent's messages).
struct Sink {
    out: File,
    err: File,
    to_err: bool,
}

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.to_err {
            self.err.write(b)
        } else {
            self.out.write(b)
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the process's stdio goes, shared by the threads: the agent's word on STDIO_PORT
/// (0 until it is said), and the lock the control thread holds from taking the guest's bytes
/// to writing them out, which the vCPU takes before it ends the VM (so that nothing the
/// guest's console driver saw taken is lost).
struct Route {
    mode: std::sync::atomic::AtomicU8,
    flush: Mutex<()>,
    output: Output,
}

impl Route {
    fn mode(&self) -> u8 {
        self.mode.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The agent said where the process's stdio is (only its first word counts, and only a
    /// mode the machine has): the UART's output goes back to stdout for the serial console.
    fn said(&self, mode: u8, uart_to_err: &mut bool) {
        use std::sync::atomic::Ordering;
        if mode == super::STDIO_SERIAL || mode == super::STDIO_CHANNEL {
            let first = self
                .mode
                .compare_exchange(0, mode, Ordering::AcqRel, Ordering::Acquire);
            if first.is_ok() && mode == super::STDIO_SERIAL {
                *uart_to_err = false;
            }
        }
    }

    /// The exit: after the control thread has written what it took.
    fn exit(&self, code: i32) -> ! {
        let _taken = self.flush.lock().unwrap_or_else(|p| p.into_inner());
        self.output.wait_drained();
        crate::sys::exit_now(code)
    }
}

/// The signals that end the VM (the rest keep their default, and SIGKILL always works).
const ENDING: [Signal; 4] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
];

/// Run the machine until the guest ends it or a signal does; never returns: the process exits
/// with the guest's status (see `status`).
pub fn run(
    machine: Machine,
    stdio: Stdio,
    control: Option<std::os::unix::net::UnixListener>,
    filters: &Filters<'_>,
    timeout: Option<std::time::Duration>,
) -> ! {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    if let Err(e) = install_sigsys_handler() {
        fatal(&format!("install the SIGSYS handler: {e}"));
    }
    let mut mask = SigSet::empty();
    for s in ENDING {
        mask.add(s);
    }
    // Blocked before the vCPU threads exist, so that they inherit the mask and only the VMM
    // thread's signalfd sees them.
    if let Err(e) = mask.thread_block() {
        fatal(&format!("block signals: {e}"));
    }
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .unwrap_or_else(|e| fatal(&format!("signalfd: {e}")));
    let Machine {
        vm: _vm,
        vcpus,
        serial_irq,
        block,
        console,
        net,
        _mem,
    } = machine;
    let channel = console.is_some() && control.is_some();
    let route = Arc::new(Route {
        mode: (if channel { 0 } else { super::STDIO_SERIAL }).into(),
        flush: Mutex::new(()),
        output: Output::default(),
    });
    // The control thread's own handles on the container's stdio (stream 0).
    let control_stdio = if channel {
        let dup = |f: &File| {
            f.try_clone()
                .unwrap_or_else(|e| fatal(&format!("the container's stdio: {e}")))
        };
        Some(Stdio {
            out: dup(&stdio.out),
            err: dup(&stdio.err),
            input: stdio.input.as_ref().map(dup),
        })
    } else {
        None
    };
    let sink = Sink {
        out: stdio.out,
        err: stdio.err,
        to_err: channel,
    };
    let input = stdio.input;
    let devices = Arc::new(Mutex::new(Devices::with_irq(sink, Irq(serial_irq))));
    let mut shared = Vec::new();
    if let Some(b) = block {
        let mem = _mem.clone();
        shared.push(start_device("block", b, filters.block, move |d, n, i| {
            block_loop(d, n, i, &mem)
        }));
    }
    if let Some(n) = net {
        let mem = _mem.clone();
        shared.push(start_device("net", n, filters.net, move |d, n, i| {
            net_loop(d, n, i, &mem)
        }));
    }
    if let (Some(c), Some(listener), Some(cs)) = (console, control, control_stdio) {
        if let Err(e) = listener.set_nonblocking(true) {
            fatal(&format!("the control socket: {e}"));
        }
        let wake = c
            .notify
            .try_clone()
            .unwrap_or_else(|e| fatal(&format!("the control thread's eventfd: {e}")));
        let (r, filter) = (Arc::clone(&route), filters.control.clone());
        let spawned = std::thread::Builder::new()
            .name("output".into())
            .spawn(move || {
                if let Err(e) = enter_filter(&filter) {
                    fatal(&format!("install the output thread's seccomp filter: {e}"));
                }
                r.output.writer(cs.out, cs.err, &wake)
            });
        if let Err(e) = spawned {
            fatal(&format!("start the output thread: {e}"));
        }
        let mem = _mem.clone();
        let r = Arc::clone(&route);
        let input = cs.input;
        shared.push(start_device(
            "control",
            c,
            filters.control,
            move |d, n, i| control_loop(d, n, i, &mem, &listener, input, &r),
        ));
    }
    let shared = Arc::new(shared);
    // The VM and its memory stay bound (not `_`) for as long as the vCPUs run: this function
    // never returns.
    for (i, vcpu) in vcpus.into_iter().enumerate() {
        let vcpu_devices = Arc::clone(&devices);
        let vcpu_shared = Arc::clone(&shared);
        let vcpu_filter = filters.vcpu.clone();
        let vcpu_route = Arc::clone(&route);
        let spawned = std::thread::Builder::new()
            .name(format!("vcpu{i}"))
            .spawn(move || {
                if let Err(e) = enter_filter(&vcpu_filter) {
                    fatal(&format!("install the vcpu seccomp filter: {e}"));
                }
                vcpu_loop(vcpu, &vcpu_devices, &vcpu_shared, &vcpu_route)
            });
        if let Err(e) = spawned {
            fatal(&format!("start the vcpu{i} thread: {e}"));
        }
    }
    if let Err(e) = enter_filter(filters.vmm) {
        fatal(&format!("install the vmm seccomp filter: {e}"));
    }
    vmm_loop(&signals, input, &devices, deadline, &route)
}

/// Put the calling thread under `filter`: allocate first, so that glibc gives the thread its
/// arena before the filter is on (the filters allow the allocator's calls anyway, without
/// PROT_EXEC), then install it.
pub fn enter_filter(filter: &crate::seccomp::Compiled) -> std::io::Result<()> {
    std::hint::black_box(vec![0u8; 4096]);
    crate::seccomp::install(filter).map(drop)
}

/// Install the VMM's SIGSYS handler (process-wide, before any filter): a syscall a thread's
/// filter traps is not executed; the handler writes its number to stderr and exits with
/// [`status::BAD_SYSCALL`], instead of a silent SIGSYS death.
pub fn install_sigsys_handler() -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let action = SigAction::new(
        SigHandler::SigAction(on_sigsys),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: the handler is async-signal-safe: it reads the siginfo, formats into a stack
    // buffer and calls only write(2) and _exit(2), which every filter of the VMM allows.
    unsafe { sigaction(Signal::SIGSYS, &action) }.map(drop)
}

// si_syscall's place in the x86_64 siginfo_t: after si_signo, si_errno, si_code, the padding
// and si_call_addr.
const SI_SYSCALL_OFFSET: usize = 24;
const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() == 128);

extern "C" fn on_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // si_syscall, read with wrapping_add (no unsafe pointer arithmetic) then one read.
    let at = info
        .cast::<u8>()
        .wrapping_add(SI_SYSCALL_OFFSET)
        .cast::<i32>();
    // SAFETY: the kernel passes a valid siginfo_t for a SA_SIGINFO handler; for SIGSYS from
    // seccomp it holds si_syscall, an int at SI_SYSCALL_OFFSET within its 128 bytes.
    let nr = unsafe { std::ptr::read_unaligned(at) };
    let mut msg = [0u8; 96];
    let head = b"contain: microvm: syscall ";
    let tail = b" refused by the VMM's seccomp filter\n";
    let mut n = 0;
    msg[..head.len()].copy_from_slice(head);
    n += head.len();
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = nr.unsigned_abs();
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if nr < 0 {
        msg[n] = b'-';
        n += 1;
    }
    for i in (0..d).rev() {
        msg[n] = digits[i];
        n += 1;
    }
    msg[n..n + tail.len()].copy_from_slice(tail);
    n += tail.len();
    // SAFETY: write(2) of a stack buffer to stderr: async-signal-safe.
    unsafe { libc::write(2, msg.as_ptr().cast(), n) };
    // SAFETY: _exit(2) is async-signal-safe and never returns.
    unsafe { libc::_exit(status::BAD_SYSCALL) }
}

/// How often (ms) the VMM thread looks whether the agent has said where the process's stdio is.
const ROUTE_POLL_MS: u8 = 20;

/// The VMM thread: stdin to the UART's receive queue (while the process's stdio is the serial
/// console; stdin waits until the agent has said where it is), signals to an exit.
fn vmm_loop<W: std::io::Write>(
    signals: &SignalFd,
    mut input: Option<File>,
    devices: &Mutex<Devices<W>>,
    deadline: Option<std::time::Instant>,
    route: &Route,
) -> ! {
    let mut buf = [0u8; 64];
    loop {
        let mode = route.mode();
        if mode == super::STDIO_CHANNEL {
            input = None; // the control thread relays it
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let (Some(i), super::STDIO_SERIAL) = (&input, mode) {
            fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
        }
        let wait = match deadline {
            None if mode == 0 => PollTimeout::from(ROUTE_POLL_MS),
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    eprintln!(
                        "contain: microvm: io.contain.microvm.timeout passed; the VM is ended"
                    );
                    crate::sys::exit_now(status::TIMED_OUT);
                }
                let most = if mode == 0 {
                    ROUTE_POLL_MS.into()
                } else {
                    60_000
                };
                PollTimeout::try_from(left.as_millis().min(most) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut fds, wait) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => fatal(&format!("poll: {e}")),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        let (signalled, input_ready) = (ready(0), ready(1));
        drop(fds);
        if signalled {
            if let Ok(Some(info)) = signals.read_signal() {
                crate::sys::exit_now(128 + info.ssi_signo as i32);
            }
        }
        if input_ready {
            let room = {
                let d = devices.lock().unwrap_or_else(|p| p.into_inner());
                d.serial.fifo_capacity()
            };
            let want = room.min(buf.len()).max(1);
            let n = match input.as_mut().map(|i| i.read(&mut buf[..want])) {
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                _ => 0,
            };
            if n == 0 {
                input = None; // end of input: stop watching it
                continue;
            }
            let mut d = devices.lock().unwrap_or_else(|p| p.into_inner());
            // A full receive queue drops the excess, as a UART overruns.
            let _ = d.serial.enqueue_raw_bytes(&buf[..n]);
        }
    }
}

/// `e`'s descriptor, borrowed for as long as `e` is.
fn borrow(e: &EventFd) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: an EventFd owns its descriptor and closes it only when dropped, which the
    // borrow of `e` rules out for the returned lifetime.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(e.as_raw_fd()) }
}

/// Interrupt the guest when `interrupt` (a device's serve changed a used ring); the
/// thread ends the VMM if it cannot.
fn raise(irq: &EventFd, interrupt: bool, thread: &str) {
    if interrupt {
        if let Err(e) = irq.write(1) {
            fatal(&format!("{thread}: the interrupt: {e}"));
        }
    }
}

/// The block I/O thread: serve the queue on each notification, interrupt the guest when
/// the used ring changed.
fn block_loop(
    dev: &Mutex<Mmio<Block>>,
    notify: &EventFd,
    irq: &EventFd,
    mem: &GuestMemoryMmap,
) -> ! {
    loop {
        match notify.read() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => fatal(&format!("block: the queue's notification: {e}")),
        }
        raise(
            irq,
            dev.lock().unwrap_or_else(|p| p.into_inner()).serve(mem),
            "block",
        );
    }
}

/// The network thread: serve the queues on each notification and whenever the link has a
/// frame (unless one already waits for the guest's receive buffers), interrupt the guest
/// when a used ring changed.
fn net_loop(
    dev: &Mutex<Mmio<Net<PacketSocket>>>,
    notify: &EventFd,
    irq: &EventFd,
    mem: &GuestMemoryMmap,
) -> ! {
    let link_raw = dev
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .backend
        .link
        .0
        .as_raw_fd();
    let notify_fd = borrow(notify);
    // SAFETY: the device, which holds the socket, outlives this borrow (it lasts as long as
    // this function, which never returns).
    let link_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(link_raw) };
    loop {
        let starved = dev
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .backend
            .starved();
        let mut fds = vec![PollFd::new(notify_fd, PollFlags::POLLIN)];
        if !starved {
            fds.push(PollFd::new(link_fd, PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => fatal(&format!("net: poll: {e}")),
        }
        if crate::sys::poll_ready(&fds)[0] {
            let _ = notify.read();
        }
        drop(fds);
        raise(
            irq,
            dev.lock().unwrap_or_else(|p| p.into_inner()).serve(mem),
            "net",
        );
    }
}

/// An MMIO access a virtio device answers: whether `addr` is in one's page.
fn virtio_mmio(shared: &[Shared], addr: u64, read: Option<&mut [u8]>, write: &[u8]) -> bool {
    let Some(b) = shared
        .iter()
        .find(|s| (s.base..s.base + MMIO_SIZE).contains(&addr))
    else {
        return false;
    };
    let mut dev = b.dev.lock().unwrap_or_else(|p| p.into_inner());
    match read {
        Some(data) => dev.read(addr - b.base, data),
        None => {
            if dev.write(addr - b.base, write) == Access::Notify {
                let _ = b.notify.write(1);
            }
        }
    }
    true
}

/// The most clients the control channel serves at once (more are refused).
const CLIENTS_MAX: usize = 64;
/// The most bytes held for the guest before the clients are no longer read.
const TO_GUEST_MAX: usize = 1 << 20;

/// The stream that carries the container's process's own stdio (clients get 1 and up).
const PROCESS_STREAM: u32 = 0;

/// The container's stdout and stderr for stream 0, written by a thread of their own (under the
/// control thread's filter): a reader that stops holds up only stream 0, whose flow control
/// then stops the guest's process, never the channel's other clients.
#[derive(Default)]
struct Output {
    queue: Mutex<Queued>,
    more: std::sync::Condvar,
    drained: std::sync::Condvar,
}

/// Output frames of stream 0: (STDOUT or STDERR, bytes).
type Frames = Vec<(u8, Vec<u8>)>;

#[derive(Default)]
struct Queued {
    /// Stream 0's payloads from the guest in order: the output frames each completed, and its
    /// size, acknowledged once they are written.
    items: std::collections::VecDeque<(Frames, usize)>,
    /// Bytes of stream 0 queued or being written.
    held: usize,
    /// Bytes written that the control thread has not acknowledged yet.
    written: usize,
}

impl Output {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue what a payload of `size` bytes completed; false when more is held than flow
    /// control lets the agent send.
    fn push(&self, frames: Frames, size: usize) -> bool {
        let mut q = self.lock();
        q.held += size;
        q.items.push_back((frames, size));
        self.more.notify_one();
        q.held <= channel::CLIENT_HELD_MAX
    }

    /// The bytes written since the last call.
    fn take_written(&self) -> usize {
        std::mem::take(&mut self.lock().written)
    }

    /// Wait until everything queued is written.
    fn wait_drained(&self) {
        let mut q = self.lock();
        while q.held > 0 {
            q = self.drained.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The output thread: write what is queued, in order, and wake the control thread (its
    /// queue's eventfd) to acknowledge it. A reader that went away loses the output, as a
    /// cut serial line would.
    fn writer(&self, mut out: File, mut err: File, wake: &EventFd) -> ! {
        use std::io::Write;
        loop {
            let (frames, size) = {
                let mut q = self.lock();
                loop {
                    if let Some(item) = q.items.pop_front() {
                        break item;
                    }
                    q = self.more.wait(q).unwrap_or_else(|p| p.into_inner());
                }
            };
            for (kind, data) in frames {
                let _ = if kind == channel::STDERR {
                    err.write_all(&data)
                } else {
                    out.write_all(&data)
                };
            }
            let mut q = self.lock();
            q.held -= size;
            q.written += size;
            if q.held == 0 {
                self.drained.notify_all();
            }
            drop(q);
            let _ = wake.write(1);
        }
    }
}

/// The process's stdio on the control channel: its stdout and stderr frames handed to the
/// output thread, the container's stdin sent as its STDIN frames. What the guest sends that
/// is not output is ignored; a malformed frame ends the output (the VM runs on).
struct ProcessStdio {
    input: Option<File>,
    decoder: channel::Decoder,
    broken: bool,
}

impl ProcessStdio {
    /// A payload of stream 0: its output frames queued on `output` (false when the guest sent
    /// past the window).
    fn output(&mut self, data: &[u8], output: &Output) -> bool {
        let mut frames = Vec::new();
        if !self.broken {
            self.decoder.push(data);
            loop {
                match self.decoder.next_frame() {
                    Ok(None) => break,
                    Ok(Some(f)) if f.kind == channel::STDOUT || f.kind == channel::STDERR => {
                        frames.push((f.kind, f.data));
                    }
                    Ok(Some(_)) => {}
                    Err(e) => {
                        eprintln!("contain: microvm: the process's output: {e}");
                        self.broken = true;
                        break;
                    }
                }
            }
        }
        output.push(frames, data.len())
    }

    /// Read stdin into frames for the guest; false at its end (then STDIN_EOF is sent).
    fn input(&mut self, buf: &mut [u8], to_guest: &mut Vec<u8>) -> bool {
        let n = match self.input.as_mut().map(|i| i.read(buf)) {
            Some(Ok(n)) => n,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => return true,
            _ => 0,
        };
        let inner = if n == 0 {
            self.input = None;
            channel::frames(PROCESS_STREAM, channel::STDIN_EOF, &[])
        } else {
            channel::frames(PROCESS_STREAM, channel::STDIN, &buf[..n])
        };
        to_guest.extend(channel::frames(PROCESS_STREAM, channel::DATA, &inner));
        n != 0
    }
}

/// A client of the control socket: what the guest sent it that it has not read yet.
struct Client {
    sock: std::os::unix::net::UnixStream,
    held: std::collections::VecDeque<u8>,
    /// The guest ended the stream: the client is dropped once it has what is held.
    ended: bool,
}

impl Client {
    /// Read what the client sent, without waiting: None at its end (or an error).
    fn read(&self, buf: &mut [u8]) -> Option<usize> {
        use nix::sys::socket::{recv, MsgFlags};
        match recv(self.sock.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Some(0),
            Err(_) => None,
        }
    }

    /// Write what is held, as much as the client takes now: the bytes written, or None when
    /// the client is gone.
    fn flush(&mut self) -> Option<usize> {
        use nix::sys::socket::{send, MsgFlags};
        let mut written = 0;
        while !self.held.is_empty() {
            let (front, _) = self.held.as_slices();
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match send(self.sock.as_raw_fd(), front, flags) {
                Ok(n) => {
                    self.held.drain(..n);
                    written += n;
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => break,
                Err(_) => return None,
            }
        }
        Some(written)
    }
}

/// `n` bytes of `stream` acknowledged to the guest (nothing for none).
fn ack(stream: u32, n: usize) -> Vec<u8> {
    match u32::try_from(n) {
        Ok(0) | Err(_) => Vec::new(),
        Ok(n) => channel::frames(stream, channel::ACK, &n.to_le_bytes()),
    }
}

/// The control thread: accept the runtime's clients, relay each one's bytes to the guest as
/// frames of its stream, and the guest's frames back to the client of their stream (held
/// until the client takes them, and acknowledged to the guest then: a slow client slows only
/// its own stream); once the agent has said the process's stdio is here, stream 0 is the
/// container's stdio. A malformed frame from the guest, or a stream past what flow control
/// lets the agent send, ends every client and the relay (the VM runs on).
fn control_loop(
    dev: &Mutex<Mmio<Console>>,
    notify: &EventFd,
    irq: &EventFd,
    mem: &GuestMemoryMmap,
    listener: &std::os::unix::net::UnixListener,
    input: Option<File>,
    route: &Route,
) -> ! {
    let mut clients: std::collections::BTreeMap<u32, Client> = Default::default();
    let mut next: u32 = 1;
    let mut decoder = channel::Decoder::default();
    let mut broken = false;
    let mut process = ProcessStdio {
        input,
        decoder: channel::Decoder::default(),
        broken: false,
    };
    let mut buf = vec![0u8; channel::FRAME_MAX];
    let notify_fd = borrow(notify);
    loop {
        let backlog = dev
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .backend
            .to_guest
            .len();
        let mut fds = vec![
            PollFd::new(notify_fd, PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        // A client is read while the guest takes what it is sent, and written while
        // something is held for it.
        let mut ids = Vec::new();
        for (id, c) in &clients {
            let mut flags = PollFlags::empty();
            if backlog < TO_GUEST_MAX && !c.ended {
                flags |= PollFlags::POLLIN;
            }
            if !c.held.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            if !flags.is_empty() {
                fds.push(PollFd::new(c.sock.as_fd(), flags));
                ids.push(*id);
            }
        }
        let mode = route.mode();
        if mode == super::STDIO_SERIAL {
            process.input = None; // the VMM thread relays it to the UART
        }
        let stdin = match (&process.input, mode) {
            (Some(i), super::STDIO_CHANNEL) if backlog < TO_GUEST_MAX => {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
                true
            }
            _ => false,
        };
        // Until the agent has said where the process's stdio is, or while the guest has not
        // taken enough of stdin, look again soon (the vCPU does not wake this thread).
        let wait = if mode == 0 || (process.input.is_some() && !stdin) {
            PollTimeout::from(ROUTE_POLL_MS)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, wait) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => fatal(&format!("control: poll: {e}")),
        }
        let ready = crate::sys::poll_ready(&fds);
        drop(fds);
        if ready[0] {
            let _ = notify.read();
        }
        let mut to_guest = ack(PROCESS_STREAM, route.output.take_written());
        if stdin && ready[2 + ids.len()] {
            process.input(&mut buf, &mut to_guest);
        }
        if ready[1] {
            while let Ok((sock, _)) = listener.accept() {
                if broken || clients.len() >= CLIENTS_MAX {
                    continue; // dropped: the client reads an end of file
                }
                let held = Default::default();
                clients.insert(
                    next,
                    Client {
                        sock,
                        held,
                        ended: false,
                    },
                );
                next = next.wrapping_add(1).max(1);
            }
        }
        for (i, id) in ids.iter().enumerate() {
            let Some(c) = clients.get_mut(id).filter(|_| ready[2 + i]) else {
                continue;
            };
            let got = if c.ended { Some(0) } else { c.read(&mut buf) };
            let written = got.and_then(|_| c.flush());
            match (got, written) {
                (Some(n), Some(w)) => {
                    if n > 0 {
                        to_guest.extend(channel::frames(*id, channel::DATA, &buf[..n]));
                    }
                    to_guest.extend(ack(*id, w));
                    if c.ended && c.held.is_empty() {
                        clients.remove(id);
                    }
                }
                _ => {
                    clients.remove(id);
                    to_guest.extend(channel::frames(*id, channel::CLOSE, &[]));
                }
            }
        }
        // Serve until the device has nothing more for us (the guest may have more queued than
        // the device holds at once). What the guest sent is written out before the lock is
        // let go (the vCPU takes it to end the VM).
        let _writing = route.flush.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let (interrupt, from_guest) = {
                let mut d = dev.lock().unwrap_or_else(|p| p.into_inner());
                d.backend.to_guest.extend(to_guest.drain(..));
                let interrupt = d.serve(mem);
                (interrupt, std::mem::take(&mut d.backend.from_guest))
            };
            raise(irq, interrupt, "control");
            if from_guest.is_empty() {
                break;
            }
            if broken {
                continue;
            }
            decoder.push(&from_guest);
            loop {
                match decoder.next_frame() {
                    Ok(None) => break,
                    Ok(Some(f)) if f.stream == PROCESS_STREAM => {
                        if f.kind == channel::DATA
                            && route.mode() == super::STDIO_CHANNEL
                            && !process.output(&f.data, &route.output)
                        {
                            eprintln!("contain: microvm: the guest sent past the control channel's window; its clients are ended");
                            clients.clear();
                            broken = true;
                            break;
                        }
                    }
                    Ok(Some(f)) if f.kind == channel::DATA => {
                        let Some(c) = clients.get_mut(&f.stream) else {
                            continue;
                        };
                        c.held.extend(&f.data);
                        if c.held.len() > channel::CLIENT_HELD_MAX {
                            eprintln!("contain: microvm: the guest sent past the control channel's window; its clients are ended");
                            clients.clear();
                            broken = true;
                            break;
                        }
                        match c.flush() {
                            Some(w) => to_guest.extend(ack(f.stream, w)),
                            None => {
                                clients.remove(&f.stream);
                                to_guest.extend(channel::frames(f.stream, channel::CLOSE, &[]));
                            }
                        }
                    }
                    Ok(Some(f)) if f.kind == channel::CLOSE => {
                        // The client gets what is held for it before it is dropped.
                        if let Some(c) = clients.get_mut(&f.stream) {
                            c.ended = true;
                            if c.held.is_empty() {
                                clients.remove(&f.stream);
                            }
                        }
                    }
                    Ok(Some(_)) | Err(_) => {
                        // Not a frame the agent sends: the channel cannot be trusted to
                        // route anything more.
                        eprintln!("contain: microvm: the guest broke the control channel; its clients are ended");
                        clients.clear();
                        broken = true;
                        break;
                    }
                }
            }
        }
    }
}

fn vcpu_loop(
    mut vcpu: VcpuFd,
    devices: &Mutex<Devices<Sink>>,
    shared: &[Shared],
    route: &Route,
) -> ! {
    loop {
        let stopped = {
            let exit = vcpu.run();
            let mut d = devices.lock().unwrap_or_else(|p| p.into_inner());
            match exit {
                Ok(VcpuExit::IoOut(port, data)) => {
                    match d.port_out(port, data) {
                        Effect::Exit(code) => route.exit(code.into()),
                        Effect::Stdio(m) => route.said(m, &mut d.serial.writer_mut().to_err),
                        Effect::None => {}
                    }
                    None
                }
                Ok(VcpuExit::IoIn(port, data)) => {
                    d.port_in(port, data);
                    None
                }
                Ok(VcpuExit::MmioRead(addr, data)) => {
                    if !virtio_mmio(shared, addr, Some(&mut *data), &[]) {
                        d.mmio_read(data);
                    }
                    None
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    if !virtio_mmio(shared, addr, None, data) {
                        d.mmio_write();
                    }
                    None
                }
                Ok(VcpuExit::Hlt) => crate::sys::exit_now(status::HALTED),
                Ok(VcpuExit::Shutdown) => route.exit(status::SHUTDOWN),
                Ok(VcpuExit::Intr) => None,
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => None,
                Ok(VcpuExit::InternalError) => Some(String::new()),
                Ok(other) => Some(format!("the guest stopped the vCPU: {other:?}")),
                Err(e) => Some(format!("KVM_RUN: {e}")),
            }
        };
        match stopped {
            None => {}
            Some(msg) if !msg.is_empty() => fatal_status(&msg),
            Some(_) => {
                // SAFETY: reading the `internal` member is what KVM_EXIT_INTERNAL_ERROR
                // says the union holds.
                let sub = unsafe { vcpu.get_kvm_run().__bindgen_anon_1.internal.suberror };
                // An exception raised while delivering one (with no usable IDT): the guest
                // faulted beyond repair, which hardware turns into a triple-fault shutdown.
                if sub == KVM_INTERNAL_ERROR_SIMUL_EX || sub == KVM_INTERNAL_ERROR_DELIVERY_EV {
                    eprintln!("contain: microvm: the guest faulted while delivering an exception (a triple fault)");
                    crate::sys::exit_now(status::SHUTDOWN);
                }
                fatal_status(&format!("KVM internal error, suberror {sub}"));
            }
        }
    }
}

const KVM_INTERNAL_ERROR_SIMUL_EX: u32 = 2;
const KVM_INTERNAL_ERROR_DELIVERY_EV: u32 = 3;

fn fatal_status(msg: &str) -> ! {
    eprintln!("contain: microvm: {msg}");
    crate::sys::exit_now(status::VMM_FAILED)
}

fn fatal(msg: &str) -> ! {
    fatal_status(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stdout_reader_that_stops_holds_up_only_the_output_thread() {
        // The container's stdout is a pipe nobody reads: the output thread blocks in write,
        // the control thread's pushes return at once, and nothing is acknowledged until
        // the reader takes it all.
        let (r, w) = nix::unistd::pipe().unwrap();
        let output = std::sync::Arc::new(Output::default());
        let writer = std::sync::Arc::clone(&output);
        let wake = EventFd::new(0).unwrap();
        let err = tempfile::tempfile().unwrap();
        std::thread::spawn(move || writer.writer(File::from(w), err, &wake));
        let mut p = ProcessStdio {
            input: None,
            decoder: channel::Decoder::default(),
            broken: false,
        };
        let payload = channel::frames(0, channel::STDOUT, &vec![7; 60 << 10]);
        let start = std::time::Instant::now();
        for _ in 0..8 {
            assert!(p.output(&payload, &output));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(output.take_written() < 8 * payload.len());
        let mut read = 0;
        let mut pipe = File::from(r);
        let mut buf = vec![0; 64 << 10];
        while read < 8 * (60 << 10) {
            read += pipe.read(&mut buf).unwrap();
        }
        output.wait_drained();
        assert_eq!(read, 8 * (60 << 10));
    }

    #[test]
    fn the_agents_first_word_on_the_stdio_port_counts() {
        let route = |mode| Route {
            mode: std::sync::atomic::AtomicU8::new(mode),
            flush: Mutex::new(()),
            output: Output::default(),
        };
        // A guest that may use the channel: the UART goes to stderr until the agent speaks.
        let r = route(0);
        let mut to_err = true;
        r.said(7, &mut to_err);
        assert_eq!((r.mode(), to_err), (0, true), "an unknown mode is ignored");
        r.said(super::super::STDIO_SERIAL, &mut to_err);
        assert_eq!((r.mode(), to_err), (super::super::STDIO_SERIAL, false));
        r.said(super::super::STDIO_CHANNEL, &mut to_err);
        assert_eq!(r.mode(), super::super::STDIO_SERIAL, "only the first word");
        // A bare guest's machine starts on the serial console; the port changes nothing.
        let bare = route(super::super::STDIO_SERIAL);
        let mut to_err = false;
        bare.said(super::super::STDIO_CHANNEL, &mut to_err);
        assert_eq!((bare.mode(), to_err), (super::super::STDIO_SERIAL, false));
        // Stream 0's decoder hands on only output frames, which the output thread writes each
        // to its own descriptor, acknowledging every byte the guest sent (the broken frame's
        // and those after it too, so that the agent's window stays open).
        let (out, err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
        let output = std::sync::Arc::new(Output::default());
        let (o, e, w) = (
            out.try_clone().unwrap(),
            err.try_clone().unwrap(),
            EventFd::new(0).unwrap(),
        );
        let writer = std::sync::Arc::clone(&output);
        std::thread::spawn(move || writer.writer(o, e, &w));
        let mut p = ProcessStdio {
            input: None,
            decoder: channel::Decoder::default(),
            broken: false,
        };
        let mut bytes = channel::frames(0, channel::STDOUT, b"to stdout");
        bytes.extend(channel::frames(0, channel::EXIT, &[0; 4]));
        bytes.extend(channel::frames(0, channel::STDERR, b"to stderr"));
        for piece in bytes.chunks(4) {
            assert!(p.output(piece, &output));
        }
        let bad = [0, 0, 0, 0, channel::STDOUT, 0xff, 0xff, 0xff, 0xff];
        assert!(p.output(&bad, &output));
        let after = channel::frames(0, channel::STDOUT, b"after the break");
        assert!(p.output(&after, &output));
        output.wait_drained();
        assert_eq!(output.take_written(), bytes.len() + bad.len() + after.len());
        // More held than the window allows is the guest's fault.
        let flood = vec![0; channel::CLIENT_HELD_MAX + 1];
        assert!(!p.output(&flood, &output));
        let read = |mut f: File| {
            use std::io::Seek;
            f.rewind().unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            s
        };
        assert_eq!(read(out), "to stdout");
        assert_eq!(read(err), "to stderr");
        assert!(p.broken);
    }
}
