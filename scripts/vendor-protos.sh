#!/usr/bin/env bash
# Copies the third-party .proto files this API imports from their npm packages into
# proto/, so that `buf generate` needs no network and no BSR dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
nm=node_modules
mkdir -p proto/google/api proto/google/rpc proto/grpc/health/v1 proto/grpc/reflection/v1
cp "$nm/google-proto-files/google/api/annotations.proto" "$nm/google-proto-files/google/api/http.proto" proto/google/api/
cp "$nm/google-proto-files/google/rpc/error_details.proto" proto/google/rpc/
cp "$nm/grpc-health-check/proto/health/v1/health.proto" proto/grpc/health/v1/health.proto
cp "$nm/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto" proto/grpc/reflection/v1/reflection.proto
