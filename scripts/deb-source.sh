#!/usr/bin/env bash
# deb-source.sh DIR SUITE PACKAGE [VERSION]: fetch the upstream tarball of Debian's *source*
# package PACKAGE (VERSION if the mirror has it, else the suite's) from deb.debian.org's SUITE
# into DIR, through an apt list of its own (nothing is installed, the machine's apt sources
# are untouched), and print the tarball's path. Exits 1 when it cannot. Used by the scripts
# that build the public test suites (test-runc-bats.sh, test-runtime-tools.sh).
set -euo pipefail
dir=$1 suite=$2 pkg=$3 version=${4:-}
command -v apt-get >/dev/null || exit 1
mkdir -p "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/apt/sources"
cat >"$dir/apt/sources/$pkg.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$dir/apt/sources"
  -o Dir::State::Lists="$dir/apt/lists" -o Dir::Cache="$dir/apt/cache")
cd "$dir"
apt-get "${apt_opts[@]}" -qq update >/dev/null 2>&1 || exit 1
# The upstream tarball is what is needed, and the mirror may lack the .dsc: apt-get then fails
# after fetching the tarballs, so its status is not what decides.
{ [ -n "$version" ] && apt-get "${apt_opts[@]}" -qq source --download-only "$pkg=$version"; } \
  >/dev/null 2>&1 || apt-get "${apt_opts[@]}" -qq source --download-only "$pkg" >/dev/null 2>&1 ||
  true
orig=$(ls "$PWD/${pkg}"_*.orig.tar.* 2>/dev/null | head -1)
[ -n "$orig" ] || exit 1
echo "$orig"
