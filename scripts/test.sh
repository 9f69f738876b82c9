#!/usr/bin/env bash
# The whole test suite: installs what the tests need (scripts/test-deps.sh, as root with
# apt-get), then runs the unit tests and the integration tests (which run real containers as
# root). A test that cannot run on this machine reports as ignored, with the reason; with
# CONTAIN_TEST_REQUIRE=all (CI sets it) it fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${CONTAIN_TEST_NO_INSTALL:-}" ] || scripts/test-deps.sh
# A Linux kernel for the microVM guest-agent tests (Debian's, fetched once; see the script).
if [ -z "${CONTAIN_TEST_KERNEL:-}" ] && kernel=$(scripts/test-kernel.sh); then
  export CONTAIN_TEST_KERNEL=$kernel
fi
# runc's own seccomp test programs and profiles (Debian's runc source package, unpacked once).
if [ -z "${CONTAIN_TEST_RUNC_TESTDATA:-}" ] && testdata=$(scripts/test-runc-testdata.sh); then
  export CONTAIN_TEST_RUNC_TESTDATA=$testdata
fi
# runc 1.1.5's own bats suite (Debian's runc source package, unpacked once), run against runc
# and contain by conformance::runc_bats_suite.
if [ -z "${CONTAIN_TEST_RUNC_BATS:-}" ] && bats_dir=$(scripts/test-runc-bats.sh); then
  export CONTAIN_TEST_RUNC_BATS=$bats_dir
fi
# The OCI runtime-tools validation suite (Debian's source package, built once), run against
# runc and contain by conformance::runtime_tools_suite.
if [ -z "${CONTAIN_TEST_RUNTIME_TOOLS:-}" ] && tools_dir=$(scripts/test-runtime-tools.sh); then
  export CONTAIN_TEST_RUNTIME_TOOLS=$tools_dir
fi
exec cargo test --release "$@"
