#!/usr/bin/env bash
# Generates the Python client's stubs (clients/python/src/paas_client/_gen/) from proto/ with
# grpcio-tools (messages and gRPC stubs) and mypy-protobuf (.pyi type stubs), pinned, from a
# virtualenv under ~/.cache/paas-operator/ made on first use. Called by scripts/generate.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${PAAS_CACHE:-$HOME/.cache/paas-operator}/python-gen-grpcio-1.85.1"
if [ ! -x "$venv/bin/protoc-gen-mypy" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check grpcio-tools==1.85.1 mypy-protobuf==5.1.0 >&2
fi
out=clients/python/src/paas_client/_gen
rm -rf "$out"
mkdir -p "$out"
# grpc.health.v1 would clash with grpcio's own `grpc` package: the client reads Health by hand.
PATH="$venv/bin:$PATH" "$venv/bin/python" -m grpc_tools.protoc -I proto \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/paas/v1/*.proto proto/google/api/*.proto proto/google/rpc/*.proto
# The gRPC stubs of messages-only files are empty; keep only those of services.
for f in "$out"/google/*/*_pb2_grpc.py "$out"/google/*/*_pb2_grpc.pyi; do
  rm -f "$f"
done
