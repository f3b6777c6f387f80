#!/usr/bin/env bash
# Generates the Go client's code (clients/go/gen/) with buf and protoc-gen-go v1.36.12 +
# protoc-gen-connect-go v1.21.1, built from the Go module proxy into ~/.cache/paas-operator/
# on first use. Called by scripts/generate.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${PAAS_CACHE:-$HOME/.cache/paas-operator}/go-plugins/protobuf-v1.36.12-connect-v1.21.1"
if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-connect-go" ]; then
  GOBIN="$bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12 >&2
  GOBIN="$bin" go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1 >&2
fi
cd clients/go
PATH="$bin:$PWD/../../node_modules/.bin:$PATH" buf generate
