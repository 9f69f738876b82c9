#!/usr/bin/env bash
# Print the directory of the Open Container Initiative's runtime-tools (its validation suite:
# one TAP program per spec area, and runtimetest, which checks a container from inside), built
# and ready to run against any runtime with RUNTIME=PATH from that directory. The first time,
# it fetches Debian's golang-github-opencontainers-runtime-tools *source* package (trixie's,
# through scripts/deb-source.sh; nothing is installed), unpacks it into
# target/runtime-tools and builds the programs with Debian's Go and the Go libraries
# scripts/test-deps.sh installs (GOPATH mode, no module download). github.com/mndrix/tap-go,
# which Debian does not package, is contain's stand-in (tests/runtime-tools/tap-go). Prints
# nothing and exits 1 when it cannot; the test that uses it (conformance::runtime_tools_suite)
# then reports itself skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$PWD
top=$here/target/runtime-tools
pkg=golang-github-opencontainers-runtime-tools
gopath=$top/gopath
src=$gopath/src/github.com/opencontainers/runtime-tools
command -v go >/dev/null || exit 1
if [ ! -f "$src/validation/util/test.go" ]; then
  rm -rf "$top"
  orig=$(scripts/deb-source.sh "$top" trixie "$pkg" 0.9.0.109.ge931285-1) || exit 1
  mkdir -p "$top/unpack" "$(dirname "$src")"
  tar -xf "$orig" -C "$top/unpack" || exit 1
  mv "$top"/unpack/*/ "$src"
  [ -f "$src/validation/util/test.go" ] || exit 1
fi
mkdir -p "$gopath/src/github.com/mndrix"
ln -sfn "$here/tests/runtime-tools/tap-go" "$gopath/src/github.com/mndrix/tap-go"
export GOPATH=$gopath:/usr/share/gocode GO111MODULE=off GOCACHE=$top/gocache GOFLAGS= GOPROXY=off \
  GOENV=off
cd "$src"
stamp=$here/tests/runtime-tools/tap-go/tap.go
if [ ! -x runtimetest ] || [ "$stamp" -nt runtimetest ]; then
  # Static, as runtime-tools' Makefile builds it: it runs inside the container's rootfs.
  go build -tags "netgo osusergo" -ldflags "-extldflags -static" -o runtimetest \
    ./cmd/runtimetest >&2 || exit 1
fi
for prog in validation/*/*.go; do
  name=$(basename "$prog" .go)
  [ "$name" = "$(basename "$(dirname "$prog")")" ] || continue
  if [ ! -x "${prog%.go}.t" ] || [ "$stamp" -nt "${prog%.go}.t" ]; then
    go build -o "${prog%.go}.t" "$prog" >&2 || exit 1
  fi
done
echo "$src"
