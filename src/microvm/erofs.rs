//! The container's rootfs as a read-only erofs disk for a Linux guest's virtio-blk device,
//! laid out without copying the data of large files: the disk is the erofs metadata (the
//! superblock, inodes, directories, symlink targets and small files, built in memory) followed
//! by the large files' data, each read from a descriptor of the file itself when the guest
//! reads those blocks. Building it costs the tree's metadata, not its size: a 1 GiB file is
//! one descriptor and one extent.
//!
//! The tree is read as host root from a rootfs that belongs to the image, so, as for the
//! initramfs, nothing in it is followed: every entry is opened relative to its parent's
//! descriptor with O_NOFOLLOW, and a file is kept only after fstat confirms it is the regular
//! file the directory listed. Sockets are left out.
//!
//! The format is erofs's uncompressed one (fs/erofs/erofs_fs.h): 4 KiB blocks, the
//! superblock at byte 1024, 64-byte ("extended") inodes from byte 2048 on (block 0 holds
//! them: meta_blkaddr 0), directories and symlinks inline after their inode when they fit in
//! 2 KiB, otherwise in blocks of their own (as are files up to [`COPY_MAX`]); larger files in
//! contiguous blocks served from the file.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::initramfs::{openat, sorted_names};
use crate::sys::fs::{fstat, lstatat, readlinkat};

pub const BLOCK: u64 = 4096;
const SB_OFFSET: usize = 1024;
const MAGIC: u32 = 0xe0f5_e1e2;
/// Where the first inode goes (after the superblock, in block 0).
const INODES_START: u64 = 2048;
/// An extended inode's size; nids count 32-byte slots.
const INODE: u64 = 64;
const SLOT: u64 = 32;
const FLAT_PLAIN: u16 = 0;
const FLAT_INLINE: u16 = 2;
/// The longest directory or symlink kept inline after its inode.
const INLINE_MAX: u64 = 2048;
/// Regular files up to this size are copied into the disk's metadata; larger ones are served
/// from their own descriptor.
pub const COPY_MAX: u64 = 16 << 10;
/// The most bytes the in-memory part of a disk may hold (it lives in the VMM's memory).
pub const MEMORY_MAX: u64 = 16 << 20;
/// How many files a disk may serve from descriptors here: the soft RLIMIT_NOFILE, raised to
/// the hard one, less 64 for the VMM's own.
pub fn files_allowed() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let limit = if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    (limit.min(1 << 20) as usize).saturating_sub(64)
}

/// erofs's dirent: nid (8), nameoff (2), file type (1), reserved (1).
const DIRENT: usize = 12;

/// A built disk: `memory` covers blocks 0.., then `extents` in block order.
pub struct Disk {
    memory: Vec<u8>,
    extents: Vec<Extent>,
    blocks: u64,
}

/// A large file's data at `block`.. on the disk, `len` bytes read from `file`.
struct Extent {
    block: u64,
    len: u64,
    file: File,
}

enum Kind {
    Dir(Vec<usize>),
    /// A regular file's content, copied (small files).
    Copied(Vec<u8>),
    /// A regular file served from its descriptor.
    Served(File),
    Symlink(Vec<u8>),
    /// A device node, FIFO: no data.
    Node,
}

struct Node {
    name: Vec<u8>,
    parent: usize,
    st: libc::stat,
    kind: Kind,
    nid: u64,
    /// The first block of the data kept out of line (0: none).
    block: u64,
}

impl Node {
    /// The bytes of this inode's data, when the disk holds them (not a served file).
    fn content(&self, me: usize, nodes: &[Node]) -> Option<Vec<u8>> {
        match &self.kind {
            Kind::Dir(children) => Some(dir_content(me, self.parent, children, nodes)),
            Kind::Copied(d) | Kind::Symlink(d) => Some(d.clone()),
            Kind::Served(_) | Kind::Node => None,
        }
    }

    fn size(&self, nodes: &[Node]) -> u64 {
        match &self.kind {
            Kind::Dir(children) => dir_size(children, nodes),
            Kind::Copied(d) | Kind::Symlink(d) => d.len() as u64,
            Kind::Served(_) => self.st.st_size as u64,
            Kind::Node => 0,
        }
    }

    /// Whether the data follows the inode (directories and symlinks that fit).
    fn inline(&self, nodes: &[Node]) -> bool {
        matches!(self.kind, Kind::Dir(_) | Kind::Symlink(_) | Kind::Copied(_))
            && (1..=INLINE_MAX).contains(&self.size(nodes))
    }

    fn file_type(&self) -> u8 {
        match self.st.st_mode & libc::S_IFMT {
            libc::S_IFREG => 1,
            libc::S_IFDIR => 2,
            libc::S_IFCHR => 3,
            libc::S_IFBLK => 4,
            libc::S_IFIFO => 5,
            libc::S_IFSOCK => 6,
            libc::S_IFLNK => 7,
            _ => 0,
        }
    }
}

/// A directory's entries with their names (`.`, `..` and the children), in erofs's order
/// (bytewise, as the guest's lookup bisects them).
fn dir_entries<'a>(
    me: usize,
    parent: usize,
    children: &[usize],
    nodes: &'a [Node],
) -> Vec<(&'a [u8], usize)> {
    let mut v: Vec<(&[u8], usize)> = vec![(b".", me), (b"..", parent)];
    v.extend(children.iter().map(|&c| (nodes[c].name.as_slice(), c)));
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// How the entries fall into blocks: the number of entries of each block.
fn dir_blocks(names: &[usize]) -> Vec<usize> {
    let mut blocks = Vec::new();
    let (mut used, mut n) = (0usize, 0usize);
    for &len in names {
        if n > 0 && used + DIRENT + len > BLOCK as usize {
            blocks.push(n);
            (used, n) = (0, 0);
        }
        used += DIRENT + len;
        n += 1;
    }
    blocks.push(n);
    blocks
}

fn dir_size(children: &[usize], nodes: &[Node]) -> u64 {
    // The layout does not depend on the nids, only on the sorted names.
    let lens: Vec<usize> = dir_entries(0, 0, children, nodes)
        .iter()
        .map(|(n, _)| n.len())
        .collect();
    let blocks = dir_blocks(&lens);
    let before_last: usize = blocks.iter().take(blocks.len() - 1).sum();
    let tail: usize = lens[before_last..].iter().map(|l| DIRENT + l).sum();
    (blocks.len() as u64 - 1) * BLOCK + tail as u64
}

fn dir_content(me: usize, parent: usize, children: &[usize], nodes: &[Node]) -> Vec<u8> {
    let entries = dir_entries(me, parent, children, nodes);
    let lens: Vec<usize> = entries.iter().map(|(n, _)| n.len()).collect();
    let mut out = Vec::new();
    let mut at = 0;
    for count in dir_blocks(&lens) {
        if !out.is_empty() {
            out.resize(out.len().next_multiple_of(BLOCK as usize), 0);
        }
        let block = &entries[at..at + count];
        let mut nameoff = DIRENT * count;
        for (name, i) in block {
            out.extend(nodes[*i].nid.to_le_bytes());
            out.extend((nameoff as u16).to_le_bytes());
            out.push(nodes[*i].file_type());
            out.push(0);
            nameoff += name.len();
        }
        for (name, _) in block {
            out.extend_from_slice(name);
        }
        at += count;
    }
    out
}

/// The kernel's encoding of a device number in an inode (new_encode_dev).
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

impl Disk {
    /// The disk of `rootfs`; at most `max_files` files are served from descriptors.
    pub fn build(rootfs: &Path, max_files: usize) -> Result<Disk, String> {
        let root = crate::sys::fs::open_host(rootfs, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(|e| format!("open the rootfs {}: {e}", rootfs.display()))?;
        let st = fstat(root.as_fd()).map_err(|e| e.to_string())?;
        let mut nodes = vec![Node {
            name: Vec::new(),
            parent: 0,
            st,
            kind: Kind::Dir(Vec::new()),
            nid: 0,
            block: 0,
        }];
        let mut walk = Walk {
            nodes: &mut nodes,
            served: 0,
            max_files,
        };
        walk.dir(root.as_fd(), 0, &mut PathBuf::new(), 0)
            .map_err(|e| format!("the rootfs {}: {e}", rootfs.display()))?;
        lay_out(nodes)
    }

    /// A disk of `bytes` (padded to whole blocks), served from memory: for tests and fuzzing
    /// of what reads it.
    pub fn in_memory(mut bytes: Vec<u8>) -> Disk {
        bytes.resize((bytes.len() as u64).next_multiple_of(BLOCK) as usize, 0);
        Disk {
            blocks: bytes.len() as u64 / BLOCK,
            memory: bytes,
            extents: Vec::new(),
        }
    }

    /// The disk's size in bytes (whole blocks).
    pub fn size(&self) -> u64 {
        self.blocks * BLOCK
    }

    /// The descriptors the disk reads from (kept open across the init's descriptor cleanup).
    pub fn fds(&self) -> Vec<i32> {
        self.extents.iter().map(|e| e.file.as_raw_fd()).collect()
    }

    /// Fill `buf` with the disk's bytes at `offset`; past the end is an error. A served file
    /// that shrank since the disk was built reads as zeros where its data is gone.
    pub fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.size())
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        while offset < end {
            let n;
            if offset < self.memory.len() as u64 {
                n = buf.len().min(self.memory.len() - offset as usize);
                buf[..n].copy_from_slice(&self.memory[offset as usize..offset as usize + n]);
            } else {
                // The extent holding `offset`: its file's bytes, then zeros to its last
                // block's end (where the next extent starts).
                let i = self
                    .extents
                    .partition_point(|e| e.block * BLOCK <= offset)
                    .checked_sub(1)
                    .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EIO))?;
                let e = &self.extents[i];
                let start = e.block * BLOCK;
                let data_end = start + e.len;
                if offset < data_end {
                    n = buf.len().min((data_end - offset) as usize);
                    let got = read_full(&e.file, &mut buf[..n], offset - start)?;
                    buf[got..n].fill(0);
                } else {
                    let block_end = start + e.len.next_multiple_of(BLOCK);
                    n = buf.len().min((block_end - offset) as usize);
                    buf[..n].fill(0);
                }
            }
            offset += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }
}

/// pread until `buf` is full or the file ends; the bytes read.
fn read_full(f: &File, buf: &mut [u8], mut at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], at) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

struct Walk<'a> {
    nodes: &'a mut Vec<Node>,
    served: usize,
    max_files: usize,
}

impl Walk<'_> {
    fn dir(
        &mut self,
        dir: BorrowedFd<'_>,
        me: usize,
        path: &mut PathBuf,
        depth: usize,
    ) -> Result<(), String> {
        let err = |p: &Path, e: &dyn std::fmt::Display| format!("/{}: {e}", p.display());
        let names = sorted_names(dir, path, depth)?;
        let mut children = Vec::with_capacity(names.len());
        for name in names {
            // The rootfs's own /.contain is where the agent works: leave it out.
            if depth == 0 && name.as_bytes() == b".contain" {
                continue;
            }
            if name.as_bytes().len() > 255 {
                return Err(err(path, &"a name longer than 255 bytes"));
            }
            path.push(OsStr::from_bytes(name.as_bytes()));
            let res = self
                .entry(dir, &name, me, path, depth)
                .map_err(|e| err(path, &e));
            path.pop();
            if let Some(i) = res? {
                children.push(i);
            }
        }
        self.nodes[me].kind = Kind::Dir(children);
        Ok(())
    }

    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CString,
        parent: usize,
        path: &mut PathBuf,
        depth: usize,
    ) -> Result<Option<usize>, String> {
        let mut st = lstatat(dir, name).map_err(|e| e.to_string())?;
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir(Vec::new()),
            libc::S_IFREG => {
                let f = openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK)
                    .map_err(|e| e.to_string())?;
                let now = fstat(f.as_fd()).map_err(|e| e.to_string())?;
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) {
                    return Err("changed while it was read".into());
                }
                st = now;
                let f = File::from(f);
                let size = now.st_size as u64;
                if size <= COPY_MAX {
                    let mut data = vec![0; size as usize];
                    let got = read_full(&f, &mut data, 0).map_err(|e| e.to_string())?;
                    data.truncate(got);
                    Kind::Copied(data)
                } else {
                    self.served += 1;
                    if self.served > self.max_files {
                        return Err(format!(
                            "more than {} files larger than {} KiB: the disk serves each from a \
                             descriptor of its own (raise RLIMIT_NOFILE, or use \
                             io.contain.microvm.rootfs=initramfs)",
                            self.max_files,
                            COPY_MAX >> 10
                        ));
                    }
                    Kind::Served(f)
                }
            }
            libc::S_IFLNK => Kind::Symlink(readlinkat(dir, name).map_err(|e| e.to_string())?),
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => Kind::Node,
            _ => return Ok(None), // a socket: meaningless in another kernel
        };
        let is_dir = matches!(kind, Kind::Dir(_));
        let i = self.nodes.len();
        self.nodes.push(Node {
            name: name.as_bytes().to_vec(),
            parent,
            st,
            kind,
            nid: 0,
            block: 0,
        });
        if is_dir {
            let sub =
                openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY).map_err(|e| e.to_string())?;
            self.dir(sub.as_fd(), i, path, depth + 1)?;
        }
        Ok(Some(i))
    }
}

/// Place the inodes and data of `nodes` (the root first) and write the metadata.
fn lay_out(mut nodes: Vec<Node>) -> Result<Disk, String> {
    // Inodes, in the order walked: an inline tail may not cross a block.
    let mut pos = INODES_START;
    for i in 0..nodes.len() {
        let tail = if nodes[i].inline(&nodes) {
            nodes[i].size(&nodes)
        } else {
            0
        };
        if pos % BLOCK + INODE + tail > BLOCK {
            pos = pos.next_multiple_of(BLOCK);
        }
        nodes[i].nid = pos / SLOT;
        pos = (pos + INODE + tail).next_multiple_of(SLOT);
    }
    if nodes[0].nid > u16::MAX.into() {
        return Err("the root directory's inode is out of erofs's reach".into());
    }
    // Out-of-line data held in memory, then the served files.
    let mut block = pos.div_ceil(BLOCK);
    for i in 0..nodes.len() {
        let size = nodes[i].size(&nodes);
        if size > 0 && !nodes[i].inline(&nodes) && !matches!(nodes[i].kind, Kind::Served(_)) {
            nodes[i].block = block;
            block += size.div_ceil(BLOCK);
        }
    }
    let memory_blocks = block;
    if memory_blocks * BLOCK > MEMORY_MAX {
        return Err(format!(
            "its metadata and small files need {} MiB, more than the {} MiB a disk keeps in \
             memory (use io.contain.microvm.rootfs=initramfs)",
            (memory_blocks * BLOCK) >> 20,
            MEMORY_MAX >> 20
        ));
    }
    for n in nodes.iter_mut() {
        if let Kind::Served(_) = n.kind {
            n.block = block;
            block += (n.st.st_size as u64).div_ceil(BLOCK);
        }
    }
    let blocks = block;
    let blocks32 = u32::try_from(blocks).map_err(|_| "larger than erofs's 16 TiB".to_string())?;

    let mut memory = vec![0u8; (memory_blocks * BLOCK) as usize];
    let sb = superblock(nodes[0].nid as u16, nodes.len() as u64, blocks32);
    memory[SB_OFFSET..SB_OFFSET + sb.len()].copy_from_slice(&sb);
    for (i, n) in nodes.iter().enumerate() {
        let inline = n.inline(&nodes);
        let at = (n.nid * SLOT) as usize;
        let inode = inode(n, &nodes, inline);
        memory[at..at + inode.len()].copy_from_slice(&inode);
        if let Some(data) = n.content(i, &nodes) {
            let to = if inline {
                at + INODE as usize
            } else {
                (n.block * BLOCK) as usize
            };
            if !data.is_empty() {
                memory[to..to + data.len()].copy_from_slice(&data);
            }
        }
    }
    let extents = nodes
        .into_iter()
        .filter_map(|n| match n.kind {
            Kind::Served(file) => Some(Extent {
                block: n.block,
                len: n.st.st_size as u64,
                file,
            }),
            _ => None,
        })
        .collect();
    Ok(Disk {
        memory,
        extents,
        blocks,
    })
}

fn superblock(root_nid: u16, inos: u64, blocks: u32) -> Vec<u8> {
    let mut sb = Vec::with_capacity(128);
    sb.extend(MAGIC.to_le_bytes());
    sb.extend(0u32.to_le_bytes()); // checksum (feature SB_CHKSUM off)
    sb.extend(0u32.to_le_bytes()); // feature_compat
    sb.push(BLOCK.trailing_zeros() as u8);
    sb.push(0); // sb_extslots
    sb.extend(root_nid.to_le_bytes());
    sb.extend(inos.to_le_bytes());
    sb.extend(0u64.to_le_bytes()); // build_time
    sb.extend(0u32.to_le_bytes());
    sb.extend(blocks.to_le_bytes());
    sb.extend(0u32.to_le_bytes()); // meta_blkaddr
    sb.extend(0u32.to_le_bytes()); // xattr_blkaddr
    sb.extend([0u8; 16]); // uuid
    let mut volume = [0u8; 16];
    volume[..7].copy_from_slice(b"contain");
    sb.extend(volume);
    sb.resize(128, 0); // feature_incompat 0 and the rest
    sb
}

fn inode(n: &Node, nodes: &[Node], inline: bool) -> Vec<u8> {
    let layout = if inline { FLAT_INLINE } else { FLAT_PLAIN };
    let nlink: u32 = match &n.kind {
        Kind::Dir(children) => {
            2 + children
                .iter()
                .filter(|&&c| matches!(nodes[c].kind, Kind::Dir(_)))
                .count() as u32
        }
        _ => 1,
    };
    let u = match &n.kind {
        Kind::Node => encode_dev(n.st.st_rdev),
        _ if inline => 0,
        _ => n.block as u32,
    };
    let mut v = Vec::with_capacity(INODE as usize);
    v.extend((1u16 | (layout << 1)).to_le_bytes()); // extended inode
    v.extend(0u16.to_le_bytes()); // no xattrs
    v.extend((n.st.st_mode as u16).to_le_bytes());
    v.extend(0u16.to_le_bytes());
    v.extend(n.size(nodes).to_le_bytes());
    v.extend(u.to_le_bytes());
    v.extend(((n.nid + 1) as u32).to_le_bytes()); // i_ino
    v.extend(n.st.st_uid.to_le_bytes());
    v.extend(n.st.st_gid.to_le_bytes());
    v.extend((n.st.st_mtime.max(0) as u64).to_le_bytes());
    v.extend((n.st.st_mtime_nsec.clamp(0, 999_999_999) as u32).to_le_bytes());
    v.extend(nlink.to_le_bytes());
    v.resize(INODE as usize, 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(d: &Disk) -> Vec<u8> {
        let mut v = vec![0u8; d.size() as usize];
        d.read_at(0, &mut v).unwrap();
        v
    }

    #[test]
    fn superblock_root_and_a_served_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("bin")).unwrap();
        std::fs::write(t.path().join("bin/small"), b"hello").unwrap();
        let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.path().join("big"), &big).unwrap();
        std::os::unix::fs::symlink("bin/small", t.path().join("link")).unwrap();
        let d = Disk::build(t.path(), 8).unwrap();
        assert_eq!(d.fds().len(), 1, "only the large file is served");
        let img = image(&d);
        assert_eq!(&img[1024..1028], &MAGIC.to_le_bytes());
        assert_eq!(img[1036], 12, "4 KiB blocks");
        assert_eq!(
            u16::from_le_bytes([img[1038], img[1039]]),
            (INODES_START / SLOT) as u16
        );
        // The big file's bytes are on the disk, in whole blocks after the metadata, and the
        // rest of its last block is zero.
        let at = img
            .windows(64)
            .position(|w| w == &big[..64])
            .expect("file data on the disk");
        assert_eq!(at as u64 % BLOCK, 0);
        assert_eq!(&img[at..at + big.len()], &big[..]);
        assert!(img[at + big.len()..(at + big.len()).next_multiple_of(4096)]
            .iter()
            .all(|b| *b == 0));
        // Reads at any offset and length agree with the whole.
        let mut part = vec![0u8; 5000];
        d.read_at(at as u64 - 100, &mut part).unwrap();
        assert_eq!(&part[..], &img[at - 100..at + 4900]);
        let mut past = [0u8; 1];
        assert!(d.read_at(d.size(), &mut past).is_err());
    }

    #[test]
    fn directories_span_blocks_in_order() {
        let t = tempfile::tempdir().unwrap();
        let mut names: Vec<String> = (0..300)
            .map(|i| format!("entry-with-a-long-name-{i:04}"))
            .collect();
        for n in &names {
            std::fs::write(t.path().join(n), b"").unwrap();
        }
        let d = Disk::build(t.path(), 0).unwrap();
        let img = image(&d);
        // The root is out of line (too big to inline), in blocks whose entries are sorted.
        names.extend([".".into(), "..".into()]);
        names.sort();
        let mut seen = Vec::new();
        for block in img.chunks(4096) {
            let first_off = u16::from_le_bytes([block[8], block[9]]) as usize;
            if first_off == 0 || first_off % DIRENT != 0 || first_off >= 4096 {
                continue;
            }
            let count = first_off / DIRENT;
            for e in 0..count {
                let off = u16::from_le_bytes([block[e * 12 + 8], block[e * 12 + 9]]) as usize;
                let end = if e + 1 < count {
                    u16::from_le_bytes([block[e * 12 + 20], block[e * 12 + 21]]) as usize
                } else {
                    block[off..]
                        .iter()
                        .position(|b| *b == 0)
                        .map_or(4096, |p| off + p)
                };
                if let Ok(s) = std::str::from_utf8(&block[off..end]) {
                    seen.push(s.to_string());
                }
            }
        }
        let seen: Vec<String> = seen.into_iter().filter(|s| names.contains(s)).collect();
        assert_eq!(seen, names);
    }

    #[test]
    fn too_many_served_files_is_refused() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..3 {
            std::fs::write(t.path().join(i.to_string()), vec![1u8; 20_000]).unwrap();
        }
        let e = Disk::build(t.path(), 2).err().unwrap();
        assert!(e.contains("more than 2 files"), "{e}");
    }
}
