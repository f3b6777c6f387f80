#!/usr/bin/env bash
# Starts the local testbed (idempotent; a quick no-op when it is already up and healthy):
#   * a kwok cluster (kwokctl, binary runtime): etcd, kube-apiserver, kube-controller-manager,
#     kube-scheduler and kwok-controller built by build.sh, all on 127.0.0.1, 2 fake nodes;
#   * an OCI registry (distribution) on 127.0.0.1:<port>, storage in .testbed/registry;
#   * a static HTTP chart repository on 127.0.0.1:<port> serving .testbed/charts-repo;
#   * every ../shared/charts/*.tgz published to both;
#   * PostgreSQL on 127.0.0.1:<port> for the audit store tests (postgres.sh, data in .testbed/postgres);
#   * .testbed/env: `export VAR=value` lines for tests (KUBECONFIG, HELM_BINARY, ...,
#     AUDIT_TEST_DATABASE_URL, PG_BIN).
# All state lives in <repo>/.testbed/ (git-ignored). Stop everything with down.sh.
# The phases are the functions below, run in order by main at the end. The YAML it applies or
# writes is in the files beside it (kwokctl-config.yaml, kwok-stages.yaml, fake-node.yaml,
# storage-class.yaml, registry-config.yaml); helpers shared with down.sh and postgres.sh in lib.sh.
set -euo pipefail

T_START=$(date +%s)
LOG_TAG=testbed-up
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCRIPT_DIR=$TESTBED_SCRIPTS
CHARTS_SRC="${PAAS_TESTBED_CHARTS_DIR:-$REPO/../shared/charts}"
KUBECONFIG_FILE="$TB/kubeconfig"
PKI="$CLUSTER_DIR/pki"
KUBE_CONTEXT="kwok-$CLUSTER"

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---------------------------------------------------------------- health checks

api_server() { # the apiserver URL from the kubeconfig
  [[ -s "$KUBECONFIG_FILE" ]] || return 1
  sed -n 's/^[[:space:]]*server:[[:space:]]*\(https\{0,1\}:\/\/[^[:space:]]*\).*/\1/p' "$KUBECONFIG_FILE" | head -1
}

api_ready() {
  local url
  url=$(api_server) || return 1
  [[ -n "$url" && -f "$PKI/admin.crt" ]] || return 1
  [[ "$(curl -fsS --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$url/readyz" 2>/dev/null)" == "ok" ]]
}

wait_api() { # wait_api <seconds>
  local deadline=$(($(date +%s) + $1))
  until api_ready; do
    (($(date +%s) < deadline)) || return 1
    sleep 0.5
  done
}

cluster_pids_alive() { # every component's pid file names a live process of that component
  local f n=0
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    n=$((n + 1))
    pid_alive "$f" "$CLUSTER_DIR/bin/$(basename "$f" .pid)" || return 1
  done
  ((n >= 5))
}

registry_ok() {
  pid_alive "$TB/registry.pid" "$TB/registry.yml" || return 1
  [[ -s "$TB/registry.port" ]] || return 1
  curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:$(<"$TB/registry.port")/v2/" 2>/dev/null
}

charts_http_ok() {
  pid_alive "$TB/charts-http.pid" "$TB/charts-repo" || return 1
  [[ -s "$TB/charts-http.port" ]] || return 1
  curl -fsS --max-time 3 -o /dev/null "http://127.0.0.1:$(<"$TB/charts-http.port")/index.yaml" 2>/dev/null
}

# The cluster was created from the current config (see setup).
config_current() { [[ "$(cat "$TB/kwok.config.sha" 2>/dev/null)" == "$CONFIG_SHA" ]]; }

healthy() {
  [[ -f "$TB/env" ]] && config_current && cluster_pids_alive && api_ready && registry_ok && charts_http_ok
}

# ---------------------------------------------------------------- cluster

kwok_config() { # kwok_config <kube-apiserver-port>: prints the kwokctl config
  render "$SCRIPT_DIR/kwokctl-config.yaml" KUBE_APISERVER_PORT="$1" KUBE_VERSION="$KUBE_VERSION" \
    ETCD_VERSION="${ETCD_VERSION#v}" KWOK_VERSION="$KWOK_VERSION" KWOK_DIR="$KWOK_WORKDIR" BIN="$BIN"
  # Stages (pod/node/volume/service lifecycle).
  cat "$SCRIPT_DIR/kwok-stages.yaml"
}

create_cluster() {
  # The kube-apiserver port is kept across re-creations (so is the kubeconfig's server URL).
  local port
  port=$(saved_port "$TB/kube-apiserver.port")
  log "creating kwok cluster '$CLUSTER' (binary runtime, kube $KUBE_VERSION, etcd $ETCD_VERSION)"
  kwok_config "$port" >"$KWOK_WORKDIR/kwok.yaml"
  rm -f "$KUBECONFIG_FILE"
  if ! "$KWOKCTL" create cluster --name "$CLUSTER" --runtime binary \
    --kubeconfig "$KUBECONFIG_FILE" --timeout 5m --wait 2m >>"$TB/kwokctl.log" 2>&1 9>&-; then
    tail -20 "$TB/kwokctl.log" >&2
    die "kwokctl create cluster failed (log: $TB/kwokctl.log, $CLUSTER_DIR/logs/)"
  fi
  echo "$CONFIG_SHA" >"$TB/kwok.config.sha"
}

delete_cluster() {
  if [[ -d "$CLUSTER_DIR" ]]; then
    clean_stale_pidfiles
    log "deleting kwok cluster '$CLUSTER'"
    "$KWOKCTL" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >>"$TB/kwokctl.log" 2>&1 9>&- ||
      log "WARNING: kwokctl delete cluster failed (log: $TB/kwokctl.log)"
  fi
}

restart_cluster() {
  log "cluster '$CLUSTER' exists but is not (fully) running; kwokctl stop + start cluster"
  clean_stale_pidfiles
  # stop: SIGKILLs what is left of the components (kwokctl's way), so that start starts them all
  if { "$KWOKCTL" stop cluster --name "$CLUSTER" >>"$TB/kwokctl.log" 2>&1 9>&- &&
    "$KWOKCTL" start cluster --name "$CLUSTER" >>"$TB/kwokctl.log" 2>&1 9>&- && wait_api 60; }; then
    # The fake nodes' leases are still held by the previous kwok-controller: drop them so the
    # new one takes the nodes over at once (kube-controller-manager and kube-scheduler wait
    # for their own leader-election leases to expire: <= 15s).
    kc -n kube-node-lease delete lease --all --wait=false >/dev/null 2>&1 || true
  else
    log "restart failed; recreating the cluster"
    delete_cluster
    create_cluster
  fi
}

# ---------------------------------------------------------------- OCI registry, chart repository

start_registry() {
  if registry_ok; then
    log "registry already running on 127.0.0.1:$(<"$TB/registry.port")"
    return
  fi
  stop_pidfile "$TB/registry.pid" "$TB/registry.yml" "OCI registry"
  local port i attempt
  mkdir -p "$TB/registry"
  # A free port can be taken between the check and the registry's bind (the cluster's own
  # processes start at the same time): a registry that exits at once is started again on
  # another port, its log shown.
  for attempt in 1 2 3; do
    if ((attempt == 1)); then port=$(saved_port "$TB/registry.port"); else port=$(free_port) && echo "$port" >"$TB/registry.port"; fi
    render "$SCRIPT_DIR/registry-config.yaml" REGISTRY_DIR="$TB/registry" REGISTRY_PORT="$port" \
      REGISTRY_SECRET="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TB/registry.yml"
    log "starting OCI registry on 127.0.0.1:$port"
    OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true \
      setsid nohup "$BIN/registry" serve "$TB/registry.yml" >>"$TB/registry.log" 2>&1 </dev/null 9>&- &
    echo $! >"$TB/registry.pid"
    for i in $(seq 1 100); do
      registry_ok && return
      pid_alive "$TB/registry.pid" "$TB/registry.yml" || break
      sleep 0.1
    done
    log "registry on 127.0.0.1:$port did not start (attempt $attempt); its log ends:"
    tail -n 5 "$TB/registry.log" >&2 || true
    stop_pidfile "$TB/registry.pid" "$TB/registry.yml" "OCI registry"
  done
  die "registry did not start (log: $TB/registry.log)"
}

start_charts_http() {
  mkdir -p "$TB/charts-repo"
  [[ -f "$TB/charts-repo/index.yaml" ]] || "$HELM" repo index "$TB/charts-repo" >/dev/null
  if charts_http_ok; then
    log "chart repository already served on 127.0.0.1:$(<"$TB/charts-http.port")"
    return
  fi
  stop_pidfile "$TB/charts-http.pid" "$TB/charts-repo" "chart repository HTTP server"
  local port i
  port=$(saved_port "$TB/charts-http.port")
  log "starting chart repository (python3 -m http.server) on 127.0.0.1:$port"
  setsid nohup python3 -m http.server --bind 127.0.0.1 --directory "$TB/charts-repo" "$port" \
    >>"$TB/charts-http.log" 2>&1 </dev/null 9>&- &
  echo $! >"$TB/charts-http.pid"
  for i in $(seq 1 100); do
    charts_http_ok && return
    pid_alive "$TB/charts-http.pid" "$TB/charts-repo" || break
    sleep 0.1
  done
  die "chart repository server did not start (log: $TB/charts-http.log)"
}

# ---------------------------------------------------------------- phases (in the order main runs them)

# Versions, binaries (built when missing), tools, this script's environment, CONFIG_SHA.
setup() {
  # shellcheck source=versions.env
  source "$SCRIPT_DIR/versions.env"
  BIN=$(bash "$SCRIPT_DIR/build.sh")
  [[ -f "$BIN/.complete" ]] || die "build.sh did not complete ($BIN)"
  command -v curl >/dev/null || die "curl is needed"
  command -v python3 >/dev/null || die "python3 is needed (chart repository HTTP server, free ports)"

  # kwokctl: everything under .testbed/kwok, no ~/.kwok, no ~/.kube/config; our kubectl first
  # on PATH (kwokctl looks kubectl up on PATH before downloading one).
  unset_kwok_env
  export KWOK_WORKDIR="$KWOK_DIR"
  export PATH="$BIN:$PATH"
  KWOKCTL="$BIN/kwokctl"
  KUBECTL="$BIN/kubectl"
  HELM="$BIN/helm4/helm"
  HELM3="$BIN/helm3/helm"
  # Helm state of this script (repo cache, registry config) stays inside .testbed.
  export HELM_CACHE_HOME="$TB/helm/cache" HELM_CONFIG_HOME="$TB/helm/config" HELM_DATA_HOME="$TB/helm/data"

  # A change of the generated config (versions, binaries, kwokctl-config.yaml, kwok-stages.yaml;
  # not the port) re-creates the cluster.
  CONFIG_SHA=$(kwok_config PORT | sha256sum | cut -c1-16)
}

already_up() {
  # PostgreSQL (audit store tests) is started, or found running, apart: a no-op when it runs.
  bash "$SCRIPT_DIR/postgres.sh" start
  log "testbed is already up and healthy (state: $TB; env: $TB/env) [$(elapsed)]"
}

take_lock() {
  mkdir -p "$TB" "$KWOK_WORKDIR"
  # One up.sh/down.sh at a time. Long-lived children must not inherit fd 9 (they would hold the
  # lock forever): every process started in the background gets `9>&-`.
  exec 9>"$TB/.up.lock"
  flock 9
  rm -f "$TB/env" # written again at the end, once everything is verified
}

# The cluster running from the current config: kept, restarted, re-created or created.
start_cluster() {
  if [[ -f "$CLUSTER_DIR/kwok.yaml" ]] && ! config_current; then
    log "the cluster configuration changed (versions, binaries or stages); re-creating the cluster"
    delete_cluster
  fi
  if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
    if cluster_pids_alive && api_ready; then
      log "cluster '$CLUSTER' is running"
    else
      restart_cluster
    fi
  else
    delete_cluster # leftovers of a half-created cluster
    create_cluster
  fi
  [[ -s "$KUBECONFIG_FILE" ]] || die "kwokctl did not write $KUBECONFIG_FILE"
  wait_api 120 || die "kube-apiserver is not ready (logs: $CLUSTER_DIR/logs/)"
  kc config use-context "$KUBE_CONTEXT" >/dev/null
  log "kube-apiserver ready at $(api_server) [$(elapsed)]"
}

# Two fake nodes, the default StorageClass, the tenant ClusterRoles; the nodes Ready.
configure_cluster() {
  local i
  for i in 0 1; do
    render "$SCRIPT_DIR/fake-node.yaml" NODE_INDEX="$i"
    echo ---
  done | kc apply -f - >/dev/null
  kc apply -f "$SCRIPT_DIR/storage-class.yaml" >/dev/null
  # The tenant ClusterRoles of k8s/rbac.yaml (paas-tenant-deployer, paas-operator-tenant):
  # CreateNamespace binds them in every tenant namespace, and the operator never creates
  # cluster-scoped objects itself, so an administrator applies them (here: the test bed).
  kc apply --server-side --force-conflicts --field-manager=paas-testbed -f "$REPO/k8s/rbac.yaml" \
    -l app.kubernetes.io/component=tenant-role >/dev/null

  log "waiting for the nodes to be Ready"
  kc wait --for=condition=Ready node/kwok-node-0 node/kwok-node-1 --timeout=60s >/dev/null ||
    die "fake nodes did not become Ready (kwok-controller log: $CLUSTER_DIR/logs/kwok-controller.log)"
}

serve_charts() {
  start_registry
  start_charts_http
  OCI_REGISTRY="127.0.0.1:$(<"$TB/registry.port")"
  CHART_REPO_URL="http://127.0.0.1:$(<"$TB/charts-http.port")"
}

publish_charts() {
  local charts=() c
  if [[ -d "$CHARTS_SRC" ]]; then
    shopt -s nullglob
    charts=("$CHARTS_SRC"/*.tgz)
    shopt -u nullglob
  fi
  if ((${#charts[@]} == 0)); then
    log "WARNING: no charts in $CHARTS_SRC; publishing nothing"
  fi
  for c in "${charts[@]}"; do
    cp -f "$c" "$TB/charts-repo/"
  done
  "$HELM" repo index "$TB/charts-repo" --url "$CHART_REPO_URL" >/dev/null
  for c in "${charts[@]}"; do
    "$HELM" push "$c" "oci://$OCI_REGISTRY/charts" --plain-http >/dev/null 2>"$TB/helm-push.err" ||
      { cat "$TB/helm-push.err" >&2; die "helm push $c failed"; }
  done
  rm -f "$TB/helm-push.err"
  log "published ${#charts[@]} chart(s) to $CHART_REPO_URL and oci://$OCI_REGISTRY/charts"
}

verify() {
  local ns t0 dt status
  # 1. namespaces get a `default` ServiceAccount (kube-controller-manager's serviceaccount controller)
  ns="testbed-smoke-$$"
  kc create namespace "$ns" >/dev/null
  trap 'kc delete namespace "'"$ns"'" --wait=false >/dev/null 2>&1 || true' EXIT
  t0=$(date +%s)
  until kc -n "$ns" get serviceaccount default >/dev/null 2>&1; do
    (($(date +%s) - t0 < 30)) || die "namespace $ns got no default ServiceAccount in 30s"
    sleep 0.2
  done
  log "verify: namespace got its default ServiceAccount"

  # 2. Deployment -> ReplicaSet -> Pods scheduled on the fake nodes -> Running & Ready
  t0=$(date +%s)
  kc -n "$ns" create deployment smoke --image=registry.invalid/smoke:1 --replicas=2 >/dev/null
  kc -n "$ns" rollout status deployment/smoke --timeout=60s >/dev/null ||
    { kc -n "$ns" get pods -o wide >&2 || true; die "test Deployment did not become available"; }
  kc -n "$ns" wait --for=condition=Ready pod -l app=smoke --timeout=30s >/dev/null
  dt=$(($(date +%s) - t0))
  log "verify: Deployment with 2 replicas Running+Ready in ${dt}s ($(kc -n "$ns" get pods -l app=smoke \
    -o jsonpath='{range .items[*]}{.spec.nodeName}/{.status.phase} {end}'))"
  kc -n "$ns" delete deployment smoke --wait=true >/dev/null

  # 3. helm install (v4) from the HTTP chart repository, --wait, then uninstall
  if [[ -f "$TB/charts-repo/podinfo-6.13.0.tgz" ]]; then
    t0=$(date +%s)
    "$HELM" --kubeconfig "$KUBECONFIG_FILE" install smoke podinfo --repo "$CHART_REPO_URL" \
      --version 6.13.0 -n "$ns" --wait --timeout 2m >/dev/null ||
      die "helm install podinfo 6.13.0 failed"
    status=$("$HELM" --kubeconfig "$KUBECONFIG_FILE" status smoke -n "$ns" -o json |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["info"]["status"])')
    [[ "$status" == "deployed" ]] || die "helm release status is '$status', expected 'deployed'"
    dt=$(($(date +%s) - t0))
    log "verify: helm install podinfo 6.13.0 from $CHART_REPO_URL --wait -> $status in ${dt}s"
    "$HELM" --kubeconfig "$KUBECONFIG_FILE" uninstall smoke -n "$ns" --wait >/dev/null
    # 4. the OCI copy answers too
    "$HELM" show chart "oci://$OCI_REGISTRY/charts/podinfo" --version 6.13.0 --plain-http >/dev/null 2>&1 ||
      die "oci://$OCI_REGISTRY/charts/podinfo:6.13.0 not found"
    log "verify: oci://$OCI_REGISTRY/charts/podinfo 6.13.0 is served"
  else
    log "WARNING: podinfo-6.13.0.tgz not published; skipping the helm install check"
  fi
  kc delete namespace "$ns" --wait=false >/dev/null
  trap - EXIT
}

write_env() {
  local tmp="$TB/env.tmp"
  e() { printf 'export %s=%q\n' "$1" "$2"; }
  {
    echo "# Generated by scripts/testbed/up.sh; source it: . .testbed/env"
    e KUBECONFIG "$KUBECONFIG_FILE"
    e KUBE_CONTEXT "$KUBE_CONTEXT"
    e KUBE_APISERVER "$(api_server)"
    e KUBECTL "$KUBECTL"
    e HELM_BINARY "$HELM"
    e HELM_V3_BINARY "$HELM3"
    e CHART_REPO_URL "$CHART_REPO_URL"
    e OCI_REGISTRY "$OCI_REGISTRY"
    e OCI_CHARTS_URL "oci://$OCI_REGISTRY/charts"
    e GRPC_HEALTH_PROBE "$BIN/grpc-health-probe"
    e GRPCURL "$BIN/grpcurl"
    e GHZ "$BIN/ghz"
    e KWOKCTL "$KWOKCTL"
    e KWOK_WORKDIR "$KWOK_WORKDIR"
    e TESTBED_CLUSTER_NAME "$CLUSTER"
    e TESTBED_BIN "$BIN"
    e TESTBED_DIR "$TB"
    e TESTBED_KUBE_VERSION "$KUBE_VERSION"
  } >"$tmp"
  mv -f "$tmp" "$TB/env"
  # The chart catalogue the server accepts: this testbed's repository and registry.
  bash "$SCRIPT_DIR/write-catalog.sh"
}

start_postgres() {
  # PostgreSQL for the audit store tests; appends PG_BIN and AUDIT_TEST_DATABASE_URL to the env
  # file just written (postgres must not inherit the lock on fd 9).
  bash "$SCRIPT_DIR/postgres.sh" start 9>&-
}

summary() {
  log "testbed is up [$(elapsed)]"
  log "  env:        $TB/env   (. $TB/env)"
  log "  kubeconfig: $KUBECONFIG_FILE (context $KUBE_CONTEXT, $(api_server))"
  log "  charts:     $CHART_REPO_URL   oci://$OCI_REGISTRY/charts"
}

main() {
  setup
  if healthy; then
    already_up
    return
  fi
  take_lock
  start_cluster
  configure_cluster
  serve_charts
  publish_charts
  verify
  write_env
  start_postgres
  summary
}

main "$@"
