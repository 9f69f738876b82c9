use super::*;

fn seen(count: u64, args: &[&[u64]]) -> Seen {
    let mut s = Seen {
        count,
        first_by: "sh".into(),
        ..Seen::default()
    };
    for a in args {
        s.add_args(a.to_vec());
    }
    s
}

fn obs(calls: &[(&str, Seen)]) -> Observations {
    let mut o = Observations {
        runs: 1,
        ..Observations::default()
    };
    let m = o.syscalls.entry("SCMP_ARCH_X86_64".into()).or_default();
    for (n, s) in calls {
        m.insert((*n).into(), s.clone());
    }
    o
}

#[test]
fn abis_are_told_apart() {
    assert_eq!(abi_of(AUDIT_ARCH_X86_64, 0), Some((Abi::X86_64, 0)));
    assert_eq!(
        abi_of(AUDIT_ARCH_X86_64, (X32_BIT | 1) as i32),
        Some((Abi::X32, X32_BIT | 1))
    );
    assert_eq!(abi_of(AUDIT_ARCH_I386, 3), Some((Abi::I386, 3)));
    assert_eq!(abi_of(0xdead, 3), None);
    assert_eq!(abi_of(AUDIT_ARCH_X86_64, -1), None);
    assert_eq!(name_of(Abi::X86_64, 0), Some("read"));
    assert_eq!(name_of(Abi::I386, 3), Some("read"));
}

#[test]
fn profile_allows_only_what_was_seen_with_its_arguments() {
    let o = obs(&[
        ("read", seen(3, &[])),
        ("clone", seen(2, &[&[0x1200011]])),
        ("socket", seen(1, &[&[2, 1], &[1, 0x80001]])),
    ]);
    let p = o.profile(false);
    assert_eq!(p.default_action, ActionName::Errno);
    assert_eq!(p.default_errno_ret, Some(libc::EPERM as u32));
    let rules = p.syscalls.unwrap();
    assert_eq!(rules.len(), 5, "{rules:?}");
    let enosys = rules
        .iter()
        .find(|r| r.names.contains(&"clone3".to_string()))
        .unwrap();
    assert_eq!(
        (enosys.action, enosys.errno_ret),
        (ActionName::Errno, Some(libc::ENOSYS as u32))
    );
    let clone = rules.iter().find(|r| r.names == ["clone"]).unwrap();
    let a = &clone.args.as_ref().unwrap()[0];
    assert_eq!((a.index, a.value, a.op), (0, 0x1200011, Op::Eq));
    assert!(
        clone.comment.as_ref().unwrap().contains("CLONE_CHILD")
            || clone.comment.as_ref().unwrap().contains("0x1200011")
    );
    let sockets: Vec<_> = rules.iter().filter(|r| r.names == ["socket"]).collect();
    assert_eq!(sockets.len(), 2);
    assert!(sockets.iter().all(|r| r.args.as_ref().unwrap().len() == 2));
    // The learnt profile compiles, and refuses what was not seen.
    let compiled = crate::seccomp::compile(&Profile {
        syscalls: Some(rules),
        ..o.profile(false)
    })
    .unwrap();
    assert!(!compiled.program.is_empty());
}

#[test]
fn runtime_syscalls_only_when_needed() {
    let mut o = obs(&[("read", seen(1, &[]))]);
    o.runtime
        .entry("SCMP_ARCH_X86_64".into())
        .or_default()
        .insert("capset".into(), seen(1, &[]));
    let names = |p: Profile| -> Vec<String> {
        p.syscalls
            .unwrap()
            .into_iter()
            .flat_map(|r| r.names)
            .collect()
    };
    let fallback = ["clone3", "io_uring_setup", "io_uring_enter"];
    assert_eq!(names(o.profile(false)), [&["read"][..], &fallback].concat());
    assert_eq!(
        names(o.profile(true)),
        [&["read"][..], &fallback, &["capset"]].concat()
    );
}

#[test]
fn too_many_argument_values_allow_any_and_say_so() {
    let mut s = seen(0, &[]);
    for i in 0..(MAX_ARG_TUPLES as u64 + 5) {
        s.add_args(vec![i]);
    }
    assert!(s.args_overflow && s.args.is_empty());
    let p = obs(&[("ioctl", s)]).profile(false);
    let r = &p.syscalls.unwrap()[0];
    assert_eq!(r.names, ["ioctl"]);
    assert!(r.args.is_none());
    assert!(r.comment.as_ref().unwrap().contains("so any"));
}

#[test]
fn merge_adds_counts_and_tuples_and_new_in_lists_the_difference() {
    let mut a = obs(&[("read", seen(2, &[])), ("clone", seen(1, &[&[1]]))]);
    let b = obs(&[
        ("read", seen(3, &[])),
        ("clone", seen(1, &[&[2]])),
        ("mkdir", seen(1, &[])),
    ]);
    let new = a.new_in(&b);
    let text: Vec<String> = new.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text.iter().any(|t| t == "syscall mkdir (X86_64)"));
    assert!(text
        .iter()
        .any(|t| t.starts_with("clone (X86_64) with flags")));
    a.merge(&b);
    assert_eq!(a.runs, 2);
    let m = &a.syscalls["SCMP_ARCH_X86_64"];
    assert_eq!(m["read"].count, 5);
    assert_eq!(m["clone"].args.len(), 2);
    assert!(a.new_in(&b).is_empty());
}

#[test]
fn namespaces_entered_are_noted() {
    let mut o = obs(&[
        (
            "clone",
            seen(1, &[&[(libc::CLONE_NEWUSER | libc::SIGCHLD) as u64]]),
        ),
        ("unshare", seen(1, &[])),
    ]);
    o.note_namespaces();
    assert!(
        o.notes.iter().any(|n| n.contains("CLONE_NEWUSER")),
        "{:?}",
        o.notes
    );
    assert!(
        o.notes.iter().any(|n| n.contains("unshare")),
        "{:?}",
        o.notes
    );
    let before = o.notes.len();
    o.note_namespaces();
    assert_eq!(o.notes.len(), before);
}

#[test]
fn observer_is_recognised_and_compiles_only_as_observer() {
    let p = observer(std::path::Path::new("/run/x.sock"));
    assert!(is_observer(&p));
    assert!(crate::seccomp::compile(&p).is_err());
    let filters = crate::seccomp::effective(
        None,
        Vec::new(),
        crate::seccomp::Choice::ConfigOnly,
        false,
        vec![(p, crate::seccomp::Source::Learn)],
    )
    .unwrap();
    assert!(filters[0].compiled.notify);
}

#[test]
fn tcp_ports_merge_diff_and_stay_within_the_base_policy() {
    let mut a = Observations::default();
    a.tcp.add("bind", 8080, || "httpd".into());
    let mut b = Observations::default();
    b.tcp.add("bind", 8080, || "other".into());
    b.tcp.add("connect", 5432, || "app".into());
    let new: Vec<String> = a.new_in(&b).iter().map(ToString::to_string).collect();
    assert_eq!(new, ["TCP connect on port 5432"]);
    a.merge(&b);
    assert_eq!(a.tcp.bind[&8080], "httpd", "the first command is kept");
    assert!(a.new_in(&b).is_empty());
    let open = a.network(None);
    assert_eq!((open.bind_tcp, open.connect_tcp), (vec![8080], vec![5432]));
    // A port the base policy's Landlock refused was seen (seccomp notifies before Landlock
    // decides) but is not learnt.
    let base = crate::policy::Network {
        bind_tcp: vec![8080],
        connect_tcp: vec![],
    };
    let within = a.network(Some(&base));
    assert_eq!(
        (within.bind_tcp, within.connect_tcp),
        (vec![8080], Vec::<u16>::new())
    );
}

#[test]
fn paths_are_granted_on_their_directory_folded_and_bounded() {
    use super::fs;
    use std::path::{Path, PathBuf};
    assert_eq!(
        fs::absolute(Path::new("/srv/app"), Path::new("../data/./x//y")),
        Path::new("/srv/data/x/y")
    );
    assert_eq!(
        fs::absolute(Path::new("/"), Path::new("../../etc")),
        Path::new("/etc")
    );
    let dir = |p: &str, right: &str| fs::grant_dir(Path::new(p), right);
    assert_eq!(dir("/www/index.html", "read_file"), Path::new("/www"));
    assert_eq!(dir("/proc/7/fd/1", "write_file"), Path::new("/proc"));
    assert_eq!(dir("/", "make_dir"), Path::new("/"));
    assert_eq!(dir("/www", "read_dir"), Path::new("/www"));
    assert_eq!(dir("/proc/7", "read_dir"), Path::new("/proc"));
    assert_eq!(
        fs::open_rights(
            libc::O_WRONLY as u64 | libc::O_CREAT as u64 | libc::O_TRUNC as u64,
            false
        ),
        ["write_file", "truncate", "make_reg"]
    );
    assert_eq!(fs::open_rights(libc::O_RDONLY as u64, false), ["read_file"]);
    assert_eq!(fs::open_rights(libc::O_RDONLY as u64, true), ["read_dir"]);
    assert_eq!(
        fs::open_rights(libc::O_RDWR as u64, false),
        ["read_file", "write_file"]
    );
    assert!(fs::open_rights(libc::O_PATH as u64 | libc::O_RDWR as u64, false).is_empty());

    let mut dirs = fs::Dirs::new();
    assert!(fs::add(&mut dirs, Path::new("/tmp/a"), "make_dir", || {
        "mkdir".into()
    }));
    assert!(fs::add(
        &mut dirs,
        Path::new("/tmp/a/f"),
        "write_file",
        || { "open".into() }
    ));
    assert!(fs::add(&mut dirs, Path::new("/bin/sh"), "execute", || {
        "execve".into()
    }));
    // /tmp/a (made by the run) folds into /tmp with both rights.
    let folded = fs::folded(&dirs);
    assert_eq!(folded.len(), 2);
    let tmp: Vec<&String> = folded[Path::new("/tmp")].keys().collect();
    assert_eq!(tmp, ["make_dir", "write_file"]);
    let rs = fs::ruleset(&dirs);
    let rules = rs.rules.unwrap().path_beneath;
    assert!(rules
        .iter()
        .any(|r| r.allowed_access == ["execute"] && r.paths == [PathBuf::from("/bin")]));

    // Bounded: past MAX_DIRS a new directory is kept as its top-level ancestor.
    let mut many = fs::Dirs::new();
    for i in 0..fs::MAX_DIRS {
        fs::add(
            &mut many,
            &Path::new("/data").join(i.to_string()).join("f"),
            "write_file",
            String::new,
        );
    }
    assert!(!fs::add(
        &mut many,
        Path::new("/var/x/y/f"),
        "write_file",
        String::new
    ));
    assert!(many.contains_key(Path::new("/var")));
    assert_eq!(many.len(), fs::MAX_DIRS + 1);

    // new_in: a right already held above the directory is not new.
    let known = Observations {
        fs: dirs,
        ..Default::default()
    };
    let mut run = Observations::default();
    fs::add(
        &mut run.fs,
        Path::new("/tmp/a/b/g"),
        "write_file",
        String::new,
    );
    fs::add(
        &mut run.fs,
        Path::new("/etc/passwd"),
        "write_file",
        String::new,
    );
    let new: Vec<String> = known.new_in(&run).iter().map(ToString::to_string).collect();
    assert_eq!(new, ["write_file beneath /etc"]);
}

#[test]
fn capabilities_inferred_from_calls_and_modes() {
    use super::caps::{dac_needed, needed_by, Creds};
    let args = |a: &[u64]| {
        let mut v = [0u64; 6];
        v[..a.len()].copy_from_slice(a);
        v
    };
    assert_eq!(needed_by("chroot", &args(&[])), ["CAP_SYS_CHROOT"]);
    assert_eq!(needed_by("setresuid32", &args(&[])), ["CAP_SETUID"]);
    let raw = args(&[libc::AF_INET as u64, libc::SOCK_RAW as u64]);
    assert_eq!(needed_by("socket", &raw), ["CAP_NET_RAW"]);
    let tcp = args(&[
        libc::AF_INET as u64,
        libc::SOCK_STREAM as u64 | libc::SOCK_CLOEXEC as u64,
    ]);
    assert!(needed_by("socket", &tcp).is_empty());
    assert_eq!(
        needed_by("mknodat", &args(&[0, 0, libc::S_IFCHR as u64])),
        ["CAP_MKNOD"]
    );
    assert!(needed_by("mknod", &args(&[0, libc::S_IFIFO as u64])).is_empty());
    assert!(needed_by("read", &args(&[])).is_empty());

    let status =
        "Name:\tsh\nUid:\t100\t100\t100\t100\nGid:\t200\t200\t200\t200\nGroups:\t300 400\n";
    let c = Creds::parse(status).unwrap();
    assert_eq!(
        (c.fsuid, c.fsgid, c.groups.clone()),
        (100, 200, vec![300, 400])
    );
    assert!(Creds::parse("Name:\tsh\n").is_none());
    // owner rw-, group r--, other ---
    assert!(dac_needed(0o640, 100, 1, &c, true, true).is_empty());
    assert!(dac_needed(0o640, 1, 400, &c, true, false).is_empty());
    assert_eq!(
        dac_needed(0o640, 1, 400, &c, false, true),
        ["CAP_DAC_OVERRIDE"]
    );
    assert_eq!(
        dac_needed(0o640, 1, 1, &c, true, false),
        ["CAP_DAC_READ_SEARCH", "CAP_DAC_OVERRIDE"]
    );
}

#[test]
fn runtime_argument_values_join_a_syscall_the_workload_also_made() {
    let mut o = obs(&[("prctl", seen(1, &[&[15]]))]);
    o.runtime
        .entry("SCMP_ARCH_X86_64".into())
        .or_default()
        .insert("prctl".into(), seen(1, &[&[24]]));
    let values = |p: Profile| -> Vec<u64> {
        p.syscalls
            .unwrap()
            .iter()
            .filter(|r| r.names == ["prctl"])
            .flat_map(|r| r.args.clone().unwrap_or_default())
            .map(|a| a.value)
            .collect()
    };
    assert_eq!(values(o.profile(false)), [15]);
    assert_eq!(values(o.profile(true)), [15, 24]);
}
