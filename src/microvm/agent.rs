//! The guest agent: this binary as PID 1 of a Linux microVM guest (`contain guest-agent`, run
//! by the kernel from the initramfs that [`super::initramfs`] built). It mounts /proc, /sys,
//! /dev (devtmpfs), /dev/pts and /dev/shm, sets the hostname, runs config.json's process with
//! its env, cwd, user, capabilities, rlimits and no_new_privs, reaps every orphan until that
//! process ends, and reports its status through the exit port (the byte N written to port
//! 0xf4 ends the VM with status N).

use std::path::Path;

use nix::mount::MsFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use std::os::fd::AsRawFd;

use super::initramfs::{GuestConfig, MODULES_PATH, PROCESS_PATH};

mod control;
mod net;

/// The status the agent reports when it fails before the process starts.
pub const AGENT_FAILED: u8 = 125;

/// Run the agent; never returns (the VM ends).
pub fn main() -> ! {
    if nix::unistd::getpid().as_raw() != 1 {
        eprintln!(
            "contain guest-agent: runs only as PID 1 of a microVM guest (the kernel starts it \
             from the initramfs the microVM stage builds)"
        );
        std::process::exit(2);
    }
    // A panic ends the VM with the agent's status and the message on the console: the
    // default abort would kill PID 1 (a kernel panic) before the console had sent it.
    std::panic::set_hook(Box::new(|info| {
        say(&info.to_string());
        report(AGENT_FAILED)
    }));
    // So does abort(3) (glibc's fatal errors): raise(SIGABRT) does nothing to PID 1 without
    // a handler, and abort then faults.
    let on_abort = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(aborted),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only drains the console and writes the exit port (report).
    let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGABRT, &on_abort) };
    let status = match setup() {
        Ok(config) => run(&config),
        Err(e) => {
            say(&e);
            AGENT_FAILED
        }
    };
    report(status)
}

fn setup() -> Result<GuestConfig, String> {
    let json = std::fs::read(PROCESS_PATH).map_err(|e| format!("{PROCESS_PATH}: {e}"))?;
    let config: GuestConfig =
        serde_json::from_slice(&json).map_err(|e| format!("{PROCESS_PATH}: {e}"))?;
    load_modules()?;
    if config.rootfs == super::RootfsMode::Block {
        root_on_disk(config.readonly)?;
    }
    let mounts: [(&str, &str, MsFlags, Option<&str>); 5] = [
        (
            "proc",
            "/proc",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ),
        (
            "sysfs",
            "/sys",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        ),
        ("devtmpfs", "/dev", MsFlags::MS_NOSUID, Some("mode=0755")),
        (
            "devpts",
            "/dev/pts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0620,ptmxmode=0666"),
        ),
        (
            "tmpfs",
            "/dev/shm",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
    ];
    for (fs, at, flags, data) in mounts {
        mount(fs, at, fs, flags, data)?;
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    net::configure(&cmdline).map_err(|e| format!("the guest's network: {e}"))?;
    disable_modules()?;
    // The devpts instance's ptmx, where programs look for it.
    let _ = std::fs::remove_file("/dev/ptmx");
    let _ = std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx");
    if let Some(h) = &config.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("hostname {h:?}: {e}"))?;
    }
    // Nothing of the agent's is left for the workload to read.
    let _ = std::fs::remove_dir_all(Path::new(PROCESS_PATH).parent().unwrap_or(Path::new("/")));
    Ok(config)
}

/// Mount `fs` from `src` on `at`, made first.
fn mount(src: &str, at: &str, fs: &str, flags: MsFlags, data: Option<&str>) -> Result<(), String> {
    std::fs::create_dir_all(at).map_err(|e| format!("mkdir {at}: {e}"))?;
    nix::mount::mount(Some(src), at, Some(fs), flags, data).map_err(|e| {
        if src == fs {
            format!("mount {fs} on {at}: {e}")
        } else {
            format!("mount {fs} {src} on {at}: {e}")
        }
    })
}

/// The sysctl that ends module loading until the guest's next boot (one way).
const MODULES_DISABLED: &str = "/proc/sys/kernel/modules_disabled";

/// No module is loaded after the agent's own: the workload, even with CAP_SYS_MODULE in the
/// guest, cannot extend the guest kernel. A kernel without module support has no such file.
fn disable_modules() -> Result<(), String> {
    match std::fs::write(MODULES_DISABLED, "1") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("disable module loading ({MODULES_DISABLED}): {e}")),
    }
}

/// Load the kernel modules the initramfs carries (the devices' drivers), in their order.
fn load_modules() -> Result<(), String> {
    let mut modules: Vec<_> = match std::fs::read_dir(MODULES_PATH) {
        Ok(d) => d.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    };
    modules.sort();
    for m in &modules {
        let f = std::fs::File::open(m).map_err(|e| format!("{}: {e}", m.display()))?;
        // SAFETY: finit_module reads the open file and an empty, NUL-terminated argument
        // string; no memory of ours is written.
        let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c"".as_ptr(), 0) };
        let e = std::io::Error::last_os_error();
        if r != 0 && e.raw_os_error() != Some(libc::EEXIST) {
            let why = if e.raw_os_error() == Some(libc::EPERM) {
                " (module loading is disabled: `nomodule` on the kernel command line?)"
            } else {
                ""
            };
            return Err(format!("load the kernel module {}: {e}{why}", m.display()));
        }
    }
    Ok(())
}

/// The disk the runtime serves the rootfs on (the first virtio-blk device).
const DISK: &str = "/dev/vda";
/// How long the agent waits for the disk to appear after loading the modules.
const DISK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Make the virtio-blk disk the root (its modules loaded): mount the
/// erofs disk read-only and, unless the root is to be read-only, a tmpfs overlay on it for
/// the container's writes; then move it over the initramfs's root and chroot into it (an
/// initramfs cannot be pivot_root'ed away).
fn root_on_disk(readonly: bool) -> Result<(), String> {
    mount(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )?;
    let until = std::time::Instant::now() + DISK_WAIT;
    while !Path::new(DISK).exists() {
        if std::time::Instant::now() > until {
            return Err(format!(
                "no virtio-blk disk ({DISK}) appeared within {} s: the guest kernel needs \
                 virtio_mmio (with ACPI), virtio_blk, erofs and overlay, built in or as modules \
                 (io.contain.microvm.modules names a directory of them)",
                DISK_WAIT.as_secs()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
    mount(DISK, "/.contain/disk", "erofs", ro, None)?;
    let root = if readonly {
        "/.contain/disk"
    } else {
        mount(
            "tmpfs",
            "/.contain/rw",
            "tmpfs",
            MsFlags::empty(),
            Some("mode=0755"),
        )?;
        for d in ["/.contain/rw/upper", "/.contain/rw/work"] {
            std::fs::create_dir_all(d).map_err(|e| format!("mkdir {d}: {e}"))?;
        }
        mount(
            "overlay",
            "/.contain/root",
            "overlay",
            MsFlags::empty(),
            Some("lowerdir=/.contain/disk,upperdir=/.contain/rw/upper,workdir=/.contain/rw/work"),
        )?;
        "/.contain/root"
    };
    nix::mount::umount("/dev").map_err(|e| format!("umount /dev: {e}"))?;
    nix::unistd::chdir(root).map_err(|e| format!("chdir {root}: {e}"))?;
    nix::mount::mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .map_err(|e| format!("move {root} to /: {e}"))?;
    nix::unistd::chroot(".").map_err(|e| format!("chroot {root}: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))
}

/// How long the agent looks for the control channel's console device after the process
/// started (its driver may still be probing, or be loaded by then).
const CONTROL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Start the process, serve the control channel (exec, kill) and reap until the process
/// ends; its status (128+N for signal N).
fn run(config: &GuestConfig) -> u8 {
    use nix::sys::signal::{SigSet, Signal};
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    // Blocked before the fork: the children unblock every signal before they exec.
    if let Err(e) = chld.thread_block() {
        say(&format!("block SIGCHLD: {e}"));
        return AGENT_FAILED;
    }
    let sigfd = match nix::sys::signalfd::SignalFd::with_flags(
        &chld,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC | nix::sys::signalfd::SfdFlags::SFD_NONBLOCK,
    ) {
        Ok(f) => f,
        Err(e) => {
            say(&format!("signalfd: {e}"));
            return AGENT_FAILED;
        }
    };
    // The process's stdio: the control channel's stream 0 when the guest has the virtio
    // console (a terminal stays on the serial console, a real tty), told to the VMM first.
    let mut channel = None;
    if !config.process.terminal().unwrap_or(false) && Path::new(control::CONSOLE_DRIVER).exists() {
        let until = std::time::Instant::now() + CONTROL_WAIT;
        channel = control::Control::open(0);
        while channel.is_none() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(10));
            channel = control::Control::open(0);
        }
    }
    let pipes = match channel.as_ref().map(|_| process_pipes()).transpose() {
        Ok(p) => p,
        Err(e) => {
            say(&e);
            return AGENT_FAILED;
        }
    };
    port_out(
        super::STDIO_PORT,
        if pipes.is_some() {
            super::STDIO_CHANNEL
        } else {
            super::STDIO_SERIAL
        },
    );
    // /proc is mounted by now: the agent's thread count is checked like the runtime's.
    let forked = crate::sys::SingleThreaded::check().and_then(|one| crate::sys::fork(&one));
    let child = match forked {
        Ok(crate::sys::Forked::Parent(pid)) => Pid::from_raw(pid),
        Ok(crate::sys::Forked::Child(_)) => {
            if let Some(p) = &pipes {
                for (fd, target) in p.child.iter().zip(0..) {
                    if let Err(e) = nix::unistd::dup2(fd.as_raw_fd(), target) {
                        say(&format!("the process's stdio: {e}"));
                        crate::sys::exit_now(AGENT_FAILED.into())
                    }
                }
            }
            let (status, e) = start(config);
            say(&e);
            crate::sys::exit_now(status.into())
        }
        Err(e) => {
            say(&format!("fork: {e}"));
            return AGENT_FAILED;
        }
    };
    let started = std::time::Instant::now();
    match (&mut channel, pipes) {
        (
            Some(c),
            Some(ProcessPipes {
                child: theirs,
                ours,
            }),
        ) => {
            drop(theirs); // the process's own ends: its output ends when it (and its heirs) exit
            let [i, o, e] = ours;
            c.adopt(child.as_raw(), i, o, e)
        }
        _ => channel = control::Control::open(child.as_raw()),
    }
    loop {
        let looking = channel.is_none() && started.elapsed() < CONTROL_WAIT;
        let (ready, tokens) = {
            let mut fds = vec![nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&sigfd),
                nix::poll::PollFlags::POLLIN,
            )];
            let mut tokens = Vec::new();
            if let Some(c) = &channel {
                for (fd, flags, token) in c.fds() {
                    fds.push(nix::poll::PollFd::new(fd, flags));
                    tokens.push(token);
                }
            }
            let wait = if looking {
                nix::poll::PollTimeout::from(100u8)
            } else {
                nix::poll::PollTimeout::NONE
            };
            match nix::poll::poll(&mut fds, wait) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => {
                    say(&format!("poll: {e}"));
                    return AGENT_FAILED;
                }
            }
            let ready = crate::sys::poll_ready(&fds);
            (ready, tokens)
        };
        if looking {
            channel = control::Control::open(child.as_raw());
        }
        if ready[0] {
            while let Ok(Some(_)) = sigfd.read_signal() {}
            loop {
                let (pid, status) = match waitpid(
                    Pid::from_raw(-1),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                ) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                    Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => {
                        say(&format!("wait: {e}"));
                        return AGENT_FAILED;
                    }
                };
                if pid == child {
                    if let Some(c) = &mut channel {
                        c.drain_process();
                    }
                    return status as u8;
                }
                if let Some(c) = &mut channel {
                    c.reaped(pid.as_raw(), status);
                }
            }
        }
        if let Some(c) = &mut channel {
            for (token, _) in tokens.iter().zip(&ready[1..]).filter(|(_, r)| **r) {
                c.ready(*token);
            }
        }
    }
}

/// The container's process's stdio on the control channel: its ends (stdin's read end,
/// stdout's and stderr's write ends) and the agent's.
struct ProcessPipes {
    child: [std::os::fd::OwnedFd; 3],
    ours: [std::os::fd::OwnedFd; 3],
}

fn process_pipes() -> Result<ProcessPipes, String> {
    let pipe =
        || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (in_r, in_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    Ok(ProcessPipes {
        child: [in_r, out_w, err_w],
        ours: [in_w, out_r, err_r],
    })
}

/// In the child: become config.json's process and exec it; returns only on failure, with the
/// status to report (127 when the program is not there, as a shell reports it).
fn start(config: &GuestConfig) -> (u8, String) {
    let p = &config.process;
    let failed = |e: String| (AGENT_FAILED, e);
    if let Err(e) = nix::unistd::setsid() {
        return failed(format!("setsid: {e}"));
    }
    // SAFETY: TIOCSCTTY on the console the kernel gave us as stdin; no pointers involved.
    if p.terminal().unwrap_or(false) && unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return failed(format!(
            "make the console the controlling terminal: {}",
            std::io::Error::last_os_error()
        ));
    }
    if let Err(e) = crate::process::rlimits::apply(p.rlimits().as_deref().unwrap_or_default()) {
        return failed(e.to_string());
    }
    let caps = match crate::caps::CapPlan::new(p.capabilities().as_ref()) {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    match crate::process::exec::become_process(p, &caps) {
        Ok(program) => {
            crate::process::exec::reset_signals();
            program.exec()
        }
        Err(crate::process::exec::NotReady::NotFound(e)) => (127, e.to_string()),
        Err(crate::process::exec::NotReady::Failed(e)) => failed(e.to_string()),
    }
}

/// Tell the console why the agent fails: on stderr, or, when the console cannot be written,
/// through the kernel's log at error level (which reaches the console by another path, also
/// under `quiet`). Never panics.
fn say(msg: &str) {
    use std::io::Write;
    let line = format!("contain guest-agent: {msg}\n");
    if std::io::stderr().write_all(line.as_bytes()).is_err() {
        if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
            let _ = k.write_all(format!("<3>{line}").as_bytes());
        }
    }
}

/// Write `value` to one of the VMM's ports (nothing, where the agent may not).
fn port_out(port: u16, value: u8) {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(port.into(), 1, 1) } == 0 {
        // SAFETY: the port is ours to write after ioperm; `out` touches no memory.
        unsafe {
            std::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack));
        }
    }
}

extern "C" fn aborted(_: libc::c_int) {
    report(128 + libc::SIGABRT as u8)
}

/// End the VM with `status`: the exit port, else a power-off (the VMM's SHUTDOWN status).
fn report(status: u8) -> ! {
    // What the agent and the process wrote is sent before the VM ends.
    let _ = nix::sys::termios::tcdrain(std::io::stderr());
    let _ = nix::sys::termios::tcdrain(std::io::stdout());
    nix::unistd::sync();
    port_out(super::EXIT_PORT, status);
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::park();
    }
}
