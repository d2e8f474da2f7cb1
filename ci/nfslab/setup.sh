#!/usr/bin/env bash
# Prepares the NFS lab: a qemu guest (software emulation) that boots Debian's own kernel with the
# host's / as its read-only root, so the host-built locksmith runs there against the in-kernel
# NFS server and client. Installs qemu-system-x86 and busybox-static if missing; downloads the
# kernel and the NFS user space with `apt-get download` into $NFSLAB_CACHE (not the repo).
# Idempotent: a second run only rebuilds what is missing. Needs root.
set -euo pipefail
cache=${NFSLAB_CACHE:-/var/cache/locksmith-nfslab}

missing=()
for p in qemu-system-x86 busybox-static; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "nfslab: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The generic amd64 kernel: the cloud flavour has no 9p, which the guest's root needs.
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
kver=${kpkg#linux-image-}
if [[ -f $cache/ready && $(cat "$cache/ready") == "$kver" ]]; then
  echo "nfslab: ready in $cache (kernel $kver)"
  exit 0
fi
pkgs=("$kpkg" nfs-kernel-server nfs-common rpcbind libwrap0 libnfsidmap1 keyutils libtirpc3
  libtirpc-common libevent-core-2.1-7 kmod libkmod2)
mkdir -p "$cache/debs"
(cd "$cache/debs" && apt-get download "${pkgs[@]}") 2>&1 | { grep -v 'unsandboxed' || true; }

# The layer that sits over the host's / inside the guest: NFS user space and kernel modules,
# usr-merged like the host (a /sbin directory would hide the host's /sbin -> usr/sbin link).
layer=$cache/layer
rm -rf "$layer" "$cache/kernel"
mkdir -p "$layer" "$cache/kernel"
for p in "${pkgs[@]}"; do
  debs=("$cache/debs/${p}"_*.deb)
  if [[ $p == "$kpkg" ]]; then dpkg-deb -x "${debs[0]}" "$cache/kernel"; else dpkg-deb -x "${debs[0]}" "$layer"; fi
done
for d in bin sbin lib; do
  if [[ -d $layer/$d && ! -L $layer/$d ]]; then
    mkdir -p "$layer/usr/$d" && cp -a "$layer/$d/." "$layer/usr/$d/" && rm -rf "${layer:?}/$d"
  fi
done
mkdir -p "$layer/usr/lib" "$layer/etc"
mv "$cache/kernel/lib/modules" "$layer/usr/lib/modules"
busybox depmod -b "$layer/usr" "$kver" # the package ships no modules.dep, the host has no kmod
cp "$cache/kernel/boot/vmlinuz-$kver" "$cache/vmlinuz"
rm -rf "$cache/kernel"

# initramfs: busybox, the modules that mount 9p and overlayfs, and an init that builds the root
# (host / read-only + layer + tmpfs upper) and hands over to guest-init.sh, named on the kernel
# command line (the kernel passes unknown name=value arguments to init as environment variables).
ird=$cache/initramfs
rm -rf "$ird"
mkdir -p "$ird"/{bin,proc,sys,dev,host,layer,rw,root,mods}
cp "$(command -v busybox)" "$ird/bin/busybox"
for a in sh mount mkdir insmod sleep switch_root cat poweroff; do ln -s busybox "$ird/bin/$a"; done
mods=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache
  9pnet 9pnet_virtio 9p overlay)
for m in "${mods[@]}"; do
  f=$(find "$layer/usr/lib/modules/$kver/kernel" -name "$m.ko*" | head -n1)
  [[ -n $f ]] && cp "$f" "$ird/mods/"
done
cat >"$ird/init" <<INIT
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in ${mods[*]}; do [ -f /mods/\$m.ko ] && insmod /mods/\$m.ko; done
fail() { echo "nfslab initramfs: \$*"; echo o > /proc/sysrq-trigger; sleep 10; }
p9="-t 9p -o trans=virtio,version=9p2000.L,msize=512000"
mount \$p9,ro,cache=loose host /host || fail "9p mount of the host's / failed"
mount \$p9,ro,cache=loose layer /layer || fail "9p mount of the layer failed"
mount -t tmpfs -o size=2g rw /rw; mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/layer:/host,upperdir=/rw/upper,workdir=/rw/work root /root ||
  fail "overlay root failed"
mkdir -p /root/mnt/lab; mount \$p9 lab /root/mnt/lab || fail "9p mount of the lab dir failed"
for d in proc sys dev; do mount --move /\$d /root/\$d; done
exec switch_root /root /bin/bash "\$lab_init"
INIT
chmod +x "$ird/init"
(cd "$ird" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$cache/initramfs.gz"
rm -rf "$ird"
echo "$kver" >"$cache/ready"
echo "nfslab: built in $cache: kernel $kver, layer $(du -sh "$layer" | cut -f1)"
