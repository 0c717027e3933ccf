#!/usr/bin/env bash
# ganesha.sh: start and stop a private NFS-Ganesha (VFS FSAL) on loopback.
#
#   ganesha.sh start --export DIR --state DIR --nfs-port N --mnt-port M
#                    [--timeout SECONDS] [--watch-pid PID]
#                    [--allow-unprivileged-ports]
#   ganesha.sh stop  --state DIR [--timeout SECONDS]
#   ganesha.sh status --state DIR
#
# start writes ganesha.conf, the pid file, the log and the NFSv4 recovery
# root under the state dir, starts rpcbind only if no portmapper answers on
# 127.0.0.1 (ganesha refuses to start without one), starts ganesha.nfsd bound
# to 127.0.0.1 on the given ports (NFSv3 only, TCP only, no NLM/RQUOTA),
# waits until the export can be mounted and listed on those ports (nfs-ls),
# stops the rpcbind it started (if any), and prints ganesha's pid on
# stdout. Everything else goes to stderr. If a ganesha started from the same
# state dir is still running, start prints its pid and succeeds.
#
# With --watch-pid, a small watchdog (polling every 0.5 s) runs `stop` as
# soon as process PID is gone, so that a test or bench that dies without
# cleaning up (abort, _exit, SIGKILL) leaves no ganesha behind.
#
# stop kills only the processes whose pids this script recorded in the state
# dir (after checking that the pid still belongs to that program): SIGTERM,
# a bounded wait, then SIGKILL. Stopping something already stopped succeeds.
#
# Clients must name the ports (nfs://127.0.0.1/DIR?nfsport=N&mountport=M):
# rpcbind is gone once start returns, and it only ever keeps the last
# registration anyway.
#
# The export trusts AUTH_UNIX (the client says which uid it is, and
# No_Root_Squash honours uid 0), so it must only ever hear from sfsd, a root
# process on this host. What the config enforces (docs/nfs-backend.md):
#   - only 127.0.0.1 may use the export (a CLIENT block; everyone else gets
#     Access_Type None), and ganesha listens on 127.0.0.1 only;
#   - every NFS call must come from a reserved source port (PrivilegedPort),
#     which only root (or CAP_NET_BIND_SERVICE) can bind: another local user
#     claiming uid 0 is refused with AUTH_TOOWEAK;
#   - NFSv3 only: no NFSv4 listener or pseudo file system to reason about;
#   - the NFS and MOUNT ports are below 1024, so that while this ganesha is
#     down (restart, crash) no unprivileged process can listen on them and
#     pose as the server to sfsd. Ports >= 1024 are refused unless
#     --allow-unprivileged-ports is given (e.g. a throwaway experiment).
set -euo pipefail

die() { echo "ganesha.sh: $*" >&2; exit 1; }
usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

cmd=${1:-}; [[ -n $cmd ]] || usage; shift
export_dir= state_dir= nfs_port= mnt_port= timeout=15 watch_pid= allow_unprivileged_ports=
ganesha_child=  # set once start has launched ganesha.nfsd
while [[ $# -gt 0 ]]; do
  case $1 in
    --export) export_dir=$2; shift 2 ;;
    --state) state_dir=$2; shift 2 ;;
    --nfs-port) nfs_port=$2; shift 2 ;;
    --mnt-port) mnt_port=$2; shift 2 ;;
    --timeout) timeout=$2; shift 2 ;;
    --watch-pid) watch_pid=$2; shift 2 ;;
    --allow-unprivileged-ports) allow_unprivileged_ports=1; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ -n $state_dir ]] || die "--state DIR is required"

ganesha_pidfile=$state_dir/ganesha.pid
rpcbind_pidfile=$state_dir/rpcbind.pid
watch_pidfile=$state_dir/watch.pid
script_path=$(readlink -f "$0")
conf=$state_dir/ganesha.conf
log=$state_dir/ganesha.log

# alive PID PATTERN: true if PID runs and its command line contains PATTERN
# (so that a recycled pid is never killed).
alive() {
  local pid=$1 pattern=$2 cmdline
  [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
  cmdline=$( { tr '\0' ' ' </proc/"$pid"/cmdline; } 2>/dev/null) || return 1
  [[ $cmdline == *"$pattern"* ]] || return 1
  # A zombie has an empty command line; treat it as gone.
  [[ $(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null) != Z ]]
}

# stop_pid PIDFILE PATTERN NAME: TERM, wait up to $timeout s, then KILL.
stop_pid() {
  local pidfile=$1 pattern=$2 name=$3 pid i
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if alive "$pid" "$pattern"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
      alive "$pid" "$pattern" || break
      sleep 0.1
    done
    if alive "$pid" "$pattern"; then
      echo "ganesha.sh: $name (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do alive "$pid" "$pattern" || break; sleep 0.1; done
    fi
  fi
  rm -f "$pidfile"
}

# listening PORT: something accepts TCP connections on 127.0.0.1:PORT.
listening() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# serves: our export answers MOUNT and NFS on our ports. nfs-ls mounts with
# explicit ports, so no other server's rpcbind registration can fool it
# (`rpcinfo -n PORT` can: it asks rpcbind despite -n).
serves() {
  timeout 5 nfs-ls "nfs://127.0.0.1$export_dir?nfsport=$nfs_port&mountport=$mnt_port" >/dev/null 2>&1
}

# Both ask rpcbind over its Unix socket, as ganesha registers. Over TCP,
# rpcinfo run as root binds a reserved port and closes first, leaving it in
# TIME_WAIT for a minute: enough starts (ctest -j) would use up 512..1023,
# which sfsd needs to reach the export.
portmapper_up() { timeout 2 rpcinfo >/dev/null 2>&1; }
# registered PORT: rpcbind lists a service at 127.0.0.1:PORT (universal
# address: the port's two bytes after the IP address).
registered() { timeout 2 rpcinfo 2>/dev/null | grep -qF "127.0.0.1.$(($1 / 256)).$(($1 % 256)) "; }

fail_start() {
  echo "ganesha.sh: $*" >&2
  if [[ -f $log ]]; then
    echo "--- last lines of $log ---" >&2
    tail -n 25 "$log" >&2 || true
  fi
  # Our own child may not have exec'd ganesha.nfsd yet (its command line
  # is still bash's), so match it by pid alone: a child's pid cannot be
  # recycled before this script has reaped it.
  local pattern=ganesha.nfsd
  [[ -n $ganesha_child ]] && pattern=
  stop_pid "$ganesha_pidfile" "$pattern" ganesha.nfsd
  stop_pid "$rpcbind_pidfile" rpcbind rpcbind
  exit 1
}

write_conf() {
  cat >"$conf" <<CONF
# Written by scripts/ganesha.sh; regenerated on every start.
# Only sfsd (root, on this host) may use this server: see the script's header.
NFS_CORE_PARAM {
    Bind_addr = 127.0.0.1;
    NFS_Port = $nfs_port;
    MNT_Port = $mnt_port;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    # NFSv3 only: sfsd speaks nothing else.
    Protocols = 3;
}
NFSv4 {
    # Unused with Protocols = 3, but ganesha still sets up recovery state:
    # keep it in our own state dir.
    Graceless = true;
    RecoveryBackend = fs;
    RecoveryRoot = "$state_dir/recovery";
}
NFS_KRB5 {
    Active_krb5 = false;
}
EXPORT {
    Export_Id = 1;
    Path = "$export_dir";
    Pseudo = "$export_dir";
    Protocols = 3;
    Transports = TCP;
    # Nobody but the CLIENT below; it inherits the settings that follow.
    Access_Type = None;
    # AUTH_UNIX is trusted as sent (uid 0 included), which is safe only
    # because the sender must sit on a reserved port, i.e. be root.
    PrivilegedPort = true;
    Squash = No_Root_Squash;
    SecType = sys;
    # Without this ganesha serves cached (stale) sizes of files changed on disk.
    Attr_Expiration_Time = 0;
    CLIENT {
        Clients = 127.0.0.1;
        Access_Type = RW;
    }
    FSAL {
        Name = VFS;
    }
}
LOG {
    Default_Log_Level = EVENT;
}
CONF
}

# check_port NAME VALUE: a port number, below 1024 unless allowed otherwise.
check_port() {
  local name=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] && ((port >= 1 && port <= 65535)) || die "$name '$port' is not a port number"
  if ((port >= 1024)) && [[ -z $allow_unprivileged_ports ]]; then
    die "$name $port is not below 1024: any local user may listen on such a port while" \
      "ganesha is down and pose as the NFS server to sfsd. Use a port below 1024" \
      "(below 512 keeps clear of the source ports NFS clients bind), or pass" \
      "--allow-unprivileged-ports for a throwaway server."
  fi
}

do_start() {
  [[ -n $export_dir && -n $nfs_port && -n $mnt_port ]] ||
    die "start needs --export DIR --state DIR --nfs-port N --mnt-port M"
  check_port --nfs-port "$nfs_port"
  check_port --mnt-port "$mnt_port"
  command -v ganesha.nfsd >/dev/null || die "ganesha.nfsd is not installed (apt-get install nfs-ganesha nfs-ganesha-vfs)"
  command -v rpcinfo >/dev/null || die "rpcinfo is not installed (apt-get install rpcbind)"
  command -v nfs-ls >/dev/null || die "nfs-ls is not installed (apt-get install libnfs-utils)"
  [[ -d $export_dir ]] || die "export dir '$export_dir' does not exist"
  export_dir=$(cd "$export_dir" && pwd -P)
  mkdir -p "$state_dir/recovery"
  state_dir=$(cd "$state_dir" && pwd -P)
  ganesha_pidfile=$state_dir/ganesha.pid rpcbind_pidfile=$state_dir/rpcbind.pid
  watch_pidfile=$state_dir/watch.pid
  conf=$state_dir/ganesha.conf log=$state_dir/ganesha.log

  if [[ -f $ganesha_pidfile ]] && alive "$(<"$ganesha_pidfile")" "$conf"; then
    echo "ganesha.sh: already running from $state_dir" >&2
    cat "$ganesha_pidfile"
    return 0
  fi
  rm -f "$ganesha_pidfile"
  listening "$nfs_port" && die "something already listens on 127.0.0.1:$nfs_port; pick another --nfs-port"
  listening "$mnt_port" && die "something already listens on 127.0.0.1:$mnt_port; pick another --mnt-port"

  write_conf
  : >"$log"

  # Starting rpcbind, letting ganesha register and stopping rpcbind again is
  # one critical section: a concurrent start (ctest -j) must not stop the
  # rpcbind another ganesha is still registering with. Children must not
  # inherit the lock's fd (9>&-), or it would outlive this script.
  exec 9>"${TMPDIR:-/tmp}/sfs-ganesha-start.lock"
  flock -w 60 9 || fail_start "could not take ${TMPDIR:-/tmp}/sfs-ganesha-start.lock within 60 s"

  if ! portmapper_up; then
    mkdir -p /run/rpcbind
    setsid rpcbind -f </dev/null >>"$state_dir/rpcbind.log" 2>&1 9>&- &
    echo $! >"$rpcbind_pidfile"
    local i
    for ((i = 0; i < 50; i++)); do portmapper_up && break; sleep 0.1; done
    portmapper_up || fail_start "rpcbind did not come up (see $state_dir/rpcbind.log)"
    # Lost a race with another starter: its rpcbind serves, ours exited.
    alive "$(<"$rpcbind_pidfile")" rpcbind || rm -f "$rpcbind_pidfile"
  fi

  GLIBC_TUNABLES=${GANESHA_GLIBC_TUNABLES-glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824} \
    setsid ganesha.nfsd -F -f "$conf" -L "$log" -p "$state_dir/ganesha.nfsd.pid" -N NIV_EVENT \
    </dev/null >>"$log" 2>&1 9>&- &
  local pid=$!
  ganesha_child=$pid
  echo "$pid" >"$ganesha_pidfile"

  local deadline=$((SECONDS + timeout))
  until serves; do
    # By pid alone (pattern ""): until the exec the command line is bash's.
    alive "$pid" "" || fail_start "ganesha.nfsd exited during startup"
    ((SECONDS < deadline)) || fail_start "ganesha.nfsd did not serve NFS on 127.0.0.1:$nfs_port and MOUNT on :$mnt_port within ${timeout}s"
    sleep 0.1
  done

  if [[ -f $rpcbind_pidfile ]]; then
    # Ganesha registers before it serves; give the registration a moment to
    # be visible, then stop the rpcbind we started (nobody needs it now).
    for ((i = 0; i < 20; i++)); do
      registered "$nfs_port" && break
      sleep 0.1
    done
    stop_pid "$rpcbind_pidfile" rpcbind rpcbind
  fi
  exec 9>&-
  if [[ -n $watch_pid ]]; then
    # exec keeps the watchdog's pid when it turns into `stop`, so stop can
    # tell the watchdog from itself.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
                    exec "$2" stop --state "$3"' ganesha-watch "$watch_pid" "$script_path" "$state_dir" \
      </dev/null >/dev/null 2>&1 9>&- &
    echo $! >"$watch_pidfile"
  fi
  echo "$pid"
}

do_status() {
  if [[ -f $ganesha_pidfile ]] && alive "$(<"$ganesha_pidfile")" ganesha.nfsd; then
    echo "running (pid $(<"$ganesha_pidfile"))"
  else
    echo "stopped"; return 1
  fi
}

case $cmd in
  start) do_start ;;
  stop)
    if [[ -f $watch_pidfile && $(<"$watch_pidfile") != "$$" ]]; then
      stop_pid "$watch_pidfile" ganesha-watch watchdog
    fi
    rm -f "$watch_pidfile"
    stop_pid "$ganesha_pidfile" ganesha.nfsd ganesha.nfsd
    stop_pid "$rpcbind_pidfile" rpcbind rpcbind
    rm -f "$state_dir/ganesha.nfsd.pid" ;;
  status) do_status ;;
  *) usage ;;
esac
