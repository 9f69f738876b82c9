//! The boot-parameter builder: any bytes as a kernel (ELF/PVH or bzImage or neither), any
//! initramfs and command line, into a small guest. Never panics; a successful load starts the
//! vCPU inside guest RAM with its boot information inside RAM too.
#![no_main]
use arbitrary::Arbitrary;
use contain::microvm::boot::{self, Entry, Payload};
use libfuzzer_sys::fuzz_target;
use vm_memory::{GuestAddress, GuestMemoryMmap};

#[derive(Arbitrary, Debug)]
struct Input {
    mem_mib: u8,
    kernel: Vec<u8>,
    initramfs: Option<Vec<u8>>,
    cmdline: String,
}

fuzz_target!(|i: Input| {
    let size = (4 + (i.mem_mib % 13) as u64) << 20;
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap();
    let _ = boot::write_tables(&mem);
    let payload = Payload {
        kernel: &i.kernel,
        initramfs: i.initramfs.as_deref(),
        cmdline: &i.cmdline,
    };
    match boot::load(&mem, size, &payload) {
        Ok(Entry::Pvh { rip, start_info }) => {
            assert!(start_info < size);
            let _ = rip; // a PVH note may point anywhere; the guest faults, the VMM reports it
        }
        Ok(Entry::Linux64 { rip, zero_page }) => {
            assert!(zero_page < size);
            assert!(rip < size, "64-bit entry {rip:#x} outside {size:#x} of RAM");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
