//! The Linux guest's initramfs built from a hostile rootfs: a tree of directories, files,
//! symlinks (some to a secret outside the root) and fifos generated from the input, archived by
//! the runtime's own builder, then read back. Nothing outside the root may be archived, every
//! entry must be what the tree holds at its path (a link as a link), and the agent's entries
//! must come last so that the kernel's unpacking lets them win.
#![no_main]
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use arbitrary::Arbitrary;
use contain::microvm::initramfs::{build, GuestConfig, AGENT_PATH, PROCESS_PATH};
use contain::sys::fs;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Node {
    Dir(u8),
    File(u8, Vec<u8>),
    Link(u8, String),
    Fifo(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    limit: u16,
}

const NAMES: [&str; 8] = [
    "a",
    "b",
    "a/c",
    "b/d",
    ".contain",
    "dev",
    "dev/console",
    "a/c/e",
];
const SECRET: &[u8] = b"OUTSIDE-SECRET";

fuzz_target!(|inp: Input| {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let secret = top.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    // Every node is made through its parent resolved inside the root (a generated link may
    // point anywhere on the host), and no call follows a link at the last component.
    let rootfd = fs::open_host(&root, libc::O_PATH | libc::O_DIRECTORY).unwrap();
    for n in inp.nodes.iter().take(24) {
        let i = match n {
            Node::Dir(i) | Node::File(i, _) | Node::Link(i, _) | Node::Fifo(i) => *i,
        };
        let path = Path::new(NAMES[i as usize % NAMES.len()]);
        let parent = path.parent().unwrap_or(Path::new(""));
        let name = CString::new(path.file_name().unwrap().as_encoded_bytes()).unwrap();
        let Ok(dir) = fs::mkdir_all_in_root(rootfd.as_fd(), parent, 0o755) else {
            continue;
        };
        let d = dir.as_raw_fd();
        // SAFETY: `name` is NUL-terminated and `d` a live directory; none of these calls
        // follows a link at `name`.
        unsafe {
            match n {
                Node::Dir(_) => {
                    libc::mkdirat(d, name.as_ptr(), 0o755);
                }
                Node::File(_, data) => {
                    let flags =
                        libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
                    let fd = libc::openat(d, name.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
                    if fd >= 0 {
                        libc::write(fd, data.as_ptr().cast(), data.len());
                        libc::close(fd);
                    }
                }
                Node::Link(_, target) => {
                    let target = target.replace("OUT", secret.to_str().unwrap());
                    if let Ok(t) = CString::new(target) {
                        libc::symlinkat(t.as_ptr(), d, name.as_ptr());
                    }
                }
                Node::Fifo(_) => {
                    libc::mkfifoat(d, name.as_ptr(), 0o644);
                }
            }
        }
    }
    let config = GuestConfig {
        process: Default::default(),
        hostname: None,
        rootfs: contain::microvm::RootfsMode::Initramfs,
        readonly: false,
    };
    let limit = 4096 + u64::from(inp.limit) * 16;
    let archive = match build(&root, &config, b"AGENT", &[], limit) {
        Ok(a) => a,
        // Only the size and depth bounds may refuse a tree made of these names (a link's
        // target of many components makes as many directories).
        Err(e) if e.contains("would exceed") || e.contains("nested deeper than") => return,
        Err(e) => panic!("{e}"),
    };
    assert!(
        archive.len() as u64 <= limit + 512,
        "{} bytes over {limit}",
        archive.len()
    );
    let mut entries = Vec::new();
    let mut rest = archive.as_slice();
    loop {
        let mut r = cpio::NewcReader::new(rest).expect("a well-formed entry");
        if r.entry().is_trailer() {
            break;
        }
        let (name, mode) = (r.entry().name().to_owned(), r.entry().mode());
        let mut data = Vec::new();
        r.read_to_end(&mut data).unwrap();
        rest = r.finish().unwrap();
        assert!(
            data != SECRET,
            "{name}: the secret outside the root was archived"
        );
        entries.push((name, mode, data));
    }
    // The agent's entries close the archive, so that the kernel's unpacking lets them win.
    let (tree, agent) = entries.split_at(entries.len() - 5);
    let agent: Vec<&str> = agent.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        agent,
        [
            "dev",
            "dev/console",
            ".contain",
            &AGENT_PATH[1..],
            &PROCESS_PATH[1..]
        ]
    );
    for (name, mode, data) in tree {
        // The rootfs's own /.contain is left out.
        assert!(
            name != ".contain" && !name.starts_with(".contain/"),
            "{name}"
        );
        // A rootfs entry named like the trailer is archived as ./TRAILER!!!.
        let path = root.join(name.strip_prefix("./").unwrap_or(name));
        let m = std::fs::symlink_metadata(&path).expect("an entry of the tree");
        let t = m.file_type();
        let kind = if t.is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            assert_eq!(
                target.as_os_str().as_encoded_bytes(),
                data.as_slice(),
                "{name}"
            );
            libc::S_IFLNK
        } else if t.is_dir() {
            libc::S_IFDIR
        } else if t.is_fifo() {
            libc::S_IFIFO
        } else {
            assert_eq!(&std::fs::read(&path).unwrap(), data, "{name}");
            libc::S_IFREG
        };
        assert_eq!(mode & libc::S_IFMT, kind, "{name}");
    }
});
