#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test and
# benchmark. Idempotent: packages already present are not downloaded again.
# Used by README's two commands and by .ci/run.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential g++ cmake pkg-config git ca-certificates
  clang libclang-rt-14-dev          # libFuzzer targets
  # libraries
  libgtest-dev googletest
  libsodium-dev libssl-dev
  libtirpc-dev rpcsvc-proto
  libnfs-dev libnfs-utils
  libfuse3-dev fuse3
  libboost-dev                      # Boost.Asio peer in bench/ only
  # the loopback NFS server and its helper
  nfs-ganesha nfs-ganesha-vfs rpcbind
  # the sshfs peer for benchmarks, and bench/run's load generator and plots
  openssh-server openssh-client sshfs
  fio gnuplot-nox python3
  procps psmisc
  # what the mount tests do as a person would
  git rsync tar diffutils
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
