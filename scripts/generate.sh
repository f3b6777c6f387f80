#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and the local protoc-gen-es plugin, and the client
# packages in clients/ (their generated code, and the TypeScript client's dist/ built by tsc).
# --check: fail when the committed gen/, clients/ or vendored protos differ from a fresh generation.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
bash scripts/vendor-protos.sh
buf lint
buf generate
# The Python client's stubs (grpcio-tools + mypy-protobuf, pinned, in a cached virtualenv).
bash scripts/generate-python.sh
# The Go client's code (protoc-gen-go + protoc-gen-connect-go, pinned, built on first use).
bash scripts/generate-go.sh
# The TypeScript client package: dist/ (.js + .d.ts) from src/ over the generated code.
rm -rf clients/typescript/dist
tsc -p clients/typescript/tsconfig.json
if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- gen proto clients)" ]; then
    echo "generate: gen/, clients/ or proto/ is stale; run 'npm run generate' and commit the result:" >&2
    git status --porcelain -- gen proto clients >&2
    exit 1
  fi
fi
