//! The initramfs of a Linux guest (newc cpio, as the kernel unpacks it into its root tmpfs):
//! the container's rootfs, a /dev/console for the kernel to open as the init's stdio, the
//! guest agent (this binary, statically linked) at [`AGENT_PATH`] and what it runs at
//! [`PROCESS_PATH`].
//!
//! The rootfs is read as host root from a tree that belongs to the image, so nothing in it is
//! followed: every entry is opened relative to its parent's descriptor with O_NOFOLLOW, a
//! symlink is archived as a symlink, a file is read only after fstat confirms it is the
//! regular file the directory listed, and sockets are left out.

use std::ffi::{CStr, CString, OsStr};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use crate::sys::fs::{fstat, lstatat, readlinkat};

/// Where the agent sits in the guest (the kernel runs it: rdinit=).
pub const AGENT_PATH: &str = "/.contain/init";
/// The process the agent runs, as JSON ([`GuestConfig`]).
pub const PROCESS_PATH: &str = "/.contain/process.json";
/// What a Linux guest's command line gets so that the kernel runs the agent as PID 1 (words
/// after `--` are the init's arguments).
pub const AGENT_CMDLINE: &str = "rdinit=/.contain/init -- guest-agent";
/// The name that ends a newc archive.
const TRAILER: &str = "TRAILER!!!";
/// The deepest directory nesting archived (a bound on the walk, and on hostile trees).
const MAX_DEPTH: usize = 128;

/// The kernel modules the agent loads (in the order of their names) when the rootfs is a disk.
pub const MODULES_PATH: &str = "/.contain/modules";

/// What the agent needs of config.json.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GuestConfig {
    pub process: Process,
    #[serde(default)]
    pub hostname: Option<String>,
    /// Where the rootfs is: in the initramfs, or on the virtio-blk disk.
    #[serde(default)]
    pub rootfs: super::RootfsMode,
    /// root.readonly: the disk is the root as it is, without a writable overlay.
    #[serde(default)]
    pub readonly: bool,
}

/// The archive being written, with the bound on its size.
struct Archive {
    out: Vec<u8>,
    limit: u64,
    ino: u32,
}

/// One entry's metadata.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    rdev: u64,
}

impl Archive {
    fn add(&mut self, name: &str, m: &Meta, data: &[u8]) -> Result<(), String> {
        // An entry named TRAILER!!! ends a newc archive (for the kernel's unpacker too): it
        // is written as ./TRAILER!!!, which unpacks to the same place.
        let dotted;
        let name = if name == TRAILER {
            dotted = format!("./{TRAILER}");
            &dotted
        } else {
            name
        };
        let size = u32::try_from(data.len()).map_err(|_| format!("{name}: larger than 4 GiB"))?;
        if self.out.len() as u64 + data.len() as u64 + 512 > self.limit {
            return Err(format!(
                "the initramfs would exceed {} MiB at {name}: give the guest more memory \
                 (linux.resources.memory.limit) or a smaller rootfs",
                self.limit >> 20
            ));
        }
        self.ino += 1;
        let mut w = cpio::NewcBuilder::new(name)
            .ino(self.ino)
            .mode(m.mode)
            .uid(m.uid)
            .gid(m.gid)
            .nlink(1)
            .mtime(m.mtime)
            .rdev_major(libc::major(m.rdev))
            .rdev_minor(libc::minor(m.rdev))
            .write(&mut self.out, size);
        w.write_all(data)
            .and_then(|()| w.finish().map(drop))
            .map_err(|e| format!("{name}: {e}"))
    }
}

/// The initramfs for a Linux guest of `rootfs` running `config`, with `agent` as its init;
/// at most `limit` bytes.
pub fn build(
    rootfs: &Path,
    config: &GuestConfig,
    agent: &[u8],
    modules: &[(String, Vec<u8>)],
    limit: u64,
) -> Result<Vec<u8>, String> {
    let root = crate::sys::fs::open_host(rootfs, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| format!("open the rootfs {}: {e}", rootfs.display()))?;
    let mut a = Archive {
        out: Vec::new(),
        limit,
        ino: 0,
    };
    walk(&mut a, root.as_fd(), &mut PathBuf::new(), 0)
        .map_err(|e| format!("the rootfs {}: {e}", rootfs.display()))?;
    finish(a, config, agent, modules)
}

/// The initramfs of a guest whose rootfs is a disk: only the agent, what it runs and the
/// kernel `modules` (name, image) it loads, in order, before it mounts the disk.
pub fn build_for_block(
    config: &GuestConfig,
    agent: &[u8],
    modules: &[(String, Vec<u8>)],
    limit: u64,
) -> Result<Vec<u8>, String> {
    let a = Archive {
        out: Vec::new(),
        limit,
        ino: 0,
    };
    finish(a, config, agent, modules)
}

fn finish(
    mut a: Archive,
    config: &GuestConfig,
    agent: &[u8],
    modules: &[(String, Vec<u8>)],
) -> Result<Vec<u8>, String> {
    let dir = |mode| Meta {
        mode: libc::S_IFDIR | mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        rdev: 0,
    };
    // A directory entry that already exists is kept by the kernel; a node replaces a file.
    a.add("dev", &dir(0o755), &[])?;
    a.add(
        "dev/console",
        &Meta {
            mode: libc::S_IFCHR | 0o600,
            rdev: libc::makedev(5, 1),
            ..dir(0)
        },
        &[],
    )?;
    a.add(".contain", &dir(0o700), &[])?;
    let file = |mode| Meta {
        mode: libc::S_IFREG | mode,
        ..dir(0)
    };
    a.add(&AGENT_PATH[1..], &file(0o500), agent)?;
    let json = serde_json::to_vec(config).map_err(|e| format!("the guest's process: {e}"))?;
    a.add(&PROCESS_PATH[1..], &file(0o400), &json)?;
    if !modules.is_empty() {
        a.add(&MODULES_PATH[1..], &dir(0o700), &[])?;
        for (i, (name, image)) in modules.iter().enumerate() {
            a.add(
                &format!("{}/{i:02}-{name}.ko", &MODULES_PATH[1..]),
                &file(0o400),
                image,
            )?;
        }
    }
    cpio::newc::trailer(a.out).map_err(|e| format!("the initramfs trailer: {e}"))
}

fn walk(
    a: &mut Archive,
    dir: BorrowedFd<'_>,
    path: &mut PathBuf,
    depth: usize,
) -> Result<(), String> {
    let err = |p: &Path, e: &dyn std::fmt::Display| format!("/{}: {e}", p.display());
    for name in sorted_names(dir, path, depth)? {
        // The rootfs's own /.contain would be replaced by the agent's: leave it out.
        if depth == 0 && name.as_bytes() == b".contain" {
            continue;
        }
        path.push(OsStr::from_bytes(name.as_bytes()));
        let res = entry(a, dir, &name, path, depth).map_err(|e| err(path, &e));
        path.pop();
        res?;
    }
    Ok(())
}

fn entry(
    a: &mut Archive,
    dir: BorrowedFd<'_>,
    name: &CStr,
    path: &mut PathBuf,
    depth: usize,
) -> Result<(), String> {
    let st = lstatat(dir, name).map_err(|e| e.to_string())?;
    let archived = path
        .to_str()
        .ok_or("the name is not UTF-8, which a newc archive here cannot carry")?
        .to_owned();
    let meta = Meta {
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime.clamp(0, u32::MAX.into()) as u32,
        rdev: st.st_rdev,
    };
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            a.add(&archived, &meta, &[])?;
            let sub =
                openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| e.to_string())?;
            walk(a, sub.as_fd(), path, depth + 1)?;
        }
        libc::S_IFREG => {
            let f =
                openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK).map_err(|e| e.to_string())?;
            let now = fstat(f.as_fd()).map_err(|e| e.to_string())?;
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                return Err("changed while it was read".into());
            }
            let mut data = Vec::new();
            std::fs::File::from(f)
                .take(a.limit)
                .read_to_end(&mut data)
                .map_err(|e| e.to_string())?;
            a.add(&archived, &meta, &data)?;
        }
        libc::S_IFLNK => {
            let target = readlinkat(dir, name).map_err(|e| e.to_string())?;
            a.add(&archived, &meta, &target)?;
        }
        libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => a.add(&archived, &meta, &[])?,
        _ => {} // a socket: meaningless in another kernel
    }
    Ok(())
}

/// The names in the directory `dir` (at `path`, `depth` below the rootfs), sorted; a tree
/// nested deeper than MAX_DEPTH is refused (a bound on every walk of a rootfs).
pub(super) fn sorted_names(
    dir: BorrowedFd<'_>,
    path: &Path,
    depth: usize,
) -> Result<Vec<CString>, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested deeper than {MAX_DEPTH} directories",
            path.display()
        ));
    }
    let mut names = list(dir).map_err(|e| format!("/{}: {e}", path.display()))?;
    names.sort();
    Ok(names)
}

/// `name` in `dir`, never through a symlink.
pub(super) fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated; `dir` is a live directory descriptor.
    let fd = crate::sys::cvt(
        unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        }
        .into(),
    )?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The names in `dir` (without `.` and `..`).
pub(super) fn list(dir: BorrowedFd<'_>) -> nix::Result<Vec<CString>> {
    let mut d = nix::dir::Dir::openat(
        Some(dir.as_raw_fd()),
        ".",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            out.push(n.to_owned());
        }
    }
    Ok(out)
}

/// Whether the ELF image `elf` is statically linked (no PT_INTERP program header).
pub fn is_static(elf: &[u8]) -> bool {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(entsize), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(count)).all(|i| {
        let at = (phoff as usize).saturating_add(i * usize::from(entsize));
        u32_at(at).is_some_and(|t| t != libc::PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut rest = archive;
        loop {
            let mut r = cpio::NewcReader::new(rest).expect("an entry");
            if r.entry().is_trailer() {
                return out;
            }
            let (name, mode) = (r.entry().name().to_owned(), r.entry().mode());
            let mut data = Vec::new();
            r.read_to_end(&mut data).unwrap();
            out.push((name, mode, data));
            rest = r.finish().unwrap();
        }
    }

    fn config() -> GuestConfig {
        GuestConfig {
            process: Process::default(),
            hostname: Some("guest".into()),
            rootfs: crate::microvm::RootfsMode::Initramfs,
            readonly: false,
        }
    }

    #[test]
    fn archives_the_tree_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), b"host secret").unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("bin/sub")).unwrap();
        std::fs::write(r.join("bin/sh"), b"#!shell").unwrap();
        std::os::unix::fs::symlink(secret.path(), r.join("bin/escape")).unwrap();
        std::os::unix::fs::symlink("/", r.join("bin/sub/root")).unwrap();
        std::fs::create_dir(r.join(".contain")).unwrap();
        std::fs::write(r.join(".contain/init"), b"planted").unwrap();
        let out = build(r, &config(), b"AGENT", &[], 1 << 20).unwrap();
        let e = entries(&out);
        let get = |n: &str| e.iter().find(|x| x.0 == n).unwrap_or_else(|| panic!("{n}"));
        assert_eq!(get("bin/sh").2, b"#!shell");
        let link = get("bin/escape");
        assert_eq!(link.1 & libc::S_IFMT, libc::S_IFLNK);
        assert_eq!(link.2, secret.path().as_os_str().as_bytes());
        assert_eq!(get("bin/sub/root").2, b"/");
        assert!(!e.iter().any(|x| x.2 == b"host secret" || x.2 == b"planted"));
        assert_eq!(get(".contain/init").2, b"AGENT");
        let console = get("dev/console");
        assert_eq!(console.1 & libc::S_IFMT, libc::S_IFCHR);
        let cfg: GuestConfig = serde_json::from_slice(&get(".contain/process.json").2).unwrap();
        assert_eq!(cfg.hostname.as_deref(), Some("guest"));
        // Every walked entry comes before the agent's, which therefore win.
        let pos = |n: &str| e.iter().position(|x| x.0 == n).unwrap();
        assert!(pos("bin/sh") < pos(".contain/init"));
    }

    /// Found by the guest_initramfs fuzz target: a rootfs directory named TRAILER!!! ended
    /// the archive there, so the rest of the rootfs and the agent were never read.
    #[test]
    fn an_entry_named_like_the_trailer_does_not_end_the_archive() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("TRAILER!!!/c")).unwrap();
        std::fs::write(t.path().join("TRAILER!!!/c/f"), b"kept").unwrap();
        let out = build(t.path(), &config(), b"AGENT", &[], 1 << 20).unwrap();
        let e = entries(&out);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            &names[..3],
            ["./TRAILER!!!", "TRAILER!!!/c", "TRAILER!!!/c/f"]
        );
        assert_eq!(names.last(), Some(&".contain/process.json"));
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("big"), vec![0u8; 64 << 10]).unwrap();
        let e = build(t.path(), &config(), b"", &[], 32 << 10).unwrap_err();
        assert!(e.contains("would exceed") && e.contains("big"), "{e}");
        let e = build(Path::new("/nonexistent"), &config(), b"", &[], 1 << 20).unwrap_err();
        assert!(e.contains("/nonexistent"), "{e}");
    }

    #[test]
    fn static_binaries_are_told_apart() {
        let me = std::fs::read("/proc/self/exe").unwrap();
        // The test binary is built as the runtime is (.cargo/config.toml): statically.
        assert!(is_static(&me));
        let dynamic = std::fs::read("/bin/sh").unwrap();
        assert!(!is_static(&dynamic));
        assert!(!is_static(b"\x7fELF\x02\x01\x01"));
    }
}
