"""Idempotent decisions and profile changes; the seed and the request shapes in the response.

A retried ``POST /v1/decisions`` with the same ``request_id`` gets the same decision (id,
strategy, propensity, seed, directives), logged once: from this process's memory, and from
the user's pending decisions, which a restart recovers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.idempotency import RecentDecisions
from api.schemas import DecisionCreate, DecisionPublic
from tests.api.conftest import ACME, BETA, decide, service_of, wait_learner
from tests.api.test_feedback import feedback, profile

SAME = ("decision_id", "strategy", "propensity", "seed", "directives", "policy", "request_id")


def decision_events(client: TestClient, decision_id: str | None = None) -> list[Any]:
    store = service_of(client).backend.store
    return [
        e
        for e in store.iter_events(kinds=["decision"])
        if decision_id is None or e.event_id == decision_id
    ]


def test_a_retried_decision_is_the_same_decision_logged_once(client: TestClient) -> None:
    first = decide(client, message="How do I undo a commit?", request_id="turn-1")
    # a retry; its body is not compared: the first request's decision is the answer
    again = decide(client, message="How do I undo a commit? (resent)", request_id="turn-1")
    assert again == first
    assert first["request_id"] == "turn-1"
    [event] = decision_events(client)
    assert event.event_id == first["decision_id"]
    assert event.payload["propensity"] == first["propensity"]
    assert event.payload["seed"] == first["seed"] and isinstance(first["seed"], int)

    others = [
        decide(client, "bob", request_id="turn-1"),  # another user
        decide(client, headers=BETA, request_id="turn-1"),  # another tenant
        decide(client, request_id="turn-2"),  # another turn
        decide(client),  # no request_id: always a new decision
    ]
    ids = {first["decision_id"], *(o["decision_id"] for o in others)}
    assert len(ids) == 5
    assert len(decision_events(client)) == 5
    wait_learner(client)
    assert profile(client)["evidence"]["decisions"] == 3  # turn-1, turn-2, the plain one


def test_the_same_request_twice_in_one_batch_is_decided_once(client: TestClient) -> None:
    service = service_of(client)
    body = DecisionCreate(user_id="ana", message="hi", request_id="r-7")
    a, b, c = service.decide_many([("acme", body), ("acme", body), ("acme", body.model_copy())])
    assert a is b and a == c
    assert len(decision_events(client)) == 1


def test_after_a_restart_a_retry_is_answered_from_the_recovered_state(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    client = make_client(data)
    first = decide(client, message="Explain monads", locale="es", request_id="m-1")
    client.__exit__(None, None, None)  # a clean stop: queued decisions are committed

    restarted = make_client(data)
    again = decide(restarted, message="Explain monads", locale="es", request_id="m-1")
    assert {k: again[k] for k in SAME} == {k: first[k] for k in SAME}
    assert again["directives"]["locale"] == "es"
    # the explanation is computed again, from the model as it is now
    assert again["explanation"] and all(r["text"] for r in again["explanation"])
    DecisionPublic.model_validate(again)
    assert len(decision_events(restarted, first["decision_id"])) == 1

    # feedback joins the logged decision: the learner counts one decision and one feedback
    feedback(restarted, decision_id=again["decision_id"], kind="thumbs", value="up")
    wait_learner(restarted)
    evidence = profile(restarted)["evidence"]
    assert (evidence["decisions"], evidence["feedback_events"]) == (1, 1)


def test_a_repeat_this_process_forgot_is_answered_from_the_pending_decision(
    client: TestClient,
) -> None:
    first = decide(client, message="Explain monads", request_id="m-2")
    wait_learner(client)  # the learner holds it pending
    service_of(client).recent = RecentDecisions()  # as if 8,192 newer ones had pushed it out
    again = decide(client, message="Explain monads", request_id="m-2")
    assert {k: again[k] for k in SAME} == {k: first[k] for k in SAME}
    assert again["explanation"]
    assert len(decision_events(client)) == 1


def test_an_erased_user_is_decided_afresh(client: TestClient) -> None:
    first = decide(client, request_id="t-1")
    assert client.delete("/v1/users/ana", headers=ACME).status_code == 204
    again = decide(client, request_id="t-1")
    assert again["decision_id"] == first["decision_id"]  # the id is the request's
    assert len(decision_events(client)) == 1  # the erased one is gone, the new one logged
    wait_learner(client)
    assert profile(client)["evidence"]["decisions"] == 1


@pytest.mark.parametrize(
    "request_id,pattern", [("", "at least 1 character"), ("x" * 129, "at most 128 characters")]
)
def test_bad_request_ids_are_named(client: TestClient, request_id: str, pattern: str) -> None:
    r = client.post(
        "/v1/decisions", json={"user_id": "ana", "request_id": request_id}, headers=ACME
    )
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"] == ["body", "request_id"] and pattern in error["msg"]


def test_a_resent_profile_change_is_applied_once(client: TestClient) -> None:
    def patch(pins: dict[str, str], key: str | None) -> dict:
        headers = {**ACME, **({"Idempotency-Key": key} if key else {})}
        r = client.patch("/v1/users/ana/profile", json={"pins": pins}, headers=headers)
        assert r.status_code == 200, r.text
        return r.json()

    assert patch({"length": "brief"}, "k-1")["pins"] == {"length": "brief"}
    assert patch({"length": "thorough"}, "k-2")["pins"] == {"length": "thorough"}
    # a late resend of the first change: logged already, so not applied over the second
    assert patch({"length": "brief"}, "k-1")["pins"] == {"length": "thorough"}
    store = service_of(client).backend.store
    pins = [e for e in store.iter_events(kinds=["profile"]) if e.payload.get("op") == "pin"]
    assert len(pins) == 2
    wait_learner(client)
    assert profile(client)["pins"] == {"length": "thorough"}
    # without a key every change is a new one
    assert patch({"length": "brief"}, None)["pins"] == {"length": "brief"}


def test_the_response_carries_the_directives_in_both_shapes(client: TestClient) -> None:
    out = decide(client, message="Reverse a list in Python", constraints={"format": "code-first"})
    d = out["directives"]
    assert (
        d["openai"]["messages"]
        == d["messages"]
        == [
            {"role": "system", "content": d["system_prompt"]},
            {"role": "user", "content": "Reverse a list in Python"},
        ]
    )
    assert d["openai"]["top_p"] == 0.9 and d["openai"]["max_tokens"] == d["params"]["max_tokens"]
    anthropic = d["anthropic"]
    assert anthropic["system"] == d["system_prompt"]
    assert anthropic["messages"] == [{"role": "user", "content": "Reverse a list in Python"}]
    assert anthropic["temperature"] == d["params"]["temperature"] and "top_p" not in anthropic
    bare = decide(client)["directives"]  # no message: nothing to answer yet
    assert bare["openai"]["messages"] == bare["messages"] == bare["messages"][:1]
    assert bare["anthropic"]["messages"] == []
