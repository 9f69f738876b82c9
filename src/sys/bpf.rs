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

/// The members of union bpf_attr for the commands used here, laid out as the kernel's (no
/// implicit padding: every byte handed to the kernel is initialised). Each is passed with its
/// own size; the kernel reads the rest of its union as zero.
trait Attr {}

/// BPF_PROG_LOAD's member, up to and including prog_name.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// BPF_PROG_ATTACH's and BPF_PROG_DETACH's member.
#[repr(C)]
#[derive(Default)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// BPF_PROG_QUERY's member, up to prog_cnt (which the kernel writes back).
#[repr(C)]
#[derive(Default)]
struct ProgQuery {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// BPF_PROG_GET_FD_BY_ID's member.
#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

/// BPF_OBJ_GET_INFO_BY_FD's member.
#[repr(C)]
#[derive(Default)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

impl Attr for ProgLoad {}
impl Attr for ProgAttach {}
impl Attr for ProgQuery {}
impl Attr for GetFdById {}
impl Attr for InfoByFd {}

// The kernel's offsets: prog_name at 48 (after kern_version and prog_flags), prog_cnt at 24.
const _: () = assert!(std::mem::size_of::<ProgLoad>() == 64);
const _: () = assert!(std::mem::offset_of!(ProgLoad, prog_name) == 48);
const _: () = assert!(std::mem::size_of::<ProgAttach>() == 20);
const _: () = assert!(std::mem::offset_of!(ProgQuery, prog_cnt) == 24);
const _: () = assert!(std::mem::size_of::<ProgQuery>() == 32);
const _: () = assert!(std::mem::size_of::<GetFdById>() == 12);
const _: () = assert!(std::mem::size_of::<InfoByFd>() == 16);

fn bpf<A: Attr>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is one of the bpf_attr members above, with the kernel's layout and no
    // uninitialised byte, passed with its own size; the pointers it carries point at memory
    // that outlives the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, std::mem::size_of::<A>()) };
    super::cvt(r)
}

/// Load a cgroup device program; on failure the verifier's log is in the error.
pub fn load_device_program(prog: &[Insn]) -> io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 16 * 1024];
    let mut name = [0u8; 16];
    name[..DEVICE_PROGRAM_NAME.len()].copy_from_slice(DEVICE_PROGRAM_NAME.as_bytes());
    let mut a = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
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
    let mut a = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | replace.map_or(0, |_| BPF_F_REPLACE),
        replace_bpf_fd: replace.map_or(0, |old| old.as_raw_fd() as u32),
    };
    bpf(BPF_PROG_ATTACH, &mut a).map(drop)
}

/// Detach the device program `prog` from `cgroup`.
pub fn detach_device_program(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut a = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut a).map(drop)
}

/// The device programs attached to `cgroup` itself (not its ancestors'), each with its name.
pub fn attached_device_programs(cgroup: BorrowedFd<'_>) -> io::Result<Vec<(OwnedFd, String)>> {
    let mut ids = [0u32; 64];
    let mut a = ProgQuery {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut a)?;
    let count = a.prog_cnt as usize;
    let mut out = Vec::new();
    for &id in &ids[..count.min(ids.len())] {
        let mut g = GetFdById {
            prog_id: id,
            ..Default::default()
        };
        // SAFETY: BPF_PROG_GET_FD_BY_ID returns a new descriptor that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(bpf(BPF_PROG_GET_FD_BY_ID, &mut g)? as i32) };
        // struct bpf_prog_info up to and including its name (at offset 64).
        let mut info = [0u8; 80];
        let mut q = InfoByFd {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: info.len() as u32,
            info: info.as_mut_ptr() as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut q)?;
        let name = &info[64..80];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        out.push((fd, String::from_utf8_lossy(&name[..end]).into_owned()));
    }
    Ok(out)
}
