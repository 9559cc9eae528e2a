#!/usr/bin/env bash
# XRootD data server on this host, for tests: serves one local directory over root://.
#
#   .ci/services/xrootd.sh install          apt-get install xrootd-server xrootd-client; pip install
#                                            the client side (PyPI xrootd, fsspec-xrootd) into the venv
#   .ci/services/xrootd.sh start DIR PORT   serve DIR (read-only) on PORT, wait until the port answers
#   .ci/services/xrootd.sh stop             SIGTERM by PID, wait; SIGKILL after $SAETTA_STOP_GRACE s
#   .ci/services/xrootd.sh status           exit 0 and print the URL if running, exit 3 if not
#   .ci/services/xrootd.sh info             key=value facts a client needs (URL, DIR, PORT, PID, ...)
#   .ci/services/xrootd.sh bytes            data bytes served so far (sum of read/readV/pgread
#                                            request lengths in the trace log), across restarts
#
# Files are then at root://localhost:PORT//DIR/NAME (note the double slash: absolute path).
# Config, log, pid and admin paths live in $SAETTA_XROOTD_DIR (default /tmp/saetta-xrootd).
# xrootd refuses to run as root, so the daemon runs as $SAETTA_XROOTD_USER (default: the `xrootd`
# user the Debian package creates): DIR and all its parents must be readable/searchable by it
# (pytest's /tmp/pytest-of-root is 0700 -- serve a directory made with mode 0755 under /tmp).
# XRootD 5.5 cannot bind to one address; it listens on all interfaces but `xrd.allow` admits only
# localhost / 127.0.0.1 clients. `xrootd.trace fsio login` logs every read request with its length.
# Clients should set XRD_CONNECTIONRETRY=1 XRD_CONNECTIONWINDOW=5 XRD_REQUESTTIMEOUT=10, or a
# stopped server makes them retry for minutes.
set -euo pipefail

NAME=xrootd
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$SCRIPT_DIR/../.." && pwd -P)
STATE=${SAETTA_XROOTD_DIR:-/tmp/saetta-xrootd}
VENV=${VIRTUAL_ENV:-$PROJECT/.venv}
GRACE=${SAETTA_STOP_GRACE:-10}
START_TIMEOUT=${SAETTA_START_TIMEOUT:-30}
RUN_USER=${SAETTA_XROOTD_USER:-}
CFG=$STATE/xrootd.cfg
PIDFILE=$STATE/xrootd.pid
LOG=$STATE/xrootd.log
INFO=$STATE/info.env

log() { echo "[$NAME.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# alive: prints the pid in $PIDFILE if that process exists, is not a zombie, and is ours
# (its command line names our config file), so a recycled PID is never signalled.
alive() {
  local pid state
  [[ -s $PIDFILE ]] || return 1
  pid=$(tr -dc 0-9 < "$PIDFILE")
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CFG" || return 1
  echo "$pid"
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

gone() {  # gone PID: true once the process has exited (zombies count as exited)
  local state
  [[ -r /proc/$1/stat ]] || return 0
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 0
  [[ $state == Z || $state == X ]]
}

stop_pid() {  # stop_pid PID: TERM, wait $GRACE s, KILL, wait 10 s more
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < GRACE * 20; i++)); do gone "$pid" && return 0; sleep 0.05; done
  log "pid $pid still alive ${GRACE}s after SIGTERM; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do gone "$pid" && return 0; sleep 0.05; done
  die "pid $pid did not exit after SIGKILL"
}

apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  need_root
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pip_install() {  # pip_install IMPORT-CHECK PACKAGE...
  local py=$VENV/bin/python check=$1
  shift
  [[ -x $py ]] || die "no Python at $py (activate the venv or set VIRTUAL_ENV)"
  "$py" -c "$check" 2>/dev/null && return 0
  log "pip install $* into $VENV"
  "$py" -m pip install --quiet "$@"
}

service_user() {
  if [[ -n $RUN_USER ]]; then echo "$RUN_USER"
  elif id xrootd >/dev/null 2>&1; then echo xrootd
  else echo nobody
  fi
}

do_install() {
  apt_install xrootd-server xrootd-client
  pip_install 'import XRootD.client, fsspec_xrootd' xrootd fsspec-xrootd
  log "xrootd $(xrootd -v 2>&1 | head -n1); client: $("$VENV/bin/python" -c \
    'import importlib.metadata as m; print("xrootd", m.version("xrootd"), "fsspec-xrootd", m.version("fsspec-xrootd"))')"
}

do_start() {
  [[ $# -eq 2 ]] || die "usage: $0 start DIR PORT"
  need_root
  command -v xrootd >/dev/null || die "xrootd is not installed; run: $0 install"
  local dir port user pid i
  dir=$(cd "$1" && pwd -P) || die "no such directory: $1"
  port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
  mkdir -p "$STATE"
  exec 9> "$STATE/.lock"
  flock 9
  if pid=$(alive); then
    if grep -qxF "DIR=$dir" "$INFO" 2>/dev/null && grep -qxF "PORT=$port" "$INFO" 2>/dev/null; then
      log "already running (pid $pid) on port $port serving $dir"
      return 0
    fi
    die "already running (pid $pid) with another DIR/PORT (see $INFO); stop it first"
  fi
  port_open "$port" && die "port $port is already in use by another process"
  user=$(service_user)
  runuser -u "$user" -- test -r "$dir" -a -x "$dir" \
    || die "$dir is not readable by user '$user' (xrootd cannot run as root): chmod o+rx it and its parents"
  mkdir -p "$STATE/admin" "$STATE/run"
  cat > "$CFG" <<EOF
# written by $0 start; serves $dir read-only on port $port
all.export $dir r/o
xrd.port $port
xrd.allow host localhost
xrd.allow host 127.0.0.1
xrd.network nodnr
all.adminpath $STATE/admin
all.pidpath $STATE/run
xrootd.trace fsio login
EOF
  chown -R "$user" "$STATE"
  rm -f "$PIDFILE"
  # 9>&-: the daemon must not inherit the lock
  (cd "$STATE" && xrootd -b -R "$user" -I v4 -c "$CFG" -l "$LOG" -s "$PIDFILE" \
    > "$STATE/xrootd.out" 2>&1 < /dev/null 9>&-) || { cat "$STATE/xrootd.out" >&2; die "xrootd failed to start"; }
  for ((i = 0; i < START_TIMEOUT * 20; i++)); do
    if pid=$(alive) && port_open "$port"; then
      cat > "$INFO" <<EOF
URL=root://localhost:$port/
BASE_URL=root://localhost:$port/$dir
DIR=$dir
PORT=$port
PID=$pid
USER=$user
LOG=$LOG
CONFIG=$CFG
EOF
      log "running (pid $pid): root://localhost:$port/$dir"
      return 0
    fi
    # the daemon forks; give it a moment to write its pid file before declaring it dead
    if ((i > 40)) && ! alive >/dev/null; then break; fi
    sleep 0.05
  done
  tail -n 30 "$LOG" >&2 2>/dev/null || true
  pid=$(alive) && stop_pid "$pid"
  die "xrootd did not answer on port $port within ${START_TIMEOUT}s (log: $LOG)"
}

do_stop() {
  local pid
  [[ -d $STATE ]] || { log "not running"; return 0; }
  exec 9> "$STATE/.lock"
  flock 9
  if pid=$(alive); then
    log "stopping (pid $pid)"
    stop_pid "$pid"
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
}

do_status() {
  local pid
  if pid=$(alive); then
    echo "running pid=$pid $(grep '^BASE_URL=' "$INFO" 2>/dev/null | cut -d= -f2-)"
    return 0
  fi
  echo "stopped"
  return 3
}

do_info() {
  [[ -s $INFO ]] || die "never started in $STATE"
  cat "$INFO"
  if pid=$(alive); then echo "RUNNING=1"; else echo "RUNNING=0"; fi
}

do_bytes() {
  # Trace lines look like `... Xrootd_Protocol: 0 fh=0 read 403@0`, `... readV 337237@324098`,
  # `... pgread 2640162@0 fn=...`: sum the requested lengths (past-EOF requests overcount).
  local files=("$LOG"*)
  [[ -e ${files[0]} ]] || { echo 0; return 0; }
  cat "${files[@]}" | awk '
    /Xrootd_Protocol:/ {
      for (i = 2; i <= NF; i++)
        if ($(i - 1) == "read" || $(i - 1) == "readV" || $(i - 1) == "pgread")
          if (split($i, a, "@") == 2 && a[1] ~ /^[0-9]+$/) total += a[1]
    }
    END { printf "%.0f\n", total }'
}

cmd=${1:-}
shift || true
case $cmd in
  install) do_install ;;
  start) do_start "$@" ;;
  stop) do_stop ;;
  status) do_status ;;
  info) do_info ;;
  bytes) do_bytes ;;
  *) die "usage: $0 {install|start DIR PORT|stop|status|info|bytes}" ;;
esac
