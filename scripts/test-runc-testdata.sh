#!/usr/bin/env bash
# Print the directory of runc's own integration-test fixtures (tests/integration/testdata of
# runc 1.1.5: seccomp test programs and the profiles its bats tests run them under). The
# first time, it fetches Debian's golang-github-opencontainers-runc-dev with `apt-get
# download` (nothing is installed: the package Breaks podman) and unpacks that directory into
# target/runc-testdata. Prints nothing and exits 1 when it cannot; the tests then report
# themselves as skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/runc-testdata
sub=usr/share/gocode/src/github.com/opencontainers/runc/tests/integration/testdata
if [ ! -f "$dir/$sub/seccomp_syscall_test1.json" ]; then
  command -v apt-get >/dev/null || exit 1
  mkdir -p "$dir"
  (cd "$dir" && apt-get download -qq golang-github-opencontainers-runc-dev >/dev/null 2>&1) || exit 1
  dpkg-deb --fsys-tarfile "$dir"/golang-github-opencontainers-runc-dev_*.deb |
    tar -x -C "$dir" "./$sub" || exit 1
  rm -f "$dir"/*.deb
fi
echo "$PWD/$dir/$sub"
