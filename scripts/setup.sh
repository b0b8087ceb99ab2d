#!/usr/bin/env bash
# Create .venv (once) and install attune with its dev tools and the `sim` extra (the plots and
# progress bars of `attune simulate` and `attune train`). Safe to run again: pip skips what is
# already there.
#
# Every dependency comes from requirements.lock, pinned and checked against its SHA-256
# (`make lock` regenerates it from pyproject.toml); attune itself is then installed without
# resolving anything more (--no-deps) and built with the locked setuptools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --require-hashes -r requirements.lock
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e '.[dev,sim]'
