#!/usr/bin/env bash
# Single-node SLURM cluster (slurmctld + slurmd + munged) on this host, for tests.
#
#   .ci/services/slurm.sh install   apt-get install slurm-wlm munge (idempotent)
#   .ci/services/slurm.sh start     write config to $SAETTA_SLURM_DIR, start daemons, wait for node idle
#   .ci/services/slurm.sh stop      cancel jobs, stop daemons by PID and wait for them to exit
#   .ci/services/slurm.sh status    sinfo / squeue
#   .ci/services/slurm.sh env       print `export SLURM_CONF=...` (eval it to use sinfo/sbatch by hand)
#
# Everything (config, state, spool, logs, munge key and socket) lives in one state directory,
# $SAETTA_SLURM_DIR (default /tmp/saetta-slurm). Clients (sbatch, squeue, dask-jobqueue) find
# the cluster through SLURM_CONF=$SAETTA_SLURM_DIR/slurm.conf; /etc/slurm is not touched.
# Must run as root (SlurmUser=root; munged runs as the munge user). No cgroups are used:
# proctrack/linuxproc, task/none, no accounting. Daemons talk over 127.0.0.1 only.
set -euo pipefail

DIR=${SAETTA_SLURM_DIR:-/tmp/saetta-slurm}
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket.2
CTLD_PORT=${SAETTA_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${SAETTA_SLURMD_PORT:-6818}
PARTITION=debug
NODE=$(hostname -s)
export SLURM_CONF=$CONF

log() { echo "[slurm.sh] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

# alive PIDFILE COMM -> prints pid if the process in PIDFILE is alive and is COMM
alive() {
  local pidfile=$1 comm=$2 pid
  [[ -s $pidfile ]] || return 1
  pid=$(tr -dc 0-9 < "$pidfile")
  [[ -n $pid && -d /proc/$pid ]] || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm"* ]] || return 1
  echo "$pid"
}

# stop_pid PIDFILE COMM: TERM, wait up to 20 s, then KILL and wait
stop_pid() {
  local pidfile=$1 comm=$2 pid i
  pid=$(alive "$pidfile" "$comm") || { rm -f "$pidfile"; return 0; }
  log "stopping $comm (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [[ -d /proc/$pid ]] || break
    sleep 0.2
  done
  if [[ -d /proc/$pid ]]; then
    log "$comm (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [[ -d /proc/$pid ]] || break; sleep 0.2; done
  fi
  [[ -d /proc/$pid ]] && die "$comm (pid $pid) did not exit"
  rm -f "$pidfile"
}

do_install() {
  need_root
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v munged >/dev/null && command -v sinfo >/dev/null; then
    log "slurm-wlm and munge already installed ($(slurmctld -V))"
    return 0
  fi
  log "installing slurm-wlm munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  log "installed $(slurmctld -V)"
}

node_state() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n1; }

running() {
  alive "$DIR/munged.pid" munged >/dev/null && alive "$DIR/slurmctld.pid" slurmctld >/dev/null \
    && alive "$DIR/slurmd.pid" slurmd >/dev/null
}

cpu_count() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }

write_config() {
  local cpus mem
  # nproc obeys OMP_NUM_THREADS, which a Dask LocalCluster sets to 1 in its client's
  # environment: a service started after one would get a single CPU.
  cpus=$(cpu_count)
  # RealMemory a bit under the total so that slurmd never reports less than configured.
  mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.95)}')
  mkdir -p "$DIR"/{state,log} "$DIR/spool/slurmd-$NODE"
  cat > "$CONF" <<CONF
# Written by .ci/services/slurm.sh; single-node test cluster on $NODE.
ClusterName=saetta
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/slurmd-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=5
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  if alive "$DIR/munged.pid" munged >/dev/null; then return 0; fi
  # The socket directory must be searchable by all users (munged checks it).
  install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
  if [[ ! -s $MUNGE_DIR/munge.key ]]; then
    if command -v mungekey >/dev/null; then
      mungekey --create --keyfile="$MUNGE_DIR/munge.key"
    else
      dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
    fi
  fi
  chown munge:munge "$MUNGE_DIR/munge.key"
  chmod 0400 "$MUNGE_DIR/munge.key"
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  # munged writes its PID file as the munge user, so it goes in the munge-owned directory.
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
    --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
    --seed-file="$MUNGE_DIR/munged.seed" \
    || die "munged failed to start; see $MUNGE_DIR/munged.log"
  ln -sf "$MUNGE_DIR/munged.pid" "$DIR/munged.pid"
  local i
  for ((i = 0; i < 50; i++)); do [[ -S $MUNGE_SOCKET ]] && break; sleep 0.1; done
  munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET" >/dev/null \
    || die "munge round trip failed; see $MUNGE_DIR/munged.log"
}

do_start() {
  need_root
  if running && [[ $(node_state) == idle* || $(node_state) == mixed* || $(node_state) == alloc* ]]; then
    log "already running (node $NODE $(node_state)); SLURM_CONF=$CONF"
    return 0
  fi
  command -v slurmctld >/dev/null || do_install
  # Half-started or stale: clean up what is left, then start from scratch.
  do_stop quiet
  local t0=$SECONDS
  write_config
  start_munge
  slurmctld -c -f "$CONF" || { do_stop quiet; die "slurmctld failed; see $DIR/log/slurmctld.log"; }
  slurmd -f "$CONF" -N "$NODE" || { do_stop quiet; die "slurmd failed; see $DIR/log/slurmd.log"; }
  local i state=
  for ((i = 0; i < 300; i++)); do
    state=$(node_state)
    [[ $state == idle* ]] && break
    sleep 0.2
  done
  if [[ $state != idle* ]]; then
    log "node $NODE not idle after 60 s (state: '${state:-none}')"
    tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    do_stop quiet
    die "SLURM did not come up"
  fi
  log "SLURM up in $((SECONDS - t0)) s: node $NODE idle, partition $PARTITION; SLURM_CONF=$CONF"
}

do_stop() {
  need_root
  local quiet=${1:-}
  if alive "$DIR/slurmctld.pid" slurmctld >/dev/null && [[ -S $MUNGE_SOCKET ]]; then
    local jobs i
    jobs=$(squeue -h -o '%i' 2>/dev/null || true)
    if [[ -n $jobs ]]; then
      log "cancelling jobs: ${jobs//$'\n'/ }"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do
        [[ -z $(squeue -h -o '%i' 2>/dev/null || true) ]] && break
        sleep 0.2
      done
    fi
  fi
  stop_pid "$DIR/slurmd.pid" slurmd
  stop_pid "$DIR/slurmctld.pid" slurmctld
  stop_pid "$DIR/munged.pid" munged
  rm -f "$MUNGE_DIR/munged.pid"
  [[ -n $quiet ]] || log "stopped"
}

do_status() {
  if ! running; then
    echo "SLURM not running (state dir $DIR)"
    return 3
  fi
  echo "SLURM_CONF=$CONF"
  sinfo
  squeue
}

case ${1:-} in
  install) do_install ;;
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 {install|start|stop|status|env}" >&2; exit 2 ;;
esac
