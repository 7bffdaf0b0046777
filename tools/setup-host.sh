#!/usr/bin/env bash
# Prepare a fresh Debian 12 host (as root) for the lab, the demo and the tests.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt_pkgs=(wireguard-tools wireguard-go iproute2 iputils-ping procps psmisc busybox chromium nodejs python3-pip)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  # --no-install-recommends: wireguard-tools would otherwise pull in a kernel.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
py=${PYTHON:-python3}
if ! $py -c 'import click, jinja2, pytest, hypothesis' 2>/dev/null; then
  $py -m pip install -q click jinja2 pytest hypothesis 2>/dev/null \
    || $py -m pip install -q --break-system-packages click jinja2 pytest hypothesis
fi
# ESLint for the LuCI app's JavaScript (tests/test_luci_app.py); node_modules/ is gitignored.
if [ ! -x node_modules/.bin/eslint ]; then
  npm install --no-save --no-audit --no-fund eslint@9 >/dev/null 2>&1 || echo "setup: eslint not installed (lint test will skip)" >&2
fi
