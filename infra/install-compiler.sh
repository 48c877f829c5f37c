#!/usr/bin/env bash
# A C/C++ compiler for the functions' numpy, built without BLAS (functions/build_numpy.sh).
# Without one the package falls back to numpy's wheel (8 MB bigger), which the package test
# refuses: `make test` installs one first, as it installs the browser.
set -euo pipefail
if command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1; then
  exit 0
fi
if [ "$(uname -s)" = "Linux" ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "[install] gcc and g++ (apt-get), to build numpy without BLAS for the functions"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc g++ >/dev/null
  exit 0
fi
echo "No C/C++ compiler found: install gcc and g++ (the functions' numpy is built from source)." >&2
exit 1
