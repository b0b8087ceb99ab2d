"""POST /v1/decisions through the real app."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi.testclient import TestClient

from api.schemas import DecisionPublic
from tests.api.conftest import ACME, decide, service_of


def test_decision_has_strategy_directives_propensity_explanation(client: TestClient) -> None:
    out = decide(client, message="How do I sort a dict in Python?", locale="ja-JP")
    assert out["decision_id"].startswith("d_")
    levels = out["strategy"]["levels"]
    assert set(levels) == {"depth", "tone", "format", "length"}
    assert out["strategy"]["id"] == ".".join(
        levels[d] for d in ("depth", "tone", "format", "length")
    )
    assert 0 < out["propensity"] <= 1
    d = out["directives"]
    assert d["locale"] == "ja" and d["params"]["max_tokens"] > 0
    assert d["messages"][0] == {"role": "system", "content": d["system_prompt"]}
    assert d["messages"][1]["content"] == "How do I sort a dict in Python?"
    assert out["explanation"] and all("text" in r for r in out["explanation"])
    assert out["policy"]["name"] == "lints" and out["policy"]["version"]
    DecisionPublic.model_validate(out)  # the route skips response validation for speed


def test_decision_is_logged_with_propensity_context_and_audit(client: TestClient) -> None:
    out = decide(client, message="why?", audit={"age_band": "18-24"}, session_id="s1")
    event = service_of(client).backend.store.get_event("acme", out["decision_id"], kind="decision")
    assert event is not None and event.user_id == "ana"
    p = event.payload
    width = service_of(client).engine.n_context
    assert p["propensity"] == out["propensity"] and len(p["context"]) == width
    assert abs(sum(p["action_dist"]) - 1) < 1e-9 and p["audit"] == {"age_band": "18-24"}
    [row] = service_of(client).backend.store.decision_log(tenant="acme")
    assert row["action"] == p["arm"] and row["pscore"] == p["propensity"]
    assert row["audit"] == {"age_band": "18-24"} and row["has_feedback"] is False


def test_constraints_narrow_the_strategy(client: TestClient) -> None:
    for _ in range(10):
        out = decide(client, constraints={"length": ["brief"], "format": "bullets"})
        assert out["strategy"]["levels"]["length"] == "brief"
        assert out["strategy"]["levels"]["format"] == "bullets"


def test_audit_attributes_are_not_features(client: TestClient) -> None:
    store = service_of(client).backend.store
    a = decide(client, "u1", message="hello", audit={"group": "a"})
    b = decide(client, "u2", message="hello", audit={"group": "b", "x": 1})
    ctx = [
        store.get_event("acme", o["decision_id"]).payload["context"]  # type: ignore[union-attr]
        for o in (a, b)
    ]
    assert ctx[0] == ctx[1]


BAD_DECISIONS = [
    ({}, ["body", "user_id"]),
    ({"user_id": ""}, ["body", "user_id"]),
    ({"user_id": "u", "constraints": {"colour": "red"}}, ["body", "constraints"]),
    ({"user_id": "u", "constraints": {"length": "epic"}}, ["body", "constraints"]),
    ({"user_id": "u", "locale": "not a locale!"}, ["body", "locale"]),
    ({"user_id": "u", "features": {"x": {"nested": 1}}}, ["body", "features", "x"]),
    ({"user_id": "u", "surprise": 1}, ["body", "surprise"]),
    ({"user_id": "u" * 201}, ["body", "user_id"]),
]


def test_malformed_decisions_get_422_naming_the_field(client: TestClient) -> None:
    for body, loc in BAD_DECISIONS:
        r = client.post("/v1/decisions", json=body, headers=ACME)
        assert r.status_code == 422, (body, r.text)
        locs = [e["loc"][: len(loc)] for e in r.json()["detail"]]
        assert loc in locs, (body, r.json())


def test_keys(client: TestClient) -> None:
    body = {"user_id": "u"}
    assert client.post("/v1/decisions", json=body).status_code == 401
    r = client.post("/v1/decisions", json=body, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    r = client.post("/v1/decisions", json=body, headers={"Authorization": "Bearer nope-nope"})
    assert r.status_code == 403


def test_oversized_body_gets_413(client: TestClient) -> None:
    r = client.post(
        "/v1/decisions",
        content=b'{"user_id": "' + b"x" * 70_000 + b'"}',
        headers={**ACME, "content-type": "application/json"},
    )
    assert r.status_code == 413


def test_invalid_json_gets_422(client: TestClient) -> None:
    r = client.post(
        "/v1/decisions", content=b"{nope", headers={**ACME, "content-type": "application/json"}
    )
    assert r.status_code == 422


def test_fast_path_and_fastapi_route_answer_alike(client: TestClient) -> None:
    """``application/json`` is served by the ASGI fast path; FastAPI also reads a ``+json``
    type, which the fast path passes on: both must give the same kind of answer."""
    histogram = service_of(client).metrics.decision_latency
    before = _count(histogram)
    body = json.dumps({"user_id": "ana", "message": "why is the sky blue?"}).encode()
    answers = []
    for content_type in ("application/json", "application/merge-patch+json"):
        r = client.post(
            "/v1/decisions", content=body, headers={**ACME, "content-type": content_type}
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        answers.append(DecisionPublic.model_validate(r.json()))
    fast, route = answers
    assert fast.decision_id != route.decision_id
    assert fast.directives.messages[-1] == route.directives.messages[-1]  # the user's turn
    assert fast.explanation and route.explanation
    assert _count(histogram) == before + 2  # both paths record their latency


def test_fast_path_passes_errors_to_fastapi_in_its_shape(client: TestClient) -> None:
    r = client.post("/v1/decisions", json={"user_id": "u", "locale": 5}, headers=ACME)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "locale"] and error["type"] == "string_type"
    r = client.post(
        "/v1/decisions", json={"user_id": "u", "constraints": {"length": "epic"}}, headers=ACME
    )  # valid for the schema, refused by the engine
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "constraints"]


def test_requests_arriving_together_are_decided_in_one_engine_call(client: TestClient) -> None:
    """The fast path decides the requests that reach it in one turn of the event loop
    together; one the engine refuses still gets its own 422 and the others their decisions."""
    service = service_of(client)
    batches: list[int] = []
    decide_many = service.decide_many

    def recording(requests: list[tuple[str, Any]]) -> list[Any]:
        batches.append(len(requests))
        return decide_many(requests)

    service.decide_many = recording  # type: ignore[method-assign]
    bodies: list[dict[str, Any]] = [
        {"user_id": "u1", "message": "How do I sort a dict in Python?"},
        {"user_id": "u2", "constraints": {"length": "epic"}},
        {"user_id": "u3", "message": "why is the sky blue?"},
    ]
    answers = asyncio.run(_together(client.app, bodies))
    assert [status for status, _ in answers] == [200, 422, 200]
    assert batches[0] == 3
    assert answers[1][1]["detail"][0]["loc"][:2] == ["body", "constraints"]
    ids = [answers[0][1]["decision_id"], answers[2][1]["decision_id"]]
    users = [service.backend.store.get_event("acme", i, kind="decision").user_id for i in ids]  # type: ignore[union-attr]
    assert users == ["u1", "u3"]


def test_bringing_a_user_back_does_not_hold_up_other_decisions(client: TestClient) -> None:
    """A user the serving engine does not hold is looked up in the store, which may wait for
    the learner's lock; that happens in a thread, and decisions for users in memory, in the
    same batch or later, go on meanwhile."""
    decide(client, user_id="known")
    backend = service_of(client).backend
    released = threading.Event()
    resident = backend.resident

    def slow(keys: list[str]) -> None:
        if "acme/away" in keys:
            assert released.wait(10), "never released"
        resident(keys)

    backend.resident = slow  # type: ignore[method-assign]

    async def run() -> None:
        # Both reach the fast path in the same turn of the event loop: one batch, split.
        away = asyncio.ensure_future(_together(client.app, [{"user_id": "away"}]))
        known = asyncio.ensure_future(_together(client.app, [{"user_id": "known"}]))
        [(status, _)] = await asyncio.wait_for(known, 5)
        assert status == 200 and not away.done()
        released.set()
        [(status, _)] = await asyncio.wait_for(away, 5)
        assert status == 200

    asyncio.run(run())


async def _together(app: Any, bodies: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """POST the bodies to the ASGI app concurrently; (status, JSON answer) of each."""

    async def post(body: dict[str, Any]) -> tuple[int, Any]:
        raw = json.dumps(body).encode()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [(k.lower().encode(), v.encode()) for k, v in ACME.items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/decisions",
            "raw_path": b"/v1/decisions",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-type", b"application/json")],
            "client": ("test", 1),
            "server": ("test", 80),
        }
        await app(scope, receive, send)
        return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))

    return await asyncio.gather(*(post(body) for body in bodies))


def _count(histogram: Any) -> float:
    [metric] = histogram.collect()
    return next(s.value for s in metric.samples if s.name.endswith("_count"))
