//! The BPF checker and interpreter on arbitrary programs: a program the checker accepts runs
//! to a `ret` without panicking or reading outside seccomp_data.
#![no_main]
use contain::seccomp::bpf::{self, Insn, SeccompData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(u16, u8, u8, u32)>, u32, u32, [u64; 6])| {
    let (insns, nr, arch, args) = input;
    let prog: Vec<Insn> = insns
        .into_iter()
        .map(|(code, jt, jf, k)| Insn { code, jt, jf, k })
        .collect();
    if bpf::check(&prog).is_ok() {
        let d = SeccompData {
            nr,
            arch,
            ip: 0,
            args,
        };
        bpf::run(&prog, &d).expect("a checked program runs to a ret");
        let _ = bpf::disassemble(&prog);
    }
});
