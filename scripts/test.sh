#!/usr/bin/env bash
# Runs every test: generated-code staleness, type check, unit + service + adapter tests,
# then integration and end-to-end tests against the local testbed (built and started on
# first use), with coverage. The README's test command: `npm ci && npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(bash scripts/node24.sh):$PATH"
started=$SECONDS

step() { printf '\n== %s (%ss)\n' "$1" "$((SECONDS - started))" >&2; }

step "generated code is fresh"
bash scripts/generate.sh --check
step "type check"
node_modules/.bin/tsc -p tsconfig.json
step "testbed"
# A testbed this run starts is stopped again when it ends; one that was already up stays.
if [ ! -f .testbed/env ]; then
  trap 'bash scripts/testbed/down.sh >&2 || true' EXIT
fi
bash scripts/testbed/up.sh
set -a
# shellcheck disable=SC1091
source .testbed/env
set +a
step "tests with coverage"
mkdir -p coverage
status=0
node_modules/.bin/vitest run --coverage --reporter=default --reporter=json --outputFile.json=coverage/vitest.json "$@" || status=$?
# One plain closing line with the counts, whatever the reporter prints above it.
node -e 'const r = require("./coverage/vitest.json"); console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' || true
step "done"
exit "$status"
