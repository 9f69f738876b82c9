//! The guest's virtio devices: the virtio-mmio transport (version 2, one page of registers per
//! device, described to the guest by the ACPI DSDT), the block device that serves the
//! container's rootfs disk read-only, the console of the control channel and the network
//! device ([`net`]).
//!
//! Everything here reads what the guest wrote, so everything is checked: the registers take
//! only the widths and offsets the spec defines (other accesses read as zero and are
//! ignored), a queue is used only once the driver set it up and it lies in guest memory
//! (`virtio_queue` checks the rings' addresses and alignment), each descriptor chain is
//! followed for at most the queue's size and 4 GiB (`virtio_queue` again), and every buffer a
//! descriptor names is read or written through `GuestMemory`, which refuses a range outside
//! guest RAM. A request that fails those checks is answered with an error status (or, when
//! its status byte itself is unreachable, returned unused); a queue whose rings cannot be read
//! puts the device in DEVICE_NEEDS_RESET until the driver resets it. Nothing allocates per
//! request beyond a bounded bounce buffer.

use std::sync::atomic::{AtomicU32, Ordering};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::erofs::Disk;

/// The size of one device's register page.
pub const MMIO_SIZE: u64 = 0x1000;
/// The largest queue a device offers (descriptors per queue).
pub const QUEUE_MAX: u16 = 256;

const MAGIC: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR: u32 = 0x4e54_4e43; // "CNTN"
/// Feature bits (virtio 1.1, 5.2.3 and 6).
const F_VERSION_1: u64 = 1 << 32;
const BLK_F_RO: u64 = 1 << 5;
const BLK_F_SEG_MAX: u64 = 1 << 2;
/// Device status bits.
const S_DRIVER_OK: u32 = 4;
const S_FEATURES_OK: u32 = 8;
const S_NEEDS_RESET: u32 = 0x40;
/// Interrupt status: the used ring changed.
const INT_VRING: u32 = 1;
/// The block device's segments per request, and bytes per bounce.
const SEG_MAX: u32 = 128;
const BOUNCE: usize = 64 << 10;

/// Request types and statuses (virtio 1.1, 5.2.6).
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_GET_ID: u32 = 8;
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// GET_ID's answer (at most 20 bytes).
const SERIAL: &[u8] = b"contain-rootfs";

/// What a device does for its queue.
pub trait Backend {
    /// The virtio device type (1: network, 2: block, 3: console).
    const DEVICE_ID: u32;
    /// How many queues the device has.
    const QUEUES: usize;
    fn features(&self) -> u64;
    /// The device-specific configuration space, from offset 0x100.
    fn config(&self) -> Vec<u8>;
    /// The features the driver accepted (at FEATURES_OK).
    fn negotiated(&mut self, _features: u64) {}
    /// Serve what the driver made available on queue `index`; whether its used ring changed.
    fn process(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, String>;
}

/// One virtio-mmio device: its registers, its queues and its backend.
pub struct Mmio<B: Backend> {
    pub backend: B,
    queues: Vec<Queue>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    /// Shared with whoever raises the interrupt (bit 0: used ring).
    interrupt_status: std::sync::Arc<AtomicU32>,
    /// Requests refused (for the debug log and the tests).
    pub refused: u64,
}

/// What a register write asks of the VMM.
#[derive(Debug, PartialEq, Eq)]
pub enum Access {
    None,
    /// The driver notified the queue: serve it.
    Notify,
}

impl<B: Backend> Mmio<B> {
    pub fn new(backend: B) -> Self {
        Mmio {
            backend,
            queues: (0..B::QUEUES)
                .map(|_| Queue::new(QUEUE_MAX).expect("QUEUE_MAX is a power of two"))
                .collect(),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            interrupt_status: std::sync::Arc::default(),
            refused: 0,
        }
    }

    /// The interrupt status the device raises (shared with the interrupt's sender).
    pub fn interrupt_status(&self) -> std::sync::Arc<AtomicU32> {
        std::sync::Arc::clone(&self.interrupt_status)
    }

    /// The queue QueueSel names, if it names one.
    fn selected(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    fn reset(&mut self) {
        for q in &mut self.queues {
            q.reset();
        }
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.status = 0;
        self.interrupt_status.store(0, Ordering::SeqCst);
        self.backend.negotiated(0);
    }

    /// A read of `data.len()` bytes at `offset` in the register page.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= 0x100 {
            let config = self.backend.config();
            let start = (offset - 0x100) as usize;
            for (i, b) in data.iter_mut().enumerate() {
                *b = config.get(start + i).copied().unwrap_or(0);
            }
            return;
        }
        if data.len() != 4 {
            return;
        }
        let features = self.backend.features();
        let v: u32 = match offset {
            0x000 => MAGIC,
            0x004 => VERSION,
            0x008 => B::DEVICE_ID,
            0x00c => VENDOR,
            0x010 => match self.device_features_sel {
                0 => features as u32,
                1 => (features >> 32) as u32,
                _ => 0,
            },
            0x034 if self.selected().is_some() => u32::from(QUEUE_MAX),
            0x044 => self.selected().map_or(0, |q| u32::from(q.ready())),
            0x060 => self.interrupt_status.load(Ordering::SeqCst),
            0x070 => self.status,
            0x0fc => 0, // config generation: the configuration never changes
            _ => 0,
        };
        data.copy_from_slice(&v.to_le_bytes());
    }

    /// A write of `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Access {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return Access::None; // the config space is read-only; other widths are invalid
        };
        let v = u32::from_le_bytes(bytes);
        // Queue registers take effect only while the driver sets the device up.
        let driver_ok = self.status & S_DRIVER_OK != 0;
        let queue = match self.queues.get_mut(self.queue_sel as usize) {
            Some(q) if !driver_ok => Some(q),
            _ => None,
        };
        let setting_up = queue.is_some();
        let q = || queue.expect("setting_up: a selected queue");
        match offset {
            0x014 => self.device_features_sel = v,
            0x020 => {
                let offered = self.backend.features();
                match self.driver_features_sel {
                    0 => {
                        self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
                self.driver_features &= offered;
            }
            0x024 => self.driver_features_sel = v,
            0x030 => self.queue_sel = v,
            0x038 if setting_up => q().set_size(v.min(u32::from(u16::MAX)) as u16),
            0x044 if setting_up => q().set_ready(v == 1),
            0x050 => return Access::Notify,
            0x064 => {
                self.interrupt_status.fetch_and(!v, Ordering::SeqCst);
            }
            0x070 => {
                if v == 0 {
                    self.reset();
                } else if v & S_FEATURES_OK != 0 && self.driver_features & F_VERSION_1 == 0 {
                    // A legacy driver: FEATURES_OK is not accepted.
                    self.status = v & !S_FEATURES_OK;
                } else {
                    if v & S_FEATURES_OK != 0 && self.status & S_FEATURES_OK == 0 {
                        self.backend.negotiated(self.driver_features);
                    }
                    self.status = v;
                }
            }
            0x080 if setting_up => q().set_desc_table_address(Some(v), None),
            0x084 if setting_up => q().set_desc_table_address(None, Some(v)),
            0x090 if setting_up => q().set_avail_ring_address(Some(v), None),
            0x094 if setting_up => q().set_avail_ring_address(None, Some(v)),
            0x0a0 if setting_up => q().set_used_ring_address(Some(v), None),
            0x0a4 if setting_up => q().set_used_ring_address(None, Some(v)),
            _ => {}
        }
        Access::None
    }

    /// Serve the queues once the driver is ready; whether the guest must be interrupted.
    pub fn serve(&mut self, mem: &GuestMemoryMmap) -> bool {
        if self.status & S_DRIVER_OK == 0 || self.status & S_NEEDS_RESET != 0 {
            return false;
        }
        let mut interrupt = false;
        for (i, q) in self.queues.iter_mut().enumerate() {
            if !q.ready() || !q.is_valid(mem) {
                continue;
            }
            match self.backend.process(i, q, mem) {
                Ok(used) => interrupt |= used,
                Err(_) => {
                    self.refused += 1;
                    self.status |= S_NEEDS_RESET;
                    return false;
                }
            }
        }
        if interrupt {
            self.interrupt_status.fetch_or(INT_VRING, Ordering::SeqCst);
        }
        interrupt
    }
}

/// Put the chain at `head` in the used ring with `len` bytes written to it.
fn give_back(queue: &mut Queue, mem: &GuestMemoryMmap, head: u16, len: u32) -> Result<(), String> {
    queue
        .add_used(mem, head, len)
        .map_err(|e| format!("the used ring: {e}"))
}

/// A chain of the guest's descriptors.
type Chain<'m> = virtio_queue::DescriptorChain<&'m GuestMemoryMmap>;

/// Serve the chains the guest made available while `more` says `device` has work for them,
/// at most a queue's worth per notification round (a guest that refills the ring as fast as
/// it is served cannot hold the thread: it notifies again). Each chain goes back to the used
/// ring with the bytes `serve` wrote into it; an error from `serve` stops the device.
/// Whether any chain went back.
fn serve_chains<'m, T>(
    device: &mut T,
    queue: &mut Queue,
    mem: &'m GuestMemoryMmap,
    more: impl Fn(&T) -> bool,
    mut serve: impl FnMut(&mut T, Chain<'m>) -> Result<u32, String>,
) -> Result<bool, String> {
    let mut used = false;
    for _ in 0..queue.size() {
        if !more(device) {
            break;
        }
        let Some(chain) = queue.pop_descriptor_chain(mem) else {
            break;
        };
        let head = chain.head_index();
        let len = serve(device, chain)?;
        give_back(queue, mem, head, len)?;
        used = true;
    }
    Ok(used)
}

/// The block device: the rootfs disk, read-only.
pub struct Block {
    pub disk: Disk,
    bounce: Vec<u8>,
    /// Requests answered with an error status.
    pub failed: u64,
}

impl Block {
    pub fn new(disk: Disk) -> Self {
        Block {
            disk,
            bounce: vec![0; BOUNCE],
            failed: 0,
        }
    }

    /// One request: its status and the bytes written to the guest's buffers; None when the
    /// chain has no status byte to answer in.
    fn request(
        &mut self,
        chain: Chain<'_>,
        mem: &GuestMemoryMmap,
    ) -> Option<(GuestAddress, u8, u32)> {
        let descs: Vec<_> = chain.collect();
        let (status, body) = descs.split_last()?;
        if !status.is_write_only() || status.len() < 1 {
            return None;
        }
        let answer = |s: u8, n: u32| Some((status.addr(), s, n));
        let Some((header, data)) = body.split_first() else {
            return answer(S_IOERR, 0);
        };
        let mut h = [0u8; 16];
        if header.is_write_only()
            || header.len() < 16
            || mem.read_slice(&mut h, header.addr()).is_err()
            || data.len() > SEG_MAX as usize
        {
            return answer(S_IOERR, 0);
        }
        let kind = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let sector = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        match kind {
            T_IN => {
                let Some(mut at) = sector.checked_mul(512) else {
                    return answer(S_IOERR, 0);
                };
                let mut written: u32 = 0;
                for d in data {
                    if !d.is_write_only() {
                        return answer(S_IOERR, written);
                    }
                    let mut done = 0u32;
                    while done < d.len() {
                        let n = (d.len() - done).min(BOUNCE as u32) as usize;
                        let buf = &mut self.bounce[..n];
                        let to = d.addr().checked_add(u64::from(done));
                        let ok = at
                            .checked_add(n as u64)
                            .is_some_and(|e| e <= self.disk.size())
                            && self.disk.read_at(at, buf).is_ok()
                            && to.is_some_and(|to| mem.write_slice(buf, to).is_ok());
                        if !ok {
                            return answer(S_IOERR, written);
                        }
                        done += n as u32;
                        at += n as u64;
                        written = written.saturating_add(n as u32);
                    }
                }
                answer(S_OK, written)
            }
            T_OUT => answer(S_IOERR, 0), // a read-only disk
            T_FLUSH => answer(S_OK, 0),
            T_GET_ID => match data.first() {
                Some(d) if d.is_write_only() && mem.write_slice(SERIAL, d.addr()).is_ok() => {
                    answer(S_OK, SERIAL.len() as u32)
                }
                _ => answer(S_IOERR, 0),
            },
            _ => answer(S_UNSUPP, 0),
        }
    }
}

impl Backend for Block {
    const DEVICE_ID: u32 = 2;
    const QUEUES: usize = 1;

    fn features(&self) -> u64 {
        F_VERSION_1 | BLK_F_RO | BLK_F_SEG_MAX
    }

    fn config(&self) -> Vec<u8> {
        // capacity (512-byte sectors), size_max (unused), seg_max.
        let mut c = (self.disk.size() / 512).to_le_bytes().to_vec();
        c.extend(0u32.to_le_bytes());
        c.extend(SEG_MAX.to_le_bytes());
        c
    }

    fn process(
        &mut self,
        _: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, String> {
        serve_chains(
            self,
            queue,
            mem,
            |_| true,
            |block, chain| {
                Ok(match block.request(chain, mem) {
                    Some((at, status, n)) => {
                        if status != S_OK {
                            block.failed += 1;
                        }
                        if mem.write_obj(status, at).is_err() {
                            block.failed += 1;
                        }
                        n.saturating_add(1)
                    }
                    None => {
                        block.failed += 1;
                        0
                    }
                })
            },
        )
    }
}

/// The console device's receive queue (to the guest) and transmit queue (from it).
const RX: usize = 0;
const TX: usize = 1;
/// The most a transmit chain may carry, and the most the device holds for the VMM to take:
/// a guest that sends more waits (its buffers stay in the ring until the VMM has caught up).
const TX_CHAIN_MAX: usize = 1 << 20;
pub const FROM_GUEST_MAX: usize = 4 << 20;

/// The console device (virtio-console, one port, no multiport features): a byte stream each
/// way, the VMM's control channel to the guest agent.
#[derive(Default)]
pub struct Console {
    /// Bytes for the guest, waiting for its receive buffers.
    pub to_guest: std::collections::VecDeque<u8>,
    /// Bytes the guest sent, for the VMM to take.
    pub from_guest: Vec<u8>,
}

impl Console {
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, String> {
        let more = |c: &Self| !c.to_guest.is_empty();
        serve_chains(self, queue, mem, more, |c, chain| {
            let mut written: u32 = 0;
            for d in chain {
                if !d.is_write_only() {
                    break; // a buffer the guest gave to be written must be writable
                }
                let n = (d.len() as usize).min(c.to_guest.len());
                let bytes = &c.to_guest.make_contiguous()[..n];
                if mem.write_slice(bytes, d.addr()).is_err() {
                    break;
                }
                c.to_guest.drain(..n);
                written += n as u32;
                if c.to_guest.is_empty() {
                    break;
                }
            }
            Ok(written)
        })
    }

    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, String> {
        // The VMM takes what the device holds first; the guest notifies again.
        let more = |c: &Self| c.from_guest.len() < FROM_GUEST_MAX;
        serve_chains(self, queue, mem, more, |c, chain| {
            let mut total = 0usize;
            for d in chain {
                if d.is_write_only() {
                    continue;
                }
                let n = d.len() as usize;
                total = total.saturating_add(n);
                if total > TX_CHAIN_MAX {
                    return Err(format!(
                        "a transmit chain of more than {TX_CHAIN_MAX} bytes"
                    ));
                }
                let start = c.from_guest.len();
                c.from_guest.resize(start + n, 0);
                if mem
                    .read_slice(&mut c.from_guest[start..], d.addr())
                    .is_err()
                {
                    c.from_guest.truncate(start);
                    return Err("a transmit buffer outside guest memory".into());
                }
            }
            Ok(0)
        })
    }
}

impl Backend for Console {
    const DEVICE_ID: u32 = 3;
    const QUEUES: usize = 2;

    fn features(&self) -> u64 {
        F_VERSION_1
    }

    fn config(&self) -> Vec<u8> {
        // cols, rows, max_nr_ports, emerg_wr: none offered (no SIZE, MULTIPORT, EMERG_WRITE).
        vec![0; 12]
    }

    fn process(
        &mut self,
        index: usize,
        queue: &mut Queue,
        mem: &GuestMemoryMmap,
    ) -> Result<bool, String> {
        match index {
            RX => self.receive(queue, mem),
            TX => self.transmit(queue, mem),
            _ => Ok(false),
        }
    }
}

pub mod net;

#[cfg(test)]
mod tests;
