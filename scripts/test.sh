#!/usr/bin/env bash
# The whole test suite: unit tests and the integration tests (which run real containers as
# root and report as ignored, with the reason, whatever this machine cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
# A Linux kernel for the microVM guest-agent tests (Debian's, fetched once; see the script).
if [ -z "${CONTAIN_TEST_KERNEL:-}" ] && kernel=$(scripts/test-kernel.sh); then
  export CONTAIN_TEST_KERNEL=$kernel
fi
exec cargo test --release "$@"
