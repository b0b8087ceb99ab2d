"""Requests an attacker would send: ids that no route can address, audit values that break
readers downstream, a message built to make the featurizer slow."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bandit.features import MAX_FEATURIZED_CHARS, featurize
from tests.api.conftest import ACME, decide
from tests.faults.long_messages import LONG_MESSAGES

BAD_IDS = ["a/b", "/", "tab\there", "nul\x00", "bell\x07", "del\x7f", "c1\x85"]


@pytest.mark.parametrize("user_id", BAD_IDS)
def test_ids_with_a_slash_or_control_characters_get_422(client: TestClient, user_id: str) -> None:
    r = client.post("/v1/decisions", json={"user_id": user_id}, headers=ACME)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "user_id"]
    did = decide(client, "ana")["decision_id"]
    for field in ("user_id", "event_id", "decision_id"):
        body = {"user_id": "ana", "decision_id": did, "kind": "thumbs", "value": "up"}
        body[field] = user_id
        r = client.post("/v1/feedback", json=body, headers=ACME)
        assert r.status_code == 422, (field, r.text)
    r = client.post("/v1/decisions", json={"user_id": "ana", "session_id": user_id}, headers=ACME)
    assert r.status_code == 422


def test_control_characters_in_a_path_id_get_422(client: TestClient) -> None:
    decide(client, "ana")
    assert client.get("/v1/users/an%07a/profile", headers=ACME).status_code == 422
    assert client.get("/v1/users/ana/profile", headers=ACME).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"user_id": "ana", "audit": {"n": 18446744073709551616}}',  # past 64 bits
        b'{"user_id": "ana", "audit": {"n": 9007199254740993}}',  # past 2^53
        b'{"user_id": "ana", "audit": {"n": NaN}}',
        b'{"user_id": "ana", "audit": {"n": Infinity}}',
        b'{"user_id": "ana", "audit": {"n": 1e400}}',
        b'{"user_id": "ana", "audit": {"n": {"nested": 1}}}',
        b'{"user_id": "ana", "audit": {"n": [1, 2]}}',
        b'{"user_id": "ana", "audit": {"n": null}}',
        b'{"user_id": "ana", "audit": {"n": "' + b"x" * 257 + b'"}}',
        b'{"user_id": "ana", "features": {"n": 18446744073709551616}}',
    ],
)
def test_audit_values_every_reader_cannot_hold_get_422(client: TestClient, raw: bytes) -> None:
    headers = {**ACME, "Content-Type": "application/json"}
    r = client.post("/v1/decisions", content=raw, headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] in (["body", "audit"], ["body", "features"])


def test_audit_values_within_bounds_are_accepted(client: TestClient) -> None:
    audit = {"g": "x" * 256, "b": True, "i": 2**53, "f": -1.5e15, "z": 0}
    r = client.post("/v1/decisions", json={"user_id": "ana", "audit": audit}, headers=ACME)
    assert r.status_code == 200, r.text


def test_too_many_audit_keys_get_422(client: TestClient) -> None:
    audit = {f"k{i}": i for i in range(33)}
    r = client.post("/v1/decisions", json={"user_id": "ana", "audit": audit}, headers=ACME)
    assert r.status_code == 422


@pytest.mark.parametrize("message", LONG_MESSAGES.values(), ids=LONG_MESSAGES.keys())
def test_a_1mb_message_is_featurized_from_its_head_alone(message: str) -> None:
    """Featurizing reads a bounded prefix, so its cost cannot grow with the message (the time
    of a 1 MB message is measured by ``benchmarks/bench_core.py``, against its head's)."""
    x_long, x_head = featurize([message, message[:MAX_FEATURIZED_CHARS]])
    assert len(message) > 100 * MAX_FEATURIZED_CHARS
    assert (x_long == x_head).all()


def test_only_the_head_of_a_long_message_is_read() -> None:
    head = "How do I reverse a list in Python? " * 80
    x_long, x_head = featurize([head + "zebra " * 100_000, head[:2000]])
    length = 7  # the one feature that reads the whole message (it saturates at 2,000)
    assert (x_long[:length] == x_head[:length]).all()
    assert (x_long[length + 1 :] == x_head[length + 1 :]).all()
