"""Profiles: read, pin, export, delete, and a restart that resumes where it stopped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from streaming.sqlite.checkpoints import Checkpoints
from tests.api.conftest import ACME, decide, service_of, wait_learner
from tests.api.test_feedback import feedback, profile


def test_unknown_user_profile_is_404(client: TestClient) -> None:
    assert client.get("/v1/users/ghost/profile", headers=ACME).status_code == 404
    assert client.get("/v1/users/ghost/export", headers=ACME).status_code == 404
    assert client.delete("/v1/users/ghost", headers=ACME).status_code == 404


def test_profile_shape(client: TestClient) -> None:
    decide(client)
    p = profile(client)
    assert p["user_id"] == "ana" and p["pins"] == {}
    assert set(p["preferences"]) == {"depth", "tone", "format", "length"}
    for pref in p["preferences"].values():
        assert pref["preferred"] in pref["levels"] and 0 <= pref["confidence"] <= 1
    assert p["last_seen"] is not None


def test_pins_constrain_decisions_and_can_be_cleared(client: TestClient) -> None:
    r = client.patch("/v1/users/ana/profile", json={"pins": {"length": "brief"}}, headers=ACME)
    assert r.status_code == 200 and r.json()["pins"] == {"length": "brief"}
    for _ in range(15):
        assert decide(client)["strategy"]["levels"]["length"] == "brief"
    r = client.patch("/v1/users/ana/profile", json={"pins": {"length": None}}, headers=ACME)
    assert r.json()["pins"] == {}
    lengths = {decide(client)["strategy"]["levels"]["length"] for _ in range(60)}
    assert len(lengths) > 1


def test_bad_pins_get_422_naming_the_dimension(client: TestClient) -> None:
    for pins, loc in (
        ({"length": "epic"}, ["body", "pins", "length"]),
        ({"colour": "red"}, ["body", "pins", "colour"]),
        ({"colour": None}, ["body", "pins", "colour"]),
    ):
        r = client.patch("/v1/users/ana/profile", json={"pins": pins}, headers=ACME)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text


def test_export_holds_everything_stored(client: TestClient) -> None:
    did = decide(client, audit={"region": "eu"})["decision_id"]
    feedback(client, decision_id=did, kind="thumbs", value="up")
    client.patch("/v1/users/ana/profile", json={"pins": {"tone": "warm"}}, headers=ACME)
    wait_learner(client)
    r = client.get("/v1/users/ana/export", headers=ACME)
    assert r.status_code == 200
    out = r.json()
    assert out["profile"]["pins"] == {"tone": "warm"}
    kinds = [e["kind"] for e in out["events"]]
    assert kinds == ["decision", "feedback", "profile"]
    assert out["events"][0]["payload"]["audit"] == {"region": "eu"}
    assert out["state"]["counters"]["feedback_events"] == 1
    assert did in out["state"]["pending"]


def test_delete_erases_state_pins_and_log_rows(client: TestClient) -> None:
    did = decide(client)["decision_id"]
    feedback(client, decision_id=did, kind="thumbs", value="up")
    client.patch("/v1/users/ana/profile", json={"pins": {"tone": "warm"}}, headers=ACME)
    decide(client, "bo")
    wait_learner(client)
    assert client.delete("/v1/users/ana", headers=ACME).status_code == 204
    assert client.get("/v1/users/ana/profile", headers=ACME).status_code == 404
    assert client.get("/v1/users/ana/export", headers=ACME).status_code == 404
    store = service_of(client).backend.store
    assert list(store.iter_events(tenant="acme", user_id="ana")) == []
    assert Checkpoints(store).state("acme/ana") is None
    assert all(row["user_id"] != "ana" for row in store.decision_log())
    r = client.post(
        "/v1/feedback",
        json={"user_id": "ana", "decision_id": did, "kind": "thumbs", "value": "up"},
        headers=ACME,
    )
    assert r.status_code == 404
    assert profile(client, "bo")["evidence"]["decisions"] == 1  # others untouched


def test_restart_resumes_where_it_stopped(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    data = tmp_path / "restart"
    first = make_client(data)
    ids = [decide(first)["decision_id"] for _ in range(5)]
    for did in ids:
        feedback(first, decision_id=did, kind="rating", value=5)
    first.patch("/v1/users/ana/profile", json={"pins": {"format": "bullets"}}, headers=ACME)
    wait_learner(first)
    before = profile(first)
    first.__exit__(None, None, None)
    second = make_client(data)
    after = profile(second)
    assert after["evidence"] == before["evidence"]
    assert after["pins"] == {"format": "bullets"}
    assert after["preferences"] == before["preferences"]
    # Resent feedback after the restart is still recognised as a duplicate.
    r = second.post(
        "/v1/feedback",
        json={
            "user_id": "ana",
            "decision_id": ids[0],
            "kind": "rating",
            "value": 5,
            "event_id": "x1",
        },
        headers=ACME,
    )
    assert r.json()["status"] == "accepted"
    assert decide(second)["strategy"]["levels"]["format"] == "bullets"


def test_dev_key_is_created_once_on_a_fresh_data_dir(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client(tmp_path / "dev", api_keys={})
    key = service_of(client).dev_key
    assert key and key.startswith("attune-dev-")
    r = client.post(
        "/v1/decisions", json={"user_id": "u"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200
    client.__exit__(None, None, None)
    again = make_client(tmp_path / "dev", api_keys={})
    assert service_of(again).dev_key is None  # printed only the first time
    r = again.post(
        "/v1/decisions", json={"user_id": "u"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200
