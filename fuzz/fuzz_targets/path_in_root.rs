//! Path resolution inside a rootfs: a symlink-heavy tree built from the input, then the
//! runtime's mkdir-all and create-file helpers on an input path. Whatever they open must lie
//! inside the root (they resolve with RESOLVE_IN_ROOT; a symlink's target is created inside).
#![no_main]
use std::os::fd::AsFd;
use std::path::Path;

use arbitrary::Arbitrary;
use contain::sys::fs;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Node {
    Dir(u8),
    Link(u8, String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    nodes: Vec<Node>,
    path: String,
    file: bool,
}

const NAMES: [&str; 6] = ["a", "b", "c", "dev", "proc", "x/y"];

fuzz_target!(|inp: Input| {
    let top = tempfile::tempdir().unwrap();
    let root = top.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let outside = top.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    for n in inp.nodes.iter().take(16) {
        match n {
            Node::Dir(i) => {
                let _ = std::fs::create_dir_all(root.join(NAMES[*i as usize % NAMES.len()]));
            }
            Node::Link(i, target) => {
                let target = target.replace("OUT", outside.to_str().unwrap());
                let _ =
                    std::os::unix::fs::symlink(target, root.join(NAMES[*i as usize % NAMES.len()]));
            }
        }
    }
    let Ok(rootfd) = fs::open_host(&root, libc::O_PATH | libc::O_DIRECTORY) else {
        return;
    };
    let path = Path::new(&inp.path);
    let res = if inp.file {
        fs::ensure_file_in_root(rootfd.as_fd(), path)
    } else {
        fs::mkdir_all_in_root(rootfd.as_fd(), path, 0o755)
    };
    if let Ok(fd) = res {
        // fd_path is the descriptor's /proc/self/fd entry; its link is where it really is.
        let got = std::fs::read_link(fs::fd_path(&fd)).unwrap();
        assert!(
            got.starts_with(&root),
            "{:?} resolved to {} outside {}",
            inp.path,
            got.display(),
            root.display()
        );
    }
    assert!(
        std::fs::read_dir(&outside).unwrap().next().is_none(),
        "{:?} wrote outside the root",
        inp.path
    );
});
