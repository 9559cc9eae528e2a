#!/usr/bin/env bash
# nginx HTTPS (+ WebDAV) server on this host, for tests: serves one local directory over https://.
#
#   .ci/services/nginx.sh install          apt-get install nginx-light libnginx-mod-http-dav-ext
#                                           openssl; pip install aiohttp (fsspec's HTTP client)
#   .ci/services/nginx.sh start DIR PORT   new self-signed cert, serve DIR on https://127.0.0.1:PORT
#   .ci/services/nginx.sh stop             SIGTERM by PID, wait; SIGKILL after $SAETTA_STOP_GRACE s
#   .ci/services/nginx.sh status           exit 0 and print the URL if running, exit 3 if not
#   .ci/services/nginx.sh info             key=value facts a client needs (URL, CA_FILE, DIR, ...)
#   .ci/services/nginx.sh bytes            response body bytes served so far (access log), across
#                                           restarts
#
# Served: GET/HEAD with byte ranges, HTML autoindex listings (what fsspec's HTTPFileSystem.ls
# parses), WebDAV PROPFIND/OPTIONS (dav-ext) and PUT/DELETE/MKCOL/COPY/MOVE.
# DIR/private/ (made by start) is served at /private/ behind HTTP basic auth: user
# $SAETTA_NGINX_AUTH_USER (default saetta), password $SAETTA_NGINX_AUTH_PASSWORD (default
# saetta-basic-pw); wrong or missing credentials get 401. `info` prints them (AUTH_USER,
# AUTH_PASSWORD, PRIVATE_DIR).
# State (nginx.conf, cert.pem/key.pem, logs, pid, temp dirs) lives in $SAETTA_NGINX_DIR
# (default /tmp/saetta-nginx). cert.pem is both the server certificate and the CA to trust
# (CN=localhost, SAN DNS:localhost + IP:127.0.0.1); start generates it when the state directory has
# none (or it expires within a day, or $SAETTA_NGINX_NEW_CERT=1), so stop/start keeps the cert.
# Workers run as $SAETTA_NGINX_USER (default root, so any DIR, e.g. pytest's 0700 tmp dirs, is
# readable and PUT works; as root without a `user` line nginx would use `nobody`).
# The access log has `$msec $status $body_bytes_sent $bytes_sent $request_time "$request" "$http_range"`.
set -euo pipefail

NAME=nginx
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT=$(cd "$SCRIPT_DIR/../.." && pwd -P)
STATE=${SAETTA_NGINX_DIR:-/tmp/saetta-nginx}
VENV=${VIRTUAL_ENV:-$PROJECT/.venv}
GRACE=${SAETTA_STOP_GRACE:-10}
START_TIMEOUT=${SAETTA_START_TIMEOUT:-30}
RUN_USER=${SAETTA_NGINX_USER:-root}
AUTH_USER=${SAETTA_NGINX_AUTH_USER:-saetta}
AUTH_PASSWORD=${SAETTA_NGINX_AUTH_PASSWORD:-saetta-basic-pw}
HTPASSWD=$STATE/htpasswd
CONF=$STATE/nginx.conf
PIDFILE=$STATE/nginx.pid
ACCESS_LOG=$STATE/access.log
ERROR_LOG=$STATE/error.log
INFO=$STATE/info.env
DAV_MODULE=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so

log() { echo "[$NAME.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# alive: prints the master pid in $PIDFILE if that process exists, is not a zombie, and is ours
# (its command line names our config file), so a recycled PID is never signalled.
alive() {
  local pid state
  [[ -s $PIDFILE ]] || return 1
  pid=$(tr -dc 0-9 < "$PIDFILE")
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed -E 's/.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$CONF" || return 1
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

workers() {  # pids of the worker processes of master $1
  local p
  for p in /proc/[0-9]*; do
    [[ $(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null) == "$1" ]] && echo "${p#/proc/}"
  done
  return 0
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
  apt_install nginx-light libnginx-mod-http-dav-ext openssl
  pip_install 'import aiohttp' aiohttp
  log "$(nginx -v 2>&1); client: $("$VENV/bin/python" -c \
    'import importlib.metadata as m; print("aiohttp", m.version("aiohttp"))')"
}

make_cert() {
  if [[ ${SAETTA_NGINX_NEW_CERT:-0} != 1 && -s $STATE/cert.pem && -s $STATE/key.pem ]] \
     && openssl x509 -checkend 86400 -noout -in "$STATE/cert.pem" >/dev/null 2>&1; then
    return 0  # keep it, so clients that trust it keep working across stop/start
  fi
  # CA:TRUE + keyUsage keyCertSign lets clients use the certificate itself as their CA file
  # (also under Python's VERIFY_X509_STRICT); EC keys are generated instantly.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -addext "keyUsage=critical,digitalSignature,keyCertSign" -addext "extendedKeyUsage=serverAuth" \
    -keyout "$STATE/key.pem" -out "$STATE/cert.pem" 2> "$STATE/openssl.log" \
    || { cat "$STATE/openssl.log" >&2; die "openssl failed"; }
  chmod 600 "$STATE/key.pem"
}

do_start() {
  [[ $# -eq 2 ]] || die "usage: $0 start DIR PORT"
  need_root
  command -v nginx >/dev/null || die "nginx is not installed; run: $0 install"
  [[ -f $DAV_MODULE ]] || die "$DAV_MODULE missing; run: $0 install"
  local dir port pid i
  dir=$(cd "$1" && pwd -P) || die "no such directory: $1"
  port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "bad port: $port"
  mkdir -p "$STATE/tmp"
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
  make_cert
  mkdir -p "$dir/private"
  # apr1 (MD5) hashes are read by nginx itself, whatever the libc's crypt() supports; the
  # workers read the file on each request, so it must be readable by $RUN_USER
  printf '%s:%s\n' "$AUTH_USER" "$(openssl passwd -apr1 "$AUTH_PASSWORD")" > "$HTPASSWD"
  chmod 644 "$HTPASSWD"
  cat > "$CONF" <<EOF
# written by $0 start; serves $dir on https://127.0.0.1:$port
user $RUN_USER;
worker_processes 1;
daemon on;
pid $PIDFILE;
error_log $ERROR_LOG warn;
load_module $DAV_MODULE;
events { worker_connections 512; }
http {
    log_format saetta '\$msec \$status \$body_bytes_sent \$bytes_sent \$request_time "\$request" "\$http_range"';
    access_log $ACCESS_LOG saetta;
    client_body_temp_path $STATE/tmp/client_body;
    proxy_temp_path $STATE/tmp/proxy;
    fastcgi_temp_path $STATE/tmp/fastcgi;
    uwsgi_temp_path $STATE/tmp/uwsgi;
    scgi_temp_path $STATE/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    client_max_body_size 0;
    server {
        listen 127.0.0.1:$port ssl;
        server_name localhost;
        ssl_certificate $STATE/cert.pem;
        ssl_certificate_key $STATE/key.pem;
        root $dir;
        location / {
            autoindex on;
            dav_methods PUT DELETE MKCOL COPY MOVE;
            dav_ext_methods PROPFIND OPTIONS;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }
        location /private/ {
            auth_basic "saetta";
            auth_basic_user_file $HTPASSWD;
            autoindex on;
        }
    }
}
EOF
  rm -f "$PIDFILE"
  nginx -q -t -p "$STATE" -c "$CONF" -e "$ERROR_LOG" 2> "$STATE/nginx.out" \
    || { cat "$STATE/nginx.out" >&2; die "nginx rejected $CONF"; }
  # 9>&-: the daemon must not inherit the lock
  nginx -p "$STATE" -c "$CONF" -e "$ERROR_LOG" > "$STATE/nginx.out" 2>&1 < /dev/null 9>&- \
    || { cat "$STATE/nginx.out" >&2; die "nginx failed to start"; }
  for ((i = 0; i < START_TIMEOUT * 20; i++)); do
    if pid=$(alive) && port_open "$port"; then
      cat > "$INFO" <<EOF
URL=https://127.0.0.1:$port/
BASE_URL=https://127.0.0.1:$port
DIR=$dir
PORT=$port
PID=$pid
CA_FILE=$STATE/cert.pem
PRIVATE_DIR=$dir/private
AUTH_USER=$AUTH_USER
AUTH_PASSWORD=$AUTH_PASSWORD
ACCESS_LOG=$ACCESS_LOG
ERROR_LOG=$ERROR_LOG
CONFIG=$CONF
EOF
      log "running (pid $pid): https://127.0.0.1:$port/ serving $dir (CA: $STATE/cert.pem)"
      return 0
    fi
    if ((i > 40)) && ! alive >/dev/null; then break; fi
    sleep 0.05
  done
  tail -n 30 "$ERROR_LOG" >&2 2>/dev/null || true
  pid=$(alive) && stop_pid "$pid"
  die "nginx did not answer on port $port within ${START_TIMEOUT}s (log: $ERROR_LOG)"
}

do_stop() {
  local pid w
  [[ -d $STATE ]] || { log "not running"; return 0; }
  exec 9> "$STATE/.lock"
  flock 9
  if pid=$(alive); then
    log "stopping (pid $pid)"
    w=$(workers "$pid")
    stop_pid "$pid"
    # the master stops its workers; make sure none outlives it (they hold the listening socket)
    for pid in $w; do gone "$pid" || stop_pid "$pid"; done
  else
    log "not running"
  fi
  rm -f "$PIDFILE"
}

do_status() {
  local pid
  if pid=$(alive); then
    echo "running pid=$pid $(grep '^URL=' "$INFO" 2>/dev/null | cut -d= -f2-)"
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
  [[ -s $ACCESS_LOG ]] || { echo 0; return 0; }
  awk '$3 ~ /^[0-9]+$/ { total += $3 } END { printf "%.0f\n", total }' "$ACCESS_LOG"
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
