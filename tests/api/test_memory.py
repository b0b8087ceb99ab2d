"""Bounded memory through the API: users beyond the cap leave and come back on request."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.conftest import ACME, decide, service_of, wait_learner, wait_until
from tests.api.test_feedback import feedback


def test_users_beyond_the_cap_leave_memory_and_come_back_intact(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(max_resident_users=3)
    backend = service_of(client).backend
    backend.residency.min_idle_s = 0.0
    users = [f"u{i}" for i in range(8)]
    for user in users:
        did = decide(client, user)["decision_id"]
        feedback(client, user_id=user, decision_id=did, kind="rating", value=5)
    client.patch("/v1/users/u0/profile", json={"pins": {"tone": "warm"}}, headers=ACME)
    wait_learner(client)
    before = {u: client.get(f"/v1/users/{u}/profile", headers=ACME).json() for u in users}
    backend.learner.checkpoint(full=True)
    assert wait_until(lambda: len(backend.engine.users) <= 3 and backend.learner.evicted >= 5)
    assert len(backend.processor.books) <= 3
    after = {u: client.get(f"/v1/users/{u}/profile", headers=ACME).json() for u in users}
    assert after == before  # pins, evidence, preferences: all back from the store
    # A user who left is decided for from their own state, not a fresh prior.
    assert decide(client, "u0")["strategy"]["levels"]["tone"] == "warm"
