#!/bin/bash
# PID 1 of the NFS lab guest (started by the initramfs that setup.sh builds, on the overlay root).
# Serves a tmpfs with the in-kernel NFS server and mounts it over loopback four times:
#   /mnt/v3a /mnt/v3b      NFSv3   (server path /export; the second mount is nosharecache)
#   /mnt/v4.2a /mnt/v4.2b  NFSv4.2 (the export is also the v4 pseudo-root "/")
# lab_c2=1 adds /mnt/c2v4.2: an NFSv4.2 client in its own network namespace and with its own
# hostname, so the server sees a second client (the two mounts above are ONE client to it).
# Then runs /mnt/lab/cmd.sh in /mnt/lab (the host's run directory), stores its status in
# /mnt/lab/rc and powers off. Grace periods are cut to 10 s so that the first lock does not wait.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root NFSLAB_GUEST=1
lab=/mnt/lab
ln -sf /proc/self/fd /dev/fd
exec > >(tee "$lab/guest.log") 2>&1
step() { "$@" || echo "nfslab guest: '$*' failed (status $?)"; }

mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run; mount -t tmpfs tmpfs /tmp
mkdir -p /run/rpcbind /run/lock /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/v4recovery
hostname nfslab
ip link set lo up
for m in sunrpc lockd grace nfsd nfs nfsv3 nfsv4; do step busybox modprobe "$m"; done
mount -t nfsd nfsd /proc/fs/nfsd
mkdir -p /var/lib/nfs/rpc_pipefs; mount -t rpc_pipefs sunrpc /var/lib/nfs/rpc_pipefs

# The host's /etc/passwd lacks the users Debian's maintainer scripts create; without them rpcbind
# dies silently and mount later says statd is not running.
getent passwd _rpc >/dev/null || echo "_rpc:x:990:65534::/run/rpcbind:/usr/sbin/nologin" >>/etc/passwd
getent passwd statd >/dev/null || echo "statd:x:991:65534::/var/lib/nfs:/usr/sbin/nologin" >>/etc/passwd
chown statd /var/lib/nfs/sm /var/lib/nfs/sm.bak

# knfsd cannot serve overlayfs as the NFSv4 pseudo-root: export a tmpfs with fsid=0.
mkdir -p /export; mount -t tmpfs -o size=1g,mode=1777 tmpfs /export
echo "/export *(rw,sync,no_root_squash,no_subtree_check,insecure,fsid=0)" >/etc/exports
step rpcbind -w
step rpc.statd --no-notify
step exportfs -ra
step rpc.mountd
echo 10 >/proc/sys/fs/nfs/nlm_grace_period
step rpc.nfsd -G 10 -L 10 -V 3 -V 4.2 8
echo Y >/proc/fs/nfsd/v4_end_grace

for v in 3 4.2; do
  src=127.0.0.1:/export; [[ $v == 3 ]] || src=127.0.0.1:/
  mkdir -p "/mnt/v${v}a" "/mnt/v${v}b"
  step mount -t nfs -o "vers=$v,retry=0" "$src" "/mnt/v${v}a"
  step mount -t nfs -o "vers=$v,retry=0,nosharecache" "$src" "/mnt/v${v}b"
done
if [[ ${lab_c2:-0} == 1 ]]; then
  busybox modprobe veth && ip netns add c2
  ip link add lab0 type veth peer name c2eth netns c2
  ip addr add 10.99.0.1/24 dev lab0; ip link set lab0 up
  ip -n c2 addr add 10.99.0.2/24 dev c2eth; ip -n c2 link set c2eth up; ip -n c2 link set lo up
  mkdir -p /mnt/c2v4.2
  # NFSv4 needs no rpcbind or statd on the client; the own hostname gives an own client id.
  step nsenter --net=/run/netns/c2 unshare -u sh -c \
    'hostname nfslab-c2; mount -t nfs -o vers=4.2,retry=0 10.99.0.1:/ /mnt/c2v4.2'
fi
echo "nfslab guest: NFS ready after $(cut -d' ' -f1 /proc/uptime) s of uptime"
grep -E ' nfs4? ' /proc/mounts

cd "$lab" && bash ./cmd.sh
rc=$?
echo "$rc" >"$lab/rc"
echo "nfslab guest: command exited with $rc at $(cut -d' ' -f1 /proc/uptime) s"
sync
echo o >/proc/sysrq-trigger
sleep 10
