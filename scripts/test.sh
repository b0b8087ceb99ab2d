#!/usr/bin/env bash
# The full test suite: unit, integration against a real Kafka broker (the session fixture
# starts it with scripts/kafka.sh), end to end; then the kernels once more with the JIT off.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q "$@"
NUMBA_DISABLE_JIT=1 .venv/bin/python -m pytest -q tests/bandit -m "not slow" -p no:randomly
