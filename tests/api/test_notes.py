"""Memory notes through the HTTP API: supersede by key with history, TTL, pins, retrieval into
directives, explanations that name notes, export, erasure and restarts (embedded store)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ACME, BETA, decide, service_of, wait_learner, wait_until


def add(client: TestClient, user: str = "ana", **body: Any) -> dict:
    r = client.post(f"/v1/users/{user}/notes", json=body, headers=ACME)
    assert r.status_code == 201, r.text
    return r.json()


def notes(client: TestClient, user: str = "ana") -> dict[str, dict]:
    r = client.get(f"/v1/users/{user}/notes", headers=ACME)
    assert r.status_code == 200, r.text
    return {n["note_id"]: n for n in r.json()["notes"]}


def used(decision: dict) -> list[str]:
    """The note ids a decision's explanation names."""
    return [r["note_id"] for r in decision["explanation"] if r["kind"] == "note"]


def test_a_newer_note_with_the_same_key_supersedes_the_older(client: TestClient) -> None:
    old = add(client, text="I am a biology student", key="background", source="user")
    new = add(client, text="I work as a data engineer on Spark pipelines", key="background")
    other = add(client, text="Prefers answers in British English", key="spelling")
    got = notes(client)
    assert got[old["note_id"]]["status"] == "superseded"
    assert got[old["note_id"]]["valid_to"] >= got[old["note_id"]]["updated_at"]
    assert got[old["note_id"]]["superseded_by"] == new["note_id"]
    assert got[new["note_id"]]["status"] == "live" and got[other["note_id"]]["status"] == "live"
    profile = client.get("/v1/users/ana/profile", headers=ACME).json()
    by_id = {n["note_id"]: n for n in profile["notes"]}
    assert by_id[old["note_id"]]["superseded_by"] == new["note_id"]
    d = decide(client, message="As a student of biology, how do Spark data pipelines work?")
    assert used(d) == [new["note_id"]]
    assert "data engineer" in d["directives"]["system_prompt"]
    assert "biology student" not in d["directives"]["system_prompt"]


def test_an_edit_keeps_the_old_text_in_history(client: TestClient) -> None:
    n = add(client, text="Uses Go at work", key="language")
    r = client.patch(
        f"/v1/users/ana/notes/{n['note_id']}", json={"text": "Uses Rust at work"}, headers=ACME
    )
    assert r.status_code == 200, r.text
    edited = r.json()
    assert edited["version"] == 2 and edited["text"] == "Uses Rust at work"
    assert edited["key"] == "language" and [h["text"] for h in edited["history"]] == [
        "Uses Go at work"
    ]
    d = decide(client, message="How do I read a file in Rust?")
    assert used(d) == [n["note_id"]] and d["directives"]["notes"] == ["Uses Rust at work"]
    newer = add(client, text="Uses Zig now", key="language")
    r = client.patch(f"/v1/users/ana/notes/{n['note_id']}", json={"text": "x"}, headers=ACME)
    assert r.status_code == 409 and newer["note_id"] in r.text


def test_expired_notes_stop_being_retrieved_at_once_and_retention_deletes_them(
    client: TestClient,
) -> None:
    short = add(client, text="Is travelling in Kyoto this week", ttl_s=1.5)
    keep = add(client, text="Lives in Kyoto")
    assert short["expires_at"] == pytest.approx(short["created_at"] + 1.5)
    assert set(used(decide(client, message="What to eat in Kyoto?"))) == {
        short["note_id"],
        keep["note_id"],
    }
    time.sleep(1.6)
    assert used(decide(client, message="What to eat in Kyoto?")) == [keep["note_id"]]
    # The learner's expiry sweep (each second) deletes it for good.
    assert wait_until(lambda: short["note_id"] not in notes(client), timeout=10)
    assert keep["note_id"] in notes(client)


def test_pinned_notes_are_always_included_and_named(client: TestClient) -> None:
    pinned = add(client, text="Answer in metric units", pinned=True)
    add(client, text="Has two cats")
    d = decide(client, message="How tall is Mount Everest?")
    assert d["directives"]["notes"] == ["Answer in metric units"]
    [reason] = [r for r in d["explanation"] if r["kind"] == "note"]
    assert reason["note_id"] == pinned["note_id"] and "metric units" in reason["text"]
    assert "Answer in metric units" in d["directives"]["messages"][0]["content"]


def test_retrieval_ranks_notes_in_the_decision_locale_cjk_included(client: TestClient) -> None:
    ids = {
        text: add(client, text=text)["note_id"]
        for text in (
            "用户是一名高中数学老师",
            "ユーザーは東京で看護師として働いている",
            "Enjoys hiking on weekends",
            "사용자는 파이썬 초보자입니다",
            "Owns a small bakery",
        )
    }
    d = decide(client, message="请用数学老师能懂的方式解释", locale="zh-CN")
    assert used(d)[0] == ids["用户是一名高中数学老师"]
    assert "关于该用户的已知信息：\n- 用户是一名高中数学老师" in d["directives"]["system_prompt"]
    d = decide(client, message="看護師の夜勤のコツは？", locale="ja")
    assert used(d)[0] == ids["ユーザーは東京で看護師として働いている"]
    assert "このユーザーについて分かっていること：" in d["directives"]["system_prompt"]
    assert any("「ユーザーは東京で看護師" in r["text"] for r in d["explanation"])
    d = decide(client, message="파이썬 리스트는 어떻게 정렬하나요?", locale="ko")
    assert used(d)[0] == ids["사용자는 파이썬 초보자입니다"]
    d = decide(client, message="What is the capital of France?")
    assert used(d) == [] and d["directives"]["notes"] == []


def test_a_deleted_note_is_no_longer_retrieved(client: TestClient) -> None:
    n = add(client, text="Is allergic to peanuts")
    assert used(decide(client, message="Is peanuts butter safe?")) == [n["note_id"]]
    assert client.delete(f"/v1/users/ana/notes/{n['note_id']}", headers=ACME).status_code == 204
    assert used(decide(client, message="Is peanuts butter safe?")) == []
    assert notes(client) == {}
    path = f"/v1/users/ana/notes/{n['note_id']}"
    assert client.delete(path, headers=ACME).status_code == 404
    assert client.patch(path, json={"text": "x"}, headers=ACME).status_code == 404


@pytest.mark.parametrize(
    "body,loc",
    [
        ({"text": ""}, ["body", "text"]),
        ({"text": "x" * 2001}, ["body", "text"]),
        ({"text": "ok", "key": "Not A Key"}, ["body", "key"]),
        ({"text": "ok", "source": "telepathy"}, ["body", "source"]),
        ({"text": "ok", "ttl_s": -1}, ["body", "ttl_s"]),
        ({"text": "ok", "colour": "red"}, ["body", "colour"]),
    ],
)
def test_bad_notes_get_422_naming_the_field(client: TestClient, body: dict, loc: list) -> None:
    r = client.post("/v1/users/ana/notes", json=body, headers=ACME)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, r.text


def test_notes_are_per_tenant(client: TestClient) -> None:
    add(client, text="Secret of acme's user")
    assert client.get("/v1/users/ana/notes", headers=BETA).status_code == 404
    assert client.get("/v1/users/ghost/notes", headers=ACME).status_code == 404
    d = decide(client, headers=BETA, message="Secret of acme's user")
    assert d["directives"]["notes"] == []


def test_notes_are_exported_and_erased_with_the_user(client: TestClient) -> None:
    n = add(client, text="Works night shifts", key="schedule", ttl_s=3600)
    decide(client, message="Tips for night shifts?")
    wait_learner(client)
    out = client.get("/v1/users/ana/export", headers=ACME).json()
    assert out["state"]["notes"][n["note_id"]]["text"] == "Works night shifts"
    assert [e["payload"]["op"] for e in out["events"] if e["kind"] == "profile"] == ["note"]
    assert [r["note_id"] for r in out["state"]["recent"][0]["reasons"] if "note_id" in r] == [
        n["note_id"]
    ]
    assert client.delete("/v1/users/ana", headers=ACME).status_code == 204
    assert client.get("/v1/users/ana/notes", headers=ACME).status_code == 404
    assert service_of(client).backend.memory("acme/ana") is None
    assert decide(client, message="Tips for night shifts?")["directives"]["notes"] == []


def test_notes_survive_a_restart(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    data = tmp_path / "restart"
    first = make_client(data)
    old = add(first, text="Speaks Portuguese", key="language")
    new = add(first, text="Speaks Spanish and Portuguese", key="language")
    pinned = add(first, text="Prefers short answers", pinned=True)
    before = notes(first)
    first.__exit__(None, None, None)
    second = make_client(data)
    assert notes(second) == before
    assert before[old["note_id"]]["superseded_by"] == new["note_id"]
    d = decide(second, message="How do you say hello in Spanish?")
    assert used(d) == [new["note_id"], pinned["note_id"]]


def test_pause_decides_from_the_population_and_learns_nothing(client: TestClient) -> None:
    client.patch("/v1/users/ana/profile", json={"pins": {"length": "brief"}}, headers=ACME)
    add(client, text="Is a professional violinist", pinned=True)
    r = client.patch("/v1/users/ana/profile", json={"personalization": "paused"}, headers=ACME)
    assert r.status_code == 200 and r.json()["personalization"] == "paused"
    before = r.json()["preferences"]
    lengths = set()
    for _ in range(40):
        d = decide(client, message="Tell me about violins")
        lengths.add(d["strategy"]["levels"]["length"])
        assert d["directives"]["notes"] == [] and d["explanation"][0]["kind"] == "paused"
        r = client.post(
            "/v1/feedback",
            json={"user_id": "ana", "decision_id": d["decision_id"], "kind": "rating", "value": 5},
            headers=ACME,
        )
        assert r.status_code == 202
    assert len(lengths) > 1  # the pin is set aside while paused
    wait_learner(client)
    p = client.get("/v1/users/ana/profile", headers=ACME).json()
    assert p["evidence"]["feedback_events"] == 40  # counted, not learned
    assert p["preferences"] == before and p["pins"] == {"length": "brief"}
    r = client.patch("/v1/users/ana/profile", json={"personalization": "active"}, headers=ACME)
    assert r.json()["personalization"] == "active"
    d = decide(client, message="Tell me about violins")
    assert d["strategy"]["levels"]["length"] == "brief"
    assert d["directives"]["notes"] == ["Is a professional violinist"]
    fb = {"user_id": "ana", "decision_id": d["decision_id"], "kind": "rating", "value": 5}
    client.post("/v1/feedback", json=fb, headers=ACME)
    wait_learner(client)
    after = client.get("/v1/users/ana/profile", headers=ACME).json()["preferences"]
    assert after != before  # learning again


def test_pause_survives_a_restart(make_client: Callable[..., TestClient], tmp_path: Path) -> None:
    first = make_client(tmp_path / "p")
    decide(first)
    first.patch("/v1/users/ana/profile", json={"personalization": "paused"}, headers=ACME)
    first.__exit__(None, None, None)
    second = make_client(tmp_path / "p")
    profile = second.get("/v1/users/ana/profile", headers=ACME).json()
    assert profile["personalization"] == "paused"
    assert decide(second)["explanation"][0]["kind"] == "paused"
