"""Factory fixtures for the real app (real store, real engines, real learner thread)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.service import Service
from api.settings import Settings

KEYS = {"key-acme-0123456789abcdef": "acme", "key-beta-0123456789abcdef": "beta"}
ACME = {"Authorization": "Bearer key-acme-0123456789abcdef"}
BETA = {"Authorization": "Bearer key-beta-0123456789abcdef"}
OPERATOR_KEY = "key-operator-0123456789abcdef"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "api_keys": KEYS,
        "operator_keys": (OPERATOR_KEY,),
        "random_state": 0,
        "wait_window_s": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)


def service_of(client: TestClient) -> Service:
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    return service


def wait_learner(client: TestClient, timeout: float = 10.0) -> None:
    """Block until the learner has applied everything in the log so far."""
    service = service_of(client)
    assert service.backend.learner.wait_for(service.backend.store.last_offset(), timeout=timeout)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings)`` -> a started TestClient; all are closed at teardown."""
    clients: list[TestClient] = []

    def factory(data_dir: Path | None = None, **overrides: Any) -> TestClient:
        settings = make_settings(data_dir or tmp_path / "data", **overrides)
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def decide(
    client: TestClient, user_id: str = "ana", headers: dict | None = None, **body: Any
) -> dict:
    r = client.post("/v1/decisions", json={"user_id": user_id, **body}, headers=headers or ACME)
    assert r.status_code == 200, r.text
    return r.json()
