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
use super::devices::{Devices, Effect};
use super::{cpu, status};

/// A VM ready to run: memory mapped, kernel loaded, boot vCPU in its entry state.
pub struct Machine {
    // Declared first so that it is dropped before the memory it maps.
    vm: VmFd,
    vcpu: VcpuFd,
    _mem: GuestMemoryMmap,
}

impl Machine {
    pub fn fds(&self) -> Vec<i32> {
        vec![self.vm.as_raw_fd(), self.vcpu.as_raw_fd()]
    }
}

/// Create the VM on `kvm`, with `mem` bytes of RAM, and boot `payload` into it.
pub fn build(kvm: &Kvm, mem: u64, payload: &Payload<'_>) -> Result<Machine, String> {
    let vm = kvm.create_vm().map_err(|e| format!("KVM_CREATE_VM: {e}"))?;
    let guest = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem as usize)])
        .map_err(|e| format!("map {mem} bytes of guest memory: {e}"))?;
    let host = guest
        .get_host_address(GuestAddress(0))
        .map_err(|e| format!("guest memory: {e}"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: mem,
        userspace_addr: host as u64,
    };
    // SAFETY: the region describes `guest`'s one mapping, which lives in the returned Machine
    // as long as the VM (declared before it, so the VM goes first).
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION: {e}"))?;
    // Intel needs a TSS area in guest physical space outside RAM for real-mode emulation.
    let _ = vm.set_tss_address(0xfffb_d000);
    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let cpuid = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(|e| format!("KVM_GET_SUPPORTED_CPUID: {e}"))?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(|e| format!("KVM_SET_CPUID2: {e}"))?;
    boot::write_tables(&guest)?;
    let entry = boot::load(&guest, mem, payload)?;
    cpu::setup(&vcpu, entry)?;
    Ok(Machine {
        vm,
        vcpu,
        _mem: guest,
    })
}

/// The seccomp filters of the two thread kinds, compiled by the runtime.
pub struct Filters<'a> {
    pub vmm: &'a crate::seccomp::Compiled,
    pub vcpu: &'a crate::seccomp::Compiled,
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
    out: File,
    input: Option<File>,
    filters: &Filters<'_>,
    timeout: Option<std::time::Duration>,
) -> ! {
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    let mut mask = SigSet::empty();
    for s in ENDING {
        mask.add(s);
    }
    // Blocked before the vCPU thread exists, so that it inherits the mask and only the VMM
    // thread's signalfd sees them.
    if let Err(e) = mask.thread_block() {
        fatal(&format!("block signals: {e}"));
    }
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .unwrap_or_else(|e| fatal(&format!("signalfd: {e}")));
    let devices = Arc::new(Mutex::new(Devices::new(out)));
    let vcpu_devices = Arc::clone(&devices);
    let vcpu_filter = filters.vcpu.clone();
    // The VM and its memory stay bound (not `_`) for as long as the vCPU runs: this function
    // never returns.
    let Machine {
        vm: _vm,
        vcpu,
        _mem,
    } = machine;
    let spawned = std::thread::Builder::new()
        .name("vcpu0".into())
        .spawn(move || {
            if let Err(e) = crate::seccomp::install(&vcpu_filter) {
                fatal(&format!("install the vcpu seccomp filter: {e}"));
            }
            vcpu_loop(vcpu, &vcpu_devices)
        });
    if let Err(e) = spawned {
        fatal(&format!("start the vcpu thread: {e}"));
    }
    if let Err(e) = crate::seccomp::install(filters.vmm) {
        fatal(&format!("install the vmm seccomp filter: {e}"));
    }
    vmm_loop(&signals, input, &devices, deadline)
}

/// The VMM thread: stdin to the UART's receive queue, signals to an exit.
fn vmm_loop<W: std::io::Write>(
    signals: &SignalFd,
    mut input: Option<File>,
    devices: &Mutex<Devices<W>>,
    deadline: Option<std::time::Instant>,
) -> ! {
    let mut buf = [0u8; 64];
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(i) = &input {
            fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
        }
        let wait = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    eprintln!(
                        "contain: microvm: io.contain.microvm.timeout passed; the VM is ended"
                    );
                    crate::sys::exit_now(status::TIMED_OUT);
                }
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
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

/// The vCPU thread: run the guest, answer its port and MMIO accesses.
fn vcpu_loop<W: std::io::Write>(mut vcpu: VcpuFd, devices: &Mutex<Devices<W>>) -> ! {
    loop {
        let stopped = {
            let exit = vcpu.run();
            let mut d = devices.lock().unwrap_or_else(|p| p.into_inner());
            match exit {
                Ok(VcpuExit::IoOut(port, data)) => {
                    if let Effect::Exit(code) = d.port_out(port, data) {
                        crate::sys::exit_now(code.into());
                    }
                    None
                }
                Ok(VcpuExit::IoIn(port, data)) => {
                    d.port_in(port, data);
                    None
                }
                Ok(VcpuExit::MmioRead(_, data)) => {
                    d.mmio_read(data);
                    None
                }
                Ok(VcpuExit::MmioWrite(..)) => {
                    d.mmio_write();
                    None
                }
                Ok(VcpuExit::Hlt) => crate::sys::exit_now(status::HALTED),
                Ok(VcpuExit::Shutdown) => crate::sys::exit_now(status::SHUTDOWN),
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
