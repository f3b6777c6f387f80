#!/usr/bin/env bash
# Runs the benchmarks against the local testbed (started if needed). Loopback only; bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two steps, so that a failing node24.sh stops the script (set -e).
node_bin=$(bash scripts/node24.sh)
export PATH="$node_bin:$PATH"
bash scripts/testbed/up.sh
set -a
# shellcheck disable=SC1091
source .testbed/env
set +a
node bench/get-release.ts
node bench/upgrade.ts
node bench/operations.ts
