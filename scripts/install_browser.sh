#!/usr/bin/env bash
# Debian's headless Chromium and its driver, for the browser test (tests/test_browser_notebook.py).
# Needs root (or sudo) and the Debian package archive; skipped when both are already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  echo "install_browser: chromium and chromedriver already installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium chromium-driver
