"""/healthz fails when a background thread the service needs has died."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import decide, service_of, wait_until
from tests.api.test_feedback import feedback


def test_a_learner_that_dies_makes_healthz_fail(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    assert client.get("/healthz").status_code == 200
    backend = service_of(client).backend
    apply = backend.processor.apply

    def broken(events: Any, **kw: Any) -> Any:
        if any(e.kind == "feedback" for e in events):
            raise MemoryError("the learner ran out of memory")  # not a store error: fatal
        return apply(events, **kw)

    backend.processor.apply = broken  # type: ignore[method-assign]
    did = decide(client)["decision_id"]
    feedback(client, decision_id=did, kind="thumbs", value="up")
    assert wait_until(lambda: not backend.learner.alive)
    r = client.get("/healthz")
    assert r.status_code == 503 and "MemoryError" in r.json()["reason"]
    assert client.get("/readyz").status_code == 503


def test_healthz_stays_up_while_the_disk_refuses_writes(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    decide(client)
    store = service_of(client).backend.store
    [(pages,)] = store.query("PRAGMA page_count")
    store._db.execute(f"PRAGMA max_page_count={pages}")
    try:
        did = decide(client)["decision_id"]
        r = client.post(
            "/v1/feedback",
            json={"user_id": "ana", "decision_id": did, "kind": "thumbs", "value": "up"},
            headers={"Authorization": "Bearer key-acme-0123456789abcdef"},
        )
        assert r.status_code == 503  # its decision is still queued, and known
        assert r.headers["retry-after"] == "1"
        assert client.get("/healthz").status_code == 200  # alive: nothing to restart
        assert client.get("/readyz").json()["writable"] is False
    finally:
        store._db.execute("PRAGMA max_page_count=1073741823")
    assert wait_until(lambda: client.get("/readyz").status_code == 200)
