//! Direct kernel boot, no firmware: the image format is recognised from its bytes, loaded with
//! `linux-loader`, and the boot information each protocol defines is written into guest memory:
//!
//! * an ELF kernel with a PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`): an `hvm_start_info` with
//!   the memory map, the command line and the initramfs as the first module; the vCPU starts in
//!   32-bit protected mode, paging off, `%ebx` = the start info;
//! * a bzImage (boot protocol >= 2.06 with a 64-bit entry): the zero page (`boot_params`) with
//!   the setup header from the image, the e820 map, the command line and the initramfs; the vCPU
//!   starts in long mode on identity-mapped page tables at the 64-bit entry (load address +
//!   0x200), `%rsi` = the zero page.
//!
//! Guest physical layout (all below 1 MiB, as Firecracker lays it out):
//!
//! | address | what |
//! |---|---|
//! | 0x500 | GDT |
//! | 0x6000 | PVH start info, its module list and memory map |
//! | 0x7000 | zero page (bzImage) |
//! | 0x9000.. | page tables (PML4, PDPT, PD: the first GiB, 2 MiB pages) |
//! | 0x20000 | command line |
//! | 0x100000.. | kernel |
//! | top of memory | initramfs, page aligned |

use std::io::Cursor;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::MicrovmError;

pub const GDT_ADDR: u64 = 0x500;
const START_INFO_ADDR: u64 = 0x6000;
const ZERO_PAGE_ADDR: u64 = 0x7000;
pub const PML4_ADDR: u64 = 0x9000;
const CMDLINE_ADDR: u64 = 0x20000;
/// The largest command line accepted (Linux's COMMAND_LINE_SIZE on x86).
pub use super::CMDLINE_MAX;
/// Start of high memory: kernels load here or above.
pub const HIGHMEM: u64 = 0x10_0000;
/// End of conventional memory below 1 MiB (the EBDA starts here).
const EBDA_START: u64 = 0x9_fc00;
const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_BOOT_FLAG: u16 = 0xaa55;
/// xloadflags: the image has a 64-bit entry point at load address + 0x200.
const XLF_KERNEL_64: u16 = 1;
const LOADER_UNDEFINED: u8 = 0xff;

/// The kernel image formats the VMM boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ELF with a PVH entry note.
    Pvh,
    /// bzImage, Linux 64-bit boot protocol.
    BzImage,
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Pvh => "ELF (PVH entry)",
            Format::BzImage => "bzImage (64-bit boot protocol)",
        })
    }
}

/// Recognise a kernel image from its first bytes (no loading).
pub fn detect(image: &[u8]) -> Result<Format, String> {
    if image.starts_with(b"\x7fELF") {
        return Ok(Format::Pvh);
    }
    if image.get(0x202..0x206) == Some(&KERNEL_HDR_MAGIC.to_le_bytes()[..]) {
        return Ok(Format::BzImage);
    }
    Err(format!(
        "not a kernel this VMM boots ({} bytes; expected an ELF image with a PVH entry note or a \
         bzImage with the \"HdrS\" boot header)",
        image.len()
    ))
}

/// Where the vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// 32-bit protected mode, paging off, `%ebx` = start info.
    Pvh { rip: u64, start_info: u64 },
    /// 64-bit mode on identity-mapped page tables, `%rsi` = zero page.
    Linux64 { rip: u64, zero_page: u64 },
}

/// What goes into the guest besides the kernel.
pub struct Payload<'a> {
    pub kernel: &'a [u8],
    pub initramfs: Option<&'a [u8]>,
    pub cmdline: &'a str,
}

/// The e820 map of a guest with `mem` bytes of RAM from address 0.
fn e820(mem: u64) -> [(u64, u64, u32); 3] {
    [
        (0, EBDA_START, E820_RAM),
        (EBDA_START, HIGHMEM - EBDA_START, E820_RESERVED),
        (HIGHMEM, mem - HIGHMEM, E820_RAM),
    ]
}

/// Load the kernel, the command line and the initramfs into `mem` (of `size` bytes) and write
/// the boot information; returns where the vCPU starts.
pub fn load(mem: &GuestMemoryMmap, size: u64, p: &Payload<'_>) -> Result<Entry, MicrovmError> {
    let format = detect(p.kernel).map_err(MicrovmError::Image)?;
    if p.cmdline.len() >= CMDLINE_MAX || p.cmdline.contains('\0') {
        return Err(MicrovmError::Config(format!(
            "kernel command line: at most {} bytes and no NUL byte",
            CMDLINE_MAX - 1
        )));
    }
    let mut image = Cursor::new(p.kernel);
    let loaded = match format {
        Format::Pvh => Elf::load(mem, None, &mut image, Some(GuestAddress(HIGHMEM))),
        Format::BzImage => BzImage::load(mem, None, &mut image, Some(GuestAddress(HIGHMEM))),
    }
    .map_err(|e| MicrovmError::Image(format!("load the {format} kernel: {e}")))?;
    let mut cmdline = p.cmdline.as_bytes().to_vec();
    cmdline.push(0);
    mem.write_slice(&cmdline, GuestAddress(CMDLINE_ADDR))
        .map_err(|e| MicrovmError::Guest(format!("write the command line: {e}")))?;
    let initrd = match p.initramfs {
        None => None,
        Some(data) => {
            let len = data.len() as u64;
            // A bzImage says how high its initrd may sit (initrd_addr_max).
            let top = loaded
                .setup_header
                .as_ref()
                .filter(|h| h.initrd_addr_max != 0)
                .map_or(size, |h| size.min(u64::from(h.initrd_addr_max) + 1));
            let addr = top
                .checked_sub(len)
                .map(|a| a & !0xfff)
                .filter(|a| *a >= loaded.kernel_end)
                .ok_or_else(|| {
                    MicrovmError::Guest(format!(
                        "the initramfs ({len} bytes) does not fit in guest memory ({size} bytes) \
                         above the kernel (which ends at {:#x})",
                        loaded.kernel_end
                    ))
                })?;
            mem.write_slice(data, GuestAddress(addr))
                .map_err(|e| MicrovmError::Guest(format!("write the initramfs: {e}")))?;
            Some((addr, len))
        }
    };
    match format {
        Format::Pvh => {
            let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap else {
                return Err(MicrovmError::Image(
                    "the ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); build it \
                     with CONFIG_PVH=y or boot its bzImage"
                        .into(),
                ));
            };
            write_start_info(mem, size, initrd)?;
            Ok(Entry::Pvh {
                rip: entry.raw_value(),
                start_info: START_INFO_ADDR,
            })
        }
        Format::BzImage => {
            let hdr = loaded
                .setup_header
                .ok_or_else(|| MicrovmError::Image("the bzImage has no setup header".into()))?;
            if hdr.version < 0x0206 || hdr.xloadflags & XLF_KERNEL_64 == 0 {
                return Err(MicrovmError::Image(format!(
                    "the bzImage has boot protocol {}.{:02} without a 64-bit entry point \
                     (needs 2.06 or later and XLF_KERNEL_64)",
                    hdr.version >> 8,
                    hdr.version & 0xff
                )));
            }
            write_zero_page(mem, size, hdr, initrd)?;
            Ok(Entry::Linux64 {
                rip: loaded.kernel_load.raw_value() + 0x200,
                zero_page: ZERO_PAGE_ADDR,
            })
        }
    }
}

fn write_start_info(
    mem: &GuestMemoryMmap,
    size: u64,
    initrd: Option<(u64, u64)>,
) -> Result<(), MicrovmError> {
    let map: Vec<hvm_memmap_table_entry> = e820(size)
        .iter()
        .map(|&(addr, size, type_)| hvm_memmap_table_entry {
            addr,
            size,
            type_,
            reserved: 0,
        })
        .collect();
    let info_size = std::mem::size_of::<hvm_start_info>() as u64;
    let modlist_addr = GuestAddress(START_INFO_ADDR + info_size);
    let memmap_addr =
        GuestAddress(START_INFO_ADDR + info_size + std::mem::size_of::<hvm_modlist_entry>() as u64);
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE_ADDR,
        memmap_paddr: memmap_addr.raw_value(),
        memmap_entries: map.len() as u32,
        nr_modules: u32::from(initrd.is_some()),
        modlist_paddr: if initrd.is_some() {
            modlist_addr.raw_value()
        } else {
            0
        },
        ..Default::default()
    };
    let mut params = BootParams::new::<hvm_start_info>(&info, GuestAddress(START_INFO_ADDR));
    if let Some((paddr, size)) = initrd {
        params.set_modules(
            &[hvm_modlist_entry {
                paddr,
                size,
                ..Default::default()
            }],
            modlist_addr,
        );
    }
    params.set_sections(&map, memmap_addr);
    PvhBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| MicrovmError::Guest(format!("write the PVH start info: {e}")))
}

fn write_zero_page(
    mem: &GuestMemoryMmap,
    size: u64,
    hdr: linux_loader::loader::bootparam::setup_header,
    initrd: Option<(u64, u64)>,
) -> Result<(), MicrovmError> {
    let mut zp = boot_params {
        hdr,
        ..Default::default()
    };
    zp.hdr.type_of_loader = LOADER_UNDEFINED;
    zp.hdr.boot_flag = KERNEL_BOOT_FLAG;
    zp.hdr.header = KERNEL_HDR_MAGIC;
    zp.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    zp.hdr.cmdline_size = CMDLINE_MAX as u32;
    if let Some((addr, len)) = initrd {
        zp.hdr.ramdisk_image = addr as u32;
        zp.hdr.ramdisk_size = len as u32;
        zp.ext_ramdisk_image = (addr >> 32) as u32;
        zp.ext_ramdisk_size = (len >> 32) as u32;
    }
    for (i, &(addr, size, kind)) in e820(size).iter().enumerate() {
        zp.e820_table[i] = boot_e820_entry {
            addr,
            size,
            r#type: kind,
        };
        zp.e820_entries = i as u8 + 1;
    }
    let params = BootParams::new::<boot_params>(&zp, GuestAddress(ZERO_PAGE_ADDR));
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(&params, mem)
        .map_err(|e| MicrovmError::Guest(format!("write the zero page: {e}")))
}

/// Write the GDT (null, 64-bit code, 32-bit code, data, TSS) at GDT_ADDR and identity page
/// tables for the first GiB at PML4_ADDR.
pub fn write_tables(mem: &GuestMemoryMmap) -> Result<(), MicrovmError> {
    for (i, entry) in gdt().iter().enumerate() {
        mem.write_obj(*entry, GuestAddress(GDT_ADDR + 8 * i as u64))
            .map_err(|e| MicrovmError::Guest(format!("write the GDT: {e}")))?;
    }
    let (pdpt, pd) = (PML4_ADDR + 0x1000, PML4_ADDR + 0x2000);
    let w = |v: u64, at: u64| {
        mem.write_obj(v, GuestAddress(at))
            .map_err(|e| MicrovmError::Guest(format!("write the page tables: {e}")))
    };
    w(pdpt | 0x3, PML4_ADDR)?; // present | writable
    w(pd | 0x3, pdpt)?;
    for i in 0..512u64 {
        w((i << 21) | 0x83, pd + 8 * i)?; // present | writable | 2 MiB page
    }
    Ok(())
}

/// GDT entries: index 1 = 64-bit code (selector 0x08), 2 = 32-bit code (0x10), 3 = data
/// (0x18), 4 = TSS (0x20).
pub fn gdt() -> [u64; 5] {
    [
        0,
        descriptor(0xa09b, 0, 0xfffff),
        descriptor(0xc09b, 0, 0xfffff),
        descriptor(0xc093, 0, 0xfffff),
        descriptor(0x808b, 0, 0xfffff),
    ]
}

/// A segment descriptor from (flags, base, limit) in the layout of the Intel SDM 3.4.5.
pub const fn descriptor(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_recognised_and_junk_refused() {
        assert_eq!(detect(b"\x7fELF\x02\x01"), Ok(Format::Pvh));
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        assert_eq!(detect(&bz), Ok(Format::BzImage));
        assert!(detect(b"#!/bin/sh\n").unwrap_err().contains("not a kernel"));
        assert!(detect(&[]).is_err());
    }

    #[test]
    fn descriptors_match_the_sdm() {
        // The flat 64-bit code segment Linux and Firecracker use.
        assert_eq!(descriptor(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(descriptor(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
    }

    #[test]
    fn e820_covers_memory_without_overlap() {
        let m = e820(64 << 20);
        assert_eq!(m[2].0 + m[2].1, 64 << 20);
        assert_eq!(m[0].0 + m[0].1, m[1].0);
        assert_eq!(m[1].0 + m[1].1, m[2].0);
    }
}
