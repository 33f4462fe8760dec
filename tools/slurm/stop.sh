#!/usr/bin/env bash
# Stop the private Slurm that tools/slurm/start.sh started under STATE_DIR: cancel its jobs, then stop slurmd,
# slurmctld and munged by the pids in their pid files (never by name). Idempotent.
set -uo pipefail
STATE="${1:-/tmp/dams-slurm}"
export PATH="$PATH:/usr/sbin"
export SLURM_CONF="$STATE/slurm.conf"
[ -f "$SLURM_CONF" ] && scancel --quiet --full "--user=$(id -un)" 2>/dev/null || true
stop() {
  local pidfile="$STATE/$1.pid"
  [ -s "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}
stop slurmd
stop slurmctld
stop munged
echo "slurm/stop: stopped the daemons of $STATE" >&2
