#!/usr/bin/env bash
# What CI runs: lint and the docstring examples first, then the full test suite (unit,
# integration against a real Kafka broker that the session fixture starts with
# scripts/kafka.sh, end to end), then the kernels once more with the JIT off.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The quick checks come first, so a lint error, a type error or a broken docstring example
# stops the run before the long suite starts its broker.
make --no-print-directory lint
make --no-print-directory doctest
.venv/bin/python -m pytest -q "$@"
# The kernel twins once more with the JIT off: the kernels run as plain Python, so a bug that
# numba hides (or a numba-only construct) shows up. The engine-level suites would take many
# minutes in pure Python, so this run is the twin suite only.
NUMBA_DISABLE_JIT=1 .venv/bin/python -m pytest -q tests/bandit/test_kernels.py
