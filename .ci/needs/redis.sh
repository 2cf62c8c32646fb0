#!/usr/bin/env bash
# redis-server for tests/tests/cluster/many_nodes.rs (the tests start their
# own on a free port and stop it by PID; the system service is not used).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server
# Debian starts the service on install; the tests do not need it.
if command -v systemctl >/dev/null 2>&1; then systemctl stop redis-server 2>/dev/null || true; fi
