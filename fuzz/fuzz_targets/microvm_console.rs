//! The control channel's virtio-console device and frame decoder as a hostile guest drives
//! them: guest memory the fuzzer fills, register accesses, services, bytes the host sends,
//! and whatever the guest transmits decoded as the VMM decodes it. Never panics; the device
//! never holds more than its bounds; the decoder either yields frames of at most FRAME_MAX
//! bytes or refuses the stream.
#![no_main]
use arbitrary::Arbitrary;
use contain::microvm::channel::{Decoder, FRAME_MAX};
use contain::microvm::virtio::{Console, Mmio, FROM_GUEST_MAX};
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 64 << 10;

#[derive(Arbitrary, Debug)]
enum Op {
    Write { offset: u16, value: u32 },
    Read { offset: u16, len: u8 },
    Serve,
    /// The host's clients send bytes to the guest.
    HostSends(Vec<u8>),
    /// Change guest memory between services (the driver racing the device).
    Poke { at: u16, data: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    memory: Vec<u8>,
    setup: bool,
    sizes: [u8; 2],
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let n = input.memory.len().min(MEM);
    mem.write_slice(&input.memory[..n], GuestAddress(0)).unwrap();
    let mut dev = Mmio::new(Console::default());
    let reg = |dev: &mut Mmio<Console>, off: u64, v: u32| {
        dev.write(off, &v.to_le_bytes());
    };
    if input.setup {
        reg(&mut dev, 0x70, 3);
        reg(&mut dev, 0x24, 1);
        reg(&mut dev, 0x20, 1);
        reg(&mut dev, 0x70, 11);
        for q in 0..2u32 {
            reg(&mut dev, 0x30, q);
            reg(&mut dev, 0x38, u32::from(input.sizes[q as usize]));
            reg(&mut dev, 0x80, 0x1000 + q * 0x3000);
            reg(&mut dev, 0x90, 0x2000 + q * 0x3000);
            reg(&mut dev, 0xa0, 0x3000 + q * 0x3000);
            reg(&mut dev, 0x44, 1);
        }
        reg(&mut dev, 0x70, 15);
    }
    let mut decoder = Decoder::default();
    let mut broken = false;
    for op in input.ops {
        match op {
            Op::Write { offset, value } => reg(&mut dev, u64::from(offset % 0x200), value),
            Op::Read { offset, len } => {
                let mut buf = vec![0x5a; (len % 8) as usize + 1];
                dev.read(u64::from(offset % 0x200), &mut buf);
            }
            Op::Serve => {
                dev.serve(&mem);
                assert!(dev.backend.from_guest.len() <= FROM_GUEST_MAX + (1 << 20));
                let bytes = std::mem::take(&mut dev.backend.from_guest);
                if !broken {
                    decoder.push(&bytes);
                    loop {
                        match decoder.next_frame() {
                            Ok(Some(f)) => assert!(f.data.len() <= FRAME_MAX),
                            Ok(None) => break,
                            Err(_) => {
                                broken = true;
                                break;
                            }
                        }
                    }
                }
            }
            Op::HostSends(data) => dev.backend.to_guest.extend(data),
            Op::Poke { at, data } => {
                let at = usize::from(at) % MEM;
                let data = &data[..data.len().min(MEM - at)];
                mem.write_slice(data, GuestAddress(at as u64)).unwrap();
            }
        }
    }
});
