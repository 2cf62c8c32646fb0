#!/usr/bin/env bash
# Headless Chromium for tests/tests/observability/status_page.rs (the live
# status page, rendered and checked in a real browser). From Debian; only
# when missing.
set -euo pipefail
command -v chromium >/dev/null && exit 0
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
