#!/usr/bin/env bash
# Stops everything up.sh started (the kwok cluster through `kwokctl delete cluster`, the OCI
# registry and the chart HTTP server by their pid files: SIGTERM, wait, SIGKILL; PostgreSQL
# through postgres.sh) and removes
# <repo>/.testbed/. Idempotent: a no-op when the testbed is down. Built binaries stay cached.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
TB="$REPO/.testbed"
CLUSTER=paas-testbed

log() { printf '[testbed-down] %s\n' "$*" >&2; }

T_START=$(date +%s)

if [[ ! -e "$TB" ]]; then
  log "testbed is down (no $TB)"
  exit 0
fi

exec 9>"$TB/.up.lock"
flock -w 120 9 || log "WARNING: could not take $TB/.up.lock (an up.sh still running?); going on"

pid_matches() { # pid_matches <pid> <cmdline-substring>
  [[ "$1" =~ ^[0-9]+$ && -r "/proc/$1/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF -- "$2"
}

stop_pid() { # stop_pid <pid> <cmdline-substring> <label>
  local pid=$1 want=$2 label=$3
  pid_matches "$pid" "$want" || return 0
  log "stopping $label (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    pid_matches "$pid" "$want" || return 0
    sleep 0.2
  done
  log "$label (pid $pid) still running after 10s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
}

stop_pidfile() { # stop_pidfile <file> <cmdline-substring> <label>
  [[ -s "$1" ]] || return 0
  stop_pid "$(<"$1")" "$2" "$3"
  rm -f "$1"
}

# ---------------------------------------------------------------- cluster
KWOK_DIR="$TB/kwok"
CLUSTER_DIR="$KWOK_DIR/clusters/$CLUSTER"
if [[ -d "$CLUSTER_DIR" ]]; then
  BIN=""
  # Pid files that do not name a live process of their component are dropped first (after a
  # reboot a pid may belong to an unrelated process, which kwokctl would otherwise kill).
  shopt -s nullglob
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    pid_matches "$(<"$f")" "$CLUSTER_DIR/bin/$(basename "$f" .pid)" || rm -f "$f"
  done
  shopt -u nullglob
  # kwokctl: the one up.sh used (from .testbed/env), else the current build's.
  if [[ -f "$TB/env" ]]; then
    # shellcheck disable=SC1091
    BIN=$(. "$TB/env" && echo "${TESTBED_BIN:-}") || true
  fi
  [[ -x "$BIN/kwokctl" ]] || BIN=$(bash "$SCRIPT_DIR/build.sh" --print-bin 2>/dev/null) || true
  if [[ -n "$BIN" && -x "$BIN/kwokctl" ]]; then
    while read -r v; do unset "$v"; done < <(compgen -e | grep '^KWOK_' || true)
    log "deleting kwok cluster '$CLUSTER' (kwokctl delete cluster)"
    if ! out=$(KWOK_WORKDIR="$KWOK_DIR" PATH="$BIN:$PATH" "$BIN/kwokctl" delete cluster --name "$CLUSTER" \
      --kubeconfig "$TB/kubeconfig" 2>&1 9>&-); then
      printf '%s\n' "$out" >&2
      log "WARNING: kwokctl delete cluster failed; stopping by pid files"
    fi
  fi
  # Whatever is left (kwokctl missing or failed): the component pid files.
  shopt -s nullglob
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    name=$(basename "$f" .pid)
    stop_pid "$(<"$f")" "$CLUSTER_DIR/bin/$name" "$name"
  done
  shopt -u nullglob
fi

# ---------------------------------------------------------------- registry, chart server
stop_pidfile "$TB/registry.pid" "$TB/registry.yml" "OCI registry"
stop_pidfile "$TB/charts-http.pid" "$TB/charts-repo" "chart repository HTTP server"

# ---------------------------------------------------------------- PostgreSQL (audit store tests)
bash "$SCRIPT_DIR/postgres.sh" destroy 9>&- || log "WARNING: stopping PostgreSQL failed"

rm -rf "$TB"
log "testbed is down; removed $TB [$(( $(date +%s) - T_START ))s]"
