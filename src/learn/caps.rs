//! Which capabilities a workload exercised, inferred from what it did: a syscall that always
//! needs one (chroot: CAP_SYS_CHROOT), one whose arguments show it (a raw socket:
//! CAP_NET_RAW; a bind below port 1024: CAP_NET_BIND_SERVICE), and opens of files the mode
//! bits refuse to the process's filesystem ids (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH).
//! Only the capabilities of [`INFERRED`] are judged; any other is kept as the config asks.

/// The capabilities learning can tell a workload needs (Docker's default set): the learnt
/// policy drops those of them no run needed.
pub const INFERRED: [&str; 15] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// The capabilities syscall `name` with arguments `args` may exercise, judged from the call
/// alone (erring towards keeping one: a kill may signal another user's process).
pub fn needed_by(name: &str, args: &[u64; 6]) -> &'static [&'static str] {
    let name = name.strip_suffix("32").unwrap_or(name);
    match name {
        "chown" | "fchown" | "lchown" | "fchownat" => &["CAP_CHOWN", "CAP_FOWNER", "CAP_FSETID"],
        "chmod" | "fchmod" | "fchmodat" | "fchmodat2" | "utime" | "utimes" | "utimensat"
        | "futimesat" => &["CAP_FOWNER", "CAP_FSETID"],
        "setuid" | "setreuid" | "setresuid" | "setfsuid" => &["CAP_SETUID"],
        "setgid" | "setregid" | "setresgid" | "setfsgid" | "setgroups" => &["CAP_SETGID"],
        "chroot" => &["CAP_SYS_CHROOT"],
        "mknod" | "mknodat" => {
            let mode = if name == "mknod" { args[1] } else { args[2] } as u32;
            match mode & libc::S_IFMT {
                libc::S_IFCHR | libc::S_IFBLK => &["CAP_MKNOD"],
                _ => &[],
            }
        }
        "socket" | "socketpair" => {
            let (family, typ) = (args[0] as i32, args[1] as i32 & 0xf);
            if family == libc::AF_PACKET || typ == libc::SOCK_RAW {
                &["CAP_NET_RAW"]
            } else if family == libc::AF_NETLINK {
                // NETLINK_AUDIT's protocol is not kept: any netlink socket keeps it.
                &["CAP_AUDIT_WRITE"]
            } else {
                &[]
            }
        }
        "kill" | "tkill" | "tgkill" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo"
        | "pidfd_send_signal" => &["CAP_KILL"],
        "setxattr" | "lsetxattr" | "fsetxattr" | "setxattrat" => &["CAP_SETFCAP"],
        "capset" => &["CAP_SETPCAP"],
        // PR_CAPBSET_DROP, PR_CAP_AMBIENT
        "prctl" if args[0] == 24 || args[0] == 47 => &["CAP_SETPCAP"],
        _ => &[],
    }
}

/// A process's filesystem credentials, from /proc/PID/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creds {
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    pub fn parse(status: &str) -> Option<Creds> {
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|v| v.parse::<u32>().ok())
                        .collect::<Vec<_>>()
                })
        };
        Some(Creds {
            fsuid: *field("Uid:")?.get(3)?,
            fsgid: *field("Gid:")?.get(3)?,
            groups: field("Groups:").unwrap_or_default(),
        })
    }
}

/// The capabilities an open of a file with `mode`, owned by `uid`:`gid`, may exercise
/// beyond the mode bits for `creds`: writing needs CAP_DAC_OVERRIDE; reading is allowed by
/// CAP_DAC_READ_SEARCH or, without it (Docker's default set), CAP_DAC_OVERRIDE, so both are
/// kept. Empty when the mode bits allow it.
pub fn dac_needed(
    mode: u32,
    uid: u32,
    gid: u32,
    creds: &Creds,
    read: bool,
    write: bool,
) -> &'static [&'static str] {
    let bits = if creds.fsuid == uid {
        mode >> 6
    } else if creds.fsgid == gid || creds.groups.contains(&gid) {
        mode >> 3
    } else {
        mode
    } & 0o7;
    if write && bits & 0o2 == 0 {
        &["CAP_DAC_OVERRIDE"]
    } else if read && bits & 0o4 == 0 {
        &["CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE"]
    } else {
        &[]
    }
}
