#!/usr/bin/env bash
# The quickstart: one command from a fresh Debian 12 machine to a directory
# you can cd into, served over SFS from this machine.
#
#   bash scripts/run.sh          set up (idempotent) and start everything
#   bash scripts/run.sh stop     stop everything it started; unmount /sfs
#   bash scripts/run.sh status   what is running
#
# Run as root, or through sudo (then the invoking user, $SUDO_USER, gets the
# key and the agent, and owns the demo files). It:
#   1. installs what is missing (scripts/install-deps.sh) and builds;
#   2. makes a server key, and a user key (~/.sfs/identity) if absent;
#   3. starts a private NFS-Ganesha over a demo directory it fills with a
#      few files (privileged ports, 127.0.0.1 only; sfsd is its only client);
#   4. starts sfsd, with the user's key in its user database (root, when run
#      as root, mapped to uid 0 explicitly);
#   5. starts sfsagent for the user and mounts sfsclient at /sfs;
#   6. prints the self-certifying path to cd into.
# Running it twice is harmless: what runs is left running.
# State lives in $SFS_QUICKSTART_DIR (default /var/lib/sfs-quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

state=${SFS_QUICKSTART_DIR:-/var/lib/sfs-quickstart}
port=${SFS_PORT:-4000}
nfs_port=${SFS_NFS_PORT:-510}
mnt_port=${SFS_MNT_PORT:-511}
mountpoint=${SFS_MOUNTPOINT:-/sfs}
bin=$repo/build

say() { printf 'sfs quickstart: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run me as root or with sudo (FUSE mounts and the NFS server need root here)"

user=${SUDO_USER:-root}
uid=$(id -u "$user")
gid=$(id -g "$user")
home=$(getent passwd "$user" | cut -d: -f6)
as_user() { if [[ $user == root ]]; then "$@"; else setpriv --reuid="$uid" --regid="$gid" --init-groups env HOME="$home" "$@"; fi; }

alive() { [[ -f $1 ]] && kill -0 "$(<"$1")" 2>/dev/null; }
mounted() { grep -q " $mountpoint fuse.sfs " /proc/mounts; }

stop_all() {
  if mounted; then say "unmounting $mountpoint"; "$bin/sfsclient/sfsclient" umount "$mountpoint" || true; fi
  for p in agent sfsclient sfsd; do
    if alive "$state/$p.pid"; then
      say "stopping $p (pid $(<"$state/$p.pid"))"
      kill -TERM "$(<"$state/$p.pid")" 2>/dev/null || true
      for _ in $(seq 50); do alive "$state/$p.pid" || break; sleep 0.1; done
      alive "$state/$p.pid" && kill -KILL "$(<"$state/$p.pid")" 2>/dev/null || true
    fi
    rm -f "$state/$p.pid"
  done
  if [[ -d $state/ganesha ]]; then bash scripts/ganesha.sh stop --state "$state/ganesha" || true; fi
  say "stopped"
}

status() {
  for p in sfsd sfsclient agent; do
    if alive "$state/$p.pid"; then echo "$p: running (pid $(<"$state/$p.pid"))"; else echo "$p: stopped"; fi
  done
  [[ -d $state/ganesha ]] && bash scripts/ganesha.sh status --state "$state/ganesha" | sed 's/^/ganesha: /' || true
  if mounted; then echo "mount: $mountpoint"; else echo "mount: none"; fi
}

case ${1:-start} in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
  start) ;;
  *) die "usage: bash scripts/run.sh [start|stop|status]" ;;
esac

# 1. Dependencies and the build.
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target sfsd sfsclient sfsagent sfskey >/dev/null
say "built: $bin/sfsd/sfsd, $bin/sfsclient/sfsclient, $bin/sfsclient/sfsagent, $bin/proto/sfskey"

# 2. Keys.
install -d -m 0700 "$state"
[[ -f $state/server.key ]] || "$bin/proto/sfskey" gen --server -o "$state/server.key" >/dev/null
if [[ ! -f $home/.sfs/identity ]]; then
  as_user "$bin/proto/sfskey" gen --user >/dev/null
  say "made your key: $home/.sfs/identity"
fi
pubkey=$(as_user "$bin/proto/sfskey" show "$home/.sfs/identity" | awk '/^public/ {print $2}')
[[ -n $pubkey ]] || die "could not read the public key of $home/.sfs/identity"

# 3. The demo export and its NFS server.
export_dir=$state/export
if [[ ! -d $export_dir ]]; then
  install -d -m 0755 "$export_dir"
  cat >"$export_dir/README.txt" <<EOF
Hello from SFS. This directory is served by sfsd on this machine, over an
encrypted, authenticated connection; its name certifies the server's key.
Everything here is yours ($user): edit, copy, make directories.
EOF
  mkdir -p "$export_dir/projects/demo"
  printf 'int main() { return 0; }\n' >"$export_dir/projects/demo/main.c"
  seq 1 1000 >"$export_dir/projects/demo/numbers.txt"
  chown -R "$uid:$gid" "$export_dir"/*
  chown "$uid:$gid" "$export_dir"
fi
if ! bash scripts/ganesha.sh status --state "$state/ganesha" >/dev/null 2>&1; then
  mkdir -p "$state/ganesha"
  bash scripts/ganesha.sh start --export "$export_dir" --state "$state/ganesha" \
    --nfs-port "$nfs_port" --mnt-port "$mnt_port" >/dev/null
fi

# 4. sfsd.
users=$state/users
if [[ $user == root ]]; then
  echo "$pubkey root 0 0" >"$users"
else
  echo "$pubkey $user $uid $gid" >"$users"
fi
chmod 0600 "$users"
cat >"$state/sfsd.conf" <<EOF
# Written by scripts/run.sh (the quickstart).
listen 127.0.0.1:$port
server_key $state/server.key
users $users
backend nfs://127.0.0.1$export_dir?nfsport=$nfs_port&mountport=$mnt_port
handle_keys $state/handle.keys
EOF
if ! alive "$state/sfsd.pid"; then
  rm -f "$state/sfsd.name"
  setsid "$bin/sfsd/sfsd" --config "$state/sfsd.conf" --pid-file "$state/sfsd.pid" \
    >"$state/sfsd.name" 2>>"$state/sfsd.log" </dev/null &
  for _ in $(seq 100); do [[ -s $state/sfsd.name ]] && break; alive "$state/sfsd.pid" || sleep 0.1; sleep 0.1; done
  [[ -s $state/sfsd.name ]] || die "sfsd did not start; see $state/sfsd.log"
else
  kill -HUP "$(<"$state/sfsd.pid")"  # the user database may have changed
fi
name=$(head -n 1 "$state/sfsd.name")

# 5. sfsclient at /sfs, and the user's agent.
if ! mounted; then
  "$bin/sfsclient/sfsclient" mount --pid-file "$state/sfsclient.pid" --log-file "$state/sfsclient.log" "$mountpoint"
  for _ in $(seq 50); do mounted && break; sleep 0.1; done
  mounted || die "sfsclient did not mount $mountpoint; see $state/sfsclient.log"
fi
if ! alive "$state/agent.pid"; then
  out=$(as_user "$bin/sfsclient/sfsagent" 2>&1) || die "sfsagent: $out"
  echo "$out" | grep -o 'pid [0-9]*' | awk '{print $2}' >"$state/agent.pid"
fi
as_user "$bin/proto/sfskey" add "$home/.sfs/identity" >/dev/null 2>&1 || true

# 6. Where to go.
path=$mountpoint/$name
stop_cmd="bash scripts/run.sh stop"
[[ -n ${SUDO_USER:-} ]] && stop_cmd="sudo $stop_cmd"
ls "$path" >/dev/null 2>&1 || die "cannot list $path; see $state/sfsclient.log and $state/sfsd.log"
cat <<EOF

Your SFS server is up. Its self-certifying path (the name certifies the key):

  cd $path

Try:  ls -l $path     echo hello > $path/note.txt
      cp -r /etc/apt $path/projects/     (as $user, with your own key)
Stop everything: $stop_cmd
EOF
