"""Operations endpoints: health, readiness, metrics, catalog, docs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ACME, OPERATOR, decide, wait_learner
from tests.api.test_feedback import feedback


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] is True


def test_metrics_count_decisions_feedback_latency_and_lag(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    feedback(client, decision_id=did, kind="thumbs", value="up")
    feedback(client, decision_id=did, kind="rating", value=3)
    wait_learner(client)
    text = client.get("/metrics", headers=OPERATOR).text
    assert 'attune_decisions_total{tenant="acme"} 1.0' in text
    assert 'attune_feedback_total{kind="thumbs",tenant="acme"} 1.0' in text
    assert 'attune_feedback_total{kind="rating",tenant="acme"} 1.0' in text
    assert "attune_decision_latency_seconds_bucket" in text
    assert "attune_learner_lag_events 0.0" in text


def test_catalog_and_docs(client: TestClient) -> None:
    c = client.get("/v1/catalog").json()
    assert c["n_arms"] == len(c["arms"]) and set(c["dimensions"]) >= {"depth", "length"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/feedback" in spec["paths"] and "/v1/decisions" in spec["paths"]
    assert client.get("/v1/users/x/profile", headers=ACME).status_code == 404


def test_metrics_need_an_operator_key(client: TestClient) -> None:
    decide(client)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=ACME).status_code == 403  # a tenant's key is not one
    assert client.get("/metrics", headers=OPERATOR).status_code == 200


@pytest.mark.parametrize("headers", [{}, ACME])
def test_public_metrics_never_name_tenants(
    make_client: Callable[..., TestClient], headers: dict[str, str]
) -> None:
    client = make_client(metrics_public=True)
    decide(client)
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200
    assert "attune_decisions_total 1.0" in r.text and "acme" not in r.text
    assert 'tenant="acme"' in client.get("/metrics", headers=OPERATOR).text
