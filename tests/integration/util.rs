//! Helpers: busybox bundles made on the fly, a private state root per test, and a runner for
//! the real `contain` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use libtest_mimic::{Completion, Failed};
use serde_json::{json, Value};

pub type R = Result<Completion, Failed>;

/// A module's tests: name and function.
pub type Tests = &'static [(&'static str, fn() -> R)];

pub const CONTAIN: &str = env!("CARGO_BIN_EXE_contain");

pub fn pass() -> R {
    Ok(Completion::Completed)
}

/// A test that cannot run here is reported as ignored, with the reason; with
/// `CONTAIN_TEST_REQUIRE=all` (CI sets it) it fails instead: a skipped client test is how a
/// broken client goes unseen.
pub fn skip(why: impl ToString) -> R {
    let why = why.to_string();
    if required() {
        return Err(Failed::from(format!(
            "CONTAIN_TEST_REQUIRE=all, and this test cannot run here: {why}"
        )));
    }
    eprintln!("SKIPPED: {why}");
    Ok(Completion::ignored_with(why))
}

/// A skip that the README names (section "Tests that may be skipped"), for a machine that
/// cannot run the test by its nature: ignored even under `CONTAIN_TEST_REQUIRE=all`.
pub fn skip_known(why: impl ToString) -> R {
    let why = why.to_string();
    eprintln!("SKIPPED (named in the README): {why}");
    Ok(Completion::ignored_with(why))
}

/// `CONTAIN_TEST_REQUIRE=all`: every integration test must run.
pub fn required() -> bool {
    std::env::var("CONTAIN_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// The mount points of this thread's mount namespace, with each one's filesystem type.
fn mount_table() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let fstype = right.split(' ').next()?;
            Some(format!("{point} ({fstype})"))
        })
        .collect();
    v.sort();
    v
}

/// Run `f` as on a systemd host: on this thread, in a mount namespace of its own whose `/` is
/// recursively shared (this machine's is private, a systemd host's is shared; the machine's
/// own `/` is never touched). Everything `f` starts (contain, the clients' daemons) starts in
/// that namespace. After `f`, no mount may have appeared in (or gone from) that namespace's
/// table — the "host's" — below a container's root (`.../rootfs/...`, or an engine's
/// `.../merged/...`): a container mount that propagated out fails the test. Mounts elsewhere
/// are the clients' own (image layers, network namespaces) or other tests' (a shared
/// /run/netns propagates into the copy), and are not counted.
pub fn on_shared_root(f: fn() -> R) -> R {
    in_own_mount_ns(true, f, |point, _| {
        point.contains("/rootfs/") || point.contains("/merged/")
    })
}

/// Run `f` on this thread in a private copy of the machine's mount namespace, failing it if
/// any mount appeared in (or went from) the copy: what a runtime leaks into its caller's
/// namespace, unmixed with the mounts of tests running beside it. Network namespaces bound by
/// other tests under a shared /run/netns (nsfs) propagate into the copy and are not counted.
pub fn on_private_root(f: fn() -> R) -> R {
    in_own_mount_ns(false, f, |_, fstype| fstype != "nsfs")
}

fn in_own_mount_ns(shared: bool, f: fn() -> R, counts: fn(&str, &str) -> bool) -> R {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{setns, unshare, CloneFlags};
    let counts = |m: &&String| {
        let (point, fstype) = m.split_once(' ').unwrap_or((m, ""));
        counts(point, fstype.trim_matches(|c| c == '(' || c == ')'))
    };
    let home = std::fs::File::open("/proc/thread-self/ns/mnt")
        .map_err(|e| Failed::from(format!("open this thread's mount namespace: {e}")))?;
    // CLONE_FS: this thread's root and cwd become its own, so that the others keep theirs.
    unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)
        .map_err(|e| Failed::from(format!("unshare a mount namespace: {e}")))?;
    let result = (|| {
        if shared {
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| Failed::from(format!("make / rshared: {e}")))?;
        }
        let before = mount_table();
        let r = f();
        let after = mount_table();
        let added: Vec<_> = after
            .iter()
            .filter(|m| !before.contains(m))
            .filter(counts)
            .collect();
        let gone: Vec<_> = before
            .iter()
            .filter(|m| !after.contains(m))
            .filter(counts)
            .collect();
        if !(added.is_empty() && gone.is_empty()) {
            return Err(Failed::from(format!(
                "the host's mount table changed ({} /): added {added:?}, removed {gone:?}; the test itself: {}",
                if shared { "shared" } else { "private" },
                match &r {
                    Ok(_) => "passed".to_string(),
                    Err(e) => format!("{e:?}"),
                }
            )));
        }
        r
    })();
    setns(&home, CloneFlags::CLONE_NEWNS)
        .map_err(|e| Failed::from(format!("return to the test's mount namespace: {e}")))?;
    let _ = std::env::set_current_dir("/");
    result
}

#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(libtest_mimic::Failed::from(format!($($fmt)+)));
        }
    };
}

/// Why the container tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root".into());
    }
    if busybox().is_none() {
        return Some("needs busybox-static (apt-get install busybox-static)".into());
    }
    None
}

pub fn busybox() -> Option<PathBuf> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A bundle with a busybox rootfs and a config from `contain spec` (terminal off).
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    pub fn new() -> Bundle {
        let dir = tempfile::Builder::new()
            .prefix("contain-test-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "home"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let bb = busybox().expect("busybox");
        std::fs::copy(&bb, rootfs.join("bin/busybox")).unwrap();
        let list = Command::new(&bb).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        let out = Command::new(CONTAIN)
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "contain spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        config["process"]["terminal"] = json!(false);
        // Tests run in parallel with the same ids in different state roots: give each bundle
        // its own cgroup so that they never share one.
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        config["linux"]["cgroupsPath"] = json!(format!("/contain-test/{name}"));
        let b = Bundle { dir, config };
        b.save();
        b
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The bundle's cgroupsPath relative to a hierarchy's root.
    pub fn cgroup_rel(&self) -> String {
        self.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string()
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Set process.args to `sh -c SCRIPT`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.config["process"]["args"] = json!(["sh", "-c", script]);
        self.save();
        self
    }

    pub fn set(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.save();
        self
    }

    pub fn save(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }
}

/// A private state root, so that tests never see each other's containers.
pub struct Runtime {
    pub root: tempfile::TempDir,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run a command with its stdout and stderr in files, not pipes: a created container's init
/// inherits them and keeps a pipe open long after `contain create` has exited.
pub trait RunExt {
    fn out(&mut self) -> Out;
}

impl RunExt for Command {
    fn out(&mut self) -> Out {
        let so = tempfile::tempfile().unwrap();
        let se = tempfile::tempfile().unwrap();
        let status = self
            .stdout(so.try_clone().unwrap())
            .stderr(se.try_clone().unwrap())
            .status()
            .unwrap();
        let read = |mut f: std::fs::File| {
            use std::io::{Read, Seek};
            let mut s = String::new();
            f.seek(std::io::SeekFrom::Start(0)).unwrap();
            f.read_to_string(&mut s).unwrap();
            s
        };
        Out {
            code: status.code().unwrap_or(-1),
            stdout: read(so),
            stderr: read(se),
        }
    }
}

impl Out {
    /// stderr with each log line in runc's text shape (`time="..." level=... msg="..."`)
    /// replaced by its message, unquoted.
    pub fn messages(&self) -> String {
        self.stderr
            .lines()
            .map(
                |l| match l.strip_prefix("time=").and_then(|r| r.split_once(" msg=")) {
                    Some((_, msg)) => unquote(msg),
                    None => l.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A logrus text value: bare, or quoted with backslash escapes.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('u') => {
                let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                out.extend(u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        Runtime {
            root: tempfile::Builder::new()
                .prefix("contain-root-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CONTAIN);
        c.arg("--root").arg(self.root.path());
        // The operator's guest directory: where the tests build and copy guest images.
        c.env("CONTAIN_GUEST_DIR", guest_dir());
        // No operator configuration (whatever this machine's /etc/contain holds): the
        // defaults. A test that wants one sets CONTAIN_CONFIG itself.
        c.env("CONTAIN_CONFIG", "/nonexistent/contain-test/config.json");
        c.stdin(Stdio::null());
        c
    }

    pub fn exec(&self, args: &[&str]) -> Out {
        self.cmd().args(args).out()
    }

    /// `contain run` in the foreground.
    pub fn run(&self, b: &Bundle, id: &str) -> Out {
        self.cmd()
            .args(["run", "--bundle"])
            .arg(b.path())
            .arg(id)
            .out()
    }

    /// `contain --policy POLICY VERB --bundle B ID` (VERB: create or run).
    pub fn with_policy(&self, policy: &str, verb: &str, b: &Bundle, id: &str) -> Out {
        self.cmd()
            .args(["--policy", policy, verb, "--bundle"])
            .arg(b.path())
            .arg(id)
            .out()
    }

    /// `contain --policy POLICY run -d --bundle B ID`.
    pub fn run_detached(&self, policy: &str, b: &Bundle, id: &str) -> Out {
        self.cmd()
            .args(["--policy", policy, "run", "-d", "--bundle"])
            .arg(b.path())
            .arg(id)
            .out()
    }

    pub fn create(&self, b: &Bundle, id: &str) -> Out {
        self.cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(id)
            .out()
    }

    pub fn state(&self, id: &str) -> Option<Value> {
        let o = self.exec(&["state", id]);
        (o.code == 0).then(|| serde_json::from_str(&o.stdout).unwrap())
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id).map_or_else(
            || "absent".into(),
            |s| s["status"].as_str().unwrap().to_string(),
        )
    }

    /// Wait (up to 5 s) for the container to reach `want`.
    pub fn wait_status(&self, id: &str, want: &str) -> bool {
        for _ in 0..1000 {
            if self.status(id) == want {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        false
    }

    /// Nothing of the container is left: state directory, cgroup directories, processes.
    pub fn assert_clean(&self, b: &Bundle, id: &str) -> Result<(), Failed> {
        ensure!(
            !self.root.path().join(id).exists(),
            "state directory of {id} left behind"
        );
        let rel = b.cgroup_rel();
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let d = h.path().join(&rel);
            ensure!(!d.exists(), "cgroup {} left behind", d.display());
        }
        ensure!(
            host_mounts_under(b.path()).is_empty(),
            "mounts under the bundle left on the host"
        );
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Never leave a container behind, even when a test fails half-way.
        if let Ok(rd) = std::fs::read_dir(self.root.path()) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.cmd().args(["delete", "--force", &id]).out();
            }
        }
    }
}

/// `runc run` of the same bundle in the foreground, with a private state root.
pub fn runc_run(runc: &Path, b: &Bundle, id: &str) -> Out {
    let root = tempfile::tempdir().unwrap();
    Command::new(runc)
        .arg("--root")
        .arg(root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .out()
}

/// Host mount points that mention `path` (a mount that leaked out of a container).
pub fn host_mounts_under(path: &Path) -> Vec<String> {
    let p = path.to_string_lossy().into_owned();
    // thread-self: a test on a shared root runs on a thread in a mount namespace of its own.
    std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&p)))
        .map(str::to_string)
        .collect()
}

/// The command failed as the runtime fails (exit 1) with an error that mentions `needle`.
pub fn fails_with(o: &Out, needle: &str) -> Result<(), Failed> {
    ensure!(
        o.code == 1 && o.messages().contains(needle),
        "want exit 1 and an error mentioning {needle:?}; got exit {}: {:?}",
        o.code,
        o.stderr
    );
    Ok(())
}

/// `exec` failed as runc's fails (exit 255, "exec failed: ...") with an error that mentions
/// `needle`.
pub fn exec_fails_with(o: &Out, needle: &str) -> Result<(), Failed> {
    ensure!(
        o.code == 255 && o.messages().contains("exec failed: ") && o.messages().contains(needle),
        "want exit 255 and an error \"exec failed: ...{needle}...\"; got exit {}: {:?}",
        o.code,
        o.stderr
    );
    Ok(())
}

/// A host directory a hostile rootfs pointed at is still empty and has nothing mounted on it.
pub fn assert_untouched(dir: &Path) -> Result<(), Failed> {
    ensure!(
        std::fs::read_dir(dir)?.count() == 0,
        "the host directory {} was written",
        dir.display()
    );
    ensure!(
        host_mounts_under(dir).is_empty(),
        "something was mounted on the host path {}",
        dir.display()
    );
    Ok(())
}

/// A field of /proc/self/status as the container printed it.
pub fn status_field<'a>(text: &'a str, field: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::trim))
}

/// A probe from tests/integration/probes/<name>.c, built with gcc -static once per run.
pub fn build_probe(name: &str) -> Result<PathBuf, String> {
    static BUILT: std::sync::Mutex<Vec<(String, Result<PathBuf, String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = built.iter().find(|(n, _)| n == name) {
        return r.clone();
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/probes")
        .join(format!("{name}.c"));
    let r = build_static(&src, &format!("{name}-probe"));
    built.push((name.to_string(), r.clone()));
    r
}

/// Compile the C program `src` into a static binary `name` in the tests' temporary directory.
pub fn build_static(src: &Path, name: &str) -> Result<PathBuf, String> {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(&out)
        .arg(src)
        .output()
        .map_err(|e| format!("gcc not runnable ({e}): apt-get install gcc libc6-dev"))
        .and_then(|o| {
            if o.status.success() {
                Ok(out)
            } else {
                Err(format!(
                    "gcc -static failed (apt-get install gcc libc6-dev): {}",
                    String::from_utf8_lossy(&o.stderr)
                ))
            }
        })
}

/// A probe guest for the microVM stage (tests/integration/probes/guest), built once per run
/// with gcc, as and ld: `Pvh` an ELF with a PVH entry note, `BzImage` a bzImage whose setup
/// header (boot protocol 2.15, XLF_KERNEL_64) this function writes in front of the flat
/// 64-bit image.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Guest {
    Pvh,
    BzImage,
}

pub fn build_guest(kind: Guest) -> Result<PathBuf, String> {
    static BUILT: std::sync::Mutex<Vec<(Guest, Result<PathBuf, String>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = built.iter().find(|(k, _)| *k == kind) {
        return r.clone();
    }
    let r = build_guest_now(kind);
    built.push((kind, r.clone()));
    r
}

fn build_guest_now(kind: Guest) -> Result<PathBuf, String> {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/probes/guest/build.sh");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("guest-{kind:?}"));
    let o = Command::new("sh")
        .arg(&script)
        .arg(match kind {
            Guest::Pvh => "pvh",
            Guest::BzImage => "linux64",
        })
        .arg(&out)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    if !o.status.success() {
        return Err(format!(
            "building the probe guest failed (apt-get install gcc binutils): {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    if kind == Guest::Pvh {
        return Ok(out.join("guest.elf"));
    }
    let flat = out.join("guest.bin");
    let payload = std::fs::read(&flat).map_err(|e| e.to_string())?;
    // One setup sector after the boot sector; the header fields of Documentation/x86/boot.rst.
    let mut image = vec![0u8; 1024];
    image[0x1f1] = 1; // setup_sects
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes()); // boot_flag
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes()); // version 2.15
    image[0x211] = 1; // loadflags: LOADED_HIGH
    image[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
    image[0x236..0x238].copy_from_slice(&1u16.to_le_bytes()); // xloadflags: XLF_KERNEL_64
    image.extend_from_slice(&payload);
    let bz = out.join("guest.bzImage");
    std::fs::write(&bz, image).map_err(|e| e.to_string())?;
    Ok(bz)
}

/// Why the microVM tests cannot run here, if they cannot.
pub fn kvm_missing() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("the microVM stage needs /dev/kvm: {e}")),
    }
}

/// A Linux kernel image (bzImage) for the guest-agent tests: $CONTAIN_TEST_KERNEL, else the
/// newest /boot/vmlinuz-*; or why there is none. (scripts/test.sh fetches Debian's.)
/// The tests' guest directory (CONTAIN_GUEST_DIR for every contain they run): guests are
/// built there, kernels copied there, initramfs files written there. A bundle's annotations
/// may name only files in it.
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
}

/// A temporary file in the guest directory.
pub fn guest_file() -> std::io::Result<tempfile::NamedTempFile> {
    tempfile::NamedTempFile::new_in(guest_dir())
}

/// A Linux bzImage for the guest-agent tests, copied into the guest directory.
pub fn linux_kernel() -> Result<PathBuf, String> {
    let k = host_linux_kernel()?;
    let name = k.file_name().ok_or("a kernel path without a name")?;
    let copy = guest_dir().join("kernels").join(name);
    let same = std::fs::metadata(&copy)
        .ok()
        .zip(std::fs::metadata(&k).ok())
        .is_some_and(|(a, b)| a.len() == b.len());
    if !same {
        std::fs::create_dir_all(guest_dir().join("kernels")).map_err(|e| e.to_string())?;
        let tmp = copy.with_extension(format!("tmp{}", std::process::id()));
        std::fs::copy(&k, &tmp).map_err(|e| format!("copy {}: {e}", k.display()))?;
        std::fs::rename(&tmp, &copy).map_err(|e| e.to_string())?;
    }
    Ok(copy)
}

fn host_linux_kernel() -> Result<PathBuf, String> {
    if let Some(k) = std::env::var_os("CONTAIN_TEST_KERNEL") {
        let k = PathBuf::from(k);
        return if k.is_file() {
            Ok(k)
        } else {
            Err(format!("CONTAIN_TEST_KERNEL={}: no such file", k.display()))
        };
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        "no Linux kernel image: set CONTAIN_TEST_KERNEL to a bzImage (scripts/test.sh fetches \
         Debian's linux-image package when apt-get can)"
            .to_string()
    })
}

/// `tar -C dir -cf out .`
pub fn tar_dir(dir: &Path, out: &Path) -> Result<(), String> {
    let o = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .out();
    if o.code != 0 {
        return Err(format!("tar: {}", o.stderr));
    }
    Ok(())
}

/// Import bundle `b`'s rootfs into podman as `image` (a tarball written beside the rootfs).
pub fn podman_import(podman: &Path, b: &Bundle, image: &str) -> Result<(), String> {
    let tar = b.path().join("rootfs.tar");
    tar_dir(&b.rootfs(), &tar)?;
    let o = Command::new(podman)
        .args(["import", "-q"])
        .arg(&tar)
        .arg(image)
        .out();
    if o.code != 0 {
        return Err(format!("podman import: {}", o.stderr));
    }
    Ok(())
}
