//! Classic BPF as seccomp uses it: the instruction format, the few opcodes a seccomp program
//! needs, a static checker with the kernel's rules, an interpreter (so that compiled programs
//! are tested on every rule without running a container, and fuzzed against the profile's
//! meaning) and a disassembler (golden files, `contain seccomp`).

use std::fmt::Write;

pub use crate::sys::seccomp::Insn;

/// `ld [k]`: load the 32-bit word at offset k of `struct seccomp_data`.
pub const LD_ABS: u16 = 0x20;
/// `and #k`.
pub const AND: u16 = 0x54;
/// `ja +k`.
pub const JA: u16 = 0x05;
pub const JEQ: u16 = 0x15;
pub const JGT: u16 = 0x25;
pub const JGE: u16 = 0x35;
pub const JSET: u16 = 0x45;
/// `ret #k`.
pub const RET: u16 = 0x06;

/// The kernel's limit on a program's length (BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// Offsets in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;
pub const fn off_arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
pub const fn off_arg_hi(i: u32) -> u32 {
    16 + 8 * i + 4
}

pub const fn ld(k: u32) -> Insn {
    Insn {
        code: LD_ABS,
        jt: 0,
        jf: 0,
        k,
    }
}
pub const fn and(k: u32) -> Insn {
    Insn {
        code: AND,
        jt: 0,
        jf: 0,
        k,
    }
}
pub const fn jmp(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}
pub const fn ja(k: u32) -> Insn {
    Insn {
        code: JA,
        jt: 0,
        jf: 0,
        k,
    }
}
pub const fn ret(k: u32) -> Insn {
    Insn {
        code: RET,
        jt: 0,
        jf: 0,
        k,
    }
}

/// What the kernel passes to a seccomp program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeccompData {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

impl SeccompData {
    fn word(&self, off: u32) -> Option<u32> {
        Some(match off {
            0 => self.nr,
            4 => self.arch,
            8 => self.ip as u32,
            12 => (self.ip >> 32) as u32,
            16..=60 if off % 4 == 0 => {
                let a = self.args[(off as usize - 16) / 8];
                if off % 8 == 0 {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            _ => return None,
        })
    }
}

/// Check a program with the kernel's rules for seccomp: not empty, at most 4096 instructions,
/// only the opcodes seccomp accepts (of which we use a subset), aligned loads inside
/// `seccomp_data`, every jump inside the program, and a `ret` at the end.
pub fn check(prog: &[Insn]) -> Result<(), String> {
    if prog.is_empty() || prog.len() > MAX_INSNS {
        return Err(format!("program length {} out of 1..=4096", prog.len()));
    }
    for (pc, i) in prog.iter().enumerate() {
        let rest = prog.len() - pc - 1;
        match i.code {
            LD_ABS if i.k % 4 != 0 || i.k >= 64 => {
                return Err(format!("{pc}: load outside seccomp_data: {}", i.k))
            }
            LD_ABS | AND | RET => {}
            JA if i.k as usize >= rest => return Err(format!("{pc}: ja out of program")),
            JA => {}
            JEQ | JGT | JGE | JSET if i.jt as usize >= rest || i.jf as usize >= rest => {
                return Err(format!("{pc}: jump out of program"))
            }
            JEQ | JGT | JGE | JSET => {}
            c => return Err(format!("{pc}: opcode {c:#x} not used by seccomp programs")),
        }
    }
    match prog.last() {
        Some(i) if i.code == RET => Ok(()),
        _ => Err("program does not end with ret".into()),
    }
}

/// Run a program that passed [`check`] on `data`; returns the seccomp return value.
pub fn run(prog: &[Insn], data: &SeccompData) -> Result<u32, String> {
    run_counted(prog, data).map(|(k, _)| k)
}

/// [`run`], also returning the number of instructions executed (the cost the filter adds to
/// the syscall).
pub fn run_counted(prog: &[Insn], data: &SeccompData) -> Result<(u32, usize), String> {
    let mut a: u32 = 0;
    let mut pc = 0usize;
    let mut steps = 0usize;
    loop {
        let i = prog.get(pc).ok_or("fell off the end of the program")?;
        pc += 1;
        steps += 1;
        match i.code {
            LD_ABS => a = data.word(i.k).ok_or("load outside seccomp_data")?,
            AND => a &= i.k,
            JA => pc += i.k as usize,
            JEQ | JGT | JGE | JSET => {
                let taken = match i.code {
                    JEQ => a == i.k,
                    JGT => a > i.k,
                    JGE => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += if taken { i.jt } else { i.jf } as usize;
            }
            RET => return Ok((i.k, steps)),
            c => return Err(format!("bad opcode {c:#x}")),
        }
    }
}

/// A readable listing, one instruction per line with absolute jump targets.
pub fn disassemble(prog: &[Insn]) -> String {
    let mut s = String::new();
    for (pc, i) in prog.iter().enumerate() {
        let next = pc + 1;
        let _ = match i.code {
            LD_ABS => writeln!(s, "{pc:04}: ld [{}]", i.k),
            AND => writeln!(s, "{pc:04}: and #{:#x}", i.k),
            JA => writeln!(s, "{pc:04}: ja {}", next + i.k as usize),
            RET => writeln!(s, "{pc:04}: ret {}", action_name(i.k)),
            c => {
                let op = match c {
                    JEQ => "jeq",
                    JGT => "jgt",
                    JGE => "jge",
                    JSET => "jset",
                    _ => "???",
                };
                writeln!(
                    s,
                    "{pc:04}: {op} #{:#x} {} {}",
                    i.k,
                    next + i.jt as usize,
                    next + i.jf as usize
                )
            }
        };
    }
    s
}

/// Names of seccomp return values, for listings and messages.
pub fn action_name(k: u32) -> String {
    let data = k & 0xffff;
    match k & 0xffff_0000 {
        0x8000_0000 => "KILL_PROCESS".into(),
        0 => "KILL_THREAD".into(),
        0x0003_0000 => "TRAP".into(),
        0x0005_0000 => format!("ERRNO({data})"),
        0x7fc0_0000 => "USER_NOTIF".into(),
        0x7ff0_0000 => format!("TRACE({data})"),
        0x7ffc_0000 => "LOG".into(),
        0x7fff_0000 => "ALLOW".into(),
        _ => format!("{k:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_follows_jumps_and_masks() {
        let prog = [
            ld(off_arg_lo(0)),
            and(0xff),
            jmp(JEQ, 7, 0, 1),
            ret(1),
            jmp(JGT, 9, 1, 0),
            ret(2),
            ja(0),
            ret(3),
        ];
        check(&prog).unwrap();
        let d = |a0| SeccompData {
            args: [a0, 0, 0, 0, 0, 0],
            ..Default::default()
        };
        assert_eq!(run(&prog, &d(0x107)).unwrap(), 1);
        assert_eq!(run(&prog, &d(5)).unwrap(), 2);
        assert_eq!(run(&prog, &d(10)).unwrap(), 3);
        assert_eq!(run_counted(&prog, &d(0x107)).unwrap(), (1, 4));
    }

    #[test]
    fn checker_refuses_what_the_kernel_refuses() {
        assert!(check(&[]).is_err());
        assert!(check(&[ld(2), ret(0)]).is_err());
        assert!(check(&[ld(64), ret(0)]).is_err());
        assert!(check(&[jmp(JEQ, 0, 1, 0), ret(0)]).is_err());
        assert!(check(&[ja(1), ret(0)]).is_err());
        assert!(check(&[ld(0)]).is_err());
        assert!(check(&vec![ret(0); MAX_INSNS + 1]).is_err());
    }
}
