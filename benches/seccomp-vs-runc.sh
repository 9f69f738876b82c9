#!/usr/bin/env bash
# Seccomp filter cost, contain against runc (libseccomp) in the same run, on Docker's profile
# (tests/fixtures/seccomp/moby-default.resolved.json, or SECCOMP_PROFILE=path):
# * per-syscall overhead: a syscall loop (benches/syscall-loop.c) in a container filtered by
#   contain, by runc, and unfiltered (runc without linux.seccomp), best of several rounds
#   each; overhead = filtered - unfiltered, and contain's overhead / runc's;
# * program length: read back from the kernel (PTRACE_SECCOMP_GET_FILTER) on each runtime's
#   container, so it includes everything each one installs.
# Note: kernels >= 5.11 cache "always allowed" syscalls per filter (getpid, read and futex
# under Docker's profile) and skip the filter for them; only calls whose outcome depends on
# the arguments (personality) or that are denied run the program every time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
ITERS=${ITERS:-200000}
RUNC=$(command -v runc || true)
[ -n "$RUNC" ] || { echo "seccomp-vs-runc: SKIPPED: runc is not installed (apt-get install runc)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "seccomp-vs-runc: SKIPPED: needs root"; exit 0; }
PROFILE=${SECCOMP_PROFILE:-tests/fixtures/seccomp/moby-default.resolved.json}
[ -f "$PROFILE" ] || { echo "seccomp-vs-runc: SKIPPED: $PROFILE is absent (the fixtures sit beside the project in CI)"; exit 0; }
command -v gcc >/dev/null || { echo "seccomp-vs-runc: SKIPPED: needs gcc (apt-get install gcc libc6-dev)"; exit 0; }
cargo build --release --quiet
CONTAIN=$PWD/target/x86_64-unknown-linux-gnu/release/contain
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  "$CONTAIN" --root "$work/cs" delete --force len >/dev/null 2>&1 || true
  "$RUNC" --root "$work/rs" delete --force len >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/b/rootfs/"{bin,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$work/b/rootfs/bin/busybox"
ln -s busybox "$work/b/rootfs/bin/sleep"
gcc -static -O2 -o "$work/b/rootfs/bin/loop" benches/syscall-loop.c
(cd "$work/b" && "$RUNC" spec)
config() { # config ARGS-JSON WITH-PROFILE(0|1)
  python3 - "$work/b/config.json" "$PROFILE" "$1" "$2" <<'PY'
import json, sys
p, prof, args, filtered = sys.argv[1:]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = json.loads(args)
c["linux"].pop("seccomp", None)
if filtered == "1":
    c["linux"]["seccomp"] = json.load(open(prof))
json.dump(c, open(p, "w"))
PY
}
loop_args="[\"/bin/loop\", \"$ITERS\", \"5\"]"
declare -A best
run_one() { # run_one LABEL RUNTIME ROOT FILTERED
  config "$loop_args" "$4"
  "$2" --root "$3" run --bundle "$work/b" "l$RANDOM" </dev/null | while read -r name ns; do echo "$1 $name $ns"; done
}
: > "$work/results"
for r in $(seq 1 "$ROUNDS"); do
  run_one contain "$CONTAIN" "$work/cs" 1 >> "$work/results"
  run_one runc "$RUNC" "$work/rs" 1 >> "$work/results"
  run_one none "$RUNC" "$work/rs" 0 >> "$work/results"
done
# Program lengths, read back from the kernel.
filter_len() { # filter_len PID
  python3 - "$1" <<'PY'
import ctypes, os, sys
pid = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH, PTRACE_SECCOMP_GET_FILTER = 0x4206, 0x4207, 17, 0x420c
if libc.ptrace(PTRACE_SEIZE, pid, None, None) != 0 or libc.ptrace(PTRACE_INTERRUPT, pid, None, None) != 0:
    print("?"); sys.exit(0)
os.waitpid(pid, 0x40000000)  # __WALL
n = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, None, None)
libc.ptrace(PTRACE_DETACH, pid, None, None)
print(n if n > 0 else "?")
PY
}
config '["/bin/sleep", "30"]' 1
"$CONTAIN" --root "$work/cs" run -d --bundle "$work/b" len >/dev/null </dev/null
"$RUNC" --root "$work/rs" run -d --bundle "$work/b" len >/dev/null </dev/null 2>&1
pid_of() { "$1" --root "$2" state len | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])'; }
len_c=$(filter_len "$(pid_of "$CONTAIN" "$work/cs")")
len_r=$(filter_len "$(pid_of "$RUNC" "$work/rs")")
"$CONTAIN" --root "$work/cs" delete --force len >/dev/null
"$RUNC" --root "$work/rs" delete --force len >/dev/null
# The shipped default profile: contain resolves it for the bundle's capabilities and keeps the
# result in its state; runc gets that resolved profile.
config '["/bin/sleep", "30"]' 0
"$CONTAIN" --root "$work/cs" run -d --bundle "$work/b" len >/dev/null </dev/null
python3 - "$work/cs/len/state.json" "$work/b/config.json" <<'PY'
import json, sys
state, cfg = sys.argv[1:]
c = json.load(open(cfg))
profiles = json.load(open(state))["seccomp"]  # the stack contain installs, outermost first
if len(profiles) != 1:
    sys.exit(f"seccomp-vs-runc: expected one profile in contain's state, found {len(profiles)}")
c["linux"]["seccomp"] = profiles[0]
json.dump(c, open(cfg, "w"))
PY
"$RUNC" --root "$work/rs" run -d --bundle "$work/b" len >/dev/null </dev/null
dlen_c=$(filter_len "$(pid_of "$CONTAIN" "$work/cs")")
dlen_r=$(filter_len "$(pid_of "$RUNC" "$work/rs")")
echo "seccomp-vs-runc: profile $(basename "$PROFILE"), $ROUNDS rounds x best of 5 loops of $ITERS calls"
python3 - "$work/results" "$len_c" "$len_r" "$dlen_c" "$dlen_r" <<'PY'
import sys, collections
best = collections.defaultdict(lambda: float("inf"))
for line in open(sys.argv[1]):
    who, name, ns = line.split()
    best[(who, name)] = min(best[(who, name)], float(ns))
names = ["getpid", "read", "futex", "personality", "denied"]
print(f"{'syscall':<12} {'unfiltered':>10} {'contain +ns':>12} {'runc +ns':>10} {'ratio':>6}")
for n in names:
    base = best[("none", n)]
    c, r = best[("contain", n)] - base, best[("runc", n)] - base
    ratio = f"{c / r:.2f}" if r > 2 else "-"
    note = "" if r > 2 else "  (kernel's seccomp cache: filter skipped)"
    print(f"{n:<12} {base:>10.1f} {c:>12.1f} {r:>10.1f} {ratio:>6}{note}")
print(f"program length (instructions, as installed), Docker's profile:   contain {sys.argv[2]}, runc/libseccomp {sys.argv[3]}")
print(f"program length (instructions, as installed), contain's default: contain {sys.argv[4]}, runc/libseccomp {sys.argv[5]}")
PY
