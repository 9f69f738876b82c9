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

use super::initramfs::{GuestConfig, PROCESS_PATH};

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
    let status = match setup() {
        Ok(config) => run(&config),
        Err(e) => {
            eprintln!("contain guest-agent: {e}");
            AGENT_FAILED
        }
    };
    report(status)
}

fn setup() -> Result<GuestConfig, String> {
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
        std::fs::create_dir_all(at).map_err(|e| format!("mkdir {at}: {e}"))?;
        nix::mount::mount(Some(fs), at, Some(fs), flags, data)
            .map_err(|e| format!("mount {fs} on {at}: {e}"))?;
    }
    // The devpts instance's ptmx, where programs look for it.
    let _ = std::fs::remove_file("/dev/ptmx");
    let _ = std::os::unix::fs::symlink("pts/ptmx", "/dev/ptmx");
    let json = std::fs::read(PROCESS_PATH).map_err(|e| format!("{PROCESS_PATH}: {e}"))?;
    let config: GuestConfig =
        serde_json::from_slice(&json).map_err(|e| format!("{PROCESS_PATH}: {e}"))?;
    if let Some(h) = &config.hostname {
        nix::unistd::sethostname(h).map_err(|e| format!("hostname {h:?}: {e}"))?;
    }
    // Nothing of the agent's is left for the workload to read.
    let _ = std::fs::remove_dir_all(Path::new(PROCESS_PATH).parent().unwrap_or(Path::new("/")));
    Ok(config)
}

/// Start the process and reap until it ends; its status (128+N for signal N).
fn run(config: &GuestConfig) -> u8 {
    // /proc is mounted by now: the agent's thread count is checked like the runtime's.
    let forked = crate::sys::SingleThreaded::check().and_then(|one| crate::sys::fork(&one));
    let child = match forked {
        Ok(crate::sys::Forked::Parent(pid)) => Pid::from_raw(pid),
        Ok(crate::sys::Forked::Child(_)) => {
            let (status, e) = start(config);
            eprintln!("contain guest-agent: {e}");
            crate::sys::exit_now(status.into())
        }
        Err(e) => {
            eprintln!("contain guest-agent: fork: {e}");
            return AGENT_FAILED;
        }
    };
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => return code as u8,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                return 128u8.wrapping_add(sig as u8)
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                eprintln!("contain guest-agent: wait: {e}");
                return AGENT_FAILED;
            }
        }
    }
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

/// End the VM with `status`: the exit port, else a power-off (the VMM's SHUTDOWN status).
fn report(status: u8) -> ! {
    nix::unistd::sync();
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { libc::ioperm(super::EXIT_PORT.into(), 1, 1) } == 0 {
        // SAFETY: the port is ours to write after ioperm; `out` touches no memory.
        unsafe {
            std::arch::asm!("out dx, al", in("dx") super::EXIT_PORT, in("al") status, options(nomem, nostack));
        }
    }
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::park();
    }
}
