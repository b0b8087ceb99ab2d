"""Declared product features over HTTP: validation, memory of user features, the overflow block
for undeclared keys, and audit attributes that never reach a decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from bandit import ContextSpec, DeclaredFeature, EngineConfig
from tests.api.conftest import ACME, decide, service_of, wait_learner

FEATURES = (
    DeclaredFeature("role", "categorical", "user", levels=("engineer", "manager", "student")),
    DeclaredFeature("expertise", "numeric", "user", range=(0.0, 10.0)),
    DeclaredFeature("beta_user", "boolean", "user"),
    DeclaredFeature("topics", "tags", "request", levels=("ml", "web", "cooking")),
    DeclaredFeature("surface", "categorical", "request", required=True, levels=("chat", "ide")),
)


def declared(strict: bool = False) -> EngineConfig:
    return EngineConfig(context=ContextSpec(FEATURES, strict=strict))


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(engine=declared())


def body(**features: Any) -> dict[str, Any]:
    return {"user_id": "ana", "message": "hi", "features": {"surface": "chat", **features}}


BAD = [
    ({"role": "astronaut"}, "role", "expected one of engineer, manager, student"),
    ({"role": 3}, "role", "expected one of"),
    ({"expertise": 11}, "expertise", "in [0, 10]"),
    ({"expertise": "high"}, "expertise", "a finite number"),
    ({"beta_user": "yes"}, "beta_user", "true or false"),
    ({"topics": ["ml", "knitting"]}, "topics", "unknown tag 'knitting'"),
    ({"topics": "ml"}, "topics", "a list of tags"),
    ({"surface": None}, "surface", ""),
]


@pytest.mark.parametrize(("features", "name", "message"), BAD)
def test_bad_declared_features_are_a_422_naming_the_feature(
    client: TestClient, features: dict[str, Any], name: str, message: str
) -> None:
    r = client.post("/v1/decisions", json=body(**features), headers=ACME)
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["loc"][-2:] == ["features", name], error
    assert message in error["msg"] or message == ""


def test_a_missing_required_feature_is_a_422(client: TestClient) -> None:
    r = client.post(
        "/v1/decisions", json={"user_id": "ana", "message": "hi", "features": {}}, headers=ACME
    )
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"][-2:] == ["features", "surface"] and "required" in error["msg"]


@pytest.mark.parametrize(
    ("features", "name"),
    [({"role": "pilot"}, "role"), ({"topics": ["ml"]}, "topics"), ({"colour": 1}, "colour")],
)
def test_profile_features_must_be_declared_user_features(
    client: TestClient, features: dict[str, Any], name: str
) -> None:
    r = client.patch("/v1/users/ana/profile", json={"features": features}, headers=ACME)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-2:] == ["features", name]


def test_user_features_are_remembered_shown_exported_and_erased(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    client = make_client(data, engine=declared())
    decide(client, **body(role="engineer", topics=["ml"]))
    r = client.patch("/v1/users/ana/profile", json={"features": {"expertise": 7}}, headers=ACME)
    assert r.status_code == 200
    assert r.json()["features"] == {"role": "engineer", "expertise": 7}  # request-scope: no
    # remembered: a later request without them is decided with them
    later = decide(client, user_id="ana", message="hi", features={"surface": "ide"})
    wait_learner(client)
    event = service_of(client).backend.store.get_event("acme", later["decision_id"])
    assert event is not None
    names = service_of(client).engine.context.names
    assert event.decision.context[names.index("role=engineer")] == 1.0
    assert event.decision.context[names.index("expertise")] == pytest.approx(0.7)
    export = client.get("/v1/users/ana/export", headers=ACME).json()
    assert export["profile"]["features"] == {"role": "engineer", "expertise": 7}
    assert export["state"]["features"] == {"role": "engineer", "expertise": 7}
    client.__exit__(None, None, None)  # a restart keeps them (checkpoint and log)
    again = make_client(data, engine=declared())
    profile = again.get("/v1/users/ana/profile", headers=ACME).json()
    assert profile["features"] == {"role": "engineer", "expertise": 7}
    # null forgets one
    r = again.patch("/v1/users/ana/profile", json={"features": {"role": None}}, headers=ACME)
    assert r.json()["features"] == {"expertise": 7}
    assert again.delete("/v1/users/ana", headers=ACME).status_code == 204
    assert again.get("/v1/users/ana/profile", headers=ACME).status_code == 404
    decide(again, **body())
    assert again.get("/v1/users/ana/profile", headers=ACME).json()["features"] == {}


def test_undeclared_keys_go_to_the_overflow_block(client: TestClient) -> None:
    out = decide(client, **body(colour=0.7, plan="pro", tags=["a", "b"]))
    wait_learner(client)
    event = service_of(client).backend.store.get_event("acme", out["decision_id"])
    assert event is not None
    spec = service_of(client).engine.context
    context = np.array(event.decision.context)
    overflow = context[spec.n_columns - spec.overflow :]
    assert np.abs(overflow).sum() > 0  # never silently dropped
    declared_cols = context[16 : spec.n_columns - spec.overflow]
    assert declared_cols[spec.names[16:].index("surface=chat")] == 1.0


def test_undeclared_keys_are_a_422_in_strict_mode(make_client: Callable[..., TestClient]) -> None:
    client = make_client(engine=declared(strict=True))
    r = client.post("/v1/decisions", json=body(colour=0.7), headers=ACME)
    assert r.status_code == 422
    [error] = r.json()["detail"]
    assert error["loc"][-2:] == ["features", "colour"] and "not declared" in error["msg"]


def test_audit_attributes_never_change_a_decision(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    plain = make_client(tmp_path / "a", engine=declared())
    audited = make_client(tmp_path / "b", engine=declared())
    audit = {"age_band": "50+", "locale_group": "ja", "role": "manager"}
    for i in range(30):
        request = body(role="engineer" if i % 2 else "manager")
        request["user_id"] = f"u{i % 5}"
        a = decide(plain, **request)
        b = decide(audited, **request, audit=audit)
        assert (a["strategy"], a["propensity"]) == (b["strategy"], b["propensity"])
        for client, out in ((plain, a), (audited, b)):
            client.post(
                "/v1/feedback",
                json={
                    "user_id": request["user_id"],
                    "decision_id": out["decision_id"],
                    "kind": "reward",
                    "value": (i % 3) / 2,
                },
                headers=ACME,
            )
        wait_learner(plain)
        wait_learner(audited)
