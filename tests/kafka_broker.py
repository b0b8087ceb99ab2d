"""A real single-node Kafka broker for tests, driven through ``scripts/kafka.sh``.

A conftest makes the fixture available with::

    from tests.kafka_broker import kafka_bootstrap  # noqa: F401

``kafka_bootstrap`` is the broker's ``host:port``. A test that must restart the
broker finds its state dir with ``session_state_dir(tmp_path_factory)`` and calls
``restart_broker`` on it; the address stays the same.

Set ``ATTUNE_KAFKA_BOOTSTRAP=host:port`` to run against a broker that is already
up (e.g. one started by hand with ``scripts/kafka.sh start``): nothing is
started or stopped then, and tests that need to restart the broker skip.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
BOOTSTRAP_ENV = "ATTUNE_KAFKA_BOOTSTRAP"

# The first start fetches the Kafka jars through Maven, so it may take far longer than a
# later start from the cache.
START_TIMEOUT_S = 900
STOP_TIMEOUT_S = 120


def _kafka_sh(command: str, state_dir: Path, timeout: float) -> str:
    env = dict(os.environ, KAFKA_STATE_DIR=str(state_dir))
    proc = subprocess.run(
        ["bash", str(SCRIPT), command],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"scripts/kafka.sh {command} failed with exit code {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def start_broker(state_dir: Path) -> str:
    """Start (or find running) the broker of ``state_dir``; return ``127.0.0.1:port``."""
    out = _kafka_sh("start", Path(state_dir), START_TIMEOUT_S)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("scripts/kafka.sh start printed no bootstrap address")
    return lines[-1]


def stop_broker(state_dir: Path) -> None:
    _kafka_sh("stop", Path(state_dir), STOP_TIMEOUT_S)


def restart_broker(state_dir: Path) -> str:
    """Stop and start again: same port, same data (the state dir is not reformatted)."""
    stop_broker(state_dir)
    return start_broker(state_dir)


def session_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """State dir of the broker ``kafka_bootstrap`` runs this session, for restarts.

    None when the broker is external (``ATTUNE_KAFKA_BOOTSTRAP``): not ours to restart.
    """
    if os.environ.get(BOOTSTRAP_ENV, "").strip():
        return None
    # Fixed name under the session's base temp dir, so tests can find it without
    # a second fixture (a conftest need only import ``kafka_bootstrap``).
    return tmp_path_factory.getbasetemp() / "kafka-broker"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a broker that lives for the whole test session."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    state_dir = session_state_dir(tmp_path_factory)
    assert state_dir is not None
    try:
        bootstrap = start_broker(state_dir)
    except BaseException:
        # A broker that launched but never became ready is still running; stop
        # it best effort; the start failure is the error worth reporting.
        with contextlib.suppress(Exception):
            stop_broker(state_dir)
        raise
    try:
        yield bootstrap
    finally:
        stop_broker(state_dir)
