#!/bin/sh
# Installs what the browser tests need beyond the Python venv: Debian's Chromium and its driver.
# CI runs this as root before `make test`; it does nothing when Chromium is already there.
set -eu
if ! command -v chromium >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y chromium chromium-driver fonts-noto-cjk
fi
chromium --version
