//! The Intel MultiProcessor table (MP spec 1.4) of a Linux guest's machine: how a kernel
//! without ACPI tables finds its processors, its IOAPIC and how the ISA interrupts reach it.
//! Written at the start of the EBDA (the last KiB of base memory), where Linux looks for it.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Where the floating pointer and the table go (the e820 map reserves it).
pub const MPTABLE_ADDR: u64 = 0x9_fc00;
/// The local APICs and the IOAPIC, where KVM's in-kernel irqchip puts them.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// The most processors the table (and the VMM) describe: the table must fit in its KiB.
pub use super::MAX_CPUS;
/// The legacy ISA interrupts routed to the IOAPIC's pins of the same number.
const ISA_IRQS: u8 = 16;

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b)))
}

/// The table for `cpus` processors (APIC ids 0..cpus, the first the bootstrap processor),
/// as bytes to place at MPTABLE_ADDR.
pub fn table(cpus: u8) -> Result<Vec<u8>, String> {
    if cpus == 0 || cpus > MAX_CPUS {
        return Err(format!("{cpus} vCPUs: the microVM runs 1 to {MAX_CPUS}"));
    }
    let ioapic_id = cpus + 1;
    let mut entries: Vec<u8> = Vec::new();
    let mut count: u16 = 0;
    for id in 0..cpus {
        // Processor: type 0, APIC id, APIC version, enabled (+ bootstrap for the first),
        // CPU signature (family 6), features (FPU, APIC), reserved.
        entries.extend([0, id, 0x14, 1 | (u8::from(id == 0) << 1)]);
        entries.extend(0x600u32.to_le_bytes());
        entries.extend(0x201u32.to_le_bytes());
        entries.extend([0u8; 8]);
        count += 1;
    }
    // Bus 0: ISA.
    entries.extend([1, 0]);
    entries.extend(b"ISA   ");
    // The IOAPIC: version 0x11, enabled.
    entries.extend([2, ioapic_id, 0x11, 1]);
    entries.extend(IOAPIC_ADDR.to_le_bytes());
    count += 2;
    // ISA IRQ n -> IOAPIC pin n (type INT, conforming polarity and trigger).
    for irq in 0..ISA_IRQS {
        entries.extend([3, 0, 0, 0, 0, irq, ioapic_id, irq]);
        count += 1;
    }
    // Every local APIC: LINT0 is the 8259's ExtINT, LINT1 the NMI.
    entries.extend([4, 3, 0, 0, 0, 0, 0xff, 0]);
    entries.extend([4, 1, 0, 0, 0, 0, 0xff, 1]);
    count += 2;

    let table_addr = MPTABLE_ADDR as u32 + 16;
    let mut header: Vec<u8> = Vec::new();
    header.extend(b"PCMP");
    let len = 44 + entries.len() as u16;
    header.extend(len.to_le_bytes());
    header.extend([4, 0]); // spec revision 1.4, checksum (below)
    header.extend(b"CONTAIN ");
    header.extend(b"microVM     ");
    header.extend([0u8; 4]); // no OEM table
    header.extend([0u8; 2]);
    header.extend(count.to_le_bytes());
    header.extend(LAPIC_ADDR.to_le_bytes());
    header.extend([0u8; 4]); // no extended table; reserved
    let mut config = header;
    config.extend(entries);
    config[7] = checksum(&config);

    let mut out = Vec::with_capacity(16 + config.len());
    out.extend(b"_MP_");
    out.extend(table_addr.to_le_bytes());
    out.extend([1, 4, 0]); // length in 16-byte units, revision 1.4, checksum (below)
    out.extend([0u8; 5]); // the configuration table is present; no IMCR
    out[10] = checksum(&out);
    out.extend(config);
    if out.len() > 1024 {
        return Err(format!(
            "the MP table for {cpus} vCPUs does not fit in the EBDA"
        ));
    }
    Ok(out)
}

/// Write the table for `cpus` processors into guest memory.
pub fn write(mem: &GuestMemoryMmap, cpus: u8) -> Result<(), super::MicrovmError> {
    use super::MicrovmError::Guest;
    mem.write_slice(&table(cpus).map_err(Guest)?, GuestAddress(MPTABLE_ADDR))
        .map_err(|e| Guest(format!("write the MP table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_well_formed() {
        for cpus in [1, 2, MAX_CPUS] {
            let t = table(cpus).unwrap();
            assert_eq!(&t[..4], b"_MP_");
            assert_eq!(t[..16].iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
            let addr = u32::from_le_bytes(t[4..8].try_into().unwrap());
            assert_eq!(addr, MPTABLE_ADDR as u32 + 16);
            let cfg = &t[16..];
            assert_eq!(&cfg[..4], b"PCMP");
            let len = u16::from_le_bytes([cfg[4], cfg[5]]) as usize;
            assert_eq!(len, cfg.len());
            assert_eq!(cfg.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
            // Walk the entries as a kernel does: each type has its size.
            let (mut at, mut cpus_seen, mut n) = (44, 0, 0);
            while at < len {
                at += match cfg[at] {
                    0 => {
                        cpus_seen += 1;
                        20
                    }
                    1..=4 => 8,
                    t => panic!("entry type {t}"),
                };
                n += 1;
            }
            assert_eq!(at, len);
            assert_eq!(n, u16::from_le_bytes([cfg[34], cfg[35]]));
            assert_eq!(cpus_seen, cpus);
        }
        assert!(table(0).is_err() && table(MAX_CPUS + 1).is_err());
    }
}
