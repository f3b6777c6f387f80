#!/usr/bin/env bash
# Runs every test: generated-code staleness, type check, lint (ESLint, Prettier, shellcheck),
# unit + service + adapter tests, then integration and end-to-end tests against the local
# testbed (built and started on first use), with coverage. The README's test command: `npm ci && npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two steps, so that a failing node24.sh stops the script (set -e).
node_bin=$(bash scripts/node24.sh)
export PATH="$node_bin:$PATH"
started=$SECONDS

step() { printf '\n== %s (%ss)\n' "$1" "$((SECONDS - started))" >&2; }

step "generated code is fresh"
bash scripts/generate.sh --check
step "type check"
node_modules/.bin/tsc -p tsconfig.json
step "lint"
# A lint failure fails the run, after the tests (they still run and report).
lint_status=0
npm run --silent lint || lint_status=$?
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
# shellcheck disable=SC2016 # ${...} is a JavaScript template literal, not a shell expansion
node -e 'const r = require("./coverage/vitest.json"); console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' || true
step "done"
if ((lint_status != 0)); then
  echo "npm test: lint failed (see the lint step above)" >&2
  ((status != 0)) || status=$lint_status
fi
exit "$status"
