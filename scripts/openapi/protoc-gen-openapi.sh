#!/usr/bin/env bash
# Runs the OpenAPI plugin (TypeScript) on the project's Node 24, whatever node is on PATH:
# buf.gen.yaml invokes it as a local plugin; the request comes on stdin, the response goes to stdout.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
node_bin="$(bash "$here/../node24.sh")"
exec "$node_bin/node" "$here/protoc-gen-openapi.ts" "$@"
