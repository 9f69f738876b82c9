#!/bin/sh
# Build a probe guest: build.sh pvh|linux64 OUTDIR -> OUTDIR/guest.elf (pvh: an ELF with a PVH
# entry note; linux64: also OUTDIR/guest.bin, the flat image loaded at 1 MiB whose 64-bit entry
# is at +0x200, to which the caller prepends a bzImage setup header). Needs gcc and binutils.
set -eu
kind=$1 out=$2
src=$(dirname "$0")
case $kind in
  pvh) stub=pvh.S entry=pvh_start ;;
  linux64) stub=linux64.S entry=startup_64 ;;
  *) echo "build.sh: kind is pvh or linux64" >&2; exit 2 ;;
esac
mkdir -p "$out"
gcc -O2 -ffreestanding -fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only \
  -fno-stack-protector -fno-asynchronous-unwind-tables -c "$src/probe.c" -o "$out/probe.o"
gcc -c "$src/$stub" -o "$out/stub.o"
ld -m elf_x86_64 -z noexecstack --no-warn-rwx-segments -T "$src/probe.ld" --defsym=entry=$entry \
  -o "$out/guest.elf" "$out/stub.o" "$out/probe.o"
if [ "$kind" = linux64 ]; then
  objcopy -O binary "$out/guest.elf" "$out/guest.bin"
fi
