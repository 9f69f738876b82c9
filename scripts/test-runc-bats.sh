#!/usr/bin/env bash
# Print the directory of runc 1.1.5's own integration suite (its bats tests), ready to run
# against any runtime with RUNC=PATH: the first time, it fetches Debian's runc *source*
# package (scripts/deb-source.sh: an apt list of its own; nothing is installed), unpacks it
# into target/runc-bats, builds tests/runc-bats/recvtty.c and seccompagent.c in place of runc's
# Go recvtty and seccompagent, and replaces get-images.sh (which downloads images) with one
# naming a busybox rootfs made here from busybox-static. Prints nothing and exits 1 when it cannot; the test that uses it
# (conformance::runc_bats_suite) then reports itself skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD/target/runc-bats
src=$top/runc-1.1.5
if [ ! -d "$src/tests/integration" ] || [ ! -f "$top/busybox.tar.xz" ]; then
  command -v busybox >/dev/null || exit 1
  rm -rf "$top"
  orig=$(scripts/deb-source.sh "$top" bookworm runc 1.1.5+ds1-1+deb12u1) || exit 1
  tar -xJf "$orig" -C "$top" || exit 1
  [ -d "$src/tests/integration" ] || exit 1
  # runc's busybox image, as far as its tests look: busybox and its applets, root and nobody.
  bb=$top/busybox-rootfs
  mkdir -p "$bb"/{bin,etc,tmp,root,home,usr/bin,usr/sbin,var/spool/mail}
  cp "$(command -v busybox)" "$bb/bin/busybox"
  for a in $("$bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$bb/bin/$a"; done
  printf '%s\n' root:x:0:0:root:/root:/bin/sh daemon:x:1:1:daemon:/usr/sbin:/bin/false \
    bin:x:2:2:bin:/bin:/bin/false sys:x:3:3:sys:/dev:/bin/false sync:x:4:100:sync:/bin:/bin/sync \
    mail:x:8:8:mail:/var/spool/mail:/bin/false www-data:x:33:33:www-data:/var/www:/bin/false \
    operator:x:37:37:Operator:/var:/bin/false nobody:x:65534:65534:nobody:/home:/bin/false \
    >"$bb/etc/passwd"
  printf '%s\n' root:x:0: daemon:x:1: bin:x:2: sys:x:3: adm:x:4: tty:x:5: disk:x:6: lp:x:7: \
    mail:x:8: kmem:x:9: wheel:x:10:root floppy:x:11: news:x:13: uucp:x:14: www-data:x:33: \
    users:x:100: nogroup:x:65534: >"$bb/etc/group"
  chmod 1777 "$bb/tmp"
  tar -C "$bb" -cJf "$top/busybox.tar.xz" .
  rm -rf "$bb"
  cat >"$src/tests/integration/get-images.sh" <<IMG
#!/bin/bash
# contain's stand-in (scripts/test-runc-bats.sh): no download; a local busybox image. There is
# no Debian image: the few tests that use one fail under every runtime alike.
echo "BUSYBOX_IMAGE=$top/busybox.tar.xz"
echo "DEBIAN_IMAGE=$top/no-debian-image.tar.xz"
IMG
  chmod +x "$src/tests/integration/get-images.sh"
fi
if [ ! -x "$src/contrib/cmd/recvtty/recvtty" ] ||
  [ tests/runc-bats/recvtty.c -nt "$src/contrib/cmd/recvtty/recvtty" ]; then
  mkdir -p "$src/contrib/cmd/recvtty"
  gcc -O2 -static -o "$src/contrib/cmd/recvtty/recvtty" tests/runc-bats/recvtty.c || exit 1
fi
if [ ! -x "$src/contrib/cmd/seccompagent/seccompagent" ] ||
  [ tests/runc-bats/seccompagent.c -nt "$src/contrib/cmd/seccompagent/seccompagent" ]; then
  gcc -O2 -static -pthread -Wall -Werror -o "$src/contrib/cmd/seccompagent/seccompagent" \
    tests/runc-bats/seccompagent.c || exit 1
fi
echo "$src/tests/integration"
