#!/usr/bin/env bash
# Installs the Debian bookworm packages locksmith needs to build, test and benchmark.
# Only what is missing is installed; `apt-get update` runs once, and only if something is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build pkg-config make git
  clang-format clang-tidy gcovr
  # libraries
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev libcli11-dev
  nlohmann-json3-dev libfmt-dev libhiredis-dev
  # peers and tools used by the tests
  redis-server python3 python3-portalocker python3-flufl.lock python3-lockfile python3-redis
  liblockfile-bin util-linux procps e2fsprogs
  # Windows side of the platform split: compile check with mingw-w64
  g++-mingw-w64-x86-64-posix
  # the HTML report is tested in a real headless browser
  chromium
  # the filesystem lab (ci/fslab/run): loop-mounted xfs and btrfs, FUSE mounts by bindfs and
  # sshfs, and the loopback sshd and ssh client that sshfs talks to
  xfsprogs btrfs-progs fuse3 bindfs sshfs openssh-server openssh-client
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "ci/install-deps: all ${#packages[@]} packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "ci/install-deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 2
fi
echo "ci/install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ci/install-deps: done"
