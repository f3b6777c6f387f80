#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and the local protoc-gen-es plugin.
# --check: fail when the committed gen/ or vendored protos differ from a fresh generation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
bash scripts/vendor-protos.sh
buf lint
buf generate
if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- gen proto)" ]; then
    echo "generate: gen/ or proto/ is stale; run 'npm run generate' and commit the result:" >&2
    git status --porcelain -- gen proto >&2
    exit 1
  fi
fi
