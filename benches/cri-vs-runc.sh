#!/usr/bin/env bash
# Pod start latency through containerd's CRI plugin (RunPodSandbox + CreateContainer +
# StartContainer, as the kubelet starts a pod): the `contain` runtime handler against `runc`
# in the same containerd, interleaved; prints the medians and the ratio (issue 19). Runs the
# integration test cri::pod_start_latency_vs_runc with CONTAIN_BENCH_PODS pods of each.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-20}
[ "$(id -u)" = 0 ] || { echo "cri-vs-runc: SKIPPED: needs root"; exit 0; }
cargo build --release --quiet --tests
bin=$(ls -t target/x86_64-unknown-linux-gnu/release/deps/integration-* | grep -v '\.d$' | head -1)
CONTAIN_BENCH_PODS=$RUNS "$bin" --nocapture cri::pod_start_latency_vs_runc 2>&1 \
  | grep -E '^pod start|SKIPPED|skipped|FAILED|panicked' || { echo "cri-vs-runc: no result"; exit 1; }
