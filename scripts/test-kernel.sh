#!/usr/bin/env bash
# Print the path of a Linux bzImage for the microVM guest-agent tests. The first time, it
# fetches Debian's kernel package with `apt-get download` (nothing is installed) and unpacks
# its vmlinuz into target/test-kernel, with the modules that give that kernel a /dev/kvm under
# QEMU's emulated AMD SVM (irqbypass, ccp, kvm, kvm-amd; the nested microVM tier), a bridge
# and veths for its guests' network (veth, llc, stp, bridge), and those a guest loads for its
# devices (virtio, virtio-mmio, virtio-console, virtio-blk, erofs, overlay, virtio-net with
# failover and net_failover). Prints nothing and exits 1 when it cannot; the tests then
# report themselves as skipped, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=target/test-kernel
kernel=$(ls "$dir"/boot/vmlinuz-* 2>/dev/null | tail -n 1 || true)
if [ -z "$kernel" ] || [ -z "$(ls "$dir"/lib/modules/*/kernel/net/bridge/bridge.ko 2>/dev/null)" ]; then
  command -v apt-get >/dev/null || exit 1
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
  [ -n "$pkg" ] || exit 1
  mkdir -p "$dir"
  (cd "$dir" && apt-get download -qq "$pkg" >/dev/null 2>&1) || exit 1
  dpkg-deb --fsys-tarfile "$dir/${pkg}"_*.deb | tar -x -C "$dir" --wildcards './boot/vmlinuz-*' \
    '*/kernel/virt/lib/irqbypass.ko' '*/drivers/crypto/ccp/ccp.ko' \
    '*/arch/x86/kvm/kvm.ko' '*/arch/x86/kvm/kvm-amd.ko' \
    '*/drivers/virtio/virtio.ko' '*/drivers/virtio/virtio_ring.ko' '*/drivers/virtio/virtio_mmio.ko' \
    '*/drivers/char/virtio_console.ko' '*/drivers/block/virtio_blk.ko' '*/crypto/crc32c_generic.ko' '*/lib/libcrc32c.ko' \
    '*/fs/erofs/erofs.ko' '*/fs/overlayfs/overlay.ko' \
    '*/net/core/failover.ko' '*/drivers/net/net_failover.ko' '*/drivers/net/virtio_net.ko' \
    '*/drivers/net/veth.ko' '*/net/llc/llc.ko' '*/net/802/stp.ko' '*/net/bridge/bridge.ko'
  rm -f "$dir"/*.deb
  kernel=$(ls "$dir"/boot/vmlinuz-* | tail -n 1)
fi
echo "$PWD/$kernel"
