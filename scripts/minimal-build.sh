#!/usr/bin/env bash
# The build without the optional parts (cargo features `systemd` and `microvm` off): it must
# compile without warnings, say what it lacks in `features`, and refuse --systemd-cgroup and
# the microVM stage with a clear error, leaving nothing behind.
set -euo pipefail
cd "$(dirname "$0")/.."
# The dev profile: what is checked is what the build compiles and refuses, and an unoptimised
# build takes CI half the time (the release build's size is in the README).
cargo clippy --no-default-features --all-targets --quiet -- -D warnings
cargo build --no-default-features --quiet --target-dir target/minimal
bin=
for b in target/minimal/*/debug/contain target/minimal/debug/contain; do
    [ -x "$b" ] && bin=$PWD/$b && break
done
[ -n "$bin" ] || { echo "minimal build: no binary under target/minimal" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "minimal build: $*" >&2; exit 1; }

"$bin" features | grep -q '"io.contain.built-in": "none' || fail "features does not say what is not built in"
"$bin" features | grep -q '"systemd": false' || fail "features claims the systemd driver"

mkdir -p "$work/b/rootfs/bin" "$work/guest"
cp /bin/busybox "$work/b/rootfs/bin/"
touch "$work/guest/vmlinux"
(cd "$work/b" && "$bin" spec)
sed -i 's/"sh"/"\/bin\/busybox", "true"/; s/"terminal": true/"terminal": false/' "$work/b/config.json"

"$bin" --root "$work/state" run -b "$work/b" plain || fail "a plain container does not run"
if "$bin" --root "$work/state" --systemd-cgroup run -b "$work/b" sd 2>"$work/err"; then
    fail "--systemd-cgroup ran without the systemd driver"
fi
grep -q "built without its systemd driver" "$work/err" || fail "--systemd-cgroup: $(cat "$work/err")"
sed -i '0,/"ociVersion"/s|"ociVersion"|"annotations": {"io.contain.isolation": "microvm", "io.contain.microvm.kernel": "vmlinux"},\n  "ociVersion"|' "$work/b/config.json"
grep -q io.contain.isolation "$work/b/config.json" || fail "could not annotate the test bundle"
if CONTAIN_GUEST_DIR="$work/guest" "$bin" --root "$work/state" run -b "$work/b" vm 2>"$work/err"; then
    fail "a microVM container ran without the microVM stage"
fi
grep -q "built without the microVM stage" "$work/err" || fail "microvm: $(cat "$work/err")"
left=$(ls -A "$work/state")
[ -z "$left" ] || fail "state left behind: $left"
echo "minimal build: refuses --systemd-cgroup and microvm clearly"
