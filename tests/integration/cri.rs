//! Kubernetes without a kubelet: containerd's CRI plugin with a runtime handler `contain`
//! (io.containerd.runc.v2 with contain as its runtime binary), CNI's bridge plugin, a sandbox
//! image built here, and a gRPC client of the CRI API doing what the kubelet does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::clients::{oci_archive, Containerd};
use crate::ensure;
use crate::util::*;
use libtest_mimic::Failed;

pub const TESTS: Tests = &[
    (
        "cri::pods_through_containerd_cri_share_a_user_namespace",
        pods,
    ),
    ("cri::pods_on_a_shared_root", || on_shared_root(pods)),
    ("cri::pod_start_latency_vs_runc", pod_start_latency),
    (
        "cri::handler_option_the_host_cannot_honour_fails_clearly",
        unhonoured_handler_option,
    ),
];

/// The image of every container here (the sandbox's command is its own: a pause).
const IMAGE: &str = "docker.io/library/contain-pause:test";
/// The pods' cgroup parent (cgroupfs driver).
const CGROUP_PARENT: &str = "contain-cri-test";
/// What a container sees: its uid_map line, its user, ipc, uts and network namespaces, the
/// owner of an image file.
const LOOK: &str = "tr -s ' ' < /proc/self/uid_map | sed 's/^ //'; \
    for n in user ipc uts net; do readlink /proc/self/ns/$n; done; stat -c %u:%g /bin/busybox";

/// A containerd with the CRI plugin, a CRI client, and the pods made through it (removed,
/// with the daemon, when dropped).
struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    ctd: Containerd,
    pods: std::cell::RefCell<Vec<String>>,
}

fn status(e: tonic::Status) -> String {
    format!("{}: {}", e.code(), e.message())
}

impl Cri {
    fn start() -> Result<Cri, String> {
        let (Some(containerd), Some(ctr), Some(runc)) =
            (which("containerd"), which("ctr"), which("runc"))
        else {
            return Err(
                "containerd or runc is not installed (apt-get install containerd runc)".into(),
            );
        };
        let cni = Path::new("/usr/lib/cni");
        if !cni.join("bridge").exists() || !cni.join("loopback").exists() {
            return Err(
                "CNI plugins are not installed (apt-get install containernetworking-plugins)"
                    .into(),
            );
        }
        let ctd = Containerd::start_with(&containerd, ctr, |d| {
            let conf = d.join("cni");
            std::fs::create_dir_all(&conf).ok()?;
            let conflist = serde_json::json!({
                "cniVersion": "0.4.0",
                "name": "contain-cri-test",
                "plugins": [{
                    "type": "bridge", "bridge": "cntest0", "isGateway": false, "ipMasq": false,
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.199.0.0/24"}]],
                             "dataDir": d.join("ipam")}
                }]
            });
            std::fs::write(conf.join("10-test.conflist"), conflist.to_string()).ok()?;
            let d = d.display();
            let runtime = |name: &str, bin: &str, systemd: bool| {
                format!(
                    r#"    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
        BinaryName = "{bin}"
        Root = "{d}/{name}-root"
        SystemdCgroup = {systemd}
"#
                )
            };
            Some(format!(
                r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
{}{}{}  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#,
                runtime("runc", &runc.to_string_lossy(), false),
                runtime("contain", CONTAIN, false),
                // An option the host cannot honour: systemd's cgroup driver without systemd.
                runtime("contain-systemd", CONTAIN, true)
            ))
        })?;
        let rootfs = Bundle::new();
        let archive = oci_archive(
            &rootfs.rootfs(),
            ctd.dir.path(),
            IMAGE,
            &["sleep", "2147483647"],
        )?;
        let o = ctd.ctr(&[
            "-n",
            "k8s.io",
            "images",
            "import",
            &archive.to_string_lossy(),
        ]);
        if o.code != 0 {
            return Err(format!("ctr images import: {}", o.stderr));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let sock = ctd.socket();
        let channel = rt
            .block_on(
                Endpoint::try_from("http://[::]:50051")
                    .map_err(|e| e.to_string())?
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(sock).await?,
                            ))
                        }
                    })),
            )
            .map_err(|e| format!("connect to the CRI: {e}"))?;
        let cri = Cri {
            rt,
            client: RuntimeServiceClient::new(channel),
            ctd,
            pods: Default::default(),
        };
        // Ready when the runtime and the network (CNI config loaded) say so.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let st = cri
                .rt
                .block_on(cri.client().status(StatusRequest { verbose: false }));
            let ready = st.as_ref().ok().and_then(|r| r.get_ref().status.clone());
            if ready.is_some_and(|s| s.conditions.iter().all(|c| c.status)) {
                return Ok(cri);
            }
            if Instant::now() > deadline {
                return Err(format!("the CRI is not ready: {st:?}\n{}", cri.ctd.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn client(&self) -> RuntimeServiceClient<Channel> {
        self.client.clone()
    }

    /// RunPodSandbox with the handler; the pod's config is returned for CreateContainer.
    fn run_pod(
        &self,
        name: &str,
        handler: &str,
        // hostNetwork, hostPID and hostIPC.
        host: bool,
    ) -> Result<(String, PodSandboxConfig), String> {
        let node = |otherwise: NamespaceMode| {
            if host {
                NamespaceMode::Node as i32
            } else {
                otherwise as i32
            }
        };
        let logs = self.ctd.dir.path().join("logs").join(name);
        std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.into(),
                uid: format!("uid-{name}"),
                namespace: "default".into(),
                attempt: 0,
            }),
            // The kubelet names no hostname for a hostNetwork pod (it keeps the host's).
            hostname: if host { String::new() } else { name.into() },
            log_directory: logs.to_string_lossy().into(),
            linux: Some(LinuxPodSandboxConfig {
                // The systemd driver's parent is a slice (containerd then sends
                // slice:cri-containerd:id as cgroupsPath).
                cgroup_parent: if handler.ends_with("-systemd") {
                    format!("{}.slice", CGROUP_PARENT.replace('-', "_"))
                } else {
                    format!("/{CGROUP_PARENT}")
                },
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: node(NamespaceMode::Pod),
                        pid: node(NamespaceMode::Container),
                        ipc: node(NamespaceMode::Pod),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = self
            .rt
            .block_on(self.client().run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: handler.into(),
            }))
            .map_err(|e| format!("RunPodSandbox {name}: {}\n{}", status(e), self.ctd.log()))?;
        let id = r.into_inner().pod_sandbox_id;
        self.pods.borrow_mut().push(id.clone());
        Ok((id, config))
    }

    /// CreateContainer + StartContainer.
    fn run_container(
        &self,
        pod: &(String, PodSandboxConfig),
        name: &str,
        command: &[&str],
    ) -> Result<String, String> {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: IMAGE.into(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            // As the kubelet: the container's namespace modes are the pod's.
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: pod
                        .1
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .block_on(self.client().create_container(CreateContainerRequest {
                pod_sandbox_id: pod.0.clone(),
                config: Some(config),
                sandbox_config: Some(pod.1.clone()),
            }))
            .map_err(|e| format!("CreateContainer {name}: {}", status(e)))?
            .into_inner()
            .container_id;
        self.rt
            .block_on(self.client().start_container(StartContainerRequest {
                container_id: id.clone(),
            }))
            .map_err(|e| format!("StartContainer {name}: {}", status(e)))?;
        Ok(id)
    }

    /// ExecSync: (exit code, stdout, stderr).
    fn exec(&self, id: &str, cmd: &[&str]) -> Result<(i32, String, String), String> {
        let r = self
            .rt
            .block_on(self.client().exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 20,
            }))
            .map_err(|e| format!("ExecSync {cmd:?}: {}", status(e)))?
            .into_inner();
        Ok((
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into(),
            String::from_utf8_lossy(&r.stderr).into(),
        ))
    }

    fn look(&self, id: &str) -> Result<Vec<String>, String> {
        let (code, out, err) = self.exec(id, &["sh", "-c", LOOK])?;
        if code != 0 {
            return Err(format!("exec in {id}: {code} {err}"));
        }
        Ok(out.lines().map(str::to_string).collect())
    }

    /// StopPodSandbox + RemovePodSandbox (which removes the pod's containers).
    fn remove_pod(&self, id: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client().stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .map_err(|e| format!("StopPodSandbox: {}", status(e)))?;
        self.rt
            .block_on(self.client().remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }))
            .map_err(|e| format!("RemovePodSandbox: {}", status(e)))?;
        self.pods.borrow_mut().retain(|p| p != id);
        Ok(())
    }

    /// Nothing of a removed pod is left: no state directory in `root`, cgroup under the
    /// pods' parent, mount under the daemon's directory (but its snapshots), or network
    /// namespace pin beyond `netns_before`.
    fn nothing_left(&self, root: &Path, netns_before: &[String]) -> Result<(), Failed> {
        let left: Vec<_> = std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        ensure!(
            left.is_empty(),
            "state directories left in {}: {left:?}",
            root.display()
        );
        ensure!(
            cgroups_left().is_empty(),
            "cgroups left: {:?}",
            cgroups_left()
        );
        let mounts: Vec<_> = host_mounts_under(self.ctd.dir.path())
            .into_iter()
            .filter(|m| !m.contains("/root/io.containerd.snapshotter"))
            .collect();
        ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
        ensure!(
            netns_pins() == netns_before,
            "network namespaces left: {:?}",
            netns_pins()
        );
        Ok(())
    }

    /// The state root the shim gives `handler`'s runtime binary (its Root, then the
    /// containerd namespace).
    fn root(&self, handler: &str) -> PathBuf {
        self.ctd.dir.path().join(format!("{handler}-root/k8s.io"))
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        let pods = self.pods.borrow().clone();
        for id in pods {
            let _ = self.remove_pod(&id);
        }
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "cntest0"])
            .out();
        remove_cgroup_parent();
    }
}

/// The cgroup directories left under the pods' parent (each hierarchy's), then the parent.
fn cgroups_left() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|h| {
            std::fs::read_dir(h.path().join(CGROUP_PARENT))
                .into_iter()
                .flatten()
        })
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn remove_cgroup_parent() {
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(h.path().join(CGROUP_PARENT));
    }
}

/// One CRI test at a time: they share the cgroup parent, the bridge and /var/run/netns.
static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn pods() -> R {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let cri = match Cri::start() {
        Ok(c) => c,
        Err(e) => return skip(e),
    };
    let netns_before = netns_pins();

    // One pod, two containers: a server and a client.
    let pod1 = cri.run_pod("pod1", "contain", false)?;
    let server = cri.run_container(
        &pod1,
        "server",
        &["nc", "-ll", "-p", "7000", "-e", "echo", "pong"],
    )?;
    let client = cri.run_container(
        &pod1,
        "client",
        &["sh", "-c", "echo started; exec sleep 2147483647"],
    )?;
    let (s, c) = (cri.look(&server)?, cri.look(&client)?);
    let host_uid = s[0].split(' ').nth(1).unwrap_or("0").to_string();
    ensure!(
        s[0].starts_with("0 ") && host_uid != "0",
        "the pod's root is host root: {s:?}"
    );
    ensure!(
        s == c,
        "the containers of one pod differ:\nserver {s:?}\nclient {c:?}"
    );
    ensure!(s[5] == "0:0", "image files are not root's inside: {s:?}");
    let (code, out, err) = cri.exec(&client, &["sh", "-c", "nc 127.0.0.1 7000 </dev/null"])?;
    ensure!(
        out.trim() == "pong",
        "client -> server on 127.0.0.1: {code} {out:?} {err}"
    );
    // The sandbox itself: the same user namespace (contain's state says so).
    let root = cri.root("contain");
    let state = |id: &str| -> Result<serde_json::Value, String> {
        let o = std::process::Command::new(CONTAIN)
            .arg("--root")
            .arg(&root)
            .args(["state", id])
            .out();
        serde_json::from_str(&o.stdout).map_err(|e| format!("state {id}: {e}: {}", o.stderr))
    };
    let how = state(&server)?["annotations"]["io.contain.userns"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(
        how.starts_with(&format!(
            "the pod's, joined from its sandbox container {:?}",
            pod1.0
        )) && how.contains("the host's network namespace(s) joined first"),
        "io.contain.userns of a pod's container: {how:?}"
    );

    // ContainerStatus, ContainerStats, ListContainers, logs.
    let st = cri
        .rt
        .block_on(cri.client().container_status(ContainerStatusRequest {
            container_id: client.clone(),
            verbose: false,
        }))
        .map_err(status)?
        .into_inner()
        .status
        .ok_or("no status")?;
    ensure!(
        st.state == ContainerState::ContainerRunning as i32,
        "ContainerStatus: {st:?}"
    );
    let stats = cri
        .rt
        .block_on(cri.client().container_stats(ContainerStatsRequest {
            container_id: client.clone(),
        }))
        .map_err(status)?
        .into_inner()
        .stats
        .ok_or("no stats")?;
    ensure!(
        stats
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .is_some_and(|w| w.value > 0),
        "ContainerStats has no memory use: {stats:?}"
    );
    let list = cri
        .rt
        .block_on(cri.client().list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                pod_sandbox_id: pod1.0.clone(),
                ..Default::default()
            }),
        }))
        .map_err(status)?
        .into_inner()
        .containers;
    ensure!(list.len() == 2, "ListContainers of the pod: {list:?}");
    let log = cri.ctd.dir.path().join("logs/pod1/client.log");
    ensure!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(" stdout F started"),
        "the client's log {}: {:?}",
        log.display(),
        std::fs::read_to_string(&log)
    );
    cri.rt
        .block_on(
            cri.client()
                .reopen_container_log(ReopenContainerLogRequest {
                    container_id: client.clone(),
                }),
        )
        .map_err(status)?;

    // A second pod: a range of its own.
    let pod2 = cri.run_pod("pod2", "contain", false)?;
    let other = cri.run_container(&pod2, "other", &["sleep", "2147483647"])?;
    let o = cri.look(&other)?;
    let host2 = o[0].split(' ').nth(1).unwrap_or("0").to_string();
    ensure!(
        host2 != "0" && host2 != host_uid && o[1] != s[1] && o[4] != s[4],
        "the second pod shares the first's range or namespaces: {s:?} {o:?}"
    );

    // hostNetwork, hostPID, hostIPC: the host's namespaces, still a user namespace. The pod
    // has no namespace of its own to be found by, so each container gets one (and a range)
    // of its own, the host's namespaces joined first.
    let pod3 = cri.run_pod("pod3", "contain", true)?;
    let hn = cri.run_container(&pod3, "hn", &["sleep", "2147483647"])?;
    let h = cri.look(&hn)?;
    let host_net = std::fs::read_link("/proc/self/ns/net")?;
    let how = state(&hn)?["annotations"]["io.contain.userns"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(
        how.starts_with(
            "added by the policy (the host's pid, ipc, uts, network namespace(s) joined first"
        ),
        "a host-namespaces pod's container does not say it shares the host's namespaces: {how:?}"
    );
    ensure!(
        h[4] == host_net.to_string_lossy() && h[0].starts_with("0 ") && !h[0].starts_with("0 0 "),
        "a hostNetwork pod: {h:?} (host {host_net:?}); contain's state of its sandbox: {} and of the container: {}",
        state(&pod3.0)?["annotations"],
        state(&hn)?["annotations"]
    );
    let sb = state(&pod3.0)?["annotations"]["io.contain.userns"].clone();
    ensure!(
        sb.as_str()
            .is_some_and(|s| s.starts_with("added by the policy")),
        "a host-namespaces pod's sandbox has no user namespace: {sb}"
    );
    let host_pid = std::fs::read_link("/proc/self/ns/pid")?;
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc")?;
    let (code, out, err) = cri.exec(
        &hn,
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/pid; grep -c ' /dev/mqueue .* - mqueue ' /proc/self/mountinfo; \
             ps | grep -c [c]ontainerd-shim",
        ],
    )?;
    let seen: Vec<&str> = out.lines().collect();
    ensure!(
        code == 0
            && h[2] == host_ipc.to_string_lossy()
            && seen.first() == Some(&&*host_pid.to_string_lossy())
            && seen.get(1) == Some(&"1")
            && seen.get(2).is_some_and(|n| *n != "0"),
        "a hostPID/hostIPC pod does not share the host's pid and IPC namespaces with an mqueue of \
         its own (ipc {}, host {host_ipc:?}; host pid {host_pid:?}): {code} {out:?} {err}",
        h[2]
    );

    // Stop and remove: nothing of any pod is left.
    cri.rt
        .block_on(cri.client().stop_container(StopContainerRequest {
            container_id: server.clone(),
            timeout: 2,
        }))
        .map_err(status)?;
    for p in [&pod1.0, &pod2.0, &pod3.0] {
        cri.remove_pod(p)?;
    }
    cri.nothing_left(&root, &netns_before)?;
    let procs = std::process::Command::new("pgrep")
        .args(["-f", "nc -ll -p 7000"])
        .out();
    ensure!(
        procs.stdout.trim().is_empty(),
        "processes left: {}",
        procs.stdout
    );
    pass()
}

/// The network namespaces the CRI plugin pinned under /var/run/netns (podman's, of other
/// tests, are named netns-...).
fn netns_pins() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/var/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cni-"))
        .collect();
    v.sort();
    v
}

/// Pod start latency as the kubelet sees it (RunPodSandbox + CreateContainer +
/// StartContainer), contain's handler against runc's in the same daemon, interleaved; prints
/// the medians and their ratio. `CONTAIN_BENCH_PODS` pods of each (benches/cri-vs-runc.sh sets
/// it; 3 when unset). Fails only when a pod does not start under either handler.
fn pod_start_latency() -> R {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let n: usize = std::env::var("CONTAIN_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let cri = match Cri::start() {
        Ok(c) => c,
        Err(e) => return skip(e),
    };
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for i in 0..n {
        for (k, handler) in ["contain", "runc"].into_iter().enumerate() {
            let t = Instant::now();
            let pod = cri.run_pod(&format!("{handler}{i}"), handler, false)?;
            cri.run_container(&pod, "c", &["sleep", "2147483647"])?;
            times[k].push(t.elapsed());
            cri.remove_pod(&pod.0)?;
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (c, r) = (median(&mut times[0]), median(&mut times[1]));
    println!(
        "pod start (RunPodSandbox + CreateContainer + StartContainer), median of {n}: contain {:.1} ms, runc {:.1} ms, ratio {:.2}",
        c.as_secs_f64() * 1e3,
        r.as_secs_f64() * 1e3,
        c.as_secs_f64() / r.as_secs_f64()
    );
    ensure!(
        cgroups_left().is_empty(),
        "cgroups left: {:?}",
        cgroups_left()
    );
    pass()
}

/// A runtime handler whose options the host cannot honour (containerd's `SystemdCgroup =
/// true` on a host without systemd): RunPodSandbox fails with contain's reason in the CRI
/// error, and nothing of the pod is left (state, cgroups, mounts, network namespace,
/// processes); a pod of the plain handler still runs in the same daemon afterwards.
fn unhonoured_handler_option() -> R {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new("/run/systemd/system").exists() {
        return skip("systemd runs this host: the systemd handler would work here");
    }
    let cri = match Cri::start() {
        Ok(c) => c,
        Err(e) => return skip(e),
    };
    let netns_before = netns_pins();
    let err = match cri.run_pod("sysd", "contain-systemd", false) {
        Ok((id, _)) => {
            return Err(format!(
                "RunPodSandbox with SystemdCgroup on a host without systemd succeeded: {id}"
            )
            .into())
        }
        Err(e) => e,
    };
    let first = err.lines().next().unwrap_or_default();
    ensure!(
        first.contains("--systemd-cgroup: cannot reach systemd"),
        "the CRI error does not carry contain's reason: {first}"
    );
    cri.nothing_left(&cri.root("contain-systemd"), &netns_before)?;
    let slice = format!("{}.slice", CGROUP_PARENT.replace('-', "_"));
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(&slice))
        .filter(|p| p.exists())
        .collect();
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let inside: Vec<_> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|p| {
            std::fs::read_link(p.path().join("root"))
                .is_ok_and(|r| r.starts_with(cri.ctd.dir.path()))
        })
        .map(|p| p.file_name())
        .collect();
    ensure!(inside.is_empty(), "processes left in the pod: {inside:?}");

    // The daemon and the plain handler are unharmed.
    let pod = cri.run_pod("after", "contain", false)?;
    let c = cri.run_container(&pod, "c", &["sleep", "60"])?;
    let (code, out, _) = cri.exec(&c, &["id", "-u"])?;
    ensure!(
        code == 0 && out.trim() == "0",
        "a pod of the plain handler after the refusal: exit {code}, {out:?}"
    );
    cri.remove_pod(&pod.0)?;
    pass()
}
