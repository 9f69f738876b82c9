#!/usr/bin/env bash
# The microVM stage's cost, measured in one run: `contain run` of a probe guest (PVH, 64 MiB,
# it reports and exits through the exit port) against `contain run /bin/true` of a plain
# container on the same bundle, interleaved; prints the medians and the extra latency. Then the
# VMM's own memory: the RSS of a running VMM minus what its guest-memory mapping holds (read
# from /proc/<pid>/smaps). Issue #6 aims at < 10 ms extra and < 5 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
[ "$(id -u)" = 0 ] || { echo "microvm: SKIPPED: needs root"; exit 0; }
[ -w /dev/kvm ] || { echo "microvm: SKIPPED: no usable /dev/kvm"; exit 0; }
command -v gcc >/dev/null || { echo "microvm: SKIPPED: needs gcc (apt-get install gcc)"; exit 0; }
cargo build --release --quiet
CONTAIN=$PWD/target/x86_64-unknown-linux-gnu/release/contain
work=$(mktemp -d)
chmod 755 "$work"
cleanup() {
  "$CONTAIN" --root "$work/s" delete --force rss >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
sh tests/integration/probes/guest/build.sh pvh "$work/guest" 2>/dev/null
# The guest sits in the operator's guest directory (here the work directory's guest/).
export CONTAIN_GUEST_DIR=$work/guest
for b in plain vm; do
  mkdir -p "$work/$b/rootfs/"{bin,proc,sys,dev,tmp}
  cp "$(command -v busybox)" "$work/$b/rootfs/bin/busybox"
  ln -s busybox "$work/$b/rootfs/bin/true"
  "$CONTAIN" spec --bundle "$work/$b"
done
config() { # config BUNDLE CMDLINE|-
  python3 - "$work/$1/config.json" "$work/guest/guest.elf" "$2" <<'PY'
import json, sys
p, kernel, cmdline = sys.argv[1:]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
if cmdline != "-":
    c["annotations"] = {"io.contain.isolation": "microvm", "io.contain.microvm.kernel": kernel,
                        "io.contain.microvm.guest": "bare", "io.contain.microvm.cmdline": cmdline}
    c["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
json.dump(c, open(p, "w"))
PY
}
config plain -
config vm "probe.exit=0"
now() { date +%s%N; }
declare -a t_plain t_vm
for i in $(seq 1 "$RUNS"); do
  a=$(now); "$CONTAIN" --root "$work/s" run --bundle "$work/plain" "p$i" >/dev/null; b=$(now); t_plain+=($((b - a)))
  a=$(now); "$CONTAIN" --root "$work/s" run --bundle "$work/vm" "v$i" >/dev/null; b=$(now); t_vm+=($((b - a)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
p=$(median "${t_plain[@]}"); v=$(median "${t_vm[@]}")
echo "microvm: $RUNS runs each, medians"
awk -v p="$p" -v v="$v" 'BEGIN { printf "run /bin/true (container)    %7.2f ms\nrun probe guest (microVM)    %7.2f ms   extra %6.2f ms   ratio %.2f\n", p/1e6, v/1e6, (v-p)/1e6, v/p }'
# The VMM's own memory, with a guest that reports and then spins.
config vm "probe.loop"
"$CONTAIN" --root "$work/s" create --bundle "$work/vm" rss >/dev/null
"$CONTAIN" --root "$work/s" start rss
sleep 0.5
pid=$("$CONTAIN" --root "$work/s" state rss | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
python3 - "$pid" $((64 << 20)) <<'PY'
import sys
pid, guest = sys.argv[1], int(sys.argv[2])
total = guest_rss = 0
size = None
for line in open(f"/proc/{pid}/smaps"):
    f = line.split()
    if "-" in f[0] and len(f[0]) > 8 and ":" not in f[0]:
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        size = hi - lo
    elif f[0] == "Rss:":
        kb = int(f[1])
        total += kb
        if size == guest:
            guest_rss += kb
print(f"VMM memory: RSS {total} kB, of which guest memory {guest_rss} kB; the VMM's own {total - guest_rss} kB ({(total - guest_rss) / 1024:.2f} MiB)")
PY
