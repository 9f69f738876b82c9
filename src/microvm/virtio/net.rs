//! The network device (virtio-net, one queue pair): frames between the guest and a link on
//! the host, a packet socket bound to the interface the container's network namespace holds
//! (whatever the client put there: a CNI bridge's veth, podman's network).
//!
//! The link speaks the kernel's `virtio_net_hdr` (PACKET_VNET_HDR), so a frame from the host
//! keeps its offload metadata (a partial checksum, a TCP segment larger than the MTU) and the
//! guest, which negotiated GUEST_CSUM and GUEST_TSO, finishes it. A frame the guest cannot
//! take (offloads it did not negotiate, larger than its buffers) is dropped and counted, as a
//! NIC drops what does not fit. The guest's own frames go out with an empty header: no
//! checksum or segmentation offload is offered to it, so the host kernel never acts on
//! offload metadata the guest wrote.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestMemoryMmap};

use super::{give_back, serve_chains, Backend, F_VERSION_1};

/// Feature bits (virtio 1.1, 5.1.3).
const F_MTU: u64 = 1 << 3;
const F_MAC: u64 = 1 << 5;
const F_GUEST_CSUM: u64 = 1 << 1;
const F_GUEST_TSO4: u64 = 1 << 7;
const F_GUEST_TSO6: u64 = 1 << 8;
const F_GUEST_ECN: u64 = 1 << 9;

/// The header before each frame on the queues (virtio 1.x: with num_buffers), and the
/// kernel's (without it) on the link.
pub const HDR: usize = 12;
pub const LINK_HDR: usize = 10;
/// virtio_net_hdr's flags and GSO types.
const NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_ECN: u8 = 0x80;

/// The largest frame either way (a 64 KiB TCP segment and its Ethernet header), with the
/// link's header.
pub const FRAME_MAX: usize = LINK_HDR + 65_550;

/// The queues: receive (to the guest), transmit (from it).
const RX: usize = 0;
const TX: usize = 1;

/// The host's end: frames with the kernel's `virtio_net_hdr` before each. Non-blocking: a
/// `recv` with nothing to give fails with WouldBlock.
pub trait Link {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()>;
    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// The network device: its link, its MAC and MTU, the frame waiting for a receive buffer.
pub struct Net<L: Link> {
    pub link: L,
    mac: [u8; 6],
    mtu: u16,
    /// The features the driver accepted.
    accepted: u64,
    /// A frame from the link (its length in `rx`) waiting for the guest's receive buffers.
    pending: Option<usize>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Frames dropped either way (the guest could not take them, malformed, or the link
    /// refused them).
    pub dropped: u64,
}

impl<L: Link> Net<L> {
    pub fn new(link: L, mac: [u8; 6], mtu: u16) -> Self {
        Net {
            link,
            mac,
            mtu,
            accepted: 0,
            pending: None,
            rx: vec![0; FRAME_MAX],
            tx: Vec::with_capacity(FRAME_MAX),
            dropped: 0,
        }
    }

    /// Whether a frame waits for the guest's receive buffers (then the link need not be read
    /// until the guest gives some).
    pub fn starved(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether the guest can take the frame whose kernel header is `h`.
    fn takes(&self, h: &[u8]) -> bool {
        let gso = h[1] & !GSO_ECN;
        let csum_ok = h[0] & NEEDS_CSUM == 0 || self.accepted & F_GUEST_CSUM != 0;
        let gso_ok = match gso {
            GSO_NONE => true,
            GSO_TCPV4 => self.accepted & F_GUEST_TSO4 != 0,
            GSO_TCPV6 => self.accepted & F_GUEST_TSO6 != 0,
            _ => false,
        };
        let ecn_ok = h[1] & GSO_ECN == 0 || self.accepted & F_GUEST_ECN != 0;
        csum_ok && gso_ok && ecn_ok
    }

    /// Frames from the link into the guest's receive buffers, while both last (at most a
    /// queue's worth).
    fn receive(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, String> {
        let mut used = false;
        for _ in 0..queue.size() {
            let len = match self.pending.take() {
                Some(n) => n,
                None => match self.link.recv(&mut self.rx) {
                    Ok(n) if n > LINK_HDR && self.takes(&self.rx[..LINK_HDR]) => n,
                    Ok(_) => {
                        self.dropped += 1;
                        continue;
                    }
                    Err(_) => break, // nothing more (or the link failed: frames are lost)
                },
            };
            let Some(chain) = queue.pop_descriptor_chain(mem) else {
                self.pending = Some(len);
                break;
            };
            let head = chain.head_index();
            let descs: Vec<_> = chain.filter(|d| d.is_write_only()).collect();
            let room: u64 = descs.iter().map(|d| u64::from(d.len())).sum();
            let frame = &self.rx[LINK_HDR..len];
            let mut hdr = [0u8; HDR];
            hdr[..LINK_HDR].copy_from_slice(&self.rx[..LINK_HDR]);
            hdr[LINK_HDR..].copy_from_slice(&1u16.to_le_bytes()); // num_buffers
            let written = if room < (HDR + frame.len()) as u64 {
                self.dropped += 1; // buffers smaller than the frame: returned empty
                0
            } else {
                let mut bytes = hdr.iter().chain(frame.iter()).copied();
                let mut total = 0u32;
                let mut chunk = Vec::new();
                for d in &descs {
                    chunk.clear();
                    chunk.extend(bytes.by_ref().take(d.len() as usize));
                    if chunk.is_empty() {
                        break;
                    }
                    if mem.write_slice(&chunk, d.addr()).is_err() {
                        return Err("a receive buffer outside guest memory".into());
                    }
                    total += chunk.len() as u32;
                }
                total
            };
            give_back(queue, mem, head, written)?;
            used = true;
        }
        Ok(used)
    }

    /// The guest's frames out to the link (at most a queue's worth).
    fn transmit(&mut self, queue: &mut Queue, mem: &GuestMemoryMmap) -> Result<bool, String> {
        serve_chains(
            self,
            queue,
            mem,
            |_| true,
            |net, chain| {
                net.tx.clear();
                let mut fits = true;
                for d in chain.filter(|d| !d.is_write_only()) {
                    let start = net.tx.len();
                    let n = d.len() as usize;
                    if start + n > FRAME_MAX - LINK_HDR + HDR {
                        fits = false;
                        break;
                    }
                    net.tx.resize(start + n, 0);
                    if mem.read_slice(&mut net.tx[start..], d.addr()).is_err() {
                        return Err("a transmit buffer outside guest memory".into());
                    }
                }
                // The guest's header is not passed on: the frame goes out as it is.
                if fits && net.tx.len() > HDR {
                    net.tx[HDR - LINK_HDR..HDR].fill(0);
                    if net.link.send(&net.tx[HDR - LINK_HDR..]).is_err() {
                        net.dropped += 1;
                    }
                } else {
                    net.dropped += 1;
                }
                Ok(0)
            },
        )
    }
}

impl<L: Link> Backend for Net<L> {
    const DEVICE_ID: u32 = 1;
    const QUEUES: usize = 2;

    fn features(&self) -> u64 {
        F_VERSION_1 | F_MAC | F_MTU | F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN
    }

    fn config(&self) -> Vec<u8> {
        // mac, status (no STATUS feature), max_virtqueue_pairs (no MQ), mtu.
        let mut c = self.mac.to_vec();
        c.extend([0u8; 4]);
        c.extend(self.mtu.to_le_bytes());
        c
    }

    fn negotiated(&mut self, features: u64) {
        self.accepted = features;
        self.pending = None;
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

/// A packet socket bound to a host interface (opened by the runtime in the container's
/// network namespace) as a [`Link`].
pub struct PacketSocket(pub std::os::fd::OwnedFd);

impl Link for PacketSocket {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the buffer is valid for its length; the socket is ours.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        // SAFETY: the buffer is valid for its length; the socket is ours.
        let n = unsafe {
            libc::recv(
                self.0.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        if n > buf.len() {
            // Truncated (larger than any frame the device carries): not delivered.
            return Ok(0);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    //! The network device against a driver that follows the spec and one that does not:
    //! frames cross both ways with the right headers, what the guest cannot take is dropped
    //! and counted, and no buffer outside guest memory is ever read or written.

    use super::*;
    use crate::microvm::virtio::tests::Driver;
    use std::collections::VecDeque;
    use vm_memory::GuestAddress;

    const MEM: u64 = 1 << 20;
    const F_NEXT: u16 = 1;
    const F_WRITE: u16 = 2;

    #[derive(Default)]
    struct Wire {
        to_guest: VecDeque<Vec<u8>>,
        sent: Vec<Vec<u8>>,
    }

    impl Link for Wire {
        fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
            self.sent.push(frame.to_vec());
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let f = self
                .to_guest
                .pop_front()
                .ok_or(std::io::ErrorKind::WouldBlock)?;
            buf[..f.len()].copy_from_slice(&f);
            Ok(f.len())
        }
    }

    /// A driver's setup, accepting `accept` of the offered features.
    fn driver(accept: u64) -> Driver<Net<Wire>> {
        Driver::setup(Net::new(Wire::default(), [2, 0, 0, 0, 0, 1], 1500), accept).ready()
    }

    impl Driver<Net<Wire>> {
        /// A frame arrives from the host.
        fn arrives(&mut self, f: Vec<u8>) {
            self.dev.backend.link.to_guest.push_back(f);
        }
    }

    fn frame(flags: u8, gso: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; LINK_HDR];
        f[0] = flags;
        f[1] = gso;
        f.extend((0..len).map(|i| (i % 251) as u8));
        f
    }

    #[test]
    fn frames_cross_both_ways() {
        let mut d = driver(u64::MAX);
        let mut cfg = [0u8; 6];
        d.dev.read(0x100, &mut cfg);
        assert_eq!(cfg, [2, 0, 0, 0, 0, 1], "the MAC in the configuration");
        let mut mtu = [0u8; 2];
        d.dev.read(0x10a, &mut mtu);
        assert_eq!(u16::from_le_bytes(mtu), 1500);
        // To the guest: a partially checksummed TCP segment larger than the MTU, which the
        // guest negotiated to take.
        let f = frame(NEEDS_CSUM, GSO_TCPV4, 3000);
        d.arrives(f.clone());
        d.desc(0, 0, 0x10000, 2000, F_NEXT | F_WRITE, 1);
        d.desc(0, 1, 0x20000, 2000, F_WRITE, 0);
        d.make_available(0, 0);
        assert!(d.notify());
        assert_eq!(d.used(0), (1, (HDR + 3000) as u32));
        let mut got = vec![0u8; 4000];
        d.mem
            .read_slice(&mut got[..2000], GuestAddress(0x10000))
            .unwrap();
        d.mem
            .read_slice(&mut got[2000..], GuestAddress(0x20000))
            .unwrap();
        assert_eq!(&got[..LINK_HDR], &f[..LINK_HDR], "the kernel's header kept");
        assert_eq!(&got[LINK_HDR..HDR], &1u16.to_le_bytes(), "num_buffers");
        assert_eq!(&got[HDR..HDR + 3000], &f[LINK_HDR..]);
        // From the guest: its header (claiming offloads) is not passed on.
        let mut out = vec![0xffu8; HDR];
        out.extend(b"an ethernet frame of the guest's");
        d.mem.write_slice(&out, GuestAddress(0x30000)).unwrap();
        d.desc(1, 0, 0x30000, out.len() as u32, 0, 0);
        d.make_available(1, 0);
        assert!(d.notify());
        let sent = &d.dev.backend.link.sent;
        assert_eq!(sent.len(), 1);
        assert_eq!(&sent[0][..LINK_HDR], &[0u8; LINK_HDR]);
        assert_eq!(&sent[0][LINK_HDR..], &out[HDR..]);
        assert_eq!(d.dev.backend.dropped, 0);
    }

    #[test]
    fn what_the_guest_cannot_take_is_dropped() {
        // A driver that took no offload: a GSO frame and a partial checksum are dropped; a
        // plain frame behind them arrives.
        let mut d = driver(F_VERSION_1 | F_MAC);
        let link = &mut d.dev.backend.link.to_guest;
        link.push_back(frame(0, GSO_TCPV6, 100));
        link.push_back(frame(NEEDS_CSUM, GSO_NONE, 100));
        link.push_back(frame(0, GSO_NONE | GSO_ECN, 100));
        link.push_back(frame(0, 0x33, 100));
        link.push_back(vec![0u8; 4]);
        link.push_back(frame(0, GSO_NONE, 60));
        d.desc(0, 0, 0x10000, 2048, F_WRITE, 0);
        d.make_available(0, 0);
        assert!(d.notify());
        assert_eq!(d.used(0), (1, (HDR + 60) as u32));
        assert_eq!(d.dev.backend.dropped, 5);
        // Buffers smaller than the frame: returned empty, the frame dropped.
        d.arrives(frame(0, GSO_NONE, 1500));
        d.desc(0, 1, 0x10000, 100, F_WRITE, 0);
        d.make_available(0, 1);
        assert!(d.notify());
        assert_eq!(d.used(0), (2, 0));
        assert_eq!(d.dev.backend.dropped, 6);
    }

    #[test]
    fn a_frame_waits_for_receive_buffers() {
        let mut d = driver(u64::MAX);
        d.arrives(frame(0, GSO_NONE, 64));
        assert!(!d.notify(), "no buffer: nothing used");
        assert!(d.dev.backend.starved(), "the frame is held");
        d.desc(0, 0, 0x10000, 2048, F_WRITE, 0);
        d.make_available(0, 0);
        assert!(d.notify());
        assert_eq!(d.used(0), (1, (HDR + 64) as u32));
        assert!(!d.dev.backend.starved());
    }

    #[test]
    fn hostile_buffers_fail_closed() {
        // A transmit chain longer than any frame: dropped, nothing sent.
        let mut d = driver(u64::MAX);
        for i in 0..3u16 {
            d.desc(1, i, 0x10000, 30_000, if i < 2 { F_NEXT } else { 0 }, i + 1);
        }
        d.make_available(1, 0);
        assert!(d.notify());
        assert!(d.dev.backend.link.sent.is_empty());
        assert_eq!(d.dev.backend.dropped, 1);
        // A transmit buffer outside guest memory, and one wrapping the address space: the
        // device stops (DEVICE_NEEDS_RESET), nothing is sent.
        for addr in [MEM - 8, u64::MAX - 4] {
            let mut d = driver(u64::MAX);
            d.desc(1, 0, addr, 64, 0, 0);
            d.make_available(1, 0);
            assert!(!d.notify());
            assert!(d.dev.backend.link.sent.is_empty());
            assert!(d.stopped(), "DEVICE_NEEDS_RESET");
        }
        // A receive buffer outside guest memory: the same, and guest memory is untouched.
        let mut d = driver(u64::MAX);
        d.arrives(frame(0, GSO_NONE, 64));
        d.desc(0, 0, MEM - 16, 2048, F_WRITE, 0);
        d.make_available(0, 0);
        assert!(!d.notify());
        assert!(d.stopped(), "DEVICE_NEEDS_RESET");
        // A self-looping receive chain ends (virtio_queue bounds it by the queue size).
        let mut d = driver(u64::MAX);
        d.arrives(frame(0, GSO_NONE, 64));
        d.desc(0, 0, 0x10000, 8, F_NEXT | F_WRITE, 0);
        d.make_available(0, 0);
        d.notify();
    }
}
