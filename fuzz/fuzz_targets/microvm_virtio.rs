//! The virtio-blk device as a hostile driver drives it: guest memory the fuzzer fills (the
//! rings, descriptors, headers and buffers are whatever it wrote), then any sequence of
//! register reads and writes and queue services. Never panics; a read of the registers is
//! answered in full; one service returns after at most a queue's worth of requests; nothing
//! outside guest memory is touched (GuestMemory would refuse it: a panic or fault here).
#![no_main]
use arbitrary::Arbitrary;
use contain::microvm::erofs::Disk;
use contain::microvm::virtio::{Block, Mmio};
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 64 << 10;

#[derive(Arbitrary, Debug)]
enum Op {
    Write { offset: u16, value: u32 },
    WriteBytes { offset: u16, data: Vec<u8> },
    Read { offset: u16, len: u8 },
    Serve,
    /// Change guest memory between services (the driver racing the device).
    Poke { at: u16, data: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    memory: Vec<u8>,
    /// A setup that reaches DRIVER_OK first, so that the queue is served at all.
    setup: bool,
    queue_size: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let n = input.memory.len().min(MEM);
    mem.write_slice(&input.memory[..n], GuestAddress(0)).unwrap();
    let disk = Disk::in_memory((0..32 * 1024u32).map(|i| i as u8).collect());
    let mut dev = Mmio::new(Block::new(disk));
    let reg = |dev: &mut Mmio<Block>, off: u64, v: u32| {
        dev.write(off, &v.to_le_bytes());
    };
    if input.setup {
        reg(&mut dev, 0x70, 3);
        reg(&mut dev, 0x24, 1);
        reg(&mut dev, 0x20, 1);
        reg(&mut dev, 0x70, 11);
        reg(&mut dev, 0x38, u32::from(input.queue_size));
        reg(&mut dev, 0x80, 0x1000);
        reg(&mut dev, 0x90, 0x2000);
        reg(&mut dev, 0xa0, 0x3000);
        reg(&mut dev, 0x44, 1);
        reg(&mut dev, 0x70, 15);
    }
    for op in input.ops {
        match op {
            Op::Write { offset, value } => reg(&mut dev, u64::from(offset % 0x200), value),
            Op::WriteBytes { offset, data } => {
                let data = &data[..data.len().min(8)];
                dev.write(u64::from(offset % 0x200), data);
            }
            Op::Read { offset, len } => {
                let mut buf = vec![0x5a; (len % 8) as usize + 1];
                dev.read(u64::from(offset % 0x200), &mut buf);
            }
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
