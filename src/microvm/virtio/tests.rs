//! The device model against a driver that follows the spec and against one that does not:
//! each attack must end with an error status or an unused request, never a read or write
//! outside guest memory, a panic, or an unbounded loop.

use super::*;

const MEM: u64 = 1 << 20;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

struct Guest {
    mem: GuestMemoryMmap,
    dev: Mmio<Block>,
    /// The avail ring's next index.
    avail: u16,
}

fn disk() -> Disk {
    let bytes: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 253) as u8).collect();
    Disk::in_memory(bytes)
}

fn reg(dev: &mut Mmio<Block>, off: u64, v: u32) {
    dev.write(off, &v.to_le_bytes());
}

fn read_reg(dev: &Mmio<Block>, off: u64) -> u32 {
    let mut b = [0u8; 4];
    dev.read(off, &mut b);
    u32::from_le_bytes(b)
}

/// A driver's setup as Linux's virtio_mmio does it.
fn guest() -> Guest {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
    let mut dev = Mmio::new(Block::new(disk()));
    assert_eq!(read_reg(&dev, 0), MAGIC);
    assert_eq!(read_reg(&dev, 4), 2);
    assert_eq!(read_reg(&dev, 8), 2, "a block device");
    reg(&mut dev, 0x70, 1 | 2); // ACKNOWLEDGE | DRIVER
    reg(&mut dev, 0x14, 1);
    let high = read_reg(&dev, 0x10);
    assert_eq!(high & 1, 1, "VERSION_1 offered");
    reg(&mut dev, 0x14, 0);
    let low = read_reg(&dev, 0x10);
    assert_ne!(low & (1 << 5), 0, "read-only");
    reg(&mut dev, 0x24, 0);
    reg(&mut dev, 0x20, low);
    reg(&mut dev, 0x24, 1);
    reg(&mut dev, 0x20, high);
    reg(&mut dev, 0x70, 1 | 2 | 8);
    assert_ne!(read_reg(&dev, 0x70) & 8, 0, "FEATURES_OK kept");
    reg(&mut dev, 0x30, 0);
    assert_eq!(read_reg(&dev, 0x34), u32::from(QUEUE_MAX));
    reg(&mut dev, 0x38, 16);
    reg(&mut dev, 0x80, DESC as u32);
    reg(&mut dev, 0x84, 0);
    reg(&mut dev, 0x90, AVAIL as u32);
    reg(&mut dev, 0x94, 0);
    reg(&mut dev, 0xa0, USED as u32);
    reg(&mut dev, 0xa4, 0);
    reg(&mut dev, 0x44, 1);
    reg(&mut dev, 0x70, 1 | 2 | 8 | 4);
    Guest { mem, dev, avail: 0 }
}

impl Guest {
    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(DESC + u64::from(i) * 16);
        let mut d = addr.to_le_bytes().to_vec();
        d.extend(len.to_le_bytes());
        d.extend(flags.to_le_bytes());
        d.extend(next.to_le_bytes());
        self.mem.write_slice(&d, at).unwrap();
    }

    /// Make chain `head` available and notify; whether the device interrupted.
    fn submit(&mut self, head: u16) -> bool {
        let slot = AVAIL + 4 + u64::from(self.avail % 16) * 2;
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail = self.avail.wrapping_add(1);
        self.mem
            .write_obj(self.avail, GuestAddress(AVAIL + 2))
            .unwrap();
        assert_eq!(self.dev.write(0x50, &0u32.to_le_bytes()), Access::Notify);
        self.dev.serve(&self.mem)
    }

    fn header(&self, at: u64, kind: u32, sector: u64) {
        let mut h = kind.to_le_bytes().to_vec();
        h.extend(0u32.to_le_bytes());
        h.extend(sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(at)).unwrap();
    }

    fn status(&self, at: u64) -> u8 {
        self.mem.read_obj(GuestAddress(at)).unwrap()
    }

    /// The used ring's last entry (head, len) and its index.
    fn used(&self) -> (u16, u32, u32) {
        let idx: u16 = self.mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let at = USED + 4 + u64::from(idx.wrapping_sub(1) % 16) * 8;
        let id: u32 = self.mem.read_obj(GuestAddress(at)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(at + 4)).unwrap();
        (idx, id, len)
    }

    /// A read of `len` bytes at `sector` into `buf` (descriptors 0, 1, 2).
    fn read(&mut self, sector: u64, buf: u64, len: u32) -> (bool, u8) {
        self.header(0x10000, T_IN, sector);
        self.mem.write_obj(0xffu8, GuestAddress(0x10100)).unwrap();
        self.desc(0, 0x10000, 16, F_NEXT, 1);
        self.desc(1, buf, len, F_NEXT | F_WRITE, 2);
        self.desc(2, 0x10100, 1, F_WRITE, 0);
        let irq = self.submit(0);
        (irq, self.status(0x10100))
    }
}

#[test]
fn a_driver_reads_the_disk() {
    let mut g = guest();
    let (irq, status) = g.read(8, 0x20000, 4096);
    assert!(irq);
    assert_eq!(status, S_OK);
    let mut got = vec![0u8; 4096];
    g.mem.read_slice(&mut got, GuestAddress(0x20000)).unwrap();
    let want: Vec<u8> = (4096..8192u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(got, want);
    assert_eq!(g.used(), (1, 0, 4097));
    assert_eq!(read_reg(&g.dev, 0x60), INT_VRING);
    reg(&mut g.dev, 0x64, INT_VRING);
    assert_eq!(read_reg(&g.dev, 0x60), 0);
    // The configuration space: the capacity in sectors.
    let mut cap = [0u8; 8];
    g.dev.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 128);
}

#[test]
fn buffers_outside_guest_memory_fail_the_request_only() {
    let mut g = guest();
    // The data buffer runs past the end of RAM, or wraps the address space.
    for (buf, len) in [(MEM - 100, 4096), (u64::MAX - 10, 512), (MEM + 0x1000, 512)] {
        let (irq, status) = g.read(0, buf, len);
        assert!(irq, "the request is answered");
        assert_eq!(status, S_IOERR, "buffer {buf:#x}");
    }
    // The device still serves a good request afterwards.
    assert_eq!(g.read(0, 0x20000, 512).1, S_OK);
    assert_eq!(g.dev.backend.failed, 3);
}

#[test]
fn reads_past_the_disk_and_writes_are_refused() {
    let mut g = guest();
    assert_eq!(g.read(127, 0x20000, 1024).1, S_IOERR, "past the end");
    assert_eq!(
        g.read(u64::MAX / 2, 0x20000, 512).1,
        S_IOERR,
        "overflowing sector"
    );
    g.header(0x10000, T_OUT, 0);
    g.desc(0, 0x10000, 16, F_NEXT, 1);
    g.desc(1, 0x20000, 512, F_NEXT, 2);
    g.desc(2, 0x10100, 1, F_WRITE, 0);
    g.submit(0);
    assert_eq!(g.status(0x10100), S_IOERR, "a read-only disk");
    g.header(0x10000, 99, 0);
    g.submit(0);
    assert_eq!(g.status(0x10100), S_UNSUPP);
    // A header the device would have to write, or too short.
    g.desc(0, 0x10000, 8, F_NEXT, 1);
    g.header(0x10000, T_IN, 0);
    g.submit(0);
    assert_eq!(g.status(0x10100), S_IOERR);
}

#[test]
fn malformed_chains_end() {
    let mut g = guest();
    // A descriptor that chains to itself: followed at most the queue's size.
    g.desc(0, 0x10000, 16, F_NEXT, 0);
    g.header(0x10000, T_IN, 0);
    assert!(g.submit(0));
    // A next index beyond the queue, a status byte the driver did not make writable, and a
    // chain whose head is out of the table.
    g.desc(0, 0x10000, 16, F_NEXT, 1);
    g.desc(1, 0x20000, 512, F_NEXT | F_WRITE, 200);
    assert!(g.submit(0));
    g.desc(2, 0x10100, 1, 0, 0);
    g.desc(1, 0x20000, 512, F_NEXT | F_WRITE, 2);
    g.mem.write_obj(0x55u8, GuestAddress(0x10100)).unwrap();
    g.submit(0);
    assert_eq!(
        g.status(0x10100),
        0x55,
        "a read-only status byte is not written"
    );
    g.submit(15);
    // Every one was returned, unused or failed; the device still works.
    assert_eq!(g.read(0, 0x20000, 512).1, S_OK);
    assert_eq!(g.dev.status & S_NEEDS_RESET, 0);
}

#[test]
fn a_flood_is_served_a_queue_at_a_time() {
    let mut g = guest();
    g.header(0x10000, T_FLUSH, 0);
    g.desc(0, 0x10000, 16, F_NEXT, 1);
    g.desc(1, 0x10100, 1, F_WRITE, 0);
    // The driver claims far more chains than the queue holds: not served at all.
    g.mem.write_obj(1000u16, GuestAddress(AVAIL + 2)).unwrap();
    g.dev.write(0x50, &0u32.to_le_bytes());
    assert!(!g.dev.serve(&g.mem));
    let (idx, _, _) = g.used();
    assert_eq!(idx, 0);
    // A full ring is served in one round.
    for i in 0..16u64 {
        g.mem
            .write_obj(0u16, GuestAddress(AVAIL + 4 + i * 2))
            .unwrap();
    }
    g.mem.write_obj(16u16, GuestAddress(AVAIL + 2)).unwrap();
    assert!(g.dev.serve(&g.mem));
    assert_eq!(g.used().0, 16);
}

#[test]
fn queue_setup_is_checked() {
    let mut g = guest();
    // Rings outside guest memory: the queue is not valid and nothing is served.
    reg(&mut g.dev, 0x70, 0);
    assert_eq!(read_reg(&g.dev, 0x70), 0, "reset");
    reg(&mut g.dev, 0x70, 1 | 2 | 8);
    reg(&mut g.dev, 0x38, 16);
    reg(&mut g.dev, 0x80, 0xfff0_0000);
    reg(&mut g.dev, 0x90, AVAIL as u32);
    reg(&mut g.dev, 0xa0, USED as u32);
    reg(&mut g.dev, 0x44, 1);
    reg(&mut g.dev, 0x70, 1 | 2 | 8 | 4);
    assert!(!g.dev.serve(&g.mem));
    // A queue size that is not a power of two, and registers written after DRIVER_OK.
    reg(&mut g.dev, 0x70, 0);
    reg(&mut g.dev, 0x38, 17);
    reg(&mut g.dev, 0x80, DESC as u32);
    reg(&mut g.dev, 0x44, 1);
    reg(&mut g.dev, 0x70, 1 | 2 | 8 | 4);
    assert!(!g.dev.serve(&g.mem));
    reg(&mut g.dev, 0x38, 16);
    assert!(!g.dev.serve(&g.mem), "set after DRIVER_OK: ignored");
    // Odd widths and offsets read as zero.
    let mut b = [0xaau8; 2];
    g.dev.read(0, &mut b);
    assert_eq!(b, [0, 0]);
    g.dev.read(0x200, &mut b);
    assert_eq!(b, [0, 0]);
    assert_eq!(g.dev.write(0x50, &[1]), Access::None);
}

#[test]
fn a_legacy_driver_is_not_accepted() {
    let mut dev = Mmio::new(Block::new(disk()));
    reg(&mut dev, 0x70, 1 | 2);
    reg(&mut dev, 0x20, 1 << 5); // not VERSION_1
    reg(&mut dev, 0x70, 1 | 2 | 8);
    assert_eq!(read_reg(&dev, 0x70) & 8, 0, "FEATURES_OK refused");
}

/// A driver of a device with a receive and a transmit queue (the console, net), set up as
/// Linux's virtio_mmio does it. Queue `q`'s rings (descriptors, avail, used; 16 entries each)
/// start at 0x1000 + q * 0x3000.
pub(super) struct Driver<B: Backend> {
    pub(super) mem: GuestMemoryMmap,
    pub(super) dev: Mmio<B>,
    avail: [u16; 2],
}

fn rings(q: usize) -> (u64, u64, u64) {
    let base = 0x1000 + q as u64 * 0x3000;
    (base, base + 0x1000, base + 0x2000)
}

impl<B: Backend> Driver<B> {
    /// The driver of `backend`, accepting `accept` of the features it offers, before
    /// DRIVER_OK ([`Driver::ready`]).
    pub(super) fn setup(backend: B, accept: u64) -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
        let mut d = Driver {
            mem,
            dev: Mmio::new(backend),
            avail: [0; 2],
        };
        let features = d.dev.backend.features() & accept;
        d.set(0x70, 1 | 2);
        d.set(0x24, 0);
        d.set(0x20, features as u32);
        d.set(0x24, 1);
        d.set(0x20, (features >> 32) as u32);
        d.set(0x70, 1 | 2 | 8);
        for q in 0..2 {
            let (desc, avail, used) = rings(q);
            d.set(0x30, q as u32);
            assert_eq!(d.reg(0x34), u32::from(QUEUE_MAX));
            d.set(0x38, 16);
            d.set(0x80, desc as u32);
            d.set(0x90, avail as u32);
            d.set(0xa0, used as u32);
            d.set(0x44, 1);
        }
        d
    }

    /// DRIVER_OK.
    pub(super) fn ready(mut self) -> Self {
        self.set(0x70, 1 | 2 | 8 | 4);
        self
    }

    pub(super) fn set(&mut self, off: u64, v: u32) {
        self.dev.write(off, &v.to_le_bytes());
    }

    pub(super) fn reg(&self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.dev.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    /// Descriptor `i` of queue `q`.
    pub(super) fn desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(rings(q).0 + u64::from(i) * 16);
        let mut d = addr.to_le_bytes().to_vec();
        d.extend(len.to_le_bytes());
        d.extend(flags.to_le_bytes());
        d.extend(next.to_le_bytes());
        self.mem.write_slice(&d, at).unwrap();
    }

    /// Make chain `head` of queue `q` available (no notification).
    pub(super) fn make_available(&mut self, q: usize, head: u16) {
        let (_, avail, _) = rings(q);
        let slot = avail + 4 + u64::from(self.avail[q] % 16) * 2;
        self.mem.write_obj(head, GuestAddress(slot)).unwrap();
        self.avail[q] = self.avail[q].wrapping_add(1);
        self.mem
            .write_obj(self.avail[q], GuestAddress(avail + 2))
            .unwrap();
    }

    /// Notify the device and let it serve; whether it interrupted.
    pub(super) fn notify(&mut self) -> bool {
        assert_eq!(self.dev.write(0x50, &0u32.to_le_bytes()), Access::Notify);
        self.dev.serve(&self.mem)
    }

    /// A one-descriptor chain on queue `q`, `len` bytes at `addr`, made available and
    /// notified; whether the device interrupted.
    pub(super) fn offer(&mut self, q: usize, addr: u64, len: u32, flags: u16) -> bool {
        let i = self.avail[q] % 16;
        self.desc(q, i, addr, len, flags, 0);
        self.make_available(q, i);
        self.notify()
    }

    /// Queue `q`'s used index and its last entry's length.
    pub(super) fn used(&self, q: usize) -> (u16, u32) {
        let (_, _, used) = rings(q);
        let idx: u16 = self.mem.read_obj(GuestAddress(used + 2)).unwrap();
        let at = used + 4 + u64::from(idx.wrapping_sub(1) % 16) * 8;
        (idx, self.mem.read_obj(GuestAddress(at + 4)).unwrap())
    }

    /// Whether the device stopped (DEVICE_NEEDS_RESET).
    pub(super) fn stopped(&self) -> bool {
        self.reg(0x70) & S_NEEDS_RESET != 0
    }
}

/// The console device (the control channel) against its driver and against attacks.
mod console {
    use super::*;

    fn driver() -> Driver<Console> {
        let mut d = Driver::setup(Console::default(), F_VERSION_1);
        assert_eq!(d.reg(8), 3, "a console device");
        // A third queue does not exist: nothing to size, nothing taken.
        d.set(0x30, 2);
        assert_eq!(d.reg(0x34), 0);
        d.set(0x38, 16);
        assert_eq!(d.reg(0x44), 0);
        d.ready()
    }

    #[test]
    fn bytes_flow_both_ways_within_the_buffers_given() {
        let mut g = driver();
        g.mem.write_slice(b"hello", GuestAddress(0x20000)).unwrap();
        assert!(g.offer(TX, 0x20000, 5, 0));
        assert_eq!(g.dev.backend.from_guest, b"hello");
        g.dev.backend.to_guest.extend(b"abc");
        assert!(g.offer(RX, 0x30000, 2, F_WRITE));
        assert_eq!(g.used(RX), (1, 2));
        let mut got = [0u8; 2];
        g.mem.read_slice(&mut got, GuestAddress(0x30000)).unwrap();
        assert_eq!(&got, b"ab");
        assert_eq!(g.dev.backend.to_guest, b"c");
        // A receive buffer the device may not write gets nothing.
        assert!(g.offer(RX, 0x30000, 8, 0));
        assert_eq!(g.used(RX), (2, 0));
        assert_eq!(g.dev.backend.to_guest, b"c");
        assert!(!g.stopped());
    }

    #[test]
    fn oversized_or_outside_transmit_buffers_break_the_device_not_the_vmm() {
        let mut g = driver();
        assert!(!g.offer(TX, 0x20000, (TX_CHAIN_MAX + 1) as u32, 0));
        assert!(g.stopped());
        assert!(g.dev.backend.from_guest.is_empty());
        let mut g = driver();
        assert!(!g.offer(TX, MEM - 2, 16, 0));
        assert!(g.stopped());
        assert!(g.dev.backend.from_guest.is_empty());
        // A receive buffer past RAM: nothing written, the bytes stay for a good buffer.
        let mut g = driver();
        g.dev.backend.to_guest.extend(b"xyz");
        g.offer(RX, MEM - 1, 3, F_WRITE);
        assert_eq!(g.dev.backend.to_guest, b"xyz");
    }

    #[test]
    fn a_guest_cannot_make_the_device_hold_more_than_its_bound() {
        let mut g = driver();
        g.dev.backend.from_guest = vec![0; FROM_GUEST_MAX];
        assert!(
            !g.offer(TX, 0x20000, 4096, 0),
            "not taken while the VMM is behind"
        );
        assert_eq!(g.dev.backend.from_guest.len(), FROM_GUEST_MAX);
        g.dev.backend.from_guest.clear();
        assert!(g.dev.serve(&g.mem), "taken once the VMM caught up");
        assert_eq!(g.dev.backend.from_guest.len(), 4096);
    }
}
