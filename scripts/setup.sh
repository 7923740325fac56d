#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine: system packages, then .venv with the tested versions.
# Idempotent: re-running installs only what is missing. Used by `make setup` (and so by demo/test).
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium + chromium-driver: the browser test of the instrument (tests/test_instrument_browser.py).
# libtcmalloc-minimal4: the malloc the Makefile's CPU jobs preload (deepsynth_jax/console.py says why).
APT_PACKAGES=(libfluidsynth3 fluid-soundfont-gm chromium chromium-driver libtcmalloc-minimal4)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing system packages. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
touch .venv/.setup-done
echo "setup: ready (.venv)"
