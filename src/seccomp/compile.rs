//! Profile -> BPF.
//!
//! Meaning (libseccomp's, as runc applies it, unless noted):
//! * a rule whose action equals the default action is dropped (runc skips it);
//! * for one syscall, the first rule without conditions decides and its conditional rules
//!   are ignored (libseccomp keeps the first unconditional rule and lets it replace any
//!   conditional ones); otherwise the conditional rules are tried in profile order and the
//!   first whose conditions all hold decides; none holding gives the default action;
//! * the conditions of one rule must all hold, also several on one argument (runc instead
//!   splits such a rule into one rule per condition, an OR that widens the filter);
//! * arguments are compared as 64-bit values on x86_64 and as their low 32 bits on i386 and
//!   x32 (libseccomp's argument size for those ABIs);
//! * a syscall number above the highest one the profile names for an ABI gets ENOSYS when
//!   the default action denies (runc's stub, so that programs fall back from syscalls newer
//!   than the profile), unless the default is already ERRNO(ENOSYS);
//! * a syscall from an ABI the profile does not list gets the default action when that
//!   denies, and KILL_PROCESS when the default allows (libseccomp kills such calls whatever
//!   the default; neither lets them through).
//!
//! The program: check the architecture, split x86_64 from x32 on the x32 bit, then a binary
//! search over the syscall number's intervals (consecutive numbers with the same outcome
//! merge, so its depth grows with the logarithm of the number of distinct runs, not with the
//! number of rules), leaves returning directly or running a syscall's conditional rules.

use std::collections::BTreeMap;

use super::bpf::{self, ja, jmp, ld, ret, Insn, JEQ, JGE, JGT, JSET};
use super::profile::{ActionName, Op, Profile};
use super::{syscalls, SeccompError};

pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
pub const X32_BIT: u32 = 0x4000_0000;

pub const FLAG_TSYNC: u32 = 1;
pub const FLAG_LOG: u32 = 2;
pub const FLAG_SPEC_ALLOW: u32 = 4;
pub const FLAG_NEW_LISTENER: u32 = 8;
pub const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// Most conditions accepted on one rule (keeps every jump inside a rule short).
const MAX_CONDITIONS: usize = 16;

/// The x86 ABIs a filter can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Abi {
    X86_64,
    I386,
    X32,
}

impl Abi {
    pub fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Abi::X86_64 => syscalls::X86_64,
            Abi::I386 => syscalls::I386,
            Abi::X32 => syscalls::X32,
        }
    }

    pub fn number(self, name: &str) -> Option<u32> {
        let t = self.table();
        t.binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| t[i].1)
    }

    /// Whether arguments are compared as 64-bit values.
    pub fn wide(self) -> bool {
        self == Abi::X86_64
    }

    pub fn audit_arch(self) -> u32 {
        match self {
            Abi::X86_64 | Abi::X32 => AUDIT_ARCH_X86_64,
            Abi::I386 => AUDIT_ARCH_I386,
        }
    }

    pub fn token(self) -> &'static str {
        match self {
            Abi::X86_64 => "SCMP_ARCH_X86_64",
            Abi::I386 => "SCMP_ARCH_X86",
            Abi::X32 => "SCMP_ARCH_X32",
        }
    }
}

/// Other architectures' tokens: valid in a profile, but a filter on this host never sees
/// their syscalls.
const FOREIGN_ARCHES: &[&str] = &[
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

/// An action with its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    KillThread,
    KillProcess,
    Trap,
    Errno(u16),
    Trace(u16),
    Log,
    Allow,
    Notify,
}

impl Action {
    pub fn new(name: ActionName, errno_ret: Option<u32>, what: &str) -> Result<Action, String> {
        let data = |max: u32| -> Result<u16, String> {
            match errno_ret {
                None => Ok(libc::EPERM as u16),
                Some(e) if e <= max => Ok(e as u16),
                Some(e) => Err(format!("{what}: errnoRet {e} is over {max}")),
            }
        };
        let a = match name {
            ActionName::Kill | ActionName::KillThread => Action::KillThread,
            ActionName::KillProcess => Action::KillProcess,
            ActionName::Trap => Action::Trap,
            ActionName::Errno => return data(4095).map(Action::Errno),
            ActionName::Trace => return data(0xffff).map(Action::Trace),
            ActionName::Log => Action::Log,
            ActionName::Allow => Action::Allow,
            ActionName::Notify => Action::Notify,
        };
        if errno_ret.is_some() {
            return Err(format!(
                "{what}: errnoRet is only meaningful with SCMP_ACT_ERRNO or SCMP_ACT_TRACE"
            ));
        }
        Ok(a)
    }

    /// The seccomp return value.
    pub fn ret(self) -> u32 {
        match self {
            Action::KillThread => 0,
            Action::KillProcess => 0x8000_0000,
            Action::Trap => 0x0003_0000,
            Action::Errno(e) => 0x0005_0000 | e as u32,
            Action::Trace(d) => 0x7ff0_0000 | d as u32,
            Action::Log => 0x7ffc_0000,
            Action::Allow => 0x7fff_0000,
            Action::Notify => 0x7fc0_0000,
        }
    }

    /// The action without its data, as SECCOMP_GET_ACTION_AVAIL takes it.
    pub fn kind(self) -> u32 {
        self.ret() & 0xffff_0000
    }

    /// runc's "allow" actions: no ENOSYS stub is needed behind them.
    fn permissive(self) -> bool {
        matches!(self, Action::Allow | Action::Log | Action::Trace(_))
    }

    /// Actions that stop the syscall.
    pub fn denies(self) -> bool {
        matches!(
            self,
            Action::KillThread | Action::KillProcess | Action::Trap | Action::Errno(_)
        )
    }
}

/// One argument condition, ready to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub index: u32,
    pub op: Op,
    /// The value; for MASKED_EQ, the mask.
    pub value: u64,
    /// For MASKED_EQ, the value the masked argument must equal.
    pub value_two: u64,
}

impl Check {
    /// Whether `arg` satisfies the condition, comparing 64 or 32 bits.
    pub fn holds(&self, arg: u64, wide: bool) -> bool {
        let m = if wide { u64::MAX } else { u32::MAX as u64 };
        let (a, v) = (arg & m, self.value & m);
        match self.op {
            Op::Eq => a == v,
            Op::Ne => a != v,
            Op::Lt => a < v,
            Op::Le => a <= v,
            Op::Gt => a > v,
            Op::Ge => a >= v,
            Op::MaskedEq => a & v == self.value_two & m,
        }
    }
}

/// What the filter does with one syscall number.
#[derive(Clone, Debug, PartialEq)]
enum Decision {
    Always(Action),
    /// Conditional rules in order; none matching gives the default action.
    Rules(Vec<(Vec<Check>, Action)>),
}

/// A compiled profile.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub program: Vec<Insn>,
    /// seccomp(2) flags (NEW_LISTENER included when the profile notifies).
    pub flags: u32,
    pub notify: bool,
    /// Every action the program can return (for SECCOMP_GET_ACTION_AVAIL).
    pub actions: Vec<Action>,
    /// ABIs the filter lets through to its rules.
    pub abis: Vec<Abi>,
    /// Non-fatal findings (unknown syscall names, foreign architectures).
    pub warnings: Vec<String>,
    /// Syscall names of the profile that no ABI of the filter knows (their rules are skipped).
    pub unknown: Vec<String>,
}

impl Compiled {
    /// Whether the program lets the native syscall `name` through with all-zero arguments
    /// (allowed, logged, traced or sent to an agent that continues it): for the runtime's own
    /// steps that must still run under a filter installed before them.
    pub fn lets_through(&self, name: &str) -> bool {
        let Some(nr) = Abi::X86_64.number(name) else {
            return false;
        };
        let data = super::bpf::SeccompData {
            nr,
            arch: Abi::X86_64.audit_arch(),
            ip: 0,
            args: [0; 6],
        };
        match super::bpf::run(&self.program, &data) {
            Ok(ret) => ![
                Action::KillThread,
                Action::KillProcess,
                Action::Trap,
                Action::Errno(0),
            ]
            .iter()
            .any(|a| a.kind() == ret & 0xffff_0000),
            Err(_) => false,
        }
    }
}

struct Rule {
    names: Vec<String>,
    action: Action,
    checks: Vec<Check>,
}

/// Syscalls the runtime's own code uses between installing a filter with a listener and
/// reporting the listener to the runtime: notifying one of them would deadlock the init.
const NEVER_NOTIFY: &[&str] = &["write"];

/// Choices of the compiler that are not the profile's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// runc's ENOSYS stub: a syscall numbered above the highest one the profile names gets
    /// ENOSYS instead of the default action, so that programs fall back from syscalls newer
    /// than the profile. Off for contain's own filters (the VMM's), where every syscall not
    /// listed takes the default action.
    pub enosys_stub: bool,
    /// Accept defaultAction SCMP_ACT_NOTIFY, which sends the runtime's own last syscalls to
    /// the agent: only for contain learn's observer, whose agent is contain.
    pub notify_by_default: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            enosys_stub: true,
            notify_by_default: false,
        }
    }
}

/// Compile a container's profile (with runc's ENOSYS stub).
pub fn compile(p: &Profile) -> Result<Compiled, SeccompError> {
    compile_with(p, Options::default())
}

/// Compile `p` with the compiler's `options`.
pub fn compile_with(p: &Profile, options: Options) -> Result<Compiled, SeccompError> {
    if p.is_template() {
        return Err(SeccompError::Invalid(
            "the profile is an unresolved template (archMap, includes, excludes); resolve it first"
                .into(),
        ));
    }
    let bad = |s: String| SeccompError::Invalid(s);
    let default =
        Action::new(p.default_action, p.default_errno_ret, "defaultAction").map_err(bad)?;
    if default == Action::Notify && !options.notify_by_default {
        return Err(bad(
            "defaultAction SCMP_ACT_NOTIFY would send the runtime's own syscalls to the agent"
                .into(),
        ));
    }
    let mut warnings = Vec::new();
    let abis = abis(p, &mut warnings)?;
    let rules = rules(p, &mut warnings)?;
    let notify = default == Action::Notify || rules.iter().any(|r| r.action == Action::Notify);
    let flags = filter_flags(p, notify)?;
    let stub = options.enosys_stub
        && !default.permissive()
        && p.default_errno_ret != Some(libc::ENOSYS as u32);
    let sections = sections(&abis, &rules, default, stub);
    let unknown = unknown_names(&abis, &rules);
    if !unknown.is_empty() {
        let arches: Vec<&str> = abis.iter().map(|a| a.token()).collect();
        warnings.push(format!(
            "syscall names unknown on {} skipped: {}",
            arches.join(", "),
            unknown.join(", ")
        ));
    }

    let unlisted = if default.denies() {
        default
    } else {
        Action::KillProcess
    };
    let mut actions = vec![default, unlisted];
    for r in &rules {
        if !actions.contains(&r.action) {
            actions.push(r.action);
        }
    }
    if sections.iter().any(|s| s.2.is_some()) {
        actions.push(Action::Errno(libc::ENOSYS as u16));
    }
    let program = assemble(&sections, default, unlisted)?;
    bpf::check(&program).map_err(|e| SeccompError::Invalid(format!("internal: {e}")))?;
    Ok(Compiled {
        program,
        flags,
        notify,
        actions,
        abis,
        warnings,
        unknown: unknown.iter().map(|s| s.to_string()).collect(),
    })
}

/// The profile's architectures as ABIs of this host, sorted; x86_64 always, as libseccomp's
/// filter (runc's) always holds the native architecture whatever the profile lists. Foreign
/// ones are ignored with a warning.
fn abis(p: &Profile, warnings: &mut Vec<String>) -> Result<Vec<Abi>, SeccompError> {
    let bad = |s: String| SeccompError::Invalid(s);
    let mut abis = Vec::new();
    for a in p.architectures.iter().flatten() {
        let abi = match a.as_str() {
            "SCMP_ARCH_X86_64" | "SCMP_ARCH_NATIVE" => Abi::X86_64,
            "SCMP_ARCH_X86" => Abi::I386,
            "SCMP_ARCH_X32" => Abi::X32,
            f if FOREIGN_ARCHES.contains(&f) => {
                warnings.push(format!(
                    "architecture {f} never runs on this x86_64 host; ignored"
                ));
                continue;
            }
            other => return Err(bad(format!("architectures: unknown {other:?}"))),
        };
        if !abis.contains(&abi) {
            abis.push(abi);
        }
    }
    if !abis.contains(&Abi::X86_64) {
        abis.push(Abi::X86_64);
    }
    abis.sort();

    Ok(abis)
}

/// The profile's syscall rules, checked: names, action, at most MAX_CONDITIONS argument
/// conditions on arguments 0..5, no notification where it would deadlock the init.
fn rules(p: &Profile, warnings: &mut Vec<String>) -> Result<Vec<Rule>, SeccompError> {
    let bad = |s: String| SeccompError::Invalid(s);
    let mut rules = Vec::new();
    for (i, r) in p.syscalls.iter().flatten().enumerate() {
        let what = format!("syscalls[{i}]");
        if r.names.is_empty() || r.names.iter().any(|n| n.is_empty()) {
            return Err(bad(format!(
                "{what}: names must be non-empty syscall names"
            )));
        }
        let action = Action::new(r.action, r.errno_ret, &what).map_err(bad)?;
        if action == Action::Notify {
            if let Some(n) = r.names.iter().find(|n| NEVER_NOTIFY.contains(&n.as_str())) {
                return Err(bad(format!(
                    "{what}: SCMP_ACT_NOTIFY cannot be used for the {n} syscall (it would deadlock the container's init, which writes to the runtime after installing the filter)"
                )));
            }
        }
        let args = r.args.as_deref().unwrap_or_default();
        if args.len() > MAX_CONDITIONS {
            return Err(bad(format!(
                "{what}: {} argument conditions, at most {MAX_CONDITIONS} accepted",
                args.len()
            )));
        }
        let mut checks = Vec::new();
        for (j, a) in args.iter().enumerate() {
            if a.index > 5 {
                return Err(bad(format!(
                    "{what}.args[{j}]: index {} is over 5 (syscalls have six arguments)",
                    a.index
                )));
            }
            checks.push(Check {
                index: a.index,
                op: a.op,
                value: a.value,
                value_two: a.value_two.unwrap_or(0),
            });
        }
        // runc's rule (libcontainer/seccomp): conditions on distinct arguments must all
        // hold; once two name the same argument, each condition is a rule of its own, and
        // any one of them matches ("arg0 == 100 or arg0 == 9001").
        let repeated = checks
            .iter()
            .enumerate()
            .any(|(i, c)| checks[..i].iter().any(|o| o.index == c.index));
        if repeated {
            let indices: std::collections::BTreeSet<u32> = checks.iter().map(|c| c.index).collect();
            if indices.len() > 1 {
                warnings.push(format!(
                    "{what}: an argument has several conditions, so every condition is a rule of its own (runc's meaning): the conditions on arguments {indices:?} are alternatives, none restricts the others"
                ));
            }
            for c in checks {
                rules.push(Rule {
                    names: r.names.clone(),
                    action,
                    checks: vec![c],
                });
            }
        } else {
            rules.push(Rule {
                names: r.names.clone(),
                action,
                checks,
            });
        }
    }
    Ok(rules)
}

/// The seccomp(2) flags: the profile's, and NEW_LISTENER for a notifying filter (which then
/// needs a listenerPath).
fn filter_flags(p: &Profile, notify: bool) -> Result<u32, SeccompError> {
    let bad = |s: String| SeccompError::Invalid(s);
    let mut flags = 0;
    let mut tsync = false;
    for f in p.flags.iter().flatten() {
        match f.as_str() {
            "SECCOMP_FILTER_FLAG_TSYNC" => tsync = true,
            "SECCOMP_FILTER_FLAG_LOG" => flags |= FLAG_LOG,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => flags |= FLAG_SPEC_ALLOW,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" if notify => flags |= FLAG_WAIT_KILLABLE_RECV,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => {
                return Err(bad(
                    "flags: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a SCMP_ACT_NOTIFY rule"
                        .into(),
                ))
            }
            other => return Err(bad(format!("flags: unknown {other:?}"))),
        }
    }
    if notify {
        // The init is single-threaded: TSYNC would change nothing, and the kernel refuses it
        // together with NEW_LISTENER.
        flags |= FLAG_NEW_LISTENER;
        if p.listener_path.is_none() {
            return Err(bad(
                "SCMP_ACT_NOTIFY is used but listenerPath is not set: nobody would answer".into(),
            ));
        }
    } else if tsync {
        flags |= FLAG_TSYNC;
    }

    Ok(flags)
}

/// Per ABI: what each named syscall number does, and (with `stub`) the highest number named,
/// above which the filter answers ENOSYS.
fn sections(abis: &[Abi], rules: &[Rule], default: Action, stub: bool) -> Vec<Section> {
    let mut sections = Vec::new();
    for &abi in abis {
        let mut decisions: BTreeMap<u32, Decision> = BTreeMap::new();
        let mut highest: Option<u32> = None;
        for r in rules {
            for name in &r.names {
                let Some(nr) = abi.number(name) else { continue };
                highest = highest.max(Some(nr));
                if r.action == default {
                    continue;
                }
                match decisions.get_mut(&nr) {
                    None if r.checks.is_empty() => {
                        decisions.insert(nr, Decision::Always(r.action));
                    }
                    None => {
                        decisions.insert(nr, Decision::Rules(vec![(r.checks.clone(), r.action)]));
                    }
                    Some(Decision::Always(_)) => {}
                    Some(d @ Decision::Rules(_)) if r.checks.is_empty() => {
                        *d = Decision::Always(r.action)
                    }
                    Some(Decision::Rules(v)) => v.push((r.checks.clone(), r.action)),
                }
            }
        }
        sections.push((abi, decisions, highest.filter(|_| stub)));
    }
    sections
}

/// Syscall names no ABI of the filter knows, sorted.
fn unknown_names<'a>(abis: &[Abi], rules: &'a [Rule]) -> Vec<&'a str> {
    let mut unknown: Vec<&str> = Vec::new();
    for name in rules.iter().flat_map(|r| &r.names) {
        if !abis.iter().any(|a| a.number(name).is_some()) && !unknown.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    unknown.sort();
    unknown
}

type Section = (Abi, BTreeMap<u32, Decision>, Option<u32>);

fn assemble(
    sections: &[Section],
    default: Action,
    unlisted: Action,
) -> Result<Vec<Insn>, SeccompError> {
    let tree_of = |abi: Abi| {
        sections
            .iter()
            .find(|s| s.0 == abi)
            .map(|(abi, d, stub)| tree(&intervals(d, default, *stub), *abi, default))
    };
    let x64 = tree_of(Abi::X86_64).unwrap_or_else(|| vec![ret(unlisted.ret())]);
    let x32 = tree_of(Abi::X32);
    let i386 = tree_of(Abi::I386);

    // x86_64 block: split off x32 calls, then the x86_64 tree; the x32 tree follows.
    let mut x86_64_block = vec![ld(bpf::OFF_NR), jmp(JSET, X32_BIT, 0, 1)];
    match &x32 {
        Some(_) => x86_64_block.push(ja(x64.len() as u32)),
        None => x86_64_block.push(ret(unlisted.ret())),
    }
    x86_64_block.extend_from_slice(&x64);
    x86_64_block.extend(x32.into_iter().flatten());

    let mut others = Vec::new();
    if let Some(t) = i386 {
        others.extend([
            jmp(JEQ, AUDIT_ARCH_I386, 1, 0),
            ret(unlisted.ret()),
            ld(bpf::OFF_NR),
        ]);
        others.extend(t);
    } else {
        others.push(ret(unlisted.ret()));
    }

    let mut prog = vec![
        ld(bpf::OFF_ARCH),
        jmp(JEQ, AUDIT_ARCH_X86_64, 1, 0),
        ja(x86_64_block.len() as u32),
    ];
    prog.extend(x86_64_block);
    prog.extend(others);
    if prog.len() > bpf::MAX_INSNS {
        return Err(SeccompError::Invalid(format!(
            "the compiled filter has {} instructions, over the kernel's limit of {}",
            prog.len(),
            bpf::MAX_INSNS
        )));
    }
    Ok(prog)
}

#[derive(Clone, Debug, PartialEq)]
enum Leaf<'a> {
    Ret(u32),
    Rules(&'a [(Vec<Check>, Action)]),
}

/// The number line cut into runs with one outcome each: (first number, outcome).
fn intervals(
    d: &BTreeMap<u32, Decision>,
    default: Action,
    stub: Option<u32>,
) -> Vec<(u32, Leaf<'_>)> {
    let mut out: Vec<(u32, Leaf)> = Vec::new();
    // Neighbours with equal outcomes merge (equal rule lists too: they do not depend on
    // the number).
    fn push<'a>(lo: u32, leaf: Leaf<'a>, out: &mut Vec<(u32, Leaf<'a>)>) {
        if out.last().map(|l| &l.1) != Some(&leaf) {
            out.push((lo, leaf));
        }
    }
    let mut next: u64 = 0;
    for (&nr, dec) in d {
        if u64::from(nr) > next {
            push(next as u32, Leaf::Ret(default.ret()), &mut out);
        }
        let leaf = match dec {
            Decision::Always(a) => Leaf::Ret(a.ret()),
            Decision::Rules(v) => Leaf::Rules(v),
        };
        push(nr, leaf, &mut out);
        next = u64::from(nr) + 1;
    }
    match stub {
        Some(max) if u64::from(max) < u64::from(u32::MAX) => {
            if next <= u64::from(max) {
                push(next as u32, Leaf::Ret(default.ret()), &mut out);
            }
            push(
                max + 1,
                Leaf::Ret(Action::Errno(libc::ENOSYS as u16).ret()),
                &mut out,
            );
        }
        _ if next <= u64::from(u32::MAX) => push(next as u32, Leaf::Ret(default.ret()), &mut out),
        _ => {}
    }
    out
}

/// A binary search over `iv` (sorted by first number; the first starts at 0).
fn tree(iv: &[(u32, Leaf<'_>)], abi: Abi, default: Action) -> Vec<Insn> {
    if iv.len() == 1 {
        return match &iv[0].1 {
            Leaf::Ret(k) => vec![ret(*k)],
            Leaf::Rules(rules) => rule_block(rules, abi, default),
        };
    }
    let mid = iv.len() / 2;
    let left = tree(&iv[..mid], abi, default);
    let right = tree(&iv[mid..], abi, default);
    let mut out = Vec::with_capacity(left.len() + right.len() + 2);
    if left.len() <= 255 {
        out.push(jmp(JGE, iv[mid].0, left.len() as u8, 0));
    } else {
        out.push(jmp(JGE, iv[mid].0, 0, 1));
        out.push(ja(left.len() as u32));
    }
    out.extend(left);
    out.extend(right);
    out
}

/// Where a conditional jump of a condition goes when the condition fails.
#[derive(Clone, Copy)]
enum Fail {
    None,
    OnTrue,
    OnFalse,
}

/// One syscall's conditional rules, each falling through to the next when a condition fails.
fn rule_block(rules: &[(Vec<Check>, Action)], abi: Abi, default: Action) -> Vec<Insn> {
    let mut out = Vec::new();
    for (checks, action) in rules {
        let mut body: Vec<(Insn, Fail)> = Vec::new();
        for c in checks {
            body.extend(condition(c, abi.wide()));
        }
        let fail_at = body.len() + 1; // just past this rule's `ret`
        for (pc, (mut insn, fail)) in body.into_iter().enumerate() {
            let off = (fail_at - pc - 1) as u8;
            match fail {
                Fail::None => {}
                Fail::OnTrue => insn.jt = off,
                Fail::OnFalse => insn.jf = off,
            }
            out.push(insn);
        }
        out.push(ret(action.ret()));
    }
    out.push(ret(default.ret()));
    out
}

/// Instructions that fall through when `c` holds and take the `Fail` jump when it does not.
fn condition(c: &Check, wide: bool) -> Vec<(Insn, Fail)> {
    use Fail::*;
    let (lo_off, hi_off) = (bpf::off_arg_lo(c.index), bpf::off_arg_hi(c.index));
    let (lo, hi) = (c.value as u32, (c.value >> 32) as u32);
    let n = |i: Insn| (i, None);
    match (c.op, wide) {
        (Op::Eq, true) => vec![
            n(ld(hi_off)),
            (jmp(JEQ, hi, 0, 0), OnFalse),
            n(ld(lo_off)),
            (jmp(JEQ, lo, 0, 0), OnFalse),
        ],
        (Op::Eq, false) => vec![n(ld(lo_off)), (jmp(JEQ, lo, 0, 0), OnFalse)],
        (Op::Ne, true) => vec![
            n(ld(hi_off)),
            n(jmp(JEQ, hi, 0, 2)),
            n(ld(lo_off)),
            (jmp(JEQ, lo, 0, 0), OnTrue),
        ],
        (Op::Ne, false) => vec![n(ld(lo_off)), (jmp(JEQ, lo, 0, 0), OnTrue)],
        (Op::MaskedEq, wide) => {
            let (dlo, dhi) = (c.value_two as u32, (c.value_two >> 32) as u32);
            let mut v = Vec::new();
            if wide {
                v.extend([
                    n(ld(hi_off)),
                    n(bpf::and(hi)),
                    (jmp(JEQ, dhi, 0, 0), OnFalse),
                ]);
            }
            v.extend([
                n(ld(lo_off)),
                n(bpf::and(lo)),
                (jmp(JEQ, dlo, 0, 0), OnFalse),
            ]);
            v
        }
        (Op::Gt | Op::Ge, true) => {
            let last = if c.op == Op::Gt { JGT } else { JGE };
            vec![
                n(ld(hi_off)),
                n(jmp(JGT, hi, 3, 0)),
                (jmp(JEQ, hi, 0, 0), OnFalse),
                n(ld(lo_off)),
                (jmp(last, lo, 0, 0), OnFalse),
            ]
        }
        (Op::Gt, false) => vec![n(ld(lo_off)), (jmp(JGT, lo, 0, 0), OnFalse)],
        (Op::Ge, false) => vec![n(ld(lo_off)), (jmp(JGE, lo, 0, 0), OnFalse)],
        (Op::Lt | Op::Le, true) => {
            // a < v  is  !(a >= v);  a <= v  is  !(a > v).
            let last = if c.op == Op::Lt { JGE } else { JGT };
            vec![
                n(ld(hi_off)),
                (jmp(JGT, hi, 0, 0), OnTrue),
                n(jmp(JEQ, hi, 0, 2)),
                n(ld(lo_off)),
                (jmp(last, lo, 0, 0), OnTrue),
            ]
        }
        (Op::Lt, false) => vec![n(ld(lo_off)), (jmp(JGE, lo, 0, 0), OnTrue)],
        (Op::Le, false) => vec![n(ld(lo_off)), (jmp(JGT, lo, 0, 0), OnTrue)],
    }
}
