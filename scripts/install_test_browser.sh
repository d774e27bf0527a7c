#!/usr/bin/env bash
# Debian's chromium for the MLflow UI test (tests/integration/test_mlflow_ui.py); a no-op when it is installed.
# Called by .ci/run and by the test's set-up; the test is skipped, saying why, only where this fails.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo -n"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends chromium \
  || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends chromium; }
command -v chromium >/dev/null
