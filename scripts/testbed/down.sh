#!/usr/bin/env bash
# Stops everything up.sh started (the kwok cluster through `kwokctl delete cluster`, the OCI
# registry and the chart HTTP server by their pid files: SIGTERM, wait, SIGKILL; PostgreSQL
# through postgres.sh) and removes
# <repo>/.testbed/. Idempotent: a no-op when the testbed is down. Built binaries stay cached.
set -euo pipefail

LOG_TAG=testbed-down
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCRIPT_DIR=$TESTBED_SCRIPTS

T0=$(date +%s)

if [[ ! -e "$TB" ]]; then
  log "testbed is down (no $TB)"
  exit 0
fi

exec 9>"$TB/.up.lock"
flock -w 120 9 || log "WARNING: could not take $TB/.up.lock (an up.sh still running?); going on"

# ---------------------------------------------------------------- cluster
if [[ -d "$CLUSTER_DIR" ]]; then
  BIN=""
  clean_stale_pidfiles
  # kwokctl: the one up.sh used (from .testbed/env), else the current build's.
  if [[ -f "$TB/env" ]]; then
    # shellcheck disable=SC1091
    BIN=$(. "$TB/env" && echo "${TESTBED_BIN:-}") || true
  fi
  [[ -x "$BIN/kwokctl" ]] || BIN=$(bash "$SCRIPT_DIR/build.sh" --print-bin 2>/dev/null) || true
  if [[ -n "$BIN" && -x "$BIN/kwokctl" ]]; then
    unset_kwok_env
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
    if [[ -s "$f" ]]; then stop_pid "$(<"$f")" "$CLUSTER_DIR/bin/$name" "$name"; fi
  done
  shopt -u nullglob
fi

# ---------------------------------------------------------------- registry, chart server
stop_pidfile "$TB/registry.pid" "$TB/registry.yml" "OCI registry"
stop_pidfile "$TB/charts-http.pid" "$TB/charts-repo" "chart repository HTTP server"

# ---------------------------------------------------------------- PostgreSQL (audit store tests)
bash "$SCRIPT_DIR/postgres.sh" destroy 9>&- || log "WARNING: stopping PostgreSQL failed"

rm -rf "$TB"
log "testbed is down; removed $TB [$(($(date +%s) - T0))s]"
