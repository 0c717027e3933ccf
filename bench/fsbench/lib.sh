# lib.sh: shell functions of bench/run (sourced, never run). Starts nothing
# itself; it keeps the books of what bench/run starts so that all of it,
# and only it, is stopped and unmounted at the end, on error or on Ctrl-C:
#
#   fsb_track_pid NAME PID PATTERN   remember a process we started (PATTERN:
#                                    a string its command line must contain,
#                                    so a recycled pid is never killed)
#   fsb_track_mount DIR              remember a mount point we mounted
#   fsb_umount DIR                   unmount; a FUSE daemon that does not
#                                    answer has its connection aborted
#                                    through /sys/fs/fuse/connections/N/abort
#   fsb_cores_keep_online K LIST     take every CPU not among the first K of
#                                    LIST offline (--offline-cores), writing
#                                    down each one first
#   fsb_cores_restore                bring every CPU we took offline back
#   fsb_install_traps                EXIT/INT/TERM/HUP run fsb_cleanup once
#   fsb_cleanup                      all of the above, undone in reverse
#
# Variables: FSB_STATE (the run's state dir, required), FSB_SYSFS_CPU
# (default /sys/devices/system/cpu; tests point it at a fake tree),
# FSB_FUSECTL (default /sys/fs/fuse/connections), FSB_CLEANUP_HOOK (a
# function run first by fsb_cleanup, if set).

FSB_SYSFS_CPU=${FSB_SYSFS_CPU:-/sys/devices/system/cpu}
FSB_FUSECTL=${FSB_FUSECTL:-/sys/fs/fuse/connections}
FSB_CHILD=          # the pid of the workload running in the background now
FSB_CLEANED=0

fsb_log() { printf '%s fsbench: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fsb_die() { fsb_log "error: $*"; exit 1; }

# fsb_alive PID PATTERN: PID runs (not a zombie) and its command line
# contains PATTERN.
fsb_alive() {
  local pid=$1 pattern=$2 cmdline
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmdline=$( { tr '\0' ' ' </proc/"$pid"/cmdline; } 2>/dev/null) || return 1
  [[ -n $cmdline && $cmdline == *"$pattern"* ]] || return 1
  [[ $(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) != Z ]]
}

fsb_track_pid() { echo "$1 $2 $3" >>"$FSB_STATE/pids"; }
fsb_track_mount() { echo "$1" >>"$FSB_STATE/mounts"; }

# fsb_stop_pid PID PATTERN [SECONDS]: SIGTERM, a bounded wait, SIGKILL.
fsb_stop_pid() {
  local pid=$1 pattern=$2 limit=${3:-10} i
  fsb_alive "$pid" "$pattern" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < limit * 10; i++)); do
    fsb_alive "$pid" "$pattern" || return 0
    sleep 0.1
  done
  fsb_log "pid $pid ($pattern) ignored SIGTERM for ${limit}s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do fsb_alive "$pid" "$pattern" || return 0; sleep 0.1; done
}

# fsb_mount_devno DIR: the minor device number of the mount at DIR (read
# from mountinfo: stat() would hang on a stuck FUSE mount), or nothing.
fsb_mount_devno() {
  awk -v d="$1" '$5 == d { split($3, a, ":"); m = a[2] } END { if (m != "") print m }' /proc/self/mountinfo
}
fsb_mounted() { awk -v d="$1" '$5 == d { f = 1 } END { exit !f }' /proc/self/mountinfo; }

fsb_abort_fuse() {
  local devno
  devno=$(fsb_mount_devno "$1")
  [[ -n $devno ]] || return 0
  grep -q " $FSB_FUSECTL fusectl " /proc/mounts || mount -t fusectl fusectl "$FSB_FUSECTL" 2>/dev/null || true
  if [[ -w $FSB_FUSECTL/$devno/abort ]]; then
    fsb_log "aborting the FUSE connection of $1 ($FSB_FUSECTL/$devno)"
    echo 1 >"$FSB_FUSECTL/$devno/abort" 2>/dev/null || true
  fi
}

# fsb_umount DIR: unmount (bounded), abort a stuck FUSE connection, then a
# lazy unmount as the last resort. Only ever called on our own mount points.
fsb_umount() {
  local dir=$1
  fsb_mounted "$dir" || return 0
  timeout -k 2 10 umount "$dir" 2>/dev/null && return 0
  fsb_abort_fuse "$dir"
  timeout -k 2 10 umount "$dir" 2>/dev/null && return 0
  umount -l "$dir" 2>/dev/null || true
}

# ---- cores (--offline-cores) ----
# The CPUs with an online switch (cpu0 usually has none: it cannot go
# offline) and those that are online now.
fsb_cpu_online() {
  local f=$FSB_SYSFS_CPU/cpu$1/online
  [[ ! -e $f ]] || [[ $(<"$f") == 1 ]]
}

# fsb_cores_keep_online K LIST: CPUs of the first K entries of LIST stay
# (or come back) online; every other CPU of the machine goes offline. Each
# CPU is written down in $FSB_STATE/cores-offline before it is switched
# off, so fsb_cores_restore can always bring it back.
fsb_cores_keep_online() {
  local k=$1 list=$2 keep=() c n d
  IFS=, read -r -a keep <<<"$list"
  keep=("${keep[@]:0:$k}")
  for d in "$FSB_SYSFS_CPU"/cpu[0-9]*; do
    n=${d##*/cpu}
    [[ -e $d/online ]] || continue
    if printf '%s\n' "${keep[@]}" | grep -qx "$n"; then
      if [[ $(<"$d/online") != 1 ]]; then echo 1 >"$d/online" || fsb_die "cannot bring cpu$n online"; fi
      continue
    fi
    if [[ $(<"$d/online") == 1 ]]; then
      grep -qx "$n" "$FSB_STATE/cores-offline" 2>/dev/null || echo "$n" >>"$FSB_STATE/cores-offline"
      echo 0 >"$d/online" || fsb_die "cannot take cpu$n offline"
      fsb_log "cpu$n offline"
    fi
  done
}

fsb_cores_restore() {
  local n failed=0
  [[ -f $FSB_STATE/cores-offline ]] || return 0
  while read -r n; do
    [[ -n $n ]] || continue
    if [[ $(<"$FSB_SYSFS_CPU/cpu$n/online") != 1 ]]; then
      if echo 1 >"$FSB_SYSFS_CPU/cpu$n/online"; then fsb_log "cpu$n online again"; else
        fsb_log "could NOT bring cpu$n back online: echo 1 > $FSB_SYSFS_CPU/cpu$n/online"
        failed=1
      fi
    fi
  done <"$FSB_STATE/cores-offline"
  [[ $failed == 1 ]] || rm -f "$FSB_STATE/cores-offline"
}

# ---- cleanup ----
fsb_cleanup() {
  [[ $FSB_CLEANED == 0 ]] || return 0
  FSB_CLEANED=1
  set +e
  [[ -n ${FSB_CLEANUP_HOOK:-} ]] && "$FSB_CLEANUP_HOOK"
  # The cores first: whatever else fails, the machine gets them back.
  fsb_cores_restore
  if [[ -n $FSB_CHILD ]] && kill -0 "$FSB_CHILD" 2>/dev/null; then
    kill -TERM "$FSB_CHILD" 2>/dev/null
    wait "$FSB_CHILD" 2>/dev/null
  fi
  local m pid name pattern
  if [[ -f $FSB_STATE/mounts ]]; then
    # Newest first.
    while read -r m; do fsb_umount "$m"; done < <(tac "$FSB_STATE/mounts")
  fi
  if [[ -f $FSB_STATE/pids ]]; then
    while read -r name pid pattern; do
      fsb_stop_pid "$pid" "$pattern" 10
    done < <(tac "$FSB_STATE/pids")
  fi
  # A daemon killed while its mount was still there: lazy-unmount the rest.
  if [[ -f $FSB_STATE/mounts ]]; then
    while read -r m; do fsb_mounted "$m" && { fsb_abort_fuse "$m"; umount -l "$m" 2>/dev/null; }; done \
      < <(tac "$FSB_STATE/mounts")
  fi
  return 0
}

fsb_on_signal() {
  fsb_log "caught SIG$1: stopping everything we started"
  trap - "$1"
  exit $((128 + $(kill -l "$1")))
}

fsb_install_traps() {
  trap 'fsb_cleanup' EXIT
  trap 'fsb_on_signal INT' INT
  trap 'fsb_on_signal TERM' TERM
  trap 'fsb_on_signal HUP' HUP
}

# fsb_bg CMD...: runs CMD in the background and waits for it, so that a
# signal reaches our trap at once rather than after CMD ends.
fsb_bg() {
  "$@" &
  FSB_CHILD=$!
  local rc=0
  wait "$FSB_CHILD" || rc=$?
  FSB_CHILD=
  return $rc
}
