#!/usr/bin/env bash
# promtool (Debian `prometheus`) for tests/tests/observability/metrics.rs,
# which pipes the scraped exposition through `promtool check metrics`. Only
# when missing.
set -euo pipefail
command -v promtool >/dev/null && exit 0
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus
