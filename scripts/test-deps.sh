#!/usr/bin/env bash
# Install every package the test suite needs, so that no test is skipped for a missing tool:
# busybox-static (the bundles' rootfs), runc (comparisons and benchmarks), podman, containerd
# and docker.io (the client end-to-end tests), gcc + libc6-dev + binutils (the syscall probes
# and the microVM probe guests), systemd + dbus (the systemd cgroup driver's tests boot them in
# private namespaces, never as the host's init), python3, and QEMU (software emulation boots
# the microVM guest agent on Debian's kernel), Go and Go libraries (runtime-tools' validation
# suite is built here). Needs root and apt-get; does nothing otherwise.
set -euo pipefail
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "test-deps: not root or no apt-get: install the packages named in $0 yourself" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# Installing docker.io or containerd must not start the host's own daemons here (the tests
# start private ones): keep any policy-rc.d the machine has, else refuse service starts for
# the duration of the install.
policy=/usr/sbin/policy-rc.d
added=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added=1
fi
trap '[ -n "$added" ] && rm -f "$policy"' EXIT
apt-get update -qq
apt-get install -y -qq busybox-static runc podman containerd docker.io python3 gcc libc6-dev \
  binutils systemd dbus iproute2 util-linux \
  protobuf-compiler containernetworking-plugins cpio bats jq bsdutils >/dev/null
apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
# Go and the Go libraries runtime-tools' validation suite is built with
# (scripts/test-runtime-tools.sh).
apt-get install -y -qq --no-install-recommends golang-go golang-github-blang-semver-dev \
  golang-github-google-uuid-dev golang-github-hashicorp-go-multierror-dev \
  golang-github-mrunalp-fileutils-dev golang-github-opencontainers-selinux-dev \
  golang-github-opencontainers-specs-dev golang-github-sirupsen-logrus-dev \
  golang-github-stretchr-testify-dev golang-github-urfave-cli-dev \
  golang-github-xeipuuv-gojsonschema-dev golang-golang-x-sys-dev golang-gocapability-dev >/dev/null
