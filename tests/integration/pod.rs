//! Pods as containerd's CRI makes them: a sandbox container in a network namespace the client
//! made (host-owned, as CNI's /var/run/netns/...), then application containers that join the
//! sandbox's network, IPC and UTS namespaces by path. Under the default policy the pod is the
//! unit of the user namespace: every container of a pod has the sandbox's, two pods never
//! share a range.

use std::path::{Path, PathBuf};

use libtest_mimic::Failed;
use serde_json::{json, Value};

use crate::ensure;
use crate::util::*;

pub const TESTS: &[(&str, crate::TestFn)] = &[
    (
        "pod::containers_of_a_pod_share_its_user_namespace",
        one_userns_per_pod,
    ),
    ("pod::racing_pods_get_disjoint_ranges", racing_pods),
    (
        "pod::client_mappings_are_honoured_as_given",
        client_mappings,
    ),
    (
        "pod::host_namespaces_joined_keep_the_user_namespace",
        host_namespaces,
    ),
];

/// A network namespace pinned on a file, as CNI makes a pod's; unmounted when dropped.
struct NetNs {
    _dir: tempfile::TempDir,
    file: PathBuf,
}

impl NetNs {
    fn new() -> Result<NetNs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("net");
        std::fs::write(&file, "").map_err(|e| e.to_string())?;
        let o = std::process::Command::new("unshare")
            .arg(format!("--net={}", file.display()))
            .arg("true")
            .out();
        if o.code != 0 {
            return Err(format!("unshare --net=FILE: {}", o.stderr));
        }
        let ns = NetNs { _dir: dir, file };
        // What CNI's loopback plugin does.
        let o = std::process::Command::new("nsenter")
            .arg(format!("--net={}", ns.file.display()))
            .args(["ip", "link", "set", "lo", "up"])
            .out();
        if o.code != 0 {
            return Err(format!("ip link set lo up: {}", o.stderr));
        }
        Ok(ns)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.file, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn ok(o: &Out, what: &str) -> Result<(), Failed> {
    ensure!(o.code == 0, "{what}: exit {}: {}", o.code, o.stderr);
    Ok(())
}

/// What a process of the container sees: its uid_map line, its user, ipc, uts and network
/// namespaces, the owner of an image file, and its hostname.
const LOOK: &str = "tr -s ' ' < /proc/self/uid_map | sed 's/^ //'; \
    for n in user ipc uts net; do readlink /proc/self/ns/$n; done; \
    stat -c %u:%g /bin/busybox; hostname";

/// The sandbox: its own namespaces but the network, which the client made.
fn sandbox(net: &Path) -> Bundle {
    let mut b = Bundle::new();
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "network");
        list.push(json!({"type": "network", "path": net}));
        c["hostname"] = json!("pod-host");
        // A server on 127.0.0.1 for the pod's other containers.
        c["process"]["args"] = json!(["nc", "-ll", "-p", "7000", "-e", "echo", "pong"]);
    });
    b
}

/// An application container joining the sandbox's (pid `pid`) namespaces as CRI does.
fn member(net: &Path, pid: i64, ipc: Option<&str>) -> Bundle {
    let mut b = Bundle::new();
    let ipc = ipc.map_or_else(|| format!("/proc/{pid}/ns/ipc"), str::to_string);
    b.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| !["network", "ipc", "uts"].contains(&n["type"].as_str().unwrap()));
        list.push(json!({"type": "network", "path": net}));
        list.push(json!({"type": "ipc", "path": ipc}));
        list.push(json!({"type": "uts", "path": format!("/proc/{pid}/ns/uts")}));
        c.as_object_mut().unwrap().remove("hostname");
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    b
}

fn look(rt: &Runtime, id: &str) -> Result<Vec<String>, Failed> {
    let o = rt.exec(&["exec", id, "sh", "-c", LOOK]);
    ok(&o, &format!("exec in {id}"))?;
    Ok(o.stdout.lines().map(str::to_string).collect())
}

fn pid_of(rt: &Runtime, id: &str) -> Result<i64, Failed> {
    let st: Value = rt.state(id).ok_or(format!("no state of {id}"))?;
    Ok(st["pid"].as_i64().ok_or("no pid")?)
}

fn one_userns_per_pod() -> R {
    let (net1, net2) = match (NetNs::new(), NetNs::new()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return skip(e),
    };
    let rt = Runtime::new();
    let sb1 = sandbox(&net1.file);
    ok(&rt.run_detached("default", &sb1, "sb1"), "run the sandbox")?;
    let pid1 = pid_of(&rt, "sb1")?;
    let app1 = member(&net1.file, pid1, None);
    let app2 = member(&net1.file, pid1, None);
    ok(&rt.run_detached("default", &app1, "app1"), "run app1")?;
    ok(&rt.run_detached("default", &app2, "app2"), "run app2")?;
    let (s, a1, a2) = (look(&rt, "sb1")?, look(&rt, "app1")?, look(&rt, "app2")?);
    // uid_map, user/ipc/uts/net namespaces, image file owner, hostname: all the sandbox's.
    let host_uid = s[0].split(' ').nth(1).unwrap_or("0").to_string();
    ensure!(
        s[0].starts_with("0 ") && host_uid != "0",
        "the sandbox's root is not mapped: {s:?}"
    );
    ensure!(
        a1 == s && a2 == s,
        "the pod's containers differ from the sandbox:\nsandbox {s:?}\napp1 {a1:?}\napp2 {a2:?}"
    );
    ensure!(
        s[5] == "0:0" && s[6] == "pod-host",
        "image files or hostname: {s:?}"
    );
    // The same network namespace: app1 reaches the sandbox's server on 127.0.0.1.
    let o = rt.exec(&["exec", "app1", "sh", "-c", "nc 127.0.0.1 7000 </dev/null"]);
    ensure!(
        o.stdout.trim() == "pong",
        "app1 -> sandbox: {} {:?} {}",
        o.code,
        o.stdout,
        o.stderr
    );
    let st = rt.state("app1").ok_or("no state")?;
    let how = st["annotations"]["io.contain.userns"]
        .as_str()
        .unwrap_or("");
    ensure!(
        how.starts_with("the pod's, joined from its sandbox container \"sb1\""),
        "io.contain.userns: {how:?}"
    );

    // strict refuses a pod's container (it joins namespaces by path), naming the field.
    let strict = member(&net1.file, pid1, None);
    fails_with(
        &rt.run_detached("strict", &strict, "strict"),
        "joined from a path",
    )?;
    rt.assert_clean(&strict, "strict")?;

    // A second pod: a disjoint range, even while the first pod's sandbox is gone and only its
    // application containers hold the range.
    ok(&rt.exec(&["delete", "--force", "sb1"]), "delete sb1")?;
    let sb2 = sandbox(&net2.file);
    ok(
        &rt.run_detached("default", &sb2, "sb2"),
        "run the second sandbox",
    )?;
    let s2 = look(&rt, "sb2")?;
    let host2 = s2[0].split(' ').nth(1).unwrap_or("0").to_string();
    ensure!(
        host2 != "0" && host2 != host_uid && s2[1] != s[1],
        "the second pod shares the first's range or namespace: {s:?} {s2:?}"
    );
    ensure!(
        look(&rt, "app1")? == s,
        "app1 changed when its sandbox was deleted"
    );

    // Bad input: the sandbox is gone; a path that is not a namespace; one of the wrong type.
    let gone = member(&net1.file, pid1, None);
    fails_with(&rt.run_detached("default", &gone, "gone"), "is gone")?;
    rt.assert_clean(&gone, "gone")?;
    let notns = member(&net2.file, pid_of(&rt, "sb2")?, Some("/etc/hostname"));
    fails_with(
        &rt.run_detached("default", &notns, "notns"),
        "not a namespace file",
    )?;
    rt.assert_clean(&notns, "notns")?;
    let pid2 = pid_of(&rt, "sb2")?;
    let wrong = member(&net2.file, pid2, Some(&format!("/proc/{pid2}/ns/uts")));
    fails_with(
        &rt.run_detached("default", &wrong, "wrong"),
        "it is a uts namespace",
    )?;
    rt.assert_clean(&wrong, "wrong")?;

    for (id, b) in [("app1", &app1), ("app2", &app2), ("sb2", &sb2)] {
        ok(&rt.exec(&["delete", "--force", id]), "delete")?;
        rt.assert_clean(b, id)?;
    }
    rt.assert_clean(&sb1, "sb1")?;
    pass()
}

/// Pods started at once (a node starting its pods after a reboot): each sandbox gets a range
/// of its own, each pod's containers their sandbox's.
fn racing_pods() -> R {
    const PODS: usize = 4;
    let nets = (0..PODS)
        .map(|_| NetNs::new())
        .collect::<Result<Vec<_>, _>>();
    let nets = match nets {
        Ok(n) => n,
        Err(e) => return skip(e),
    };
    let rt = Runtime::new();
    let sandboxes: Vec<Bundle> = nets.iter().map(|n| sandbox(&n.file)).collect();
    std::thread::scope(|s| {
        for (i, b) in sandboxes.iter().enumerate() {
            let rt = &rt;
            s.spawn(move || rt.run_detached("default", b, &format!("sb{i}")));
        }
    });
    let mut apps = Vec::new();
    for (i, n) in nets.iter().enumerate() {
        apps.push(member(&n.file, pid_of(&rt, &format!("sb{i}"))?, None));
    }
    std::thread::scope(|s| {
        for (i, b) in apps.iter().enumerate() {
            let rt = &rt;
            s.spawn(move || rt.run_detached("default", b, &format!("app{i}")));
        }
    });
    let mut ranges = Vec::new();
    for i in 0..PODS {
        let (sb, app) = (
            look(&rt, &format!("sb{i}"))?,
            look(&rt, &format!("app{i}"))?,
        );
        ensure!(sb[0] == app[0], "pod {i}: sandbox {sb:?}, app {app:?}");
        let f: Vec<u64> = sb[0].split(' ').filter_map(|x| x.parse().ok()).collect();
        ensure!(f.len() == 3 && f[1] != 0, "pod {i}: {sb:?}");
        ranges.push((f[1], f[2]));
    }
    ranges.sort();
    for w in ranges.windows(2) {
        ensure!(
            w[0].0 + w[0].1 <= w[1].0,
            "two pods' ranges overlap: {ranges:?}"
        );
    }
    for i in 0..PODS {
        for id in [format!("app{i}"), format!("sb{i}")] {
            let o = rt.exec(&["delete", "--force", &id]);
            ensure!(o.code == 0, "delete {id}: {}", o.stderr);
        }
        rt.assert_clean(&apps[i], &format!("app{i}"))?;
        rt.assert_clean(&sandboxes[i], &format!("sb{i}"))?;
    }
    pass()
}

/// Kubernetes' own user namespaces (`hostUsers: false`) as containerd 2 sends them: the sandbox
/// asks for a new user namespace with the pod's mappings, its containers join it by path with
/// the same mappings. Under `default` both are honoured as given (no range of contain's pool),
/// the pod's containers share that one namespace, and `state` says the mappings are the
/// client's.
fn client_mappings() -> R {
    let net = match NetNs::new() {
        Ok(n) => n,
        Err(e) => return skip(e),
    };
    // Far above contain's pool, as the kubelet's own range would be.
    const HOST: u32 = 3_000_000_000;
    let maps = json!([{"containerID": 0, "hostID": HOST, "size": 65536}]);
    let rt = Runtime::new();
    let mut sb = sandbox(&net.file);
    sb.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "user");
        list.push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
    });
    ok(&rt.run_detached("default", &sb, "csb"), "run the sandbox")?;
    let pid = pid_of(&rt, "csb")?;
    let mut app = member(&net.file, pid, None);
    app.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "user");
        list.push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
        c["linux"]["uidMappings"] = maps.clone();
        c["linux"]["gidMappings"] = maps.clone();
    });
    ok(&rt.run_detached("default", &app, "capp"), "run the app")?;
    let (s, a) = (look(&rt, "csb")?, look(&rt, "capp")?);
    ensure!(
        s[0] == format!("0 {HOST} 65536"),
        "the sandbox's mappings are not the client's: {s:?}"
    );
    ensure!(
        a == s,
        "the app differs from its sandbox:\nsandbox {s:?}\napp {a:?}"
    );
    // The client prepares the rootfs for its mappings (containerd 2 idmaps the snapshot);
    // contain adds no idmapped rootfs of its own here: host root's files are nobody's.
    ensure!(s[5] == "65534:65534", "image files: {s:?}");
    for id in ["csb", "capp"] {
        let st = rt.state(id).ok_or("no state")?;
        let how = st["annotations"]["io.contain.userns"]
            .as_str()
            .unwrap_or("");
        ensure!(
            how.starts_with("the client's") && how.contains(&format!("uid map 0 {HOST} 65536")),
            "{id}: io.contain.userns: {how:?}"
        );
    }
    let how = rt.state("capp").ok_or("no state")?["annotations"]["io.contain.userns"].clone();
    ensure!(
        how.as_str()
            .is_some_and(|h| h.contains(&format!("joined from /proc/{pid}/ns/user"))),
        "the app's state does not say it joined: {how}"
    );
    for (id, b) in [("capp", &app), ("csb", &sb)] {
        ok(&rt.exec(&["delete", "--force", id]), "delete")?;
        rt.assert_clean(b, id)?;
    }
    pass()
}

/// What a hostPID + hostIPC pod's containers send (containerd 1.6 makes them join the
/// sandbox's pid, IPC and UTS namespaces by path, which are the host's), and a container with
/// no `ipc` entry (`--ipc=host`): under `default` they still get a user namespace of their
/// own, the host's namespaces joined first. From inside: the namespaces are the host's, host
/// processes are seen but cannot be signalled, the hostname cannot be set, and /dev/mqueue is
/// the host IPC namespace's mqueue (this host has none mounted to bind).
fn host_namespaces() -> R {
    let rt = Runtime::new();
    let me = std::process::id();
    let host =
        |n: &str| std::fs::read_link(format!("/proc/self/ns/{n}")).map(|p| p.display().to_string());
    let (pid, ipc, uts) = (host("pid")?, host("ipc")?, host("uts")?);
    let mut joins = Bundle::new();
    joins.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| !["pid", "ipc", "uts"].contains(&n["type"].as_str().unwrap()));
        for n in ["pid", "ipc", "uts"] {
            list.push(json!({"type": n, "path": format!("/proc/{me}/ns/{n}")}));
        }
        c.as_object_mut().unwrap().remove("hostname");
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    let mut no_ipc = Bundle::new();
    no_ipc.set(|c| {
        let list = c["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != "ipc");
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    // Setting the hostname to its own value changes nothing, should the attack succeed.
    let probe = format!(
        "head -1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //'; \
         for n in pid ipc uts; do readlink /proc/self/ns/$n; done; \
         grep -c ' /dev/mqueue mqueue ' /proc/self/mounts; \
         test -d /proc/{me} && echo sees-host; \
         kill -0 {me} 2>/dev/null && echo signalled-host; \
         hostname \"$(hostname)\" 2>/dev/null && echo set-hostname; true"
    );
    // The audit says what create will do.
    let o = std::process::Command::new(CONTAIN)
        .args(["audit", "--bundle"])
        .arg(joins.path())
        .out();
    ensure!(
        o.stdout
            .contains("the host's pid, ipc, uts namespace(s) joined first"),
        "the audit does not say the host's namespaces are joined first: {} {}",
        o.stdout,
        o.stderr
    );
    for (id, b) in [("hostns", &joins), ("noipc", &no_ipc)] {
        ok(&rt.run_detached("default", b, id), &format!("run {id}"))?;
        let o = rt.exec(&["exec", id, "sh", "-c", &probe]);
        ok(&o, &format!("exec in {id}"))?;
        let l: Vec<&str> = o.stdout.lines().collect();
        ensure!(
            l.first()
                .is_some_and(|m| m.starts_with("0 ") && !m.starts_with("0 0 ")),
            "{id}: container root is not mapped: {l:?}"
        );
        ensure!(
            l.get(2) == Some(&ipc.as_str()),
            "{id}: not the host's IPC namespace: {l:?}"
        );
        ensure!(
            l.get(4) == Some(&"1"),
            "{id}: /dev/mqueue is not one mqueue: {l:?}"
        );
        ensure!(
            !l.contains(&"signalled-host") && !l.contains(&"set-hostname"),
            "{id}: container root holds a capability over the host: {l:?}"
        );
        if id == "hostns" {
            ensure!(
                l.get(1) == Some(&pid.as_str()) && l.get(3) == Some(&uts.as_str()),
                "{id}: not the host's pid and UTS namespaces: {l:?}"
            );
            ensure!(
                l.contains(&"sees-host"),
                "{id}: host processes not seen: {l:?}"
            );
            let st = rt.state(id).ok_or("no state")?;
            let how = st["annotations"]["io.contain.userns"]
                .as_str()
                .unwrap_or("");
            ensure!(
                how.starts_with(
                    "added by the policy (the host's pid, ipc, uts namespace(s) joined first"
                ),
                "{id}: io.contain.userns: {how:?}"
            );
        }
        ok(&rt.exec(&["delete", "--force", id]), "delete")?;
        rt.assert_clean(b, id)?;
    }
    pass()
}
