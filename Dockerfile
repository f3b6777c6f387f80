# syntax=docker/dockerfile:1.19
#
# PaaS Operator image: Node 24 runs src/main.ts directly (type stripping, no compile step)
# and drives the pinned Helm v4 binary. Build:
#   docker buildx build -t ghcr.io/example/paas-operator:0.1.0 .
# Multi-arch (amd64, arm64) works through TARGETARCH; see the "tools" stage for the
# optional hard checksum pins of the downloaded binaries.
#
# Lint: bash scripts/lint-dockerfile.sh (hadolint, pinned).

# One base for every stage: the version matches scripts/node24.sh (the toolchain the tests
# run on). For byte-for-byte reproducible builds append the digest of this tag
# (`docker buildx imagetools inspect node:24.21.0-bookworm-slim`) as @sha256:...
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

# ---------------------------------------------------------------- production node_modules
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: runtime dependencies only. --ignore-scripts: no runtime dependency has an
# install script (only devDependencies @bufbuild/buf and protobufjs do), so none runs.
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# ---------------------------------------------------------------- helm + grpc-health-probe
FROM ${NODE_IMAGE} AS tools
# Set by BuildKit from --platform (amd64, arm64); the release assets use the same names.
ARG TARGETARCH
ARG HELM_VERSION=v4.3.1
ARG GRPC_HEALTH_PROBE_VERSION=v0.4.42
# Integrity of the downloads. Every build checks each file against the checksum file its
# project publishes next to it (helm: <tarball>.sha256sum on get.helm.sh; grpc-health-probe:
# checksums.txt of the GitHub release). That catches corruption and a tampered mirror or
# cache, but not a compromised origin, since the file and its checksum come from the same
# place. So, additionally, when these are set the download must match them exactly:
#   --build-arg HELM_SHA256_AMD64=... --build-arg GRPC_HEALTH_PROBE_SHA256_AMD64=...
# They are empty here because this Dockerfile was written on a machine that cannot reach
# get.helm.sh or GitHub. Fill them in (the build log prints the values it verified) or
# pass them from CI; get them with e.g.
#   curl -fsSL https://get.helm.sh/helm-v4.3.1-linux-amd64.tar.gz.sha256sum
#   curl -fsSL https://github.com/grpc-ecosystem/grpc-health-probe/releases/download/v0.4.42/checksums.txt
ARG HELM_SHA256_AMD64=""
ARG HELM_SHA256_ARM64=""
ARG GRPC_HEALTH_PROBE_SHA256_AMD64=""
ARG GRPC_HEALTH_PROBE_SHA256_ARM64=""
ADD https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz \
    https://get.helm.sh/helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz.sha256sum \
    /tmp/helm/
ADD https://github.com/grpc-ecosystem/grpc-health-probe/releases/download/${GRPC_HEALTH_PROBE_VERSION}/grpc_health_probe-linux-${TARGETARCH} \
    https://github.com/grpc-ecosystem/grpc-health-probe/releases/download/${GRPC_HEALTH_PROBE_VERSION}/checksums.txt \
    /tmp/probe/
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN <<'EOF'
set -euo pipefail
case "${TARGETARCH}" in
  amd64) helm_pin=${HELM_SHA256_AMD64} probe_pin=${GRPC_HEALTH_PROBE_SHA256_AMD64} ;;
  arm64) helm_pin=${HELM_SHA256_ARM64} probe_pin=${GRPC_HEALTH_PROBE_SHA256_ARM64} ;;
  *) echo "unsupported TARGETARCH '${TARGETARCH}' (amd64, arm64)" >&2; exit 1 ;;
esac
# verify FILE PUBLISHED [PIN]: FILE's sha256 must equal the published one, and PIN if set.
verify() {
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [[ ! "$2" =~ ^[0-9a-f]{64}$ ]] || [ "$got" != "$2" ]; then
    echo "checksum mismatch for $1: published '$2', got $got" >&2
    exit 1
  fi
  if [ -n "$3" ] && [ "$got" != "$3" ]; then
    echo "checksum pin mismatch for $1: pinned $3, got $got" >&2
    exit 1
  fi
  echo "verified sha256 $got  ${1##*/}${3:+ (pinned)}"
}
helm_tgz="helm-${HELM_VERSION}-linux-${TARGETARCH}.tar.gz"
verify "/tmp/helm/${helm_tgz}" "$(cut -d' ' -f1 "/tmp/helm/${helm_tgz}.sha256sum")" "$helm_pin"
probe="grpc_health_probe-linux-${TARGETARCH}"
verify "/tmp/probe/${probe}" \
  "$(awk -v f="${probe}" '$2 == f || $2 == "*" f { print $1 }' /tmp/probe/checksums.txt)" "$probe_pin"
mkdir -p /out
tar -xzf "/tmp/helm/${helm_tgz}" -C /tmp/helm "linux-${TARGETARCH}/helm"
install -m 0755 "/tmp/helm/linux-${TARGETARCH}/helm" /out/helm
install -m 0755 "/tmp/probe/${probe}" /out/grpc-health-probe
/out/helm version --short
/out/grpc-health-probe -version
EOF

# ---------------------------------------------------------------- runtime
FROM ${NODE_IMAGE} AS runtime
# Exact Debian bookworm versions (hadolint DL3008). ca-certificates comes from
# bookworm-security: when Debian supersedes it the build fails with "Version ... was not
# found"; bump the pin then (`apt-cache policy ca-certificates` in the base image), or
# override it with --build-arg without editing this file.
ARG TINI_VERSION=0.19.0-1+b3
ARG CA_CERTIFICATES_VERSION=20250419~deb12u2
# tini: PID 1 that forwards SIGTERM to node and reaps zombies (helm's children).
# ca-certificates: helm is a Go binary and needs the system CA bundle for HTTPS chart
# repositories and OCI registries (node brings its own; the slim image has none).
# The non-root user has a numeric UID/GID so that runAsNonRoot can verify it.
# npm, npx, corepack and yarn are removed: nothing runs them at run time, and they are the
# part of the base image that vulnerability scanners flag most.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      "tini=${TINI_VERSION}" \
      "ca-certificates=${CA_CERTIFICATES_VERSION}" \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 paas \
 && useradd --system --no-log-init --uid 10001 --gid 10001 \
      --home-dir /home/paas --create-home --shell /usr/sbin/nologin paas \
 && rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-v*

# HOME: helm (client-go) keeps its discovery cache in ~/.kube/cache; the operator gives
# helm private cache/config/data homes under os.tmpdir() (/tmp). Both must be writable:
# in Kubernetes, mount emptyDirs on /home/paas and /tmp (readOnlyRootFilesystem).
ENV NODE_ENV=production \
    HELM_BINARY=/usr/local/bin/helm \
    HOME=/home/paas

WORKDIR /app
# Code and dependencies stay owned by root: the service cannot modify itself.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY gen ./gen
COPY src ./src
COPY --from=tools /out/helm /usr/local/bin/helm
COPY --from=tools /out/grpc-health-probe /usr/local/bin/grpc-health-probe

USER 10001:10001
# One port for gRPC (h2c), gRPC-Web and Connect, and /healthz, /readyz, /health.
EXPOSE 8000
# grpc.health.v1 service "": SERVING while helm and the Kubernetes API answer and the
# process is not draining. Kubernetes ignores HEALTHCHECK (k8s/deployment.yaml has its own
# probes); this is for docker/compose. It assumes the default PORT and a HOST that includes
# 127.0.0.1 (the default 0.0.0.0 does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/grpc-health-probe", "-addr=127.0.0.1:8000", "-connect-timeout=2s", "-rpc-timeout=3s"]
# tini without -g: SIGTERM goes to node only. The operator then drains and signals its
# running helm processes itself, late in SHUTDOWN_GRACE; a group-wide signal would
# interrupt helm operations at once and could leave releases pending.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "src/main.ts"]
