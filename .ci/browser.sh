#!/usr/bin/env bash
# Debian's Chromium and its matching chromedriver, for the operator page's browser test.
# Idempotent: does nothing when both are installed; quiet on success, apt's output on failure.
set -uo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
if ! {
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
} >"$out" 2>&1; then
  cat "$out" >&2
  echo "browser.sh: installing chromium and chromium-driver failed" >&2
  exit 1
fi
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "browser.sh: /usr/bin/chromium or /usr/bin/chromedriver is missing after install" >&2
  exit 1
fi
