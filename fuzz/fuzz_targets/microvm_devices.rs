//! The microVM's device model as the guest drives it: any sequence of port reads and writes,
//! MMIO accesses and host input. Never panics; every read is answered in full; only a write
//! to the exit port ends the VM; the console carries at most one byte per guest write.
#![no_main]
use arbitrary::Arbitrary;
use contain::microvm::devices::{Devices, Effect, COM1, EXIT_PORT, RTC_DATA, RTC_INDEX};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    In { port: u16, len: u8 },
    Out { port: u16, data: Vec<u8> },
    Com1Out { reg: u8, value: u8 },
    Com1In { reg: u8 },
    MmioRead { len: u8 },
    MmioWrite,
    Input(Vec<u8>),
    /// Select a CMOS register and read it (or write it: ignored).
    Rtc { index: u8, write: Option<u8> },
}

fuzz_target!(|ops: Vec<Op>| {
    let mut d = Devices::new(Vec::new());
    let mut writes = 0usize;
    for op in ops {
        match op {
            Op::In { port, len } => {
                let mut buf = vec![0x5a; (len % 8) as usize + 1];
                d.port_in(port, &mut buf);
            }
            Op::Out { port, data } => {
                let data = &data[..data.len().min(8)];
                writes += 1;
                let e = d.port_out(port, data);
                let exits = port == EXIT_PORT && !data.is_empty();
                assert_eq!(e == Effect::Exit(data.first().copied().unwrap_or(0)), exits);
                if exits {
                    return;
                }
            }
            Op::Com1Out { reg, value } => {
                writes += 1;
                assert_eq!(d.port_out(COM1 + (reg % 8) as u16, &[value]), Effect::None);
            }
            Op::Com1In { reg } => {
                let mut b = [0u8];
                d.port_in(COM1 + (reg % 8) as u16, &mut b);
            }
            Op::MmioRead { len } => {
                let mut buf = vec![0u8; (len % 8) as usize + 1];
                d.mmio_read(&mut buf);
                assert!(buf.iter().all(|b| *b == 0xff));
            }
            Op::MmioWrite => d.mmio_write(),
            Op::Input(bytes) => {
                let _ = d.serial.enqueue_raw_bytes(&bytes);
            }
            Op::Rtc { index, write } => {
                assert_eq!(d.port_out(RTC_INDEX, &[index]), Effect::None);
                let mut b = [0u8];
                d.port_in(RTC_INDEX, &mut b);
                assert_eq!(b[0], index);
                if let Some(v) = write {
                    assert_eq!(d.port_out(RTC_DATA, &[v]), Effect::None);
                }
                d.port_in(RTC_DATA, &mut b);
                // Register A never says "update in progress".
                assert!(index & 0x7f != 0x0a || b[0] & 0x80 == 0);
            }
        }
        assert!(d.serial.writer().len() <= writes);
    }
});
