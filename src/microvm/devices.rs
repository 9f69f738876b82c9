//! The guest's devices: COM1 (an 8250-compatible UART from `vm-superio`) and the exit port.
//! Every other port reads as all ones and ignores writes; so does MMIO (nothing is mapped
//! there). Nothing here allocates per guest access, so a guest cannot grow the VMM's memory.

use std::io::Write;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

/// COM1's eight registers.
pub const COM1: u16 = 0x3f8;
/// A write of byte N here ends the VM with exit status N.
pub const EXIT_PORT: u16 = 0xf4;

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
}

pub struct Devices<W: Write> {
    pub serial: Serial<Irq, NoEvents, W>,
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
            unknown: 0,
        }
    }

    pub fn port_in(&mut self, port: u16, data: &mut [u8]) {
        match port {
            COM1..=0x3ff if data.len() == 1 => data[0] = self.serial.read((port - COM1) as u8),
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
            (COM1..=0x3ff, [value]) => {
                let _ = self.serial.write((port - COM1) as u8, *value);
                Effect::None
            }
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
        assert_eq!(d.serial.writer(), b"hi\n");
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
