"""POST /v1/feedback: every kind, idempotence, unknown decisions, tenants, the default reward."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from fastapi.testclient import TestClient

from tests.api.conftest import ACME, BETA, decide, service_of, wait_learner, wait_until

KINDS = [
    {"kind": "thumbs", "value": "up"},
    {"kind": "thumbs", "value": "down"},
    {"kind": "rating", "value": 4},
    {"kind": "reward", "value": 0.25},
    {"kind": "implicit", "signals": ["copied", "asked_deeper"], "dwell_ms": 12000},
]


def feedback(client: TestClient, headers: dict = ACME, **body: object) -> dict:
    r = client.post("/v1/feedback", json={"user_id": "ana", **body}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()


def profile(client: TestClient, user_id: str = "ana", headers: dict = ACME) -> dict:
    r = client.get(f"/v1/users/{user_id}/profile", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_kind_is_accepted_and_learned(client: TestClient) -> None:
    ids = [decide(client, message="Explain gradient descent")["decision_id"] for _ in range(6)]
    for did, body in zip(ids, KINDS, strict=False):
        assert feedback(client, decision_id=did, **body)["status"] == "accepted"
    feedback(client, decision_id=ids[4], kind="pairwise", other_decision_id=ids[5])
    wait_learner(client)
    ev = profile(client)["evidence"]
    assert ev["feedback_events"] == 6 and ev["decisions"] == 6
    assert ev["by_kind"] == {"thumbs": 2, "rating": 1, "reward": 1, "implicit": 1, "pairwise": 1}
    assert service_of(client).backend.processor.rejected == []


def test_feedback_moves_the_posterior_toward_the_rewarded_level(client: TestClient) -> None:
    # Reward only brief answers: the learned preference for length must become "brief".
    for _ in range(40):
        out = decide(client)
        brief = out["strategy"]["levels"]["length"] == "brief"
        feedback(client, decision_id=out["decision_id"], kind="reward", value=1.0 if brief else 0.0)
    wait_learner(client)
    length = profile(client)["preferences"]["length"]
    assert length["preferred"] == "brief"
    assert 0 < length["confidence"] <= 1


def test_duplicate_event_id_counts_once(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    body = {"decision_id": did, "kind": "rating", "value": 5, "event_id": "evt-1"}
    assert feedback(client, **body) == {"event_id": "evt-1", "status": "accepted"}
    assert feedback(client, **body) == {"event_id": "evt-1", "status": "duplicate"}
    wait_learner(client)
    assert profile(client)["evidence"]["feedback_events"] == 1


def test_the_same_event_id_in_two_tenants_is_two_events(client: TestClient) -> None:
    a = decide(client)["decision_id"]
    b = decide(client, headers=BETA)["decision_id"]
    assert (
        feedback(client, decision_id=a, kind="thumbs", value="up", event_id="same")["status"]
        == "accepted"
    )
    assert (
        feedback(client, BETA, decision_id=b, kind="thumbs", value="up", event_id="same")["status"]
        == "accepted"
    )


def test_unknown_decisions_get_404(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    cases = [
        {"user_id": "ana", "decision_id": "d_nope", "kind": "thumbs", "value": "up"},
        {"user_id": "bo", "decision_id": did, "kind": "thumbs", "value": "up"},  # not bo's
        {"user_id": "ana", "decision_id": did, "kind": "pairwise", "other_decision_id": "d_x"},
    ]
    for body in cases:
        r = client.post("/v1/feedback", json=body, headers=ACME)
        assert r.status_code == 404, (body, r.text)


def test_a_tenant_cannot_touch_another_tenants_users(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    feedback(client, decision_id=did, kind="thumbs", value="up")
    wait_learner(client)
    r = client.post(
        "/v1/feedback",
        json={"user_id": "ana", "decision_id": did, "kind": "thumbs", "value": "down"},
        headers=BETA,
    )
    assert r.status_code == 404
    assert client.get("/v1/users/ana/profile", headers=BETA).status_code == 404
    assert client.get("/v1/users/ana/export", headers=BETA).status_code == 404
    assert client.delete("/v1/users/ana", headers=BETA).status_code == 404
    # beta's own "ana" is a different user.
    decide(client, headers=BETA)
    assert profile(client, headers=BETA)["evidence"]["feedback_events"] == 0
    assert profile(client)["evidence"]["feedback_events"] == 1


BAD_FEEDBACK = [
    ({"kind": "thumbs", "value": "sideways"}, "value"),
    ({"kind": "rating", "value": 6}, "value"),
    ({"kind": "rating", "value": 0}, "value"),
    ({"kind": "reward", "value": 1.5}, "value"),
    ({"kind": "implicit", "signals": ["liked"]}, "signals"),
    ({"kind": "implicit", "dwell_ms": -1}, "dwell_ms"),
    ({"kind": "pairwise"}, "other_decision_id"),
    ({"kind": "stars", "value": 3}, "kind"),
    ({"value": "up"}, "kind"),
]


def test_malformed_feedback_gets_422_naming_the_field(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    for body, name in BAD_FEEDBACK:
        r = client.post(
            "/v1/feedback", json={"user_id": "ana", "decision_id": did, **body}, headers=ACME
        )
        assert r.status_code == 422, (body, r.text)
        assert any(name in map(str, e["loc"]) or name in e["msg"] for e in r.json()["detail"]), (
            body,
            r.json(),
        )


def test_decisions_without_feedback_get_the_default_reward(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(wait_window_s=0.2, default_reward=0.0)
    quiet = decide(client)["decision_id"]
    answered = decide(client)["decision_id"]
    feedback(client, decision_id=answered, kind="thumbs", value="up")
    assert wait_until(lambda: profile(client)["evidence"]["default_rewards"] == 1)
    ev = profile(client)["evidence"]
    assert ev["feedback_events"] == 1 and ev["decisions"] == 2
    service = service_of(client)
    A = service.backend.processor.engine.users.get("acme/ana")["A"]
    assert np.isfinite(A).all()
    assert quiet in service.backend.processor.pending("acme/ana")
