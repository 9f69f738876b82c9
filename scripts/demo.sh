#!/usr/bin/env bash
# Build contain, make a busybox bundle in a temporary directory, and run a container that
# shows what it sees of itself: its pid, user namespace map, capabilities, mounts, and what
# it is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (contain creates namespaces and cgroups)" >&2; exit 1; }
BUSYBOX=$(command -v busybox || true)
[ -n "$BUSYBOX" ] || { echo "demo.sh: needs busybox-static (apt-get install busybox-static)" >&2; exit 1; }
cargo build --release --quiet
CONTAIN=$PWD/target/x86_64-unknown-linux-gnu/release/contain
work=$(mktemp -d)
chmod 755 "$work"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/"{bin,etc,tmp,proc,sys,dev}
cp "$BUSYBOX" "$work/bundle/rootfs/bin/busybox"
for a in $("$BUSYBOX" --list); do [ "$a" = busybox ] || ln -sf busybox "$work/bundle/rootfs/bin/$a"; done
"$CONTAIN" spec --bundle "$work/bundle"
# Not interactive. No user namespace in config.json: the default policy adds one.
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", """
echo "hostname:      $(hostname)"
echo "my pid:        $$"
echo "uid_map:       $(cat /proc/self/uid_map | tr -s ' ')"
echo "capabilities:  $(grep CapEff /proc/self/status | cut -f2)"
echo "no_new_privs:  $(grep NoNewPrivs /proc/self/status | cut -f2)"
echo "seccomp:       mode $(grep '^Seccomp:' /proc/self/status | cut -f2) (2 = filtered by contain's default profile)"
unshare -U true 2>/dev/null && echo "unshare -U:    allowed" || echo "unshare -U:    refused (no new user namespaces)"
echo "processes:     $(ls /proc | grep -c '^[0-9]')"
echo "network:       $(ls /sys/class/net | tr '\\n' ' ')"
echo "mounts:"; awk '{printf "  %-22s %-8s %s\\n", $2, $3, substr($4,1,24)}' /proc/mounts
touch /etc/x 2>/dev/null && echo "rootfs: writable" || echo "rootfs:        read-only (touch /etc/x refused)"
echo "image files:   owned by uid $(stat -c %u /bin/busybox) inside, as on the host (idmapped rootfs)"
cat /proc/keys >/dev/null 2>&1; echo "/proc/keys:    $(wc -c < /proc/keys) bytes (masked)"
"""]
json.dump(c, open(p, "w"), indent=2)
PY
echo "== what the default policy enforces (contain state: annotations) =="
"$CONTAIN" --root "$work/state" create --bundle "$work/bundle" demo
"$CONTAIN" --root "$work/state" state demo | grep '"io.contain'
"$CONTAIN" --root "$work/state" delete --force demo
echo "== contain run (the default policy: own user namespace, seccomp, Landlock) =="
"$CONTAIN" --root "$work/state" run --bundle "$work/bundle" demo
echo "== exit status $?; nothing left behind: $(ls "$work/state" | wc -l) containers in the state dir =="
