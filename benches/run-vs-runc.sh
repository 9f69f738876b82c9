#!/usr/bin/env bash
# Times `run` of /bin/true and a create -> start -> delete cycle for contain and runc on the
# same busybox bundle, interleaved in one run, and prints the medians and contain's ratio to
# runc (this machine is shared and noisy: only the ratio means something).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-50}
RUNC=$(command -v runc || true)
[ -n "$RUNC" ] || { echo "run-vs-runc: SKIPPED: runc is not installed (apt-get install runc)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "run-vs-runc: SKIPPED: needs root"; exit 0; }
cargo build --release --quiet
CONTAIN=$PWD/target/x86_64-unknown-linux-gnu/release/contain
work=$(mktemp -d)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/b/rootfs/"{bin,proc,sys,dev,tmp}
cp "$(command -v busybox)" "$work/b/rootfs/bin/busybox"
ln -s busybox "$work/b/rootfs/bin/true"
(cd "$work/b" && "$RUNC" spec)
python3 - "$work/b/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
json.dump(c, open(p, "w"))
PY
now() { date +%s%N; }
declare -a t_c_run t_r_run t_c_cycle t_r_cycle
for i in $(seq 1 "$RUNS"); do
  a=$(now); "$CONTAIN" --root "$work/cs" run --bundle "$work/b" "c$i" >/dev/null; b=$(now); t_c_run+=($((b - a)))
  a=$(now); "$RUNC" --root "$work/rs" run --bundle "$work/b" "r$i" >/dev/null; b=$(now); t_r_run+=($((b - a)))
  a=$(now); "$CONTAIN" --root "$work/cs" create --bundle "$work/b" "k$i" >/dev/null; "$CONTAIN" --root "$work/cs" start "k$i"
  "$CONTAIN" --root "$work/cs" delete --force "k$i"; b=$(now); t_c_cycle+=($((b - a)))
  a=$(now); "$RUNC" --root "$work/rs" create --bundle "$work/b" "k$i" >/dev/null; "$RUNC" --root "$work/rs" start "k$i"
  "$RUNC" --root "$work/rs" delete --force "k$i"; b=$(now); t_r_cycle+=($((b - a)))
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
report() {
  local name=$1 c r
  c=$(median "${@:2:$RUNS}"); r=$(median "${@:$((RUNS + 2))}")
  awk -v n="$name" -v c="$c" -v r="$r" 'BEGIN { printf "%-28s contain %7.2f ms   runc %7.2f ms   ratio %.2f\n", n, c/1e6, r/1e6, c/r }'
}
echo "run-vs-runc: $RUNS runs each, medians"
report "run /bin/true" "${t_c_run[@]}" "${t_r_run[@]}"
report "create+start+delete" "${t_c_cycle[@]}" "${t_r_cycle[@]}"
