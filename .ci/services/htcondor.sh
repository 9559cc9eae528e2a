#!/usr/bin/env bash
# Real HTCondor personal pool on this host, for tests, inside a Debian 13 (trixie) chroot.
#
#   .ci/services/htcondor.sh install       build/refresh the chroot (debootstrap + apt condor + venv)
#   .ci/services/htcondor.sh start         mount, configure and start the pool; wait until slots are idle
#   .ci/services/htcondor.sh stop          stop the pool (master by PID), kill leftovers, unmount
#   .ci/services/htcondor.sh status        condor_status / condor_q
#   .ci/services/htcondor.sh exec [--] CMD [ARG...]
#                                          run CMD inside the chroot as the pool user, in the current
#                                          directory (same path inside), with the chroot venv first on PATH
#   .ci/services/htcondor.sh info          print the key=value facts a client needs
#
# Why a chroot: Debian 12 has no condor package, and PyPI's `htcondor` carries only the Python
# bindings; Debian 13 ships HTCondor 24 daemons. The chroot (~600 MB) is cached in
# $SAETTA_HTCONDOR_CHROOT (default /var/cache/saetta-htcondor-chroot); reruns only re-check stamps.
#
# Layout inside the chroot:
#   pool user $POOL_USER (HTCondor refuses jobs from root), home /home/$POOL_USER,
#   HTCondor LOCAL_DIR /home/$POOL_USER/condor, config /etc/condor/config.d/99-saetta.conf,
#   venv /opt/saetta-venv (Python 3.13 of the chroot) with the project installed *editable*
#   from $PROJECT (bind-mounted at the same path), plus dask, distributed, dask-jobqueue,
#   so edits to src/ are seen without reinstalling. The venv is re-synced when pyproject.toml
#   changes or the project moves (a fresh CI clone elsewhere).
#   $SHARED_DIR (default /tmp/saetta-htcondor-shared, mode 1777) is bind-mounted at the same path,
#   for files that both sides must see (the pool user cannot read root's 0700 pytest tmp dirs).
# Everything listens on 127.0.0.1 only; security is host-based (127.0.0.1 allowed).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "${SAETTA_PROJECT_DIR:-$SCRIPT_DIR/../..}" && pwd -P)
CHROOT=${SAETTA_HTCONDOR_CHROOT:-/var/cache/saetta-htcondor-chroot}
SHARED_DIR=${SAETTA_HTCONDOR_SHARED:-/tmp/saetta-htcondor-shared}
MIRROR=${SAETTA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
POOL_USER=saetta
POOL_UID=${SAETTA_HTCONDOR_UID:-4242}
POOL_HOME=/home/$POOL_USER
VENV=/opt/saetta-venv
PORT=${SAETTA_HTCONDOR_PORT:-9618}
STAMPS=$CHROOT/.saetta
PIDFILE=$POOL_HOME/condor/master.pid
# Python packages beyond the project's own dependencies.
EXTRA_PY=(dask distributed dask-jobqueue hatchling)

log() { echo "[htcondor.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

in_chroot() { chroot "$CHROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
as_pool() { chroot --userspec="$POOL_USER:$POOL_USER" "$CHROOT" /usr/bin/env -i \
  PATH="$VENV/bin:/usr/bin:/bin:/usr/sbin:/sbin" HOME="$POOL_HOME" USER="$POOL_USER" \
  LOGNAME="$POOL_USER" LANG=C.UTF-8 "$@"; }

is_mounted() { mountpoint -q "$1" 2>/dev/null; }

mount_all() {
  mkdir -p "$CHROOT"/{proc,dev}
  is_mounted "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
  is_mounted "$CHROOT/dev" || mount --bind /dev "$CHROOT/dev"
  mkdir -p "$CHROOT/dev/pts" "$CHROOT/dev/shm"
  is_mounted "$CHROOT/dev/pts" || mount --bind /dev/pts "$CHROOT/dev/pts"
  # Dask nannies need a writable /dev/shm (multiprocessing semaphores).
  is_mounted "$CHROOT/dev/shm" || mount -t tmpfs -o mode=1777,size=1g tmpfs "$CHROOT/dev/shm"
  mkdir -p "$CHROOT$PROJECT"
  is_mounted "$CHROOT$PROJECT" || mount --bind "$PROJECT" "$CHROOT$PROJECT"
  # Jobs run as the pool user and import saetta from the project: a checkout in a
  # private folder (mktemp -d makes one of mode 700) must let others read it.
  if (( (0$(stat -c %a "$PROJECT") & 05) != 05 )); then
    log "letting the pool user read $PROJECT (chmod o+rx): its jobs import saetta from there"
    chmod o+rx "$PROJECT"
  fi
  mkdir -p "$SHARED_DIR" "$CHROOT$SHARED_DIR"
  chmod 1777 "$SHARED_DIR"
  is_mounted "$CHROOT$SHARED_DIR" || mount --bind "$SHARED_DIR" "$CHROOT$SHARED_DIR"
}

# Every mount point at or below the chroot, deepest first.
chroot_mounts() {
  awk -v root="$CHROOT" '$2 == root || index($2, root "/") == 1 {print $2}' /proc/mounts \
    | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- | uniq
}

umount_all() {
  local m
  for m in $(chroot_mounts); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
}

# Processes whose root directory is the chroot (ours by construction).
chroot_pids() {
  local p r
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    [[ $r == "$CHROOT" ]] && echo "${p#/proc/}"
  done
  return 0
}

master_pid() {
  local pid
  [[ -s $CHROOT$PIDFILE ]] || return 1
  pid=$(tr -dc 0-9 < "$CHROOT$PIDFILE")
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == condor_master* ]] || return 1
  echo "$pid"
}

project_hash() {
  { cat "$PROJECT/pyproject.toml"; echo "${EXTRA_PY[*]}" "$PROJECT"; } | sha256sum | cut -c1-16
}

do_install() {
  need_root
  local t0=$SECONDS
  if [[ ! -e $STAMPS/base ]]; then
    command -v debootstrap >/dev/null || {
      log "installing debootstrap"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    }
    # Never delete anything while a bind mount (e.g. the project) is inside.
    [[ -z $(chroot_mounts) ]] || die "mounts still active under $CHROOT; run stop first"
    log "debootstrap $SUITE into $CHROOT (minbase)"
    rm -rf --one-file-system "$CHROOT"
    mkdir -p "$(dirname "$CHROOT")"
    debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR" > "/tmp/saetta-debootstrap.log" 2>&1 \
      || { tail -n 30 /tmp/saetta-debootstrap.log >&2; die "debootstrap failed"; }
    mkdir -p "$STAMPS"
    touch "$STAMPS/base"
    log "debootstrap done ($((SECONDS - t0)) s)"
  fi
  # Name resolution (pip, apt) and 'hostname -> 127.0.0.1' as on the host.
  cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf" 2>/dev/null || true
  cp /etc/hosts "$CHROOT/etc/hosts"
  mount_all
  trap 'master_pid >/dev/null || umount_all' EXIT
  if [[ ! -e $STAMPS/apt ]]; then
    log "apt-get install condor python3-venv in the chroot"
    # Do not let package scripts start daemons in the chroot.
    printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"
    chmod +x "$CHROOT/usr/sbin/policy-rc.d"
    in_chroot apt-get update -qq
    in_chroot apt-get install -y -qq --no-install-recommends ca-certificates condor python3-venv \
      > /tmp/saetta-chroot-apt.log 2>&1 \
      || { tail -n 30 /tmp/saetta-chroot-apt.log >&2; die "apt-get install condor failed"; }
    in_chroot apt-get clean
    touch "$STAMPS/apt"
    log "condor installed: $(in_chroot condor_version | head -n1) ($((SECONDS - t0)) s)"
  fi
  # Extra CA certificates of this machine (e.g. a TLS-intercepting proxy), so pip works inside.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$CHROOT/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$CHROOT/usr/local/share/ca-certificates/"
    in_chroot update-ca-certificates >/dev/null 2>&1 || log "update-ca-certificates failed"
  fi
  if ! in_chroot id -u "$POOL_USER" >/dev/null 2>&1; then
    in_chroot useradd --create-home --uid "$POOL_UID" --user-group --shell /bin/bash "$POOL_USER"
  fi
  local want
  want=$(project_hash)
  if [[ $(cat "$STAMPS/venv" 2>/dev/null) != "$want" ]]; then
    log "syncing venv $VENV with $PROJECT (editable) + ${EXTRA_PY[*]}"
    [[ -x $CHROOT$VENV/bin/python ]] || in_chroot python3 -m venv "$VENV"
    in_chroot "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
      > /tmp/saetta-chroot-pip.log 2>&1 || { tail -n 30 /tmp/saetta-chroot-pip.log >&2; die "pip failed"; }
    in_chroot "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
      -e "${PROJECT}[test]" "${EXTRA_PY[@]}" > /tmp/saetta-chroot-pip.log 2>&1 \
      || { tail -n 30 /tmp/saetta-chroot-pip.log >&2; die "pip install of the project failed"; }
    echo "$want" > "$STAMPS/venv"
    log "venv ready: $(in_chroot "$VENV/bin/python" -c 'import sys, dask, dask_jobqueue, saetta; print(sys.version.split()[0], "dask", dask.__version__, "dask-jobqueue", dask_jobqueue.__version__, "saetta", saetta.__version__)')"
  fi
  log "install complete ($((SECONDS - t0)) s)"
}

cpu_count() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

write_config() {
  local cpus mem
  # nproc obeys OMP_NUM_THREADS, which a Dask LocalCluster sets to 1 in its client's
  # environment: a service started after one would get a single CPU.
  cpus=$(cpu_count)
  mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
  local d
  # A clean state on every start (like slurmctld -c): jobs left in the queue by an earlier run
  # would otherwise be restarted.
  rm -rf --one-file-system "$CHROOT$POOL_HOME/condor"
  for d in condor condor/log condor/spool condor/execute condor/lock condor/run; do
    install -d -o "$POOL_UID" -g "$POOL_UID" "$CHROOT$POOL_HOME/$d"
  done
  cat > "$CHROOT/etc/condor/config.d/99-saetta.conf" <<CONF
# Written by .ci/services/htcondor.sh: personal pool run by the unprivileged user $POOL_USER.
use ROLE : Personal
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
# This sandbox also has an IPv6 address (fd00::2); without this, tools connect from it and
# host-based security (127.0.0.1) denies them.
ENABLE_IPV6 = False
ENABLE_IPV4 = True
COLLECTOR_HOST = 127.0.0.1:$PORT
SHARED_PORT_PORT = $PORT
CONDOR_IDS = $POOL_UID.$POOL_UID
LOCAL_DIR = $POOL_HOME/condor
LOG = \$(LOCAL_DIR)/log
SPOOL = \$(LOCAL_DIR)/spool
EXECUTE = \$(LOCAL_DIR)/execute
LOCK = \$(LOCAL_DIR)/lock
RUN = \$(LOCAL_DIR)/run
# No cgroups in this sandbox.
BASE_CGROUP =
# Host-based security: only this host.
use SECURITY : HOST_BASED
ALLOW_READ = 127.0.0.1
ALLOW_WRITE = 127.0.0.1
ALLOW_ADMINISTRATOR = 127.0.0.1
ALLOW_CONFIG = 127.0.0.1
ALLOW_NEGOTIATOR = 127.0.0.1
ALLOW_DAEMON = 127.0.0.1
# Resources: one partitionable slot (ROLE : Personal) with all CPUs; jobs carve dynamic slots.
NUM_CPUS = $cpus
MEMORY = $mem
# No CPU benchmarks at start (they would compete with tests), no mail.
BENCHMARKS_JOBLIST =
RUNBENCHMARKS = False
MAIL = /bin/true
# Run jobs at once, never suspend or preempt, match quickly.
START = True
SUSPEND = False
PREEMPT = False
KILL = False
WANT_SUSPEND = False
WANT_VACATE = False
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_MIN_INTERVAL = 1
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
UPDATE_INTERVAL = 5
STARTER_UPDATE_INTERVAL = 5
SCHEDD_MIN_INTERVAL = 1
CONF
}

# Ready: the startd offers all CPUs unclaimed (one partitionable slot) and the schedd answers.
pool_ready() {
  local n
  n=$(as_pool condor_status -const 'State == "Unclaimed"' -af Cpus 2>/dev/null \
    | awk '{s += $1} END {print s + 0}')
  [[ $n -ge $(cpu_count) ]] && as_pool condor_q -totals >/dev/null 2>&1
}

do_start() {
  need_root
  if master_pid >/dev/null && pool_ready; then
    log "already running (master pid $(master_pid))"
    return 0
  fi
  do_install
  do_stop quiet
  local t0=$SECONDS
  cp /etc/hosts "$CHROOT/etc/hosts"
  mount_all
  write_config
  as_pool /usr/sbin/condor_master -pidfile "$PIDFILE" \
    || die "condor_master failed; see $CHROOT$POOL_HOME/condor/log/MasterLog"
  local i
  for ((i = 0; i < 300; i++)); do
    pool_ready && break
    sleep 0.5
  done
  if ! pool_ready; then
    tail -n 30 "$CHROOT$POOL_HOME"/condor/log/{MasterLog,CollectorLog,StartLog,SchedLog} >&2 || true
    do_stop quiet
    die "HTCondor pool did not come up in 150 s"
  fi
  log "HTCondor up in $((SECONDS - t0)) s: $(as_pool condor_version | head -n1)"
}

do_stop() {
  need_root
  local quiet=${1:-} pid i
  if pid=$(master_pid); then
    log "stopping condor_master (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    if [[ -d /proc/$pid ]]; then
      log "condor_master slow to exit; SIGQUIT"
      kill -QUIT "$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
    fi
  fi
  # Anything still running inside the chroot (daemons, jobs, an exec'd client) was started by us.
  local left
  left=$(chroot_pids)
  if [[ -n $left ]]; then
    log "terminating leftover chroot processes: ${left//$'\n'/ }"
    # shellcheck disable=SC2086
    kill -TERM $left 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [[ -z $(chroot_pids) ]] && break; sleep 0.2; done
    left=$(chroot_pids)
    # shellcheck disable=SC2086
    [[ -z $left ]] || kill -KILL $left 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$CHROOT$PIDFILE"
  umount_all
  [[ -n $quiet ]] || log "stopped"
}

do_status() {
  if ! master_pid >/dev/null; then
    echo "HTCondor not running (chroot $CHROOT)"
    return 3
  fi
  as_pool condor_status
  as_pool condor_q
}

do_exec() {
  [[ ${1:-} == -- ]] && shift
  [[ $# -gt 0 ]] || die "usage: $0 exec [--] CMD [ARG...]"
  need_root
  if ! is_mounted "$CHROOT/proc" || ! is_mounted "$CHROOT$PROJECT"; then
    die "chroot not mounted (or mounted for another checkout); run start first"
  fi
  local cwd=$PWD var
  [[ -d $CHROOT$cwd ]] || cwd=$POOL_HOME
  local pass=()
  for var in $(compgen -e); do
    case $var in
      PYTEST_ADDOPTS) ;;
      SAETTA_* | DASK_* | PYTEST_* | HYPOTHESIS_* | CI | TERM | COLUMNS) pass+=("$var=${!var}") ;;
    esac
  done
  # The pool user cannot write into the (root-owned) project tree: no .pyc files, no pytest cache.
  pass+=("PYTEST_ADDOPTS=${PYTEST_ADDOPTS:+$PYTEST_ADDOPTS }-p no:cacheprovider" PYTHONDONTWRITEBYTECODE=1)
  # shellcheck disable=SC2016  # $0/$@ are expanded by the inner sh
  as_pool "${pass[@]}" SAETTA_IN_HTCONDOR_CHROOT=1 /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
}

do_info() {
  cat <<INFO
chroot=$CHROOT
project=$PROJECT
shared_dir=$SHARED_DIR
pool_user=$POOL_USER
python=$VENV/bin/python
port=$PORT
INFO
}

case ${1:-} in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  exec) shift; do_exec "$@" ;;
  info) do_info ;;
  *) echo "usage: $0 {install|start|stop|status|exec [--] CMD...|info}" >&2; exit 2 ;;
esac
