#!/bin/sh
# Runs tests/browser/dashboard.mjs: the dashboard in headless Chromium.
# Installs Debian's chromium (when missing) and playwright-core (into a
# cached directory; it never downloads a browser of its own).
set -eu
cache=${SLUICE_BROWSER_CACHE:-$HOME/.cache/sluice-browser}
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
if [ ! -d "$cache/node_modules/playwright-core" ]; then
  mkdir -p "$cache"
  (cd "$cache" && npm install --silent --no-audit --no-fund playwright-core@1.64.1)
fi
# ES modules resolve imports next to the script: run a copy from the
# cache, from the repository's root (paths in it are relative to it).
cp tests/browser/dashboard.mjs "$cache/dashboard.mjs"
node "$cache/dashboard.mjs"
