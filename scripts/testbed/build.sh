#!/usr/bin/env bash
# Builds every testbed binary from Go modules (no prebuilt downloads) into a cache
# outside the repository:
#
#   ${PAAS_CACHE_DIR:-$HOME/.cache/paas-operator}/testbed/<key>/bin/
#
# <key> is a short sha256 of versions.env + this script, so changing a pinned version
# (or how things are built) builds into a fresh folder. Binaries already built are
# reused (the script is a quick no-op when everything is there). The Go build cache
# and module cache are the default ones (`go env GOCACHE GOMODCACHE`), so a second
# build on the same machine (e.g. CI) is warm.
#
# Usage:
#   scripts/testbed/build.sh              build what is missing; prints the bin dir on stdout
#   scripts/testbed/build.sh --print-bin  only print the bin dir (no build)
#
# Progress goes to stderr; the only stdout output is the bin dir.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$SCRIPT_DIR/versions.env"

log() { printf '[testbed-build] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

KEY=$(cat "$SCRIPT_DIR/versions.env" "$SCRIPT_DIR/build.sh" | sha256sum | cut -c1-12)
CACHE_ROOT="${PAAS_CACHE_DIR:-$HOME/.cache/paas-operator}/testbed"
OUT="$CACHE_ROOT/$KEY"
BIN="$OUT/bin"
SRC="$OUT/src"

if [[ "${1:-}" == "--print-bin" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not on PATH (Go >= 1.26 needed)"

if [[ -f "$BIN/.complete" ]]; then
  log "all binaries already built in $BIN (key $KEY)"
  echo "$BIN"
  exit 0
fi

mkdir -p "$BIN" "$SRC"

# One build at a time per cache folder.
exec 9>"$OUT/.lock"
if ! flock -n 9; then
  log "another build.sh holds $OUT/.lock; waiting"
  flock 9
fi

export CGO_ENABLED=0
export GOWORK=off
export GOFLAGS=-buildvcs=false
unset GOOS GOARCH GOBIN || true

T_START=$(date +%s)
TIMINGS=()

# mod_info <module@version> <field>: a field of `go mod download -json` (Dir, GoMod, Time...)
mod_info() {
  local json
  json=$(cd "$SRC" && go mod download -json "$1") || die "go mod download $1 failed"
  printf '%s' "$json" | sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}$/\1/p" | head -1
}

# component <name> <check-file> <function> [args...]: run the build function unless
# <check-file> is already an executable, and record its time.
component() {
  local name=$1 check=$2 fn=$3
  shift 3
  if [[ -x "$check" ]]; then
    log "$name: already built ($check)"
    return 0
  fi
  log "$name: building..."
  local t0 dt
  t0=$(date +%s)
  "$fn" "$@"
  [[ -x "$check" ]] || die "$name: $check missing after build"
  dt=$(( $(date +%s) - t0 ))
  TIMINGS+=("$(printf '%-26s %5ss' "$name" "$dt")")
  log "$name: built in ${dt}s"
}

# go_install <dest-file> <ldflags> <pkg@version> [extra go flags...]
# `go install pkg@version` into a temp GOBIN, then atomically moved to <dest-file>.
go_install() {
  local dest=$1 ldflags=$2 pkg=$3
  shift 3
  local tmp name
  tmp=$(mktemp -d "$OUT/.tmp.XXXXXX")
  name=$(basename "${pkg%@*}")
  GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "$@" "$pkg"
  mkdir -p "$(dirname "$dest")"
  mv -f "$tmp/$name" "$dest"
  rm -rf "$tmp"
}

# go_build_in <module-dir> <dest-file> <ldflags> <package> [extra go flags...]
go_build_in() {
  local dir=$1 dest=$2 ldflags=$3 pkg=$4
  shift 4
  local tmp
  tmp=$(mktemp -d "$OUT/.tmp.XXXXXX")
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" "$@" -o "$tmp/out" "$pkg")
  mkdir -p "$(dirname "$dest")"
  mv -f "$tmp/out" "$dest"
  rm -rf "$tmp"
}

# ---------------------------------------------------------------- Helm
build_helm4() {
  go_install "$BIN/helm4/helm" \
    "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM4_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v4/cmd/helm@$HELM4_VERSION"
}

build_helm3() {
  # Same k8s version variables as helm v3's Makefile: major = <client-go major>+1,
  # minor = client-go minor (from helm's own go.mod).
  local gomod cg major minor
  gomod=$(mod_info "helm.sh/helm/v3@$HELM3_VERSION" GoMod)
  cg=$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")
  [[ "$cg" =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "cannot read k8s.io/client-go version from $gomod"
  major=$(( BASH_REMATCH[1] + 1 ))
  minor=${BASH_REMATCH[2]}
  go_install "$BIN/helm3/helm" \
    "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM3_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
     -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
     -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM3_VERSION"
}

# ---------------------------------------------------------------- Kubernetes
KUBE_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

# A wrapper module that requires k8s.io/kubernetes and replaces every staging module
# (k8s.io/kubernetes' own `replace k8s.io/x => ./staging/src/k8s.io/x` lines) by its
# published v0.<minor>.<patch>.
prepare_kube_module() {
  local dir="$SRC/kube"
  [[ -f "$dir/.ready" ]] && return 0
  rm -rf "$dir"
  mkdir -p "$dir"
  local gomod staging_ver required m
  gomod=$(mod_info "k8s.io/kubernetes@$KUBE_VERSION" GoMod)
  staging_ver="v0.${KUBE_VERSION#v1.}"
  # Required modules (require blocks), to replace only those in the module graph
  # (some staging modules, e.g. sample-cli-plugin, are not published/required).
  required=$(awk '/^require \(/{r=1; next} r && /^\)/{r=0} r {print $1} /^require [^(]/{print $2}' "$gomod")
  {
    echo "// Generated by scripts/testbed/build.sh: builds k8s.io/kubernetes $KUBE_VERSION commands."
    echo "module paas-testbed/kube"
    echo
    echo "go 1.26.0"
    echo
    grep -E '^godebug ' "$gomod" || true
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "tool ("
    for m in "${KUBE_CMDS[@]}"; do echo "	k8s.io/kubernetes/cmd/$m"; done
    echo ")"
    echo
    echo "replace ("
    awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod" | while read -r m; do
      if grep -qxF "$m" <<<"$required"; then
        echo "	$m => $m $staging_ver"
      fi
    done
    echo ")"
  } >"$dir/go.mod"
  log "kube: resolving module graph (go mod tidy) in $dir"
  (cd "$dir" && go mod tidy)
  touch "$dir/.ready"
}

kube_ldflags() {
  local major minor date
  [[ "$KUBE_VERSION" =~ ^v([0-9]+)\.([0-9]+)\. ]] || die "bad KUBE_VERSION $KUBE_VERSION"
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  # Reproducible build date: the release's module timestamp.
  date=$(mod_info "k8s.io/kubernetes@$KUBE_VERSION" Time)
  date=${date%%.*}
  date=${date%Z}Z
  local flags="-s -w" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  printf '%s' "$flags"
}

build_kube_cmd() {
  local name=$1
  prepare_kube_module
  # Same build tags as kubernetes' hack/lib/golang.sh for non-debug builds.
  go_build_in "$SRC/kube" "$BIN/$name" "$(kube_ldflags)" "k8s.io/kubernetes/cmd/$name" \
    -tags selinux,notest,grpcnotrace
}

# ---------------------------------------------------------------- etcd
build_etcd() {
  local dir="$SRC/etcd"
  if [[ ! -f "$dir/.ready" ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/go.mod" <<EOF
// Generated by scripts/testbed/build.sh: the etcd server binary (same main as go.etcd.io/etcd/v3).
module paas-testbed/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    cat >"$dir/main.go" <<'EOF'
// Generated by scripts/testbed/build.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
EOF
    log "etcd: resolving module graph (go mod tidy) in $dir"
    (cd "$dir" && go mod tidy)
    # tidy may raise the go line; keep the require pinned as asked.
    grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$dir/go.mod" \
      || die "etcd: go mod tidy moved go.etcd.io/etcd/server/v3 away from $ETCD_VERSION"
    touch "$dir/.ready"
  fi
  go_build_in "$dir" "$BIN/etcd" "-s -w" .
}

# ---------------------------------------------------------------- kwok
kwok_ldflags() {
  printf '%s' "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$KUBE_VERSION"
}
build_kwok() { go_install "$BIN/kwok" "$(kwok_ldflags)" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }
build_kwokctl() { go_install "$BIN/kwokctl" "$(kwok_ldflags)" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"; }

# ---------------------------------------------------------------- gRPC tools, registry
build_grpc_health_probe() {
  # Not `go install pkg@version`: that also reads the module's version list (for deprecation
  # notices), which the module proxy refuses (403) for this module; a wrapper module does not.
  local mod=github.com/grpc-ecosystem/grpc-health-probe dir="$SRC/grpc-health-probe"
  if [[ ! -f "$dir/.ready" ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/go.mod" <<EOF
// Generated by scripts/testbed/build.sh.
module paas-testbed/grpc-health-probe

go 1.24.0

require $mod $GRPC_HEALTH_PROBE_VERSION

tool $mod
EOF
    (cd "$dir" && go mod tidy)
    touch "$dir/.ready"
  fi
  go_build_in "$dir" "$BIN/grpc-health-probe" "-s -w -X main.versionTag=$GRPC_HEALTH_PROBE_VERSION" "$mod"
}
build_grpcurl() {
  go_install "$BIN/grpcurl" "-s -w -X main.version=$GRPCURL_VERSION" \
    "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
}
build_ghz() {
  go_install "$BIN/ghz" "-s -w -X main.version=$GHZ_VERSION" \
    "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
}
build_registry() {
  local pkg=github.com/distribution/distribution/v3
  go_install "$BIN/registry" "-s -w -X $pkg/version.version=$DISTRIBUTION_VERSION -X $pkg/version.mainpkg=$pkg" \
    "$pkg/cmd/registry@$DISTRIBUTION_VERSION"
}

log "cache: $OUT (key $KEY); go: $(go env GOVERSION); GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE)"

component "helm $HELM4_VERSION" "$BIN/helm4/helm" build_helm4
ln -sfn helm4/helm "$BIN/helm"
component "helm $HELM3_VERSION" "$BIN/helm3/helm" build_helm3
component "kwok $KWOK_VERSION" "$BIN/kwok" build_kwok
component "kwokctl $KWOK_VERSION" "$BIN/kwokctl" build_kwokctl
component "etcd $ETCD_VERSION" "$BIN/etcd" build_etcd
for cmd in "${KUBE_CMDS[@]}"; do
  component "$cmd $KUBE_VERSION" "$BIN/$cmd" build_kube_cmd "$cmd"
done
component "grpc-health-probe $GRPC_HEALTH_PROBE_VERSION" "$BIN/grpc-health-probe" build_grpc_health_probe
component "grpcurl $GRPCURL_VERSION" "$BIN/grpcurl" build_grpcurl
component "ghz $GHZ_VERSION" "$BIN/ghz" build_ghz
component "registry $DISTRIBUTION_VERSION" "$BIN/registry" build_registry

# ---------------------------------------------------------------- verify
log "verifying versions..."
check_version() {
  local want=$1 out
  shift
  out=$("$@" 2>&1) || die "'$*' failed: $out"
  grep -qF -- "$want" <<<"$out" || die "'$*' printed '$out', expected it to contain '$want'"
  log "  ok: $* -> $(head -1 <<<"$out")"
}
check_version "$HELM4_VERSION" "$BIN/helm" version --short
check_version "$HELM3_VERSION" "$BIN/helm3/helm" version --short
check_version "$KUBE_VERSION" "$BIN/kube-apiserver" --version
check_version "$KUBE_VERSION" "$BIN/kube-controller-manager" --version
check_version "$KUBE_VERSION" "$BIN/kube-scheduler" --version
check_version "$KUBE_VERSION" "$BIN/kubectl" version --client
check_version "${ETCD_VERSION#v}" "$BIN/etcd" --version
check_version "${KWOK_VERSION}" "$BIN/kwokctl" --version
check_version "${KWOK_VERSION}" "$BIN/kwok" --version
check_version "${GRPC_HEALTH_PROBE_VERSION}" "$BIN/grpc-health-probe" -version
check_version "${GRPCURL_VERSION}" "$BIN/grpcurl" -version
check_version "${GHZ_VERSION}" "$BIN/ghz" --version
check_version "${DISTRIBUTION_VERSION}" "$BIN/registry" --version

{
  echo "key=$KEY"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "go=$(go env GOVERSION)"
  sed -n 's/^\([A-Z0-9_]*_VERSION=.*\)$/\1/p' "$SCRIPT_DIR/versions.env"
} >"$BIN/.complete"

TOTAL=$(( $(date +%s) - T_START ))
if ((${#TIMINGS[@]})); then
  log "build times:"
  for t in "${TIMINGS[@]}"; do log "  $t"; done
fi
log "total: ${TOTAL}s; binaries in $BIN"
echo "$BIN"
