#!/usr/bin/env bash
# Times `docker run --rm IMG true` with contain and with runc as Docker's runtime, interleaved
# in one run against one private dockerd (Debian's docker.io; no iptables, no bridge, a busybox
# image imported from a tarball), and prints the medians and contain's ratio to runc. This
# machine is shared and noisy: only the ratio means something.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
DOCKERD=$(command -v dockerd || true)
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker || true)
[ -n "$DOCKERD" ] && [ -n "$DOCKER" ] || { echo "docker-vs-runc: SKIPPED: docker.io is not installed"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "docker-vs-runc: SKIPPED: needs root"; exit 0; }
cargo build --release --quiet
CONTAIN=$PWD/target/x86_64-unknown-linux-gnu/release/contain
work=$(mktemp -d /tmp/dkbench-XXXXXX)
sock="unix://$work/docker.sock"
cat > "$work/daemon.json" <<JSON
{"runtimes": {"contain": {"path": "$CONTAIN"}}, "data-root": "$work/data",
 "exec-root": "$work/exec", "pidfile": "$work/docker.pid", "hosts": ["$sock"],
 "iptables": false, "ip-masq": false, "bridge": "none", "log-level": "warn",
 "containerd-namespace": "contain-bench", "containerd-plugins-namespace": "contain-bench-plugins"}
JSON
"$DOCKERD" --config-file "$work/daemon.json" >"$work/dockerd.log" 2>&1 &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
dk() { "$DOCKER" -H "$sock" "$@"; }
for _ in $(seq 1 200); do dk version >/dev/null 2>&1 && break; sleep 0.05; done
mkdir -p "$work/rootfs/"{bin,proc,sys,dev,tmp,etc}
cp "$(command -v busybox)" "$work/rootfs/bin/busybox"
ln -s busybox "$work/rootfs/bin/true"
tar -C "$work/rootfs" -c . | dk import - bench:latest >/dev/null
now() { date +%s%N; }
declare -a t_c t_r
for rt in contain runc; do dk run --rm --network none --runtime "$rt" bench:latest true; done
for _ in $(seq 1 "$RUNS"); do
  a=$(now); dk run --rm --network none --runtime contain bench:latest true; b=$(now); t_c+=($((b - a)))
  a=$(now); dk run --rm --network none --runtime runc bench:latest true; b=$(now); t_r+=($((b - a)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
c=$(median "${t_c[@]}"); r=$(median "${t_r[@]}")
echo "docker-vs-runc: $RUNS runs each, medians"
awk -v c="$c" -v r="$r" 'BEGIN { printf "%-28s contain %7.2f ms   runc %7.2f ms   ratio %.2f\n", "docker run --rm IMG true", c/1e6, r/1e6, c/r }'
