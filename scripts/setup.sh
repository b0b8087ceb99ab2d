#!/usr/bin/env bash
# Create .venv (once) and install attune with its dev tools and the `sim` extra (the plots and
# progress bars of `attune simulate` and `attune train`). Safe to run again: pip skips what is
# already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e '.[dev,sim]'
