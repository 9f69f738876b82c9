//! bpf(2) for the cgroup v2 device controller: load a BPF_PROG_TYPE_CGROUP_DEVICE program,
//! attach it to a cgroup directory, and find and replace the one attached before.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// The kernel reads the program as an array of 8-byte struct bpf_insn.
const _: () = assert!(std::mem::size_of::<Insn>() == 8);

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
/// Swap the program given in replace_bpf_fd for the new one, atomically.
const BPF_F_REPLACE: u32 = 4;
/// The name contain gives its device programs (BPF_OBJ_NAME_LEN is 16 with the NUL), by
/// which it finds its own among those attached to a cgroup (systemd's are left alone).
pub const DEVICE_PROGRAM_NAME: &str = "contain_devices";
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of ancestors run too; every one must allow.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// union bpf_attr, large enough for the two commands used here.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn put32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised bpf_attr of the size passed, laid out for `cmd`;
    // the pointers it carries point at memory that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_mut_ptr(), attr.0.len()) };
    super::cvt(r)
}

/// Load a cgroup device program; on failure the verifier's log is in the error.
pub fn load_device_program(prog: &[Insn]) -> io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 16 * 1024];
    let mut a = Attr([0; 128]);
    a.put32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
    a.put32(4, prog.len() as u32);
    a.put64(8, prog.as_ptr() as u64);
    a.put64(16, license.as_ptr() as u64);
    a.put32(24, 1); // log_level
    a.put32(28, log.len() as u32);
    a.put64(32, log.as_mut_ptr() as u64);
    // prog_name, after kern_version and prog_flags.
    a.0[48..48 + DEVICE_PROGRAM_NAME.len()].copy_from_slice(DEVICE_PROGRAM_NAME.as_bytes());
    match bpf(BPF_PROG_LOAD, &mut a) {
        // SAFETY: BPF_PROG_LOAD returned a new descriptor that nobody else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(0);
            let text = String::from_utf8_lossy(&log[..end]);
            Err(io::Error::new(
                e.kind(),
                format!(
                    "BPF_PROG_LOAD: {e}{}{}",
                    if end > 0 { ": " } else { "" },
                    text.trim()
                ),
            ))
        }
    }
}

/// Attach a device program to the cgroup directory `cgroup` (alongside its ancestors'), in
/// place of `replace` if given (BPF_F_REPLACE: there is no moment without a program).
pub fn attach_device_program(
    cgroup: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    replace: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let mut a = Attr([0; 128]);
    a.put32(0, cgroup.as_raw_fd() as u32);
    a.put32(4, prog.as_raw_fd() as u32);
    a.put32(8, BPF_CGROUP_DEVICE);
    a.put32(12, BPF_F_ALLOW_MULTI | replace.map_or(0, |_| BPF_F_REPLACE));
    if let Some(old) = replace {
        a.put32(16, old.as_raw_fd() as u32);
    }
    bpf(BPF_PROG_ATTACH, &mut a).map(drop)
}

/// Detach the device program `prog` from `cgroup`.
pub fn detach_device_program(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = Attr([0; 128]);
    a.put32(0, cgroup.as_raw_fd() as u32);
    a.put32(4, prog.as_raw_fd() as u32);
    a.put32(8, BPF_CGROUP_DEVICE);
    bpf(BPF_PROG_DETACH, &mut a).map(drop)
}

/// The device programs attached to `cgroup` itself (not its ancestors'), each with its name.
pub fn attached_device_programs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<(OwnedFd, String)>> {
    let mut ids = [0u32; 64];
    let mut a = Attr([0; 128]);
    a.put32(0, cgroup.as_raw_fd() as u32);
    a.put32(4, BPF_CGROUP_DEVICE);
    a.put64(16, ids.as_mut_ptr() as u64);
    a.put32(24, ids.len() as u32);
    bpf(BPF_PROG_QUERY, &mut a)?;
    let count = u32::from_ne_bytes([a.0[24], a.0[25], a.0[26], a.0[27]]) as usize;
    let mut out = Vec::new();
    for &id in &ids[..count.min(ids.len())] {
        let mut g = Attr([0; 128]);
        g.put32(0, id);
        // SAFETY: BPF_PROG_GET_FD_BY_ID returns a new descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut g)? as i32) };
        // struct bpf_prog_info up to and including its name (at offset 64).
        let mut info = [0u8; 80];
        let mut q = Attr([0; 128]);
        q.put32(0, fd.as_raw_fd() as u32);
        q.put32(4, info.len() as u32);
        q.put64(8, info.as_mut_ptr() as u64);
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut q)?;
        let name = &info[64..80];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        out.push((fd, String::from_utf8_lossy(&name[..end]).into_owned()));
    }
    Ok(out)
}
