#!/usr/bin/env bash
# The whole test suite: unit tests and the integration tests (which run real containers as
# root and report as ignored, with the reason, whatever this machine cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo test --release "$@"
