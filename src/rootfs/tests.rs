//! The rootfs's logic through a recording fake of its system calls: which mounts are made, in
//! which order, with which flags, and what is refused before anything is mounted. No root,
//! no namespaces: the fake models a small tree, the mounts made on it and the host's paths.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use super::devices::Node;
use super::*;

const EXT4: i64 = 0xef53;
const TMPFS: i64 = 0x0102_1994;
const SYSFS: i64 = 0x6265_6572;

/// A file of the fake tree.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Dir,
    File,
    /// A character device: its number.
    Char(u64),
    Symlink(PathBuf),
}

/// What a descriptor stands for: a path in the container's tree or on the host.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Root(PathBuf),
    Host(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Root(p) => write!(f, "{}", p.display()),
            Place::Host(p) => write!(f, "host:{}", p.display()),
        }
    }
}

/// A mount made in the fake: where, its filesystem type, its ST_* flags.
struct Mounted {
    at: Place,
    fstype: i64,
    flags: u64,
}

struct Fake {
    tree: RefCell<BTreeMap<PathBuf, Entry>>,
    host: BTreeMap<PathBuf, Entry>,
    fds: RefCell<HashMap<RawFd, Place>>,
    mounts: RefCell<Vec<Mounted>>,
    /// Calls that fail: (the start of the call's log line, errno).
    failing: Vec<(&'static str, i32)>,
    calls: RefCell<Vec<String>>,
}

const ROOTFS: &str = "/bundle/rootfs";

impl Fake {
    /// A rootfs with /bin, /etc, /tmp and /dev/null; a host with /proc, /sys, /dev/null,
    /// /dev/zero and /srv/data.
    fn new() -> Fake {
        let tree = [
            ("/", Entry::Dir),
            ("/bin", Entry::Dir),
            ("/etc", Entry::Dir),
            ("/etc/passwd", Entry::File),
            ("/tmp", Entry::Dir),
        ];
        let host = [
            (ROOTFS, Entry::Dir),
            ("/proc", Entry::Dir),
            ("/sys", Entry::Dir),
            ("/dev/null", Entry::Char(libc::makedev(1, 3))),
            ("/dev/zero", Entry::Char(libc::makedev(1, 5))),
            ("/srv/data", Entry::Dir),
            ("/srv/file", Entry::File),
        ];
        Fake {
            tree: RefCell::new(tree.map(|(p, e)| (PathBuf::from(p), e)).into()),
            host: host.map(|(p, e)| (PathBuf::from(p), e)).into(),
            fds: RefCell::default(),
            mounts: RefCell::default(),
            failing: Vec::new(),
            calls: RefCell::default(),
        }
    }

    fn with(self, path: &str, e: Entry) -> Fake {
        self.tree.borrow_mut().insert(PathBuf::from(path), e);
        self
    }

    fn failing(mut self, call: &'static str, errno: i32) -> Fake {
        self.failing.push((call, errno));
        self
    }

    /// A descriptor standing for `place`.
    fn fd(&self, place: Place) -> OwnedFd {
        let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        self.fds.borrow_mut().insert(fd.as_raw_fd(), place);
        fd
    }

    fn place(&self, fd: BorrowedFd<'_>) -> Place {
        self.fds
            .borrow()
            .get(&fd.as_raw_fd())
            .cloned()
            .expect("a descriptor the fake made")
    }

    fn root_path(&self, fd: BorrowedFd<'_>) -> PathBuf {
        match self.place(fd) {
            Place::Root(p) => p,
            Place::Host(p) => panic!("a host path where one in the rootfs was expected: {p:?}"),
        }
    }

    /// Log a call; fail it if the test said so.
    fn call(&self, line: String) -> io::Result<()> {
        let fail = self
            .failing
            .iter()
            .find(|(prefix, _)| line.starts_with(prefix));
        self.calls.borrow_mut().push(line);
        match fail {
            Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
            None => Ok(()),
        }
    }

    /// The calls that changed something (mounts, nodes, links, the root), in order.
    fn log(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn mounts_log(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .filter(|l| l.starts_with("mount") || l.starts_with("attach"))
            .collect()
    }

    /// Resolve `path` in the tree as if the rootfs were `/`: symlinks of directories always,
    /// of the last component unless `nofollow`.
    fn resolve(&self, path: &Path, nofollow: bool) -> io::Result<PathBuf> {
        let tree = self.tree.borrow();
        let mut todo: Vec<PathBuf> = Vec::new();
        let mut parts: Vec<_> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(PathBuf::from(n)),
                _ => None,
            })
            .collect();
        parts.reverse();
        todo.extend(parts);
        let mut at = PathBuf::from("/");
        let mut hops = 0;
        while let Some(name) = todo.pop() {
            let next = at.join(&name);
            match tree.get(&next) {
                Some(Entry::Symlink(target)) if !(nofollow && todo.is_empty()) => {
                    hops += 1;
                    if hops > 40 {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    if target.is_absolute() {
                        at = PathBuf::from("/");
                    }
                    let mut more: Vec<_> = target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(PathBuf::from(n)),
                            _ => None,
                        })
                        .collect();
                    more.reverse();
                    todo.extend(more);
                }
                Some(_) => at = next,
                None => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
            }
        }
        Ok(at)
    }

    fn entry(&self, place: &Place) -> Entry {
        match place {
            Place::Root(p) => self.tree.borrow().get(p).cloned(),
            Place::Host(p) => self.host.get(p).cloned(),
        }
        .expect("a descriptor of an existing file")
    }

    /// The mount a place is on (the last made at it or above it).
    fn mount_of(&self, place: &Place) -> Option<(i64, u64)> {
        let under = |m: &Mounted| match (&m.at, place) {
            (Place::Root(a), Place::Root(p)) | (Place::Host(a), Place::Host(p)) => p.starts_with(a),
            _ => false,
        };
        let mounts = self.mounts.borrow();
        mounts
            .iter()
            .filter(|m| under(m))
            .max_by_key(|m| match &m.at {
                Place::Root(a) | Place::Host(a) => a.components().count(),
            })
            .map(|m| (m.fstype, m.flags))
    }
}

/// MS_* flags as a short list ("bind,rec,rdonly").
fn flag_names(flags: MsFlags) -> String {
    let names = [
        (MsFlags::MS_BIND, "bind"),
        (MsFlags::MS_REC, "rec"),
        (MsFlags::MS_REMOUNT, "remount"),
        (MsFlags::MS_MOVE, "move"),
        (MsFlags::MS_RDONLY, "rdonly"),
        (MsFlags::MS_NOSUID, "nosuid"),
        (MsFlags::MS_NODEV, "nodev"),
        (MsFlags::MS_NOEXEC, "noexec"),
        (MsFlags::MS_NOATIME, "noatime"),
        (MsFlags::MS_NODIRATIME, "nodiratime"),
        (MsFlags::MS_RELATIME, "relatime"),
        (MsFlags::MS_STRICTATIME, "strictatime"),
        (MsFlags::MS_PRIVATE, "private"),
        (MsFlags::MS_SLAVE, "slave"),
        (MsFlags::MS_SHARED, "shared"),
        (MsFlags::MS_UNBINDABLE, "unbindable"),
    ];
    let list: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    list.join(",")
}

/// The ST_* flags a mount with these MS_* flags shows.
fn st_flags(flags: MsFlags) -> u64 {
    [
        (MsFlags::MS_RDONLY, libc::ST_RDONLY),
        (MsFlags::MS_NOSUID, libc::ST_NOSUID),
        (MsFlags::MS_NODEV, libc::ST_NODEV),
        (MsFlags::MS_NOEXEC, libc::ST_NOEXEC),
        (MsFlags::MS_NOATIME, libc::ST_NOATIME),
        (MsFlags::MS_RELATIME, libc::ST_RELATIME),
    ]
    .iter()
    .filter(|(f, _)| flags.contains(*f))
    .fold(0, |acc, (_, st)| acc | st)
}

fn magic(fstype: &str) -> i64 {
    match fstype {
        "proc" => crate::sys::fs::PROC_SUPER_MAGIC,
        "tmpfs" => TMPFS,
        "sysfs" => SYSFS,
        _ => 0x1234,
    }
}

impl Syscalls for Fake {
    fn mount(
        &self,
        source: Source<'_>,
        target: BorrowedFd<'_>,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        let at = self.place(target);
        let (src, from) = match source {
            Source::None => ("-".to_string(), None),
            Source::Name(n) => (n.display().to_string(), None),
            Source::Fd(fd) => {
                let p = self.place(fd);
                (p.to_string(), Some(p))
            }
        };
        let mut line = format!("mount {src} on {at}");
        if let Some(t) = fstype {
            line += &format!(" type {t}");
        }
        line += &format!(" [{}]", flag_names(flags));
        if let Some(d) = data {
            line += &format!(" {d}");
        }
        self.call(line)?;
        let (fstype, st) = if flags.contains(MsFlags::MS_REMOUNT) {
            (self.mount_of(&at).map_or(EXT4, |m| m.0), st_flags(flags))
        } else if flags.contains(MsFlags::MS_BIND) {
            let from = from.expect("a bind has a source descriptor");
            let (t, f) = self.mount_of(&from).unwrap_or((EXT4, 0));
            (t, f | st_flags(flags))
        } else if flags.intersects(
            MsFlags::MS_PRIVATE | MsFlags::MS_SLAVE | MsFlags::MS_SHARED | MsFlags::MS_UNBINDABLE,
        ) {
            return Ok(());
        } else {
            (magic(fstype.unwrap_or("")), st_flags(flags))
        };
        self.mounts.borrow_mut().push(Mounted {
            at,
            fstype,
            flags: st,
        });
        Ok(())
    }

    fn mount_path(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
    ) -> io::Result<()> {
        let src = source.map_or("-".to_string(), |s| s.display().to_string());
        let mut line = format!("mount {src} on path {}", target.display());
        if let Some(t) = fstype {
            line += &format!(" type {t}");
        }
        self.call(line + &format!(" [{}]", flag_names(flags)))
    }

    fn umount(&self, target: &Path, _: MntFlags) -> io::Result<()> {
        self.call(format!("umount {}", target.display()))
    }

    fn attach(&self, tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
        let line = format!("attach {} on {}", self.place(tree), self.place(target));
        self.call(line)
    }

    fn copy_tree_now(&self, mnt: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        let place = self.place(mnt);
        self.call(format!("copy {place}"))?;
        Ok(self.fd(place))
    }

    fn detach(&self, mnt: BorrowedFd<'_>) -> io::Result<()> {
        let line = format!("detach {}", self.place(mnt));
        self.call(line)
    }

    fn set_attrs(&self, mnt: BorrowedFd<'_>, set: u64, clear: u64, rec: bool) -> io::Result<()> {
        let line = format!(
            "setattr {} set {set:#x} clear {clear:#x}{}",
            self.place(mnt),
            if rec { " recursive" } else { "" }
        );
        self.call(line)
    }

    fn open_host(&self, path: &Path, _: i32) -> io::Result<OwnedFd> {
        if !self.host.contains_key(path) {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        Ok(self.fd(Place::Host(path.to_path_buf())))
    }

    fn open_in_root(&self, root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
        assert_eq!(
            self.place(root),
            Place::Host(ROOTFS.into()),
            "resolved in the rootfs"
        );
        let p = self.resolve(path, flags & libc::O_NOFOLLOW != 0)?;
        Ok(self.fd(Place::Root(p)))
    }

    fn mkdir_all_in_root(&self, root: BorrowedFd<'_>, path: &Path, _: u32) -> io::Result<OwnedFd> {
        let mut at = PathBuf::from("/");
        for c in path.components() {
            if let Component::Normal(n) = c {
                let next = self.resolve(&at.join(n), false);
                at = match next {
                    Ok(p) => p,
                    Err(_) => {
                        let made = at.join(n);
                        self.calls
                            .borrow_mut()
                            .push(format!("mkdir {}", made.display()));
                        self.tree.borrow_mut().insert(made.clone(), Entry::Dir);
                        made
                    }
                };
                if self.tree.borrow().get(&at) != Some(&Entry::Dir) {
                    return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                }
            }
        }
        self.open_in_root(root, &at, libc::O_PATH)
    }

    fn ensure_file_in_root(&self, root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
        if let Ok(fd) = self.open_in_root(root, path, libc::O_PATH) {
            return Ok(fd);
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        let dir = self.mkdir_all_in_root(root, parent, 0o755)?;
        let made = self.root_path(dir.as_fd()).join(path.file_name().unwrap());
        self.calls
            .borrow_mut()
            .push(format!("create {}", made.display()));
        self.tree.borrow_mut().insert(made.clone(), Entry::File);
        Ok(self.fd(Place::Root(made)))
    }

    fn is_symlink_in_root(&self, _: BorrowedFd<'_>, path: &Path) -> io::Result<bool> {
        match self.resolve(path, true) {
            Ok(p) => Ok(matches!(
                self.tree.borrow().get(&p),
                Some(Entry::Symlink(_))
            )),
            Err(_) => Ok(false),
        }
    }

    fn stat(&self, fd: BorrowedFd<'_>) -> io::Result<Stat> {
        Ok(match self.entry(&self.place(fd)) {
            Entry::Dir => Stat {
                mode: libc::S_IFDIR | 0o755,
                rdev: 0,
            },
            Entry::File => Stat {
                mode: libc::S_IFREG | 0o644,
                rdev: 0,
            },
            Entry::Char(rdev) => Stat {
                mode: libc::S_IFCHR | 0o666,
                rdev,
            },
            Entry::Symlink(_) => Stat {
                mode: libc::S_IFLNK | 0o777,
                rdev: 0,
            },
        })
    }

    fn fs_type(&self, fd: BorrowedFd<'_>) -> io::Result<i64> {
        Ok(self.mount_of(&self.place(fd)).map_or(EXT4, |m| m.0))
    }

    fn mount_flags(&self, fd: BorrowedFd<'_>) -> io::Result<u64> {
        Ok(self.mount_of(&self.place(fd)).map_or(0, |m| m.1))
    }

    fn path_of(&self, fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
        match self.place(fd) {
            Place::Host(p) => Ok(p),
            Place::Root(p) => Ok(Path::new(ROOTFS).join(p.strip_prefix("/").unwrap())),
        }
    }

    fn duplicate(&self, fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
        Ok(self.fd(self.place(fd)))
    }

    fn mknod_at(&self, dir: BorrowedFd<'_>, name: &CStr, n: &Node) -> io::Result<()> {
        let path = self.root_path(dir).join(name.to_str().unwrap());
        let kind = match n.kind {
            libc::S_IFCHR => "c",
            libc::S_IFBLK => "b",
            _ => "p",
        };
        self.call(format!(
            "mknod {} {kind} {}:{}",
            path.display(),
            n.major,
            n.minor
        ))?;
        let mut tree = self.tree.borrow_mut();
        if tree.contains_key(&path) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        let dev = libc::makedev(n.major as u32, n.minor as u32);
        tree.insert(path, Entry::Char(dev));
        Ok(())
    }

    fn set_mode_owner(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        n: &Node,
        (uid, gid): (u32, u32),
    ) -> io::Result<()> {
        let path = self.root_path(dir).join(name.to_str().unwrap());
        self.call(format!("chmod {} {:o} {uid}:{gid}", path.display(), n.mode))
    }

    fn symlink_at(&self, target: &str, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        let path = self.root_path(dir).join(name);
        self.call(format!("symlink {} -> {target}", path.display()))?;
        let mut tree = self.tree.borrow_mut();
        if tree.contains_key(&path) {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        tree.insert(path, Entry::Symlink(target.into()));
        Ok(())
    }

    fn host_node(&self, n: &Node) -> Option<(PathBuf, u32)> {
        let dev = libc::makedev(n.major as u32, n.minor as u32);
        self.host
            .iter()
            .find(|(_, e)| **e == Entry::Char(dev))
            .map(|(p, _)| (p.clone(), 0o666))
    }

    fn host_has(&self, path: &Path) -> bool {
        self.host.contains_key(path)
    }

    fn copy_tree(&self, from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
        let line = format!("copy {} to {}", self.place(from), self.place(to));
        self.call(line)
    }

    fn mountinfo(&self) -> io::Result<String> {
        Ok([
            "21 1 8:1 / / rw - ext4 /dev/sda1 rw",
            "22 21 0:5 / /proc rw - proc proc rw",
            "23 21 0:6 / /sys rw - sysfs sysfs rw",
            "24 22 0:7 / /proc/sys/fs/binfmt_misc rw - binfmt_misc binfmt_misc rw",
            "25 21 0:8 / /bundle/rootfs/proc rw - proc proc rw",
            "26 23 0:9 / /sys/kernel/debug rw - debugfs debugfs rw",
            "27 21 0:10 / /run/netns/x rw - proc proc rw",
        ]
        .join("\n"))
    }

    fn fchdir(&self, dir: BorrowedFd<'_>) -> io::Result<()> {
        let line = format!("fchdir {}", self.place(dir));
        self.call(line)
    }

    fn pivot_root_here(&self) -> io::Result<()> {
        self.call("pivot_root . .".into())
    }

    fn chroot_here(&self) -> io::Result<()> {
        self.call("chroot .".into())
    }

    fn chdir_root(&self) -> io::Result<()> {
        self.call("chdir /".into())
    }
}

fn spec(v: serde_json::Value) -> Spec {
    let mut base = serde_json::json!({"ociVersion": "1.0.2", "root": {"path": "rootfs"}});
    base.as_object_mut()
        .unwrap()
        .extend(v.as_object().unwrap().clone());
    serde_json::from_value(base).unwrap()
}

fn prepare_with(sys: &Fake, spec: &Spec) -> Result<OwnedFd, RootfsError> {
    let plan = RootfsPlan {
        spec,
        rootfs: Path::new(ROOTFS),
        bundle: Path::new("/bundle"),
        cgroup: None,
        prepared: Vec::new(),
        rootfs_dir: None,
    };
    prepare(sys, &plan)
}

fn the_usual_mounts() -> Spec {
    spec(serde_json::json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/data", "type": "bind", "source": "/srv/data",
         "options": ["rbind", "ro", "nosuid", "rprivate"]},
        {"destination": "/etc/hostname", "type": "bind", "source": "/srv/file",
         "options": ["bind"]}
    ]}))
}

#[test]
fn mounts_are_made_in_config_order_after_the_host_is_cut_off() {
    let sys = Fake::new();
    let root = prepare_with(&sys, &the_usual_mounts()).unwrap();
    assert_eq!(
        sys.place(root.as_fd()),
        Place::Host(ROOTFS.into()),
        "the root is the rootfs"
    );
    assert_eq!(
        sys.mounts_log(),
        [
            "mount - on path / [rec,slave]",
            "mount /bundle/rootfs on path /bundle/rootfs [bind,rec]",
            "mount proc on /proc type proc []",
            "mount tmpfs on /dev type tmpfs [nosuid,strictatime] mode=755,size=65536k",
            "mount devpts on /dev/pts type devpts [nosuid,noexec] newinstance,ptmxmode=0666,mode=0620",
            "mount sysfs on /sys type sysfs [rdonly,nosuid,nodev,noexec]",
            "mount host:/srv/data on /data [bind,rec]",
            "mount - on /data [bind,rec,remount,rdonly,nosuid]",
            "mount - on /data [rec,private]",
            "mount host:/srv/file on /etc/hostname [bind]",
        ]
    );
    let made: Vec<String> = sys
        .log()
        .into_iter()
        .filter(|l| l.starts_with("mkdir") || l.starts_with("create"))
        .collect();
    assert_eq!(
        made,
        [
            "mkdir /proc",
            "mkdir /dev",
            "mkdir /dev/pts",
            "mkdir /sys",
            "mkdir /data",
            "create /etc/hostname"
        ]
    );
}

#[test]
fn a_kernel_filesystem_is_not_mounted_through_a_symlink_in_the_image() {
    let sys = Fake::new().with("/proc", Entry::Symlink("/tmp".into()));
    let err = prepare_with(&sys, &the_usual_mounts()).unwrap_err();
    assert!(
        matches!(&err, RootfsError::Refused(m) if m.contains("/proc is a symlink")),
        "{err}"
    );
    assert!(
        !sys.log().iter().any(|l| l.contains("type proc")),
        "{:?}",
        sys.log()
    );
}

#[test]
fn a_destination_that_resolves_into_proc_is_refused() {
    // /data is a link to /proc/sys: the bind would land on a procfs entry.
    let sys = Fake::new()
        .with("/proc", Entry::Dir)
        .with("/proc/sys", Entry::Dir)
        .with("/data", Entry::Symlink("/proc/sys".into()));
    let err = prepare_with(&sys, &the_usual_mounts()).unwrap_err();
    assert!(
        matches!(&err, RootfsError::Refused(m) if m.contains("/data resolves inside the container's /proc")),
        "{err}"
    );
    assert!(!sys.log().iter().any(|l| l.contains("on /proc/sys")));
}

#[test]
fn without_its_own_pid_namespace_proc_is_the_hosts_bound_with_the_configs_flags() {
    let sys = Fake::new().failing("mount proc on /proc", libc::EPERM);
    let spec = spec(serde_json::json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]}
    ]}));
    prepare_with(&sys, &spec).unwrap();
    assert_eq!(
        sys.mounts_log()[2..],
        [
            "mount proc on /proc type proc [nosuid,nodev,noexec]",
            "mount host:/proc on /proc [bind,rec]",
            "mount - on /proc [bind,remount,nosuid,nodev,noexec]",
        ]
    );
}

#[test]
fn another_mount_error_is_reported_with_its_step_and_errno() {
    let sys = Fake::new().failing("mount sysfs", libc::EACCES);
    let err = prepare_with(&sys, &the_usual_mounts()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "mount sysfs on /sys: {}",
            io::Error::from_raw_os_error(libc::EACCES)
        )
    );
    match err {
        RootfsError::Step { source, .. } => assert_eq!(source.raw_os_error(), Some(libc::EACCES)),
        other => panic!("{other:?}"),
    }
}

/// The tree after the usual mounts, with files to mask.
fn mounted() -> (Fake, OwnedFd) {
    let sys = Fake::new()
        .with("/proc", Entry::Dir)
        .with("/proc/kcore", Entry::File)
        .with("/proc/acpi", Entry::Dir)
        .with("/proc/sys", Entry::Dir)
        .with("/dev", Entry::Dir)
        .with("/dev/null", Entry::Char(libc::makedev(1, 3)));
    let root = prepare_with(&sys, &the_usual_mounts()).unwrap();
    sys.calls.borrow_mut().clear();
    (sys, root)
}

fn masked(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

#[test]
fn masking_hides_directories_under_an_empty_tmpfs_and_files_under_dev_null() {
    let (sys, root) = mounted();
    mask_paths(
        &sys,
        root.as_fd(),
        &masked(&["/proc/kcore", "/proc/acpi", "/proc/missing"]),
    )
    .unwrap();
    assert_eq!(
        sys.mounts_log(),
        [
            "mount /dev/null on /proc/kcore [bind]",
            "mount tmpfs on /proc/acpi type tmpfs [rdonly] size=0",
        ]
    );
}

#[test]
fn masking_refuses_a_dev_null_that_is_not_the_null_device() {
    for fake_null in [
        Entry::File,
        Entry::Char(libc::makedev(1, 5)),
        Entry::Symlink("/etc/passwd".into()),
    ] {
        let (sys, root) = mounted();
        sys.tree
            .borrow_mut()
            .insert("/dev/null".into(), fake_null.clone());
        let err = mask_paths(&sys, root.as_fd(), &masked(&["/proc/kcore"])).unwrap_err();
        assert!(
            matches!(&err, RootfsError::Refused(m) if m.contains("not the null device")),
            "{fake_null:?}: {err}"
        );
        assert!(
            sys.mounts_log().is_empty(),
            "{fake_null:?}: {:?}",
            sys.log()
        );
    }
}

#[test]
fn read_only_paths_are_bound_then_remounted_keeping_the_mounts_locked_flags() {
    let sys = Fake::new()
        .with("/proc", Entry::Dir)
        .with("/proc/sys", Entry::Dir);
    let spec = spec(serde_json::json!({"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]}
    ]}));
    let root = prepare_with(&sys, &spec).unwrap();
    sys.calls.borrow_mut().clear();
    readonly_paths(&sys, root.as_fd(), &masked(&["/proc/sys", "/proc/gone"])).unwrap();
    assert_eq!(
        sys.mounts_log(),
        [
            "mount /proc/sys on /proc/sys [bind,rec]",
            "mount - on /proc/sys [bind,rec,remount,rdonly,nosuid,nodev,noexec]",
        ]
    );
}

#[test]
fn protect_masks_then_makes_paths_read_only_then_the_root() {
    let (sys, root) = mounted();
    let spec = spec(serde_json::json!({
        "root": {"path": "rootfs", "readonly": true},
        "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"]}
    }));
    protect(&sys, root.as_fd(), &spec).unwrap();
    assert_eq!(
        sys.mounts_log(),
        [
            "mount /dev/null on /proc/kcore [bind]",
            "mount /proc/sys on /proc/sys [bind,rec]",
            "mount - on /proc/sys [bind,rec,remount,rdonly]",
            "mount - on / [bind,rec,remount,rdonly]",
        ]
    );
}

fn device_spec() -> Spec {
    spec(serde_json::json!({"linux": {"devices": [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 384,
         "uid": 1000, "gid": 1000},
        {"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200}
    ]}}))
}

#[test]
fn devices_are_made_with_the_configs_mode_and_owner_and_the_standard_links() {
    let (sys, root) = mounted();
    sys.tree.borrow_mut().remove(Path::new("/dev/null"));
    create_devices(&sys, root.as_fd(), &device_spec()).unwrap();
    assert_eq!(
        sys.log(),
        [
            "mknod /dev/null c 1:3",
            "chmod /dev/null 666 0:0",
            "mknod /dev/zero c 1:5",
            "chmod /dev/zero 666 0:0",
            "mknod /dev/full c 1:7",
            "chmod /dev/full 666 0:0",
            "mknod /dev/random c 1:8",
            "chmod /dev/random 666 0:0",
            "mknod /dev/urandom c 1:9",
            "chmod /dev/urandom 666 0:0",
            "mknod /dev/tty c 5:0",
            "chmod /dev/tty 666 0:0",
            "mknod /dev/fuse c 10:229",
            "chmod /dev/fuse 600 1000:1000",
            "mkdir /dev/net",
            "mknod /dev/net/tun c 10:200",
            "chmod /dev/net/tun 666 0:0",
            "symlink /dev/fd -> /proc/self/fd",
            "symlink /dev/stdin -> /proc/self/fd/0",
            "symlink /dev/stdout -> /proc/self/fd/1",
            "symlink /dev/stderr -> /proc/self/fd/2",
            "symlink /dev/ptmx -> pts/ptmx",
        ]
    );
}

#[test]
fn where_mknod_is_not_allowed_the_hosts_node_is_bound_or_the_device_refused() {
    let sys = Fake::new().failing("mknod", libc::EPERM);
    let root = prepare_with(&sys, &the_usual_mounts()).unwrap();
    sys.calls.borrow_mut().clear();
    let spec = spec(serde_json::json!({}));
    create_devices(&sys, root.as_fd(), &spec).unwrap_err();
    // The host has /dev/null and /dev/zero: those are bound; /dev/full has no node to bind.
    let binds: Vec<String> = sys
        .log()
        .into_iter()
        .filter(|l| l.starts_with("mount") || l.starts_with("create"))
        .collect();
    assert_eq!(
        binds,
        [
            "create /dev/null",
            "mount host:/dev/null on /dev/null [bind]",
            "create /dev/zero",
            "mount host:/dev/zero on /dev/zero [bind]",
        ]
    );
    assert!(!sys.log().iter().any(|l| l.starts_with("chmod")));
}

#[test]
fn pivot_root_then_the_old_root_is_detached_without_propagating() {
    let sys = Fake::new();
    let root = sys.fd(Place::Host(ROOTFS.into()));
    switch_root(&sys, root.as_fd(), false).unwrap();
    assert_eq!(
        sys.log(),
        [
            "fchdir host:/bundle/rootfs",
            "pivot_root . .",
            "mount - on path . [rec,slave]",
            "umount .",
            "chdir /",
        ]
    );
}

#[test]
fn no_pivot_detaches_the_hosts_proc_and_sys_deepest_first_or_covers_them() {
    let sys = Fake::new().failing("umount /sys", libc::EINVAL);
    let root = sys.fd(Place::Host(ROOTFS.into()));
    switch_root(&sys, root.as_fd(), true).unwrap();
    assert_eq!(
        sys.log(),
        [
            "fchdir host:/bundle/rootfs",
            "umount /run/netns/x",
            "umount /proc",
            "umount /sys",
            "mount tmpfs on path /sys type tmpfs [rdonly]",
            "mount . on path / [move]",
            "chroot .",
            "chdir /",
        ]
    );
}

#[test]
fn root_propagation_is_set_after_the_switch_only_when_asked() {
    let sys = Fake::new();
    set_root_propagation(&sys, &spec(serde_json::json!({}))).unwrap();
    assert!(sys.log().is_empty());
    let asked = spec(serde_json::json!({"linux": {"rootfsPropagation": "shared"}}));
    set_root_propagation(&sys, &asked).unwrap();
    assert_eq!(sys.log(), ["mount - on path / [shared]"]);
}

#[test]
fn a_read_only_dev_tmpfs_is_made_writable_and_read_only_after_its_nodes_and_console() {
    let spec = spec(serde_json::json!({"mounts": [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "ro", "mode=755"]}
    ]}));
    let sys = Fake::new();
    let root = prepare_with(&sys, &spec).unwrap();
    assert!(
        sys.mounts_log()
            .contains(&"mount tmpfs on /dev type tmpfs [nosuid] mode=755".to_string()),
        "{:?}",
        sys.mounts_log()
    );
    create_devices(&sys, root.as_fd(), &spec).unwrap();
    protect(&sys, root.as_fd(), &spec).unwrap();
    let before = sys.mounts_log().len();
    assert!(dev_tmpfs_readonly(&spec));
    seal_dev(&sys, root.as_fd()).unwrap();
    assert_eq!(
        sys.mounts_log()[before..],
        ["mount - on /dev [bind,rec,remount,rdonly,nosuid]"]
    );
}

#[test]
fn a_prepared_tree_is_replaced_by_a_copy_made_at_its_turn_in_config_order() {
    let sys = Fake::new();
    let spec = the_usual_mounts();
    let plan = RootfsPlan {
        spec: &spec,
        rootfs: Path::new(ROOTFS),
        bundle: Path::new("/bundle"),
        cgroup: None,
        prepared: vec![
            (1, sys.fd(Place::Host("detached-dev".into()))),
            (4, sys.fd(Place::Host("/srv/data".into()))),
        ],
        rootfs_dir: None,
    };
    prepare(&sys, &plan).unwrap();
    let steps: Vec<String> = sys
        .log()
        .into_iter()
        .filter(|l| {
            ["mount proc", "mount sysfs", "attach", "copy", "detach"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert_eq!(
        steps,
        [
            "mount proc on /proc type proc []",
            "attach host:detached-dev on /dev",
            "copy /dev",
            "detach /dev",
            "attach /dev on /dev",
            "mount sysfs on /sys type sysfs [rdonly,nosuid,nodev,noexec]",
            "attach host:/srv/data on /data",
            "copy /data",
            "detach /data",
            "attach /data on /data",
        ]
    );
}
