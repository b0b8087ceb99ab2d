"""Bounded memory through the API: users beyond the cap leave and come back on request."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi.testclient import TestClient

from api.loads import Loads
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


def test_users_coming_back_together_are_loaded_in_one_batch(
    make_client: Callable[..., TestClient],
) -> None:
    """Decisions of users who left memory, arriving together, share one load (``api.loads``):
    one thread, one store read, one hold of the learner's lock."""
    client = make_client(max_resident_users=3)
    service = service_of(client)
    backend = service.backend
    backend.residency.min_idle_s = 0.0
    users = [f"u{i}" for i in range(8)]
    for user in users:  # settled decisions: a user with an open one stays
        did = decide(client, user)["decision_id"]
        feedback(client, user_id=user, decision_id=did, kind="rating", value=4)
    wait_learner(client)
    backend.learner.checkpoint(full=True)
    assert wait_until(lambda: len(backend.engine.users) <= 3)
    backend.residency.max_users = 100  # those who come back now stay
    away = [f"acme/{u}" for u in users if f"acme/{u}" not in backend.engine.users]
    assert len(away) >= 5
    loads = Loads(service)

    async def together() -> None:
        await asyncio.gather(*(loads.resident([key]) for key in away))

    asyncio.run(together())
    assert loads.batches == 1
    assert all(key in backend.engine.users for key in away)
    asyncio.run(together())  # all held: nothing to load
    assert loads.batches == 1
