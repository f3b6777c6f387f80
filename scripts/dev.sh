#!/usr/bin/env bash
# Starts the service against the local testbed cluster (built on first use; 20-35 min
# cold) on 127.0.0.1, with a development API key printed. Uses the cluster named by
# KUBECONFIG instead when PAAS_USE_KUBECONFIG=1.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two steps, so that a failing node24.sh stops the script (set -e).
node_bin=$(bash scripts/node24.sh)
export PATH="$node_bin:$PATH"
if [ "${PAAS_USE_KUBECONFIG:-0}" != "1" ]; then
  bash scripts/testbed/up.sh
  set -a
  # shellcheck disable=SC1091
  source .testbed/env
  set +a
  export HELM_REPOSITORIES="${HELM_REPOSITORIES:-testbed=$CHART_REPO_URL}"
  export HELM_PLAIN_HTTP_REGISTRIES="${HELM_PLAIN_HTTP_REGISTRIES:-$OCI_REGISTRY}"
fi
export HOST="${HOST:-127.0.0.1}"
export PORT="${PORT:-8000}"
if [ -z "${API_KEY:-}" ] && [ -z "${API_KEY_FILE:-}" ]; then
  API_KEY="dev-$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export API_KEY
fi
cat >&2 <<MSG

PaaS Operator (development) on http://$HOST:$PORT
  API key:   ${API_KEY:-<from API_KEY_FILE>}
  Try:       curl -s -H "x-api-key: ${API_KEY:-…}" -H 'content-type: application/json' \\
               -d '{"name":"paas-ws-demo"}' http://$HOST:$PORT/paas.v1.NamespaceService/CreateNamespace
  Charts:    ${CHART_REPO_URL:-} (as testbed/<chart>), oci://${OCI_REGISTRY:-}/charts/<chart>

MSG
exec node src/main.ts
