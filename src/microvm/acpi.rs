//! The ACPI tables of a Linux guest's machine: how its kernel finds the processors, the
//! IOAPIC and the virtio-mmio devices (a kernel without VIRTIO_MMIO_CMDLINE_DEVICES, as
//! Debian's, learns of them only from the DSDT: devices `LNRO0005` with their registers and
//! interrupt). The platform is ACPI's "hardware-reduced" one, as Firecracker's: no PM timer,
//! no SCI, no legacy PIC; the local APIC timer runs in TSC-deadline mode (offered in CPUID).
//!
//! The tables sit in the BIOS area at [`RSDP_ADDR`] (reserved in the e820 map), where the
//! kernel looks for the RSDP when the boot protocol does not give its address.

use acpi_tables::{aml, fadt, madt, rsdp, sdt, xsdt, Aml};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::mptable::{IOAPIC_ADDR, LAPIC_ADDR};
use super::MicrovmError;

/// Where the RSDP goes: the start of the area the kernel scans (0xe0000-0xfffff).
pub const RSDP_ADDR: u64 = 0xe_0000;
/// The end of that area: the tables must fit below it.
const AREA_END: u64 = 0x10_0000;
const OEM_ID: [u8; 6] = *b"CNTAIN";
/// COM1's ports and interrupt, as the DSDT describes them.
const COM1_PORT: u16 = 0x3f8;
const COM1_IRQ: u32 = 4;
const OEM_TABLE: [u8; 8] = *b"CONTAIN ";

/// A virtio-mmio device as the DSDT describes it.
#[derive(Debug, Clone, Copy)]
pub struct MmioDevice {
    pub base: u64,
    pub size: u64,
    /// Its interrupt (an IOAPIC pin, edge-triggered, active high).
    pub irq: u32,
}

/// The tables for `cpus` processors and `devices`, as (address, bytes) to place in memory.
pub fn tables(cpus: u8, devices: &[MmioDevice]) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut at = RSDP_ADDR + 64;
    let mut place = |bytes: Vec<u8>| {
        let addr = at;
        at = (at + bytes.len() as u64).next_multiple_of(16);
        out.push((addr, bytes));
        addr
    };
    let dsdt_addr = place(dsdt(devices)?);

    let mut f = fadt::FADTBuilder::new(OEM_ID, OEM_TABLE, 1)
        .dsdt_64(dsdt_addr)
        .flag(fadt::Flags::HwReducedAcpi);
    // No VGA, no MSI (there is no PCI), ASPM off; the CMOS clock is there (bit 5 clear),
    // with its century at register 0x32.
    f.iapc_boot_arch = ((1u16 << 2) | (1 << 3) | (1 << 4)).into();
    f.century = 0x32;
    let fadt_addr = place(bytes_of(&f.finalize()));

    let mut m = madt::MADT::new(
        OEM_ID,
        OEM_TABLE,
        1,
        madt::LocalInterruptController::Address(LAPIC_ADDR),
    );
    for id in 0..cpus {
        m.add_structure(madt::ProcessorLocalApic::new(
            id,
            id,
            madt::EnabledStatus::Enabled,
        ));
    }
    m.add_structure(madt::IoApic::new(cpus + 1, IOAPIC_ADDR, 0));
    let madt_addr = place(bytes_of(&m));

    let mut x = xsdt::XSDT::new(OEM_ID, OEM_TABLE, 1);
    x.add_entry(fadt_addr);
    x.add_entry(madt_addr);
    let xsdt_addr = place(bytes_of(&x));
    if at > AREA_END {
        return Err(format!(
            "the ACPI tables need {} bytes, more than the BIOS area holds",
            at - RSDP_ADDR
        ));
    }
    out.push((RSDP_ADDR, bytes_of(&rsdp::Rsdp::new(OEM_ID, xsdt_addr))));
    Ok(out)
}

fn bytes_of(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// The DSDT: COM1 and one device `\_SB.Vnnn` per virtio-mmio device.
fn dsdt(devices: &[MmioDevice]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let names: Vec<String> = (0..devices.len()).map(|i| format!("V{i:03}")).collect();
    if devices.len() > 1000 {
        return Err("more than 1000 virtio devices".into());
    }
    let hid = aml::Name::new("_HID".into(), &"LNRO0005");
    let uids: Vec<aml::Name> = (0..devices.len())
        .map(|i| aml::Name::new("_UID".into(), &(i as u32)))
        .collect();
    let resources: Vec<(aml::Memory32Fixed, aml::Interrupt)> = devices
        .iter()
        .map(|d| {
            Ok((
                aml::Memory32Fixed::new(
                    true,
                    u32::try_from(d.base).map_err(|_| "a device above 4 GiB")?,
                    u32::try_from(d.size).map_err(|_| "a device larger than 4 GiB")?,
                ),
                aml::Interrupt::new(true, true, false, false, d.irq),
            ))
        })
        .collect::<Result<_, &str>>()?;
    let templates: Vec<aml::ResourceTemplate> = resources
        .iter()
        .map(|(m, i)| aml::ResourceTemplate::new(vec![m, i]))
        .collect();
    let crs: Vec<aml::Name> = templates
        .iter()
        .map(|t| aml::Name::new("_CRS".into(), t))
        .collect();
    let devs: Vec<aml::Device> = (0..devices.len())
        .map(|i| aml::Device::new(names[i].as_str().into(), vec![&hid, &uids[i], &crs[i]]))
        .collect();
    // COM1, so that a hardware-reduced kernel (which sets up no legacy ISA interrupts of its
    // own) maps IRQ 4 to its IOAPIC pin: without it the console's transmit interrupt never
    // arrives and what processes write to the console is lost (printk, which polls, is not).
    let com1_hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
    let com1_uid = aml::Name::new("_UID".into(), &0u32);
    let com1_io = aml::IO::new(COM1_PORT, COM1_PORT, 1, 8);
    let com1_irq = aml::Interrupt::new(true, true, false, false, COM1_IRQ);
    let com1_res = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    let com1_crs = aml::Name::new("_CRS".into(), &com1_res);
    let com1 = aml::Device::new("COM1".into(), vec![&com1_hid, &com1_uid, &com1_crs]);
    let mut children: Vec<&dyn Aml> = vec![&com1];
    children.extend(devs.iter().map(|d| d as &dyn Aml));
    aml::Scope::new("_SB_".into(), children).to_aml_bytes(&mut body);
    let mut table = sdt::Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE, 1);
    table.append_slice(&body);
    Ok(table.as_slice().to_vec())
}

/// Write the tables into guest memory.
pub fn write(mem: &GuestMemoryMmap, cpus: u8, devices: &[MmioDevice]) -> Result<(), MicrovmError> {
    for (addr, bytes) in tables(cpus, devices).map_err(MicrovmError::Guest)? {
        mem.write_slice(&bytes, GuestAddress(addr))
            .map_err(|e| MicrovmError::Guest(format!("write the ACPI tables: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |s, x| s.wrapping_add(*x))
    }

    #[test]
    fn tables_checksum_and_point_at_each_other() {
        let dev = MmioDevice {
            base: 0xd000_0000,
            size: 0x1000,
            irq: 5,
        };
        let t = tables(2, &[dev]).unwrap();
        let at = |addr: u64| t.iter().find(|(a, _)| *a == addr).map(|(_, b)| b.clone());
        let rsdp = at(RSDP_ADDR).expect("the RSDP at the scanned address");
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0);
        assert_eq!(sum(&rsdp), 0);
        let xsdt_addr = u64::from_le_bytes(rsdp[24..32].try_into().unwrap());
        let xsdt = at(xsdt_addr).unwrap();
        assert_eq!(&xsdt[..4], b"XSDT");
        assert_eq!(sum(&xsdt), 0);
        let mut sigs = Vec::new();
        for e in xsdt[36..].chunks(8) {
            let table = at(u64::from_le_bytes(e.try_into().unwrap())).unwrap();
            assert_eq!(sum(&table), 0, "{:?}", &table[..4]);
            assert_eq!(
                u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize,
                table.len()
            );
            sigs.push(table[..4].to_vec());
            if &table[..4] == b"FACP" {
                let flags = u32::from_le_bytes(table[112..116].try_into().unwrap());
                assert_ne!(flags & (1 << 20), 0, "hardware-reduced");
                let dsdt = at(u64::from_le_bytes(table[140..148].try_into().unwrap())).unwrap();
                assert_eq!(&dsdt[..4], b"DSDT");
                assert_eq!(sum(&dsdt), 0);
                let text = String::from_utf8_lossy(&dsdt);
                assert!(text.contains("LNRO0005"), "{dsdt:?}");
                assert!(text.contains("COM1"), "{dsdt:?}");
                // COM1's ports: I/O descriptor 0x47, decode16, 0x3f8..0x3f8, 8 ports.
                let io = [0x47, 1, 0xf8, 3, 0xf8, 3, 1, 8];
                assert!(dsdt.windows(io.len()).any(|w| w == io), "{dsdt:?}");
                // Memory32Fixed: descriptor 0x86, length 9, read-write, base, size.
                let mem = [0x86, 9, 0, 1, 0, 0, 0, 0xd0, 0, 0x10, 0, 0];
                assert!(dsdt.windows(mem.len()).any(|w| w == mem), "{dsdt:?}");
            }
        }
        assert_eq!(sigs, [b"FACP".to_vec(), b"APIC".to_vec()]);
    }
}
