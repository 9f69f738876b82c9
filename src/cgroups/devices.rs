//! `linux.resources.devices` on cgroup v2: the rules (applied in order, with cgroup v1's
//! semantics) reduced to a default and its exceptions, then compiled to a
//! BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup.
//!
//! cgroup v1 semantics, which the rules were written for: `a` switches the default (allow or
//! deny everything) and clears the exceptions; any other rule that agrees with the default
//! takes its access bits out of the matching exceptions, one that disagrees adds them. With
//! a deny default an access is allowed only if one exception covers every bit asked for; with
//! an allow default it is denied if an exception covers any of them.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use crate::sys::bpf::{self, Insn};

/// Access bits as the kernel passes them (BPF_DEVCG_ACC_*).
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;
/// Device types (BPF_DEVCG_DEV_*).
pub const BLOCK: u32 = 1;
pub const CHAR: u32 = 2;

/// One rule in cgroup v1's text form's terms: type (None: all), major, minor (None: any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub typ: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

/// Parse "c 1:3 rwm", "b *:* m", "a *:* rwm" (what the v1 path writes).
pub fn parse_rule(s: &str) -> Result<Rule, String> {
    let bad = || format!("device rule {s:?}");
    let mut it = s.split_whitespace();
    let typ = match it.next().ok_or_else(bad)? {
        "a" => None,
        "c" => Some(CHAR),
        "b" => Some(BLOCK),
        _ => return Err(bad()),
    };
    let (maj, min) = it.next().ok_or_else(bad)?.split_once(':').ok_or_else(bad)?;
    let num = |n: &str| -> Result<Option<u32>, String> {
        if n == "*" {
            Ok(None)
        } else {
            n.parse().map(Some).map_err(|_| bad())
        }
    };
    let mut access = 0;
    for c in it.next().unwrap_or("rwm").chars() {
        access |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => return Err(bad()),
        };
    }
    Ok(Rule {
        typ,
        major: num(maj)?,
        minor: num(min)?,
        access,
    })
}

/// The default and exceptions the rules leave, as cgroup v1 would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub default_allow: bool,
    pub exceptions: Vec<Rule>,
}

/// Apply (allow?, rule) pairs in order, starting from v1's allow-all.
pub fn emulate(rules: &[(bool, Rule)]) -> Effective {
    let mut e = Effective {
        default_allow: true,
        exceptions: Vec::new(),
    };
    for &(allow, r) in rules {
        if r.typ.is_none() {
            e.default_allow = allow;
            e.exceptions.clear();
            continue;
        }
        let same = |x: &Rule| x.typ == r.typ && x.major == r.major && x.minor == r.minor;
        if allow == e.default_allow {
            for x in e.exceptions.iter_mut().filter(|x| same(x)) {
                x.access &= !r.access;
            }
            e.exceptions.retain(|x| x.access != 0);
        } else if let Some(x) = e.exceptions.iter_mut().find(|x| same(x)) {
            x.access |= r.access;
        } else {
            e.exceptions.push(r);
        }
    }
    e
}

/// A rule in cgroup v1's text form ("c 1:3 rwm").
pub fn format_rule(r: &Rule) -> String {
    let num = |n: Option<u32>| n.map_or_else(|| "*".to_string(), |v| v.to_string());
    let mut access = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if r.access & bit != 0 {
            access.push(c);
        }
    }
    let typ = match r.typ {
        None => "a",
        Some(BLOCK) => "b",
        _ => "c",
    };
    format!("{typ} {}:{} {access}", num(r.major), num(r.minor))
}

/// The fewest cgroup v1 writes that take a deny-by-default cgroup whose `devices.list` reads
/// `list` to what `rules` mean, without passing through a state that denies something both
/// allow (the naive replay starts with `a *:* rwm` denied, and for that moment /dev/null is
/// refused to the running container): the added accesses first, then the removed ones. None
/// when either side allows by default (v1's list does not show an allow default's
/// exceptions): replay the rules then.
pub fn v1_transition(list: &str, rules: &[(bool, String)]) -> Option<Vec<(bool, String)>> {
    let lines: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.iter().any(|l| l.starts_with("a ")) {
        return None;
    }
    let current = lines
        .iter()
        .map(|l| parse_rule(l))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let parsed = rules
        .iter()
        .map(|(allow, r)| parse_rule(r).map(|r| (*allow, r)))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let target = emulate(&parsed);
    if target.default_allow {
        return None;
    }
    let key = |r: &Rule| (r.typ, r.major, r.minor);
    let bits = |set: &[Rule], r: &Rule| {
        set.iter()
            .filter(|x| key(x) == key(r))
            .fold(0, |a, x| a | x.access)
    };
    let mut writes = Vec::new();
    for t in &target.exceptions {
        let added = t.access & !bits(&current, t);
        if added != 0 {
            writes.push((
                true,
                format_rule(&Rule {
                    access: added,
                    ..*t
                }),
            ));
        }
    }
    for c in &current {
        let removed = c.access & !bits(&target.exceptions, c);
        if removed != 0 {
            writes.push((
                false,
                format_rule(&Rule {
                    access: removed,
                    ..*c
                }),
            ));
        }
    }
    Some(writes)
}

// eBPF opcodes used.
const LDX_W: u8 = 0x61; // r_dst = *(u32 *)(r_src + off)
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const AND_K: u8 = 0x54; // 32-bit
const RSH_K: u8 = 0x74; // 32-bit
const JNE_K: u8 = 0x55;
const JEQ_K: u8 = 0x15;
const EXIT: u8 = 0x95;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// The program for `e`: r2 = type, r3 = access, r4 = major, r5 = minor; one block per
/// exception (each test jumps past its block when it fails), then the default.
pub fn program(e: &Effective) -> Vec<Insn> {
    let mut p = vec![
        insn(LDX_W, 2, 1, 0, 0),
        insn(MOV64_X, 3, 2, 0, 0),
        insn(AND_K, 2, 0, 0, 0xffff),
        insn(RSH_K, 3, 0, 0, 16),
        insn(LDX_W, 4, 1, 4, 0),
        insn(LDX_W, 5, 1, 8, 0),
    ];
    let verdict = |allow: bool| i32::from(allow);
    for x in &e.exceptions {
        let mut tests: Vec<Insn> = Vec::new();
        if let Some(t) = x.typ {
            tests.push(insn(JNE_K, 2, 0, 0, t as i32));
        }
        if let Some(m) = x.major {
            tests.push(insn(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = x.minor {
            tests.push(insn(JNE_K, 5, 0, 0, m as i32));
        }
        tests.push(insn(MOV64_X, 6, 3, 0, 0));
        if e.default_allow {
            // Denied when the exception covers any bit asked for.
            tests.push(insn(AND_K, 6, 0, 0, x.access as i32));
            tests.push(insn(JEQ_K, 6, 0, 0, 0));
        } else {
            // Allowed when it covers every bit asked for.
            tests.push(insn(AND_K, 6, 0, 0, !x.access as i32));
            tests.push(insn(JNE_K, 6, 0, 0, 0));
        }
        // Every test jumps over the rest of the block: the remaining tests and the two
        // instructions that return the exception's verdict.
        let n = tests.len();
        for (i, t) in tests.iter_mut().enumerate() {
            if t.code == JNE_K || t.code == JEQ_K {
                t.off = (n - i - 1 + 2) as i16;
            }
        }
        p.extend(tests);
        p.push(insn(MOV64_K, 0, 0, 0, verdict(!e.default_allow)));
        p.push(insn(EXIT, 0, 0, 0, 0));
    }
    p.push(insn(MOV64_K, 0, 0, 0, verdict(e.default_allow)));
    p.push(insn(EXIT, 0, 0, 0, 0));
    p
}

/// What the kernel would answer for (type, major, minor, access) under `prog`: a small
/// interpreter for the instructions `program` emits, so that the compiler is tested against
/// `emulate`'s meaning without a kernel.
pub fn run(prog: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> Result<bool, String> {
    let ctx = [typ | (access << 16), major, minor];
    let mut r = [0u64; 11];
    let mut pc = 0usize;
    for _ in 0..10_000 {
        let i = *prog.get(pc).ok_or("ran off the end")?;
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        let mut next = pc + 1;
        match i.code {
            LDX_W => r[dst] = ctx[(i.off / 4) as usize] as u64,
            MOV64_X => r[dst] = r[src],
            MOV64_K => r[dst] = i.imm as i64 as u64,
            AND_K => r[dst] = ((r[dst] as u32) & (i.imm as u32)) as u64,
            RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
            JNE_K | JEQ_K => {
                let eq = r[dst] == i.imm as i64 as u64;
                if eq == (i.code == JEQ_K) {
                    next = (pc as i64 + 1 + i.off as i64) as usize;
                }
            }
            EXIT => return Ok(r[0] == 1),
            c => return Err(format!("opcode {c:#x}")),
        }
        pc = next;
    }
    Err("no exit".into())
}

/// Compile `rules` (v1 text form, in order) and attach the program to the cgroup v2
/// directory `dir`.
pub fn attach(dir: &Path, rules: &[(bool, String)]) -> Result<(), String> {
    let parsed = rules
        .iter()
        .map(|(allow, r)| parse_rule(r).map(|r| (*allow, r)))
        .collect::<Result<Vec<_>, _>>()?;
    let prog = program(&emulate(&parsed));
    let fd = bpf::load_device_program(&prog)
        .map_err(|e| format!("the cgroup v2 device program: {e}"))?;
    let cg = crate::sys::fs::open_host(dir, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // `update` replaces the program contain attached at create (programs stack: keeping the
    // old one would let updates only narrow); any other program (systemd's) stays.
    let ours: Vec<OwnedFd> = bpf::attached_device_programs(cg.as_fd())
        .map_err(|e| format!("list the device programs of {}: {e}", dir.display()))?
        .into_iter()
        .filter(|(_, name)| name == bpf::DEVICE_PROGRAM_NAME)
        .map(|(fd, _)| fd)
        .collect();
    bpf::attach_device_program(cg.as_fd(), fd.as_fd(), ours.first().map(|o| o.as_fd()))
        .map_err(|e| format!("attach the device program to {}: {e}", dir.display()))?;
    for extra in ours.iter().skip(1) {
        bpf::detach_device_program(cg.as_fd(), extra.as_fd())
            .map_err(|e| format!("detach an old device program from {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// How many device programs of contain's are attached to the cgroup v2 directory `dir`.
pub fn attached(dir: &Path) -> Result<usize, String> {
    let cg = crate::sys::fs::open_host(dir, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(bpf::attached_device_programs(cg.as_fd())
        .map_err(|e| format!("list the device programs of {}: {e}", dir.display()))?
        .iter()
        .filter(|(_, name)| name == bpf::DEVICE_PROGRAM_NAME)
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[(bool, &str)]) -> Vec<(bool, Rule)> {
        list.iter()
            .map(|(a, r)| (*a, parse_rule(r).unwrap()))
            .collect()
    }

    #[test]
    fn deny_all_then_allow_like_runc() {
        let e = emulate(&rules(&[
            (false, "a *:* rwm"),
            (true, "c 1:3 rwm"),
            (true, "c 136:* rw"),
            (true, "c *:* m"),
        ]));
        assert!(!e.default_allow);
        let p = program(&e);
        let ok = |t, ma, mi, a| run(&p, t, ma, mi, a).unwrap();
        assert!(ok(CHAR, 1, 3, READ | WRITE));
        assert!(!ok(CHAR, 1, 5, READ), "/dev/zero not listed");
        assert!(ok(CHAR, 136, 7, READ | WRITE));
        assert!(
            !ok(CHAR, 136, 7, MKNOD | READ),
            "mknod of a pty not granted by 136:* rw"
        );
        assert!(ok(CHAR, 8, 0, MKNOD), "c *:* m");
        assert!(!ok(BLOCK, 8, 0, MKNOD));
        assert!(!ok(BLOCK, 8, 0, READ));
    }

    #[test]
    fn allow_default_with_denials_and_removals() {
        let e = emulate(&rules(&[
            (true, "a *:* rwm"),
            (false, "b 8:* rw"),
            (false, "c 1:5 rwm"),
            (true, "c 1:5 w"), // takes w out of the exception
        ]));
        assert!(e.default_allow);
        let p = program(&e);
        let ok = |t, ma, mi, a| run(&p, t, ma, mi, a).unwrap();
        assert!(!ok(BLOCK, 8, 1, READ));
        assert!(ok(BLOCK, 8, 1, MKNOD));
        assert!(ok(BLOCK, 9, 1, READ));
        assert!(!ok(CHAR, 1, 5, READ));
        assert!(ok(CHAR, 1, 5, WRITE));
        assert!(ok(CHAR, 1, 3, READ | WRITE | MKNOD));
    }

    #[test]
    fn program_agrees_with_emulation_everywhere() {
        // Every rule shape against a grid of devices and accesses.
        let shapes = [
            "a *:* rwm",
            "c 1:3 rw",
            "c 1:* m",
            "c *:* m",
            "b 8:0 r",
            "b *:* rwm",
            "c 5:2 w",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..300 {
            let mut list = Vec::new();
            for _ in 0..(seed % 6) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                list.push((seed % 2 == 0, shapes[(seed >> 8) as usize % shapes.len()]));
            }
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let e = emulate(&rules(&list));
            let p = program(&e);
            for t in [CHAR, BLOCK] {
                for (ma, mi) in [(1, 3), (1, 5), (5, 2), (8, 0), (8, 1), (136, 0)] {
                    for a in 1..8 {
                        let want = if e.default_allow {
                            !e.exceptions
                                .iter()
                                .any(|x| matches(x, t, ma, mi) && x.access & a != 0)
                        } else {
                            e.exceptions
                                .iter()
                                .any(|x| matches(x, t, ma, mi) && a & !x.access == 0)
                        };
                        assert_eq!(
                            run(&p, t, ma, mi, a).unwrap(),
                            want,
                            "{list:?} {t} {ma}:{mi} {a}"
                        );
                    }
                }
            }
        }
    }

    fn matches(x: &Rule, t: u32, ma: u32, mi: u32) -> bool {
        x.typ.is_none_or(|v| v == t)
            && x.major.is_none_or(|v| v == ma)
            && x.minor.is_none_or(|v| v == mi)
    }

    #[test]
    fn v1_transition_adds_before_it_removes_and_never_resets() {
        let rules = |list: &[(bool, &str)]| -> Vec<(bool, String)> {
            list.iter().map(|(a, r)| (*a, r.to_string())).collect()
        };
        let target = rules(&[
            (false, "a *:* rwm"),
            (true, "c 1:3 rwm"),
            (true, "c 10:229 rw"),
        ]);
        let w = v1_transition("c 1:3 rwm\nc 1:5 rwm\n", &target).unwrap();
        assert_eq!(
            w,
            [
                (true, "c 10:229 rw".to_string()),
                (false, "c 1:5 rwm".to_string())
            ]
        );
        // Narrowing one device's bits, and nothing to do.
        let w = v1_transition("c 1:3 rwm\nc 10:229 rwm\n", &target).unwrap();
        assert_eq!(w, [(false, "c 10:229 m".to_string())]);
        assert!(v1_transition("c 1:3 rwm\nc 10:229 rw\n", &target)
            .unwrap()
            .is_empty());
        // An allow default on either side: replay.
        assert!(v1_transition("a *:* rwm\n", &target).is_none());
        assert!(v1_transition("c 1:3 rwm\n", &rules(&[(true, "a *:* rwm")])).is_none());
        // Replaying the writes from the old list gives what the rules mean.
        let old = emulate(&[
            (false, parse_rule("a *:* rwm").unwrap()),
            (true, parse_rule("c 1:3 rwm").unwrap()),
            (true, parse_rule("c 1:5 rwm").unwrap()),
        ]);
        let mut replay = vec![(false, parse_rule("a *:* rwm").unwrap())];
        replay.extend(old.exceptions.iter().map(|r| (true, *r)));
        let w = v1_transition("c 1:3 rwm\nc 1:5 rwm\n", &target).unwrap();
        replay.extend(w.iter().map(|(a, r)| (*a, parse_rule(r).unwrap())));
        let want: Vec<(bool, Rule)> = target
            .iter()
            .map(|(a, r)| (*a, parse_rule(r).unwrap()))
            .collect();
        assert_eq!(emulate(&replay), emulate(&want));
    }

    #[test]
    fn bad_rules_refused() {
        for r in ["x 1:3 rw", "c 1 rw", "c a:3 rw", "c 1:3 rx", ""] {
            assert!(parse_rule(r).is_err(), "{r:?}");
        }
    }
}
