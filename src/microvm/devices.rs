//! The guest's devices: COM1 (an 8250-compatible UART from `vm-superio`), a read-only CMOS
//! real-time clock and the exit port. Every other port reads as all ones and ignores writes;
//! so does MMIO (nothing is mapped there). Nothing here allocates per guest access, so a guest
//! cannot grow the VMM's memory.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

/// COM1's eight registers.
pub const COM1: u16 = 0x3f8;
/// A write of byte N here ends the VM with exit status N.
pub use super::EXIT_PORT;
/// The CMOS RTC's index port (bit 7: NMI disable, ignored) and data port.
pub const RTC_INDEX: u16 = 0x70;
pub const RTC_DATA: u16 = 0x71;

/// A minimal MC146818 CMOS clock: the host's UTC time in BCD, 24-hour mode, never mid-update,
/// valid, no interrupts; writes are ignored (the guest cannot set the clock). Without it a
/// Linux guest's clock probe reads all ones ("update in progress") and waits for seconds.
#[derive(Default)]
pub struct Rtc {
    index: u8,
}

fn bcd(v: u32) -> u8 {
    (((v / 10 % 10) << 4) | (v % 10)) as u8
}

impl Rtc {
    fn read(&self, now: chrono::DateTime<chrono::Utc>) -> u8 {
        use chrono::{Datelike, Timelike};
        match self.index & 0x7f {
            0x00 => bcd(now.second()),
            0x02 => bcd(now.minute()),
            0x04 => bcd(now.hour()),
            0x06 => bcd(now.weekday().number_from_sunday()),
            0x07 => bcd(now.day()),
            0x08 => bcd(now.month()),
            0x09 => bcd(now.year().rem_euclid(100) as u32),
            0x32 => bcd((now.year() / 100) as u32),
            // Register A: no update in progress, 32.768 kHz base, 1024 Hz rate.
            0x0a => 0x26,
            // Register B: 24-hour mode, BCD, no interrupts.
            0x0b => 0x02,
            // Register D: the battery is good and the time valid.
            0x0d => 0x80,
            _ => 0,
        }
    }
}

/// COM1's interrupt line: IRQ 4 of the in-kernel interrupt controller through an irqfd (a
/// Linux guest), or not wired (a bare guest has no interrupt controller and polls the line
/// status register).
pub struct Irq(pub Option<vmm_sys_util::eventfd::EventFd>);

impl Trigger for Irq {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        match &self.0 {
            Some(e) => e.write(1),
            None => Ok(()),
        }
    }
}

/// What a port write asks of the VMM.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    Exit(u8),
    /// The agent says where the process's stdio is (STDIO_SERIAL, STDIO_CHANNEL).
    Stdio(u8),
}

pub struct Devices<W: Write> {
    pub serial: Serial<Irq, NoEvents, W>,
    pub rtc: Rtc,
    /// Accesses to ports and addresses nothing answers (counted, for the debug log).
    pub unknown: u64,
}

impl<W: Write> Devices<W> {
    /// The devices of a bare guest (no interrupt controller).
    pub fn new(out: W) -> Self {
        Self::with_irq(out, Irq(None))
    }

    pub fn with_irq(out: W, irq: Irq) -> Self {
        Devices {
            serial: Serial::new(irq, out),
            rtc: Rtc::default(),
            unknown: 0,
        }
    }

    pub fn port_in(&mut self, port: u16, data: &mut [u8]) {
        match port {
            COM1..=0x3ff if data.len() == 1 => data[0] = self.serial.read((port - COM1) as u8),
            RTC_INDEX if data.len() == 1 => data[0] = self.rtc.index,
            RTC_DATA if data.len() == 1 => data[0] = self.rtc.read(chrono::Utc::now()),
            _ => {
                self.unknown += 1;
                data.fill(0xff);
            }
        }
    }

    /// A write the guest made; an error writing the serial output (the reader went away) is
    /// not the guest's fault and is dropped, as a real UART drops bytes on a cut line.
    pub fn port_out(&mut self, port: u16, data: &[u8]) -> Effect {
        match (port, data) {
            (EXIT_PORT, [status, ..]) => Effect::Exit(*status),
            (super::STDIO_PORT, [mode]) => Effect::Stdio(*mode),
            (COM1..=0x3ff, [value]) => {
                let _ = self.serial.write((port - COM1) as u8, *value);
                Effect::None
            }
            (RTC_INDEX, [index]) => {
                self.rtc.index = *index;
                Effect::None
            }
            (RTC_DATA, [_]) => Effect::None,
            _ => {
                self.unknown += 1;
                Effect::None
            }
        }
    }

    pub fn mmio_read(&mut self, data: &mut [u8]) {
        self.unknown += 1;
        data.fill(0xff);
    }

    pub fn mmio_write(&mut self) {
        self.unknown += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_output_and_exit_port() {
        let mut d = Devices::new(Vec::new());
        for b in b"hi\n" {
            assert_eq!(d.port_out(COM1, &[*b]), Effect::None);
        }
        let mut lsr = [0u8];
        d.port_in(COM1 + 5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "transmitter holding register empty");
        assert_eq!(d.port_out(EXIT_PORT, &[7]), Effect::Exit(7));
        assert_eq!(d.port_out(super::super::STDIO_PORT, &[2]), Effect::Stdio(2));
        assert_eq!(d.serial.writer(), b"hi\n");
    }

    #[test]
    fn rtc_reads_the_time_in_bcd_and_is_never_updating() {
        use chrono::TimeZone;
        let mut rtc = Rtc::default();
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 12, 5, 9, 47, 38)
            .unwrap();
        let mut reg = |i: u8| {
            rtc.index = i | 0x80;
            rtc.read(t)
        };
        assert_eq!(
            [
                reg(0),
                reg(2),
                reg(4),
                reg(6),
                reg(7),
                reg(8),
                reg(9),
                reg(0x32)
            ],
            [0x38, 0x47, 0x09, 0x07, 0x05, 0x12, 0x26, 0x20]
        );
        assert_eq!(reg(0x0a) & 0x80, 0, "update in progress");
        assert_eq!(reg(0x0b), 0x02, "24-hour BCD, no interrupts");
        assert_eq!(reg(0x0d), 0x80, "time valid");
        // Through the ports; writes are ignored.
        let mut d = Devices::new(Vec::new());
        assert_eq!(d.port_out(RTC_INDEX, &[0x0a]), Effect::None);
        assert_eq!(d.port_out(RTC_DATA, &[0xff]), Effect::None);
        let mut b = [0u8];
        d.port_in(RTC_DATA, &mut b);
        assert_eq!(b[0], 0x26);
        assert_eq!(d.unknown, 0);
    }

    #[test]
    fn unknown_ports_and_mmio_are_contained() {
        let mut d = Devices::new(Vec::new());
        let mut b = [0u8; 4];
        d.port_in(0x80, &mut b);
        assert_eq!(b, [0xff; 4]);
        assert_eq!(d.port_out(0x80, &[1, 2]), Effect::None);
        assert_eq!(d.port_out(EXIT_PORT, &[]), Effect::None);
        assert_eq!(
            d.port_out(COM1, &[1, 2]),
            Effect::None,
            "wide write to the UART"
        );
        d.mmio_read(&mut b);
        d.mmio_write();
        assert_eq!(d.unknown, 6);
        assert!(d.serial.writer().is_empty());
    }
}
