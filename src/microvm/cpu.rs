//! The boot vCPU's registers for each entry (the state each boot protocol promises).

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;

use super::boot::{self, Entry};
use super::MicrovmError;
use crate::sys::during;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// Where the boot stack starts (grows down, below the page tables).
const BOOT_STACK: u64 = 0x8ff0;

/// A segment register as the descriptor at `index` of `boot::gdt()` makes it.
fn segment(index: u16) -> kvm_segment {
    let d = boot::gdt()[index as usize];
    let flags = (d >> 40) & 0xf0ff;
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: index * 8,
        type_: (flags & 0xf) as u8,
        present: ((flags >> 7) & 1) as u8,
        dpl: ((flags >> 5) & 3) as u8,
        db: ((flags >> 14) & 1) as u8,
        s: ((flags >> 4) & 1) as u8,
        l: ((flags >> 13) & 1) as u8,
        g: ((flags >> 15) & 1) as u8,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Put the vCPU in the state `entry` asks for.
pub fn setup(vcpu: &VcpuFd, entry: Entry) -> Result<(), MicrovmError> {
    let mut sregs: kvm_sregs = vcpu.get_sregs().map_err(during("KVM_GET_SREGS"))?;
    sregs.gdt.base = boot::GDT_ADDR;
    sregs.gdt.limit = (boot::gdt().len() * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    let data = segment(3);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    let mut tss = segment(4);
    tss.limit = 0x67;
    sregs.tr = tss;
    let mut regs = kvm_regs {
        rflags: 0x2,
        rsp: BOOT_STACK,
        rbp: BOOT_STACK,
        ..Default::default()
    };
    match entry {
        Entry::Pvh { rip, start_info } => {
            sregs.cs = segment(2);
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = rip;
            regs.rbx = start_info;
        }
        Entry::Linux64 { rip, zero_page } => {
            sregs.cs = segment(1);
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = boot::PML4_ADDR;
            sregs.cr4 = CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
            regs.rip = rip;
            regs.rsi = zero_page;
        }
    }
    vcpu.set_sregs(&sregs).map_err(during("KVM_SET_SREGS"))?;
    vcpu.set_regs(&regs).map_err(during("KVM_SET_REGS"))?;
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    Ok(vcpu.set_fpu(&fpu).map_err(during("KVM_SET_FPU"))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segments_have_the_right_modes() {
        let (c64, c32, d) = (segment(1), segment(2), segment(3));
        assert_eq!((c64.l, c64.db, c64.type_, c64.selector), (1, 0, 0xb, 0x08));
        assert_eq!((c32.l, c32.db, c32.type_, c32.selector), (0, 1, 0xb, 0x10));
        assert_eq!((d.type_, d.s, d.present, d.g), (3, 1, 1, 1));
    }
}
