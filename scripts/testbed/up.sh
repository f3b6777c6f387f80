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
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
TB="$REPO/.testbed"
CLUSTER=paas-testbed
CHARTS_SRC="${PAAS_TESTBED_CHARTS_DIR:-$REPO/../shared/charts}"

T_START=$(date +%s)
elapsed() { echo "$(( $(date +%s) - T_START ))s"; }
log() { printf '[testbed-up %4s] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"
BIN=$(bash "$SCRIPT_DIR/build.sh")
[[ -f "$BIN/.complete" ]] || die "build.sh did not complete ($BIN)"

command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed (chart repository HTTP server, free ports)"

# kwokctl: everything under .testbed/kwok, no ~/.kwok, no ~/.kube/config; our kubectl first
# on PATH (kwokctl looks kubectl up on PATH before downloading one).
while read -r v; do unset "$v"; done < <(compgen -e | grep '^KWOK_' || true)
export KWOK_WORKDIR="$TB/kwok"
export PATH="$BIN:$PATH"
KWOKCTL="$BIN/kwokctl"
KUBECTL="$BIN/kubectl"
HELM="$BIN/helm4/helm"
HELM3="$BIN/helm3/helm"
KUBECONFIG_FILE="$TB/kubeconfig"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER"
PKI="$CLUSTER_DIR/pki"
KUBE_CONTEXT="kwok-$CLUSTER"

# Helm state of this script (repo cache, registry config) stays inside .testbed.
export HELM_CACHE_HOME="$TB/helm/cache" HELM_CONFIG_HOME="$TB/helm/config" HELM_DATA_HOME="$TB/helm/data"

kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }

# ---------------------------------------------------------------- helpers
pid_alive() { # pid_alive <pidfile> <cmdline-substring>
  local f=$1 want=$2 pid
  [[ -s "$f" ]] || return 1
  pid=$(<"$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$want"
}

stop_pidfile() { # stop_pidfile <pidfile> <cmdline-substring>: SIGTERM, wait, SIGKILL
  local f=$1 want=$2 pid i
  if pid_alive "$f" "$want"; then
    pid=$(<"$f")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      pid_alive "$f" "$want" || break
      sleep 0.2
    done
    if pid_alive "$f" "$want"; then
      log "pid $pid did not stop on SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

port_free() { # port_free <port>: nothing listens on 127.0.0.1:<port>
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT is no conflict
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
EOF
}

wait_port_free() { # wait_port_free <port>: up to 10s (a process that is still shutting down)
  local i
  for i in $(seq 1 20); do
    port_free "$1" && return 0
    sleep 0.5
  done
  return 1
}

# saved_port <name>: the port used last time (kept so .testbed/env stays valid), else a free one
saved_port() {
  local f="$TB/$1.port" p
  if [[ -s "$f" ]]; then
    p=$(<"$f")
    if wait_port_free "$p"; then echo "$p"; return; fi
  fi
  p=$(free_port)
  echo "$p" >"$f"
  echo "$p"
}

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

cluster_pids_alive() { # every component's pid file names a live process of that component
  local f n=0
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    n=$((n + 1))
    pid_alive "$f" "$CLUSTER_DIR/bin/$(basename "$f" .pid)" || return 1
  done
  ((n >= 5))
}

# Drop component pid files that do not name a live process of that component (e.g. after a
# reboot the pid may belong to an unrelated process, which kwokctl would otherwise kill).
clean_stale_pidfiles() {
  local f
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -e "$f" ]] || continue
    pid_alive "$f" "$CLUSTER_DIR/bin/$(basename "$f" .pid)" || rm -f "$f"
  done
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

healthy() {
  [[ -f "$TB/env" ]] && config_current && cluster_pids_alive && api_ready && registry_ok && charts_http_ok
}

# ---------------------------------------------------------------- cluster config
kwok_config() { # kwok_config <kube-apiserver-port>: prints the kwokctl config
  # Default kwokctl config (KWOK_WORKDIR/kwok.yaml is loaded by every kwokctl command).
  # Every binary is a local file (kwokctl symlinks local paths; it only downloads http(s) URLs).
  cat <<EOF
# Generated by scripts/testbed/up.sh
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
componentsPatches:
- name: kube-apiserver
  extraArgs:
  # default is 10.0.0.0/24 (254 ClusterIPs): too few for many tenants' releases
  - key: service-cluster-ip-range
    value: 10.96.0.0/16
options:
  runtime: binary
  kubeApiserverPort: $1
  kubeVersion: $KUBE_VERSION
  etcdVersion: ${ETCD_VERSION#v}
  kwokVersion: $KWOK_VERSION
  bindAddress: 127.0.0.1
  # Real-cluster heartbeat timings (node lease 40s renewed every 10s, node-monitor-grace-period
  # 40s) instead of kwokctl's default 5x (200s leases): a restarted kwok-controller takes the
  # fake nodes over within seconds.
  heartbeatFactor: 1
  cacheDir: $KWOK_WORKDIR/cache
  quietPull: true
  kubeApiserverBinary: $BIN/kube-apiserver
  kubeControllerManagerBinary: $BIN/kube-controller-manager
  kubeSchedulerBinary: $BIN/kube-scheduler
  kubectlBinary: $BIN/kubectl
  etcdBinary: $BIN/etcd
  kwokControllerBinary: $BIN/kwok
  # Not built (only used by 'kwokctl etcdctl/snapshot/kectl'): point at local paths that do
  # not exist so that kwokctl fails instead of downloading anything.
  etcdctlBinary: $BIN/not-built/etcdctl
  etcdutlBinary: $BIN/not-built/etcdutl
  kectlBinary: $BIN/not-built/kectl
  prometheusBinary: $BIN/not-built/prometheus
  metricsServerBinary: $BIN/not-built/metrics-server
  jaegerBinary: $BIN/not-built/jaeger
---
EOF
  # Stages (pod/node/volume/service lifecycle): see kwok-stages.yaml.
  cat "$SCRIPT_DIR/kwok-stages.yaml"
}

wait_api() { # wait_api <seconds>
  local deadline=$(( $(date +%s) + $1 ))
  until api_ready; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.5
  done
}

# A change of the generated config (versions, binaries, stages; not the port) re-creates the cluster.
CONFIG_SHA=$(kwok_config PORT | sha256sum | cut -c1-16)
config_current() { [[ "$(cat "$TB/kwok.config.sha" 2>/dev/null)" == "$CONFIG_SHA" ]]; }


# ---------------------------------------------------------------- already up?
if healthy; then
  # PostgreSQL (audit store tests) is started, or found running, apart: a no-op when it runs.
  bash "$SCRIPT_DIR/postgres.sh" start
  log "testbed is already up and healthy (state: $TB; env: $TB/env) [$(elapsed)]"
  exit 0
fi

mkdir -p "$TB" "$KWOK_WORKDIR"
# One up.sh/down.sh at a time. Long-lived children must not inherit fd 9 (they would hold the
# lock forever): every process started in the background gets `9>&-`.
exec 9>"$TB/.up.lock"
flock 9
rm -f "$TB/env" # written again at the end, once everything is verified

# ---------------------------------------------------------------- cluster

create_cluster() {
  # The kube-apiserver port is kept across re-creations (so is the kubeconfig's server URL).
  local port
  port=$(saved_port kube-apiserver)
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
    "$KWOKCTL" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" >>"$TB/kwokctl.log" 2>&1 9>&- \
      || log "WARNING: kwokctl delete cluster failed (log: $TB/kwokctl.log)"
  fi
}

if [[ -f "$CLUSTER_DIR/kwok.yaml" ]] && ! config_current; then
  log "the cluster configuration changed (versions, binaries or stages); re-creating the cluster"
  delete_cluster
fi
if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
  if cluster_pids_alive && api_ready; then
    log "cluster '$CLUSTER' is running"
  else
    log "cluster '$CLUSTER' exists but is not (fully) running; kwokctl stop + start cluster"
    clean_stale_pidfiles
    # stop: SIGKILLs what is left of the components (kwokctl's way), so that start starts them all
    if { "$KWOKCTL" stop cluster --name "$CLUSTER" >>"$TB/kwokctl.log" 2>&1 9>&- \
      && "$KWOKCTL" start cluster --name "$CLUSTER" >>"$TB/kwokctl.log" 2>&1 9>&- && wait_api 60; }; then
      # The fake nodes' leases are still held by the previous kwok-controller: drop them so the
      # new one takes the nodes over at once (kube-controller-manager and kube-scheduler wait
      # for their own leader-election leases to expire: <= 15s).
      kc -n kube-node-lease delete lease --all --wait=false >/dev/null 2>&1 || true
    else
      log "restart failed; recreating the cluster"
      delete_cluster
      create_cluster
    fi
  fi
else
  delete_cluster # leftovers of a half-created cluster
  create_cluster
fi
[[ -s "$KUBECONFIG_FILE" ]] || die "kwokctl did not write $KUBECONFIG_FILE"
wait_api 120 || die "kube-apiserver is not ready (logs: $CLUSTER_DIR/logs/)"
kc config use-context "$KUBE_CONTEXT" >/dev/null
log "kube-apiserver ready at $(api_server) [$(elapsed)]"

# Two fake nodes (managed by kwok-controller: --manage-all-nodes). Addresses are loopback so
# that nothing ever tries to reach a non-local address through them.
apply_nodes() {
  local i yaml=""
  for i in 0 1; do
    yaml+="apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: \"0\"
  labels:
    beta.kubernetes.io/arch: amd64
    beta.kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: \"\"
    type: kwok
    topology.kubernetes.io/zone: zone-$i
spec:
  podCIDR: 10.244.$i.0/24
  podCIDRs:
  - 10.244.$i.0/24
status:
  addresses:
  - address: 127.0.0.1
    type: InternalIP
  - address: kwok-node-$i
    type: Hostname
  allocatable:
    cpu: \"32\"
    memory: 256Gi
    pods: \"250\"
    ephemeral-storage: 1Ti
  capacity:
    cpu: \"32\"
    memory: 256Gi
    pods: \"250\"
    ephemeral-storage: 1Ti
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
---
"
  done
  printf '%s' "$yaml" | kc apply -f - >/dev/null
}
apply_nodes

# Default StorageClass served by the kwok volume stages (PVCs get a fake PV and are Bound).
kc apply -f - >/dev/null <<'EOF'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kwok-volume
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kwok.x-k8s.io/volume
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

# The tenant ClusterRoles of k8s/rbac.yaml (paas-tenant-deployer, paas-operator-tenant):
# CreateNamespace binds them in every tenant namespace, and the operator never creates
# cluster-scoped objects itself, so an administrator applies them (here: the test bed).
kc apply --server-side --force-conflicts --field-manager=paas-testbed -f "$REPO/k8s/rbac.yaml" -l app.kubernetes.io/component=tenant-role >/dev/null

log "waiting for the nodes to be Ready"
kc wait --for=condition=Ready node/kwok-node-0 node/kwok-node-1 --timeout=60s >/dev/null \
  || die "fake nodes did not become Ready (kwok-controller log: $CLUSTER_DIR/logs/kwok-controller.log)"

# ---------------------------------------------------------------- OCI registry
start_registry() {
  if registry_ok; then
    log "registry already running on 127.0.0.1:$(<"$TB/registry.port")"
    return
  fi
  stop_pidfile "$TB/registry.pid" "$TB/registry.yml"
  local port
  port=$(saved_port registry)
  mkdir -p "$TB/registry"
  cat >"$TB/registry.yml" <<EOF
# Generated by scripts/testbed/up.sh
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $TB/registry
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
  log "starting OCI registry on 127.0.0.1:$port"
  OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true \
    setsid nohup "$BIN/registry" serve "$TB/registry.yml" >>"$TB/registry.log" 2>&1 </dev/null 9>&- &
  echo $! >"$TB/registry.pid"
  local i
  for i in $(seq 1 100); do
    registry_ok && return
    pid_alive "$TB/registry.pid" "$TB/registry.yml" || break
    sleep 0.1
  done
  die "registry did not start (log: $TB/registry.log)"
}

# ---------------------------------------------------------------- chart repository (HTTP)
start_charts_http() {
  mkdir -p "$TB/charts-repo"
  [[ -f "$TB/charts-repo/index.yaml" ]] || "$HELM" repo index "$TB/charts-repo" >/dev/null
  if charts_http_ok; then
    log "chart repository already served on 127.0.0.1:$(<"$TB/charts-http.port")"
    return
  fi
  stop_pidfile "$TB/charts-http.pid" "$TB/charts-repo"
  local port
  port=$(saved_port charts-http)
  log "starting chart repository (python3 -m http.server) on 127.0.0.1:$port"
  setsid nohup python3 -m http.server --bind 127.0.0.1 --directory "$TB/charts-repo" "$port" \
    >>"$TB/charts-http.log" 2>&1 </dev/null 9>&- &
  echo $! >"$TB/charts-http.pid"
  local i
  for i in $(seq 1 100); do
    charts_http_ok && return
    pid_alive "$TB/charts-http.pid" "$TB/charts-repo" || break
    sleep 0.1
  done
  die "chart repository server did not start (log: $TB/charts-http.log)"
}

start_registry
start_charts_http
REGISTRY_PORT=$(<"$TB/registry.port")
CHARTS_PORT=$(<"$TB/charts-http.port")
CHART_REPO_URL="http://127.0.0.1:$CHARTS_PORT"
OCI_REGISTRY="127.0.0.1:$REGISTRY_PORT"

# ---------------------------------------------------------------- publish charts
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
    "$HELM" push "$c" "oci://$OCI_REGISTRY/charts" --plain-http >/dev/null 2>"$TB/helm-push.err" \
      || { cat "$TB/helm-push.err" >&2; die "helm push $c failed"; }
  done
  rm -f "$TB/helm-push.err"
  log "published ${#charts[@]} chart(s) to $CHART_REPO_URL and oci://$OCI_REGISTRY/charts"
}
publish_charts

# ---------------------------------------------------------------- env file
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
}

# ---------------------------------------------------------------- verify
verify() {
  local ns t0 dt
  # 1. namespaces get a `default` ServiceAccount (kube-controller-manager's serviceaccount controller)
  ns="testbed-smoke-$$"
  kc create namespace "$ns" >/dev/null
  trap 'kc delete namespace "'"$ns"'" --wait=false >/dev/null 2>&1 || true' EXIT
  t0=$(date +%s)
  until kc -n "$ns" get serviceaccount default >/dev/null 2>&1; do
    (( $(date +%s) - t0 < 30 )) || die "namespace $ns got no default ServiceAccount in 30s"
    sleep 0.2
  done
  log "verify: namespace got its default ServiceAccount"

  # 2. Deployment -> ReplicaSet -> Pods scheduled on the fake nodes -> Running & Ready
  t0=$(date +%s)
  kc -n "$ns" create deployment smoke --image=registry.invalid/smoke:1 --replicas=2 >/dev/null
  kc -n "$ns" rollout status deployment/smoke --timeout=60s >/dev/null \
    || { kc -n "$ns" get pods -o wide >&2 || true; die "test Deployment did not become available"; }
  kc -n "$ns" wait --for=condition=Ready pod -l app=smoke --timeout=30s >/dev/null
  dt=$(( $(date +%s) - t0 ))
  log "verify: Deployment with 2 replicas Running+Ready in ${dt}s ($(kc -n "$ns" get pods -l app=smoke \
    -o jsonpath='{range .items[*]}{.spec.nodeName}/{.status.phase} {end}'))"
  kc -n "$ns" delete deployment smoke --wait=true >/dev/null

  # 3. helm install (v4) from the HTTP chart repository, --wait, then uninstall
  if [[ -f "$TB/charts-repo/podinfo-6.13.0.tgz" ]]; then
    t0=$(date +%s)
    "$HELM" --kubeconfig "$KUBECONFIG_FILE" install smoke podinfo --repo "$CHART_REPO_URL" \
      --version 6.13.0 -n "$ns" --wait --timeout 2m >/dev/null \
      || die "helm install podinfo 6.13.0 failed"
    local status
    status=$("$HELM" --kubeconfig "$KUBECONFIG_FILE" status smoke -n "$ns" -o json \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["info"]["status"])')
    [[ "$status" == "deployed" ]] || die "helm release status is '$status', expected 'deployed'"
    dt=$(( $(date +%s) - t0 ))
    log "verify: helm install podinfo 6.13.0 from $CHART_REPO_URL --wait -> $status in ${dt}s"
    "$HELM" --kubeconfig "$KUBECONFIG_FILE" uninstall smoke -n "$ns" --wait >/dev/null
    # 4. the OCI copy answers too
    "$HELM" show chart "oci://$OCI_REGISTRY/charts/podinfo" --version 6.13.0 --plain-http >/dev/null 2>&1 \
      || die "oci://$OCI_REGISTRY/charts/podinfo:6.13.0 not found"
    log "verify: oci://$OCI_REGISTRY/charts/podinfo 6.13.0 is served"
  else
    log "WARNING: podinfo-6.13.0.tgz not published; skipping the helm install check"
  fi
  kc delete namespace "$ns" --wait=false >/dev/null
  trap - EXIT
}
verify
write_env
# The chart catalogue the server accepts: this testbed's repository and registry.
bash "$SCRIPT_DIR/write-catalog.sh"
# PostgreSQL for the audit store tests; appends PG_BIN and AUDIT_TEST_DATABASE_URL to the env
# file just written (postgres must not inherit the lock on fd 9).
bash "$SCRIPT_DIR/postgres.sh" start 9>&-

log "testbed is up [$(elapsed)]"
log "  env:        $TB/env   (. $TB/env)"
log "  kubeconfig: $KUBECONFIG_FILE (context $KUBE_CONTEXT, $(api_server))"
log "  charts:     $CHART_REPO_URL   oci://$OCI_REGISTRY/charts"
