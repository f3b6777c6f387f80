#!/usr/bin/env bash
# Installs Debian's Chromium for the browser test of /docs when it is missing (needs root,
# as on CI and the development machines). Prints the binary's path.
set -euo pipefail
bin=/usr/bin/chromium
if [ ! -x "$bin" ]; then
  echo "ensure-chromium: installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends chromium >&2
fi
echo "$bin"
