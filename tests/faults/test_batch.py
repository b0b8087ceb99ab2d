"""One bad request among the requests decided in one event-loop turn fails only itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ACME, BETA, service_of


async def _call(app: Any, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    """One POST /v1/decisions straight through the ASGI app (no sockets, no threads)."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/decisions",
        "raw_path": b"/v1/decisions",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("test", 80),
        "client": ("test", 1),
        "http_version": "1.1",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    out: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    await app(scope, receive, send)
    return out["status"], json.loads(out["body"])


@pytest.mark.parametrize("fault", ["engine bug", "rejected input"])
def test_a_bad_request_fails_alone_beside_good_ones_of_another_tenant(
    make_client: Callable[..., TestClient], fault: str
) -> None:
    client = make_client()
    service = service_of(client)
    engine = service.engine
    batches: list[int] = []
    decide, decide_many = engine.decide, service.decide_many

    def poisoned(requests: list[Any], **kw: Any) -> Any:
        # A bug that one request triggers (here: its user id), whatever else is in the batch.
        if any(r.user_id == "acme/poison" for r in requests):
            raise RuntimeError("an engine bug this request triggers")
        return decide(requests, **kw)

    def counting(requests: list[Any]) -> Any:
        batches.append(len(requests))
        return decide_many(requests)

    engine.decide = poisoned  # type: ignore[method-assign]
    service.decide_many = counting  # type: ignore[method-assign]
    bad = (
        {"user_id": "poison"}
        if fault == "engine bug"
        else {"user_id": "ana", "constraints": {"depth": "no-such-level"}}
    )

    async def turn() -> list[tuple[int, Any]]:
        calls = [_call(client.app, {"user_id": f"b{i}"}, BETA) for i in range(6)]
        calls.insert(3, _call(client.app, bad, ACME))
        return await asyncio.gather(*calls)

    results = asyncio.run(turn())
    assert batches[0] == 7  # all seven were decided in one engine call first
    statuses = [status for status, _ in results]
    assert statuses == [200, 200, 200, 500 if fault == "engine bug" else 422, 200, 200, 200]
    good = [body for status, body in results if status == 200]
    assert all(b["decision_id"].startswith("d_") for b in good)
    if fault == "rejected input":
        assert results[3][1]["detail"][0]["loc"] == ["body", "constraints", "depth"]
