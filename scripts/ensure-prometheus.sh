#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus and promtool) for the metrics test when it is missing
# (needs root, as on CI and the development machines). Prints the directory of both binaries.
# The package's systemd unit is not used: the test starts its own Prometheus on 127.0.0.1.
set -euo pipefail
if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then
  echo "ensure-prometheus: installing Debian's prometheus" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends prometheus >&2
fi
echo /usr/bin
