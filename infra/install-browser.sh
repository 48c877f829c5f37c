#!/usr/bin/env bash
# Chromium for the browser tests. Playwright cannot download its own browser on
# machines without internet access, so the tests drive the system's Chromium.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[install] chromium (apt-get)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "No Chromium found. Install it, or set CHROMIUM_PATH to a Chromium/Chrome binary" >&2
echo "(on macOS: .venv/bin/playwright install chromium, then CHROMIUM_PATH is not needed)." >&2
exit 1
