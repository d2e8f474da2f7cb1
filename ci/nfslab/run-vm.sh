#!/usr/bin/env bash
# usage: run-vm.sh 'COMMAND'   (after setup.sh)
# Boots the NFS lab guest, runs COMMAND there with bash in the run directory (mounted read-write
# at /mnt/lab), powers off, and exits with COMMAND's status; 124 when the guest is still running
# after NFSLAB_TIMEOUT seconds (default 900), 99 when it stopped without a status.
# The guest's root is the host's / (read-only), so host-built binaries run there unchanged; its
# /tmp is a fresh tmpfs (put files for the guest in the run directory). NFS mounts: guest-init.sh. Env: NFSLAB_RUN (run dir, default $NFSLAB_CACHE/run),
# NFSLAB_C2=1 (add the network-namespace client), NFSLAB_CPUS (2), NFSLAB_MEM (2048 MiB).
# Software emulation only: this machine's KVM cannot boot a stock kernel.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${NFSLAB_CACHE:-/var/cache/locksmith-nfslab}
run=${NFSLAB_RUN:-$cache/run}
[[ $# == 1 ]] || { echo "usage: $0 'COMMAND'" >&2; exit 2; }
[[ -f $cache/ready ]] || { echo "nfslab: run $here/setup.sh first" >&2; exit 2; }
mkdir -p "$run"
rm -f "$run/rc"
printf '%s\n' "$1" >"$run/cmd.sh"
share() { echo "local,path=$1,mount_tag=$2,security_model=none,multidevs=remap${3:-}"; }
status=0
timeout "${NFSLAB_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
  -smp "${NFSLAB_CPUS:-2}" -m "${NFSLAB_MEM:-2048}" -nographic -no-reboot -nic none \
  -monitor none -serial stdio -kernel "$cache/vmlinuz" -initrd "$cache/initramfs.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 lab_init=$here/guest-init.sh lab_c2=${NFSLAB_C2:-0}" \
  -virtfs "$(share / host ,readonly=on)" -virtfs "$(share "$cache/layer" layer ,readonly=on)" \
  -virtfs "$(share "$run" lab)" </dev/null || status=$?
((status == 124)) && { echo "nfslab: guest timed out" >&2; exit 124; }
[[ -f $run/rc ]] || { echo "nfslab: the guest stopped without a status (qemu: $status)" >&2; exit 99; }
exit "$(cat "$run/rc")"
