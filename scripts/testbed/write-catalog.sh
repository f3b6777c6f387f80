#!/usr/bin/env bash
# Writes .testbed/catalog.json, the chart catalogue of the testbed: its HTTP chart repository
# (CHART_REPO_URL) and its OCI registry's charts (oci://$OCI_REGISTRY/charts), and appends
# `export CHART_CATALOG_FILE=<that file>` to .testbed/env unless the line is there already.
# Idempotent; run it after up.sh has written .testbed/env (up.sh rewrites env on every run).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
TB="$REPO/.testbed"
ENV_FILE="$TB/env"
CATALOG="$TB/catalog.json"

die() { printf '[write-catalog] ERROR: %s\n' "$*" >&2; exit 1; }

[[ -s "$ENV_FILE" ]] || die "$ENV_FILE is missing: run scripts/testbed/up.sh first"
command -v python3 >/dev/null || die "python3 is needed"
# The env file holds only `export VAR=value` lines written by up.sh.
# shellcheck disable=SC1090
source "$ENV_FILE"
[[ -n "${CHART_REPO_URL:-}" && -n "${OCI_REGISTRY:-}" ]] || die "CHART_REPO_URL or OCI_REGISTRY missing from $ENV_FILE"

tmp="$CATALOG.tmp.$$"
python3 - "$CHART_REPO_URL" "oci://$OCI_REGISTRY/charts" >"$tmp" <<'PY'
import json, sys
print(json.dumps({"sources": [{"url": sys.argv[1]}, {"url": sys.argv[2]}]}, indent=2))
PY
mv -f "$tmp" "$CATALOG"

if ! grep -q '^export CHART_CATALOG_FILE=' "$ENV_FILE"; then
  printf 'export CHART_CATALOG_FILE=%q\n' "$CATALOG" >>"$ENV_FILE"
fi
printf '[write-catalog] %s: %s, oci://%s/charts\n' "$CATALOG" "$CHART_REPO_URL" "$OCI_REGISTRY" >&2
