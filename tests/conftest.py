"""Shared fixtures. The real Kafka broker comes from tests/kafka_broker.py (session scope)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kafka_broker import kafka_bootstrap  # noqa: F401  (a fixture, used by name)


@pytest.fixture(scope="session")
def rng_seed() -> int:
    return 20261128


@pytest.fixture
def rng(rng_seed: int) -> np.random.Generator:
    return np.random.default_rng(rng_seed)
