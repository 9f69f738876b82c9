//! The virtio-net device as a hostile driver drives it, with frames from the host's link
//! whose kernel headers are arbitrary too: guest memory the fuzzer fills (rings, descriptors,
//! buffers), then any sequence of register reads and writes, frames arriving and queue
//! services. Never panics; one service returns after at most a queue's worth of frames per
//! queue; a frame larger than the device carries never reaches the guest; nothing outside
//! guest memory is touched (GuestMemory would refuse it: a panic or fault here).
#![no_main]
use std::collections::VecDeque;

use arbitrary::Arbitrary;
use contain::microvm::virtio::net::{Link, Net, FRAME_MAX};
use contain::microvm::virtio::Mmio;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 64 << 10;

#[derive(Default)]
struct Wire {
    frames: VecDeque<Vec<u8>>,
}

impl Link for Wire {
    fn send(&mut self, frame: &[u8]) -> std::io::Result<()> {
        assert!(frame.len() <= FRAME_MAX, "a frame larger than the device carries");
        Ok(())
    }

    fn recv(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let f = self
            .frames
            .pop_front()
            .ok_or(std::io::ErrorKind::WouldBlock)?;
        let n = f.len().min(buf.len());
        buf[..n].copy_from_slice(&f[..n]);
        Ok(n)
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write { offset: u16, value: u32 },
    Read { offset: u16, len: u8 },
    /// A frame from the host (its first 10 bytes the kernel's header).
    Frame { data: Vec<u8> },
    Serve,
    /// Change guest memory between services (the driver racing the device).
    Poke { at: u16, data: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    memory: Vec<u8>,
    /// A setup that reaches DRIVER_OK first, so that the queues are served at all.
    setup: bool,
    features: u32,
    queue_size: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let n = input.memory.len().min(MEM);
    mem.write_slice(&input.memory[..n], GuestAddress(0)).unwrap();
    let mut dev = Mmio::new(Net::new(Wire::default(), [2, 0, 0, 0, 0, 1], 1500));
    let reg = |dev: &mut Mmio<Net<Wire>>, off: u64, v: u32| {
        dev.write(off, &v.to_le_bytes());
    };
    if input.setup {
        reg(&mut dev, 0x70, 3);
        reg(&mut dev, 0x24, 0);
        reg(&mut dev, 0x20, input.features);
        reg(&mut dev, 0x24, 1);
        reg(&mut dev, 0x20, 1);
        reg(&mut dev, 0x70, 11);
        for q in 0..2u32 {
            reg(&mut dev, 0x30, q);
            reg(&mut dev, 0x38, u32::from(input.queue_size));
            reg(&mut dev, 0x80, 0x1000 + q * 0x3000);
            reg(&mut dev, 0x90, 0x2000 + q * 0x3000);
            reg(&mut dev, 0xa0, 0x3000 + q * 0x3000);
            reg(&mut dev, 0x44, 1);
        }
        reg(&mut dev, 0x70, 15);
    }
    for op in input.ops {
        match op {
            Op::Write { offset, value } => reg(&mut dev, u64::from(offset % 0x200), value),
            Op::Read { offset, len } => {
                let mut buf = vec![0x5a; (len % 8) as usize + 1];
                dev.read(u64::from(offset % 0x200), &mut buf);
            }
            Op::Frame { data } => dev.backend.link.frames.push_back(data),
            Op::Serve => {
                dev.serve(&mem);
            }
            Op::Poke { at, data } => {
                let at = usize::from(at) % MEM;
                let data = &data[..data.len().min(MEM - at)];
                mem.write_slice(data, GuestAddress(at as u64)).unwrap();
            }
        }
    }
});
