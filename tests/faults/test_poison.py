"""Poison events in the embedded log: every reader moves what it cannot decode aside, with the
reason, and goes on; a restart recovers, a CF model installs, ``attune train`` and
``attune export-log`` run."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path

import httpx

from tests.attune_serve import OPERATOR, ServeProcess
from tests.faults.server import cli, traffic

SETTINGS = "[models]\npoll_interval_s = 0.2\n"


def _poison(path: Path, decision_id: str) -> None:
    """Rows an older attune (or a bug) could have written, then one good feedback after them."""
    strings, nan = ["x"] * 40, float("nan")
    rows = [
        # An audit integer past 64 bits, stored by the standard json module: some orjson
        # versions refuse it, others read it as a float (the learner then rejects the event).
        ("decision", "p1", json.dumps(_event("decision", "p1", {"arm": 1, "audit": {"n": 2**70}}))),
        # A NaN the standard library writes and strict readers reject.
        ("feedback", "p2", json.dumps(_event("feedback", "p2", {"kind": "reward", "value": nan}))),
        # A version this attune does not read.
        ("profile", "p3", json.dumps({**_event("profile", "p3", {"op": "pin"}), "version": 9})),
        # Not JSON at all.
        ("decision", "p4", '{"kind": "decision", "event_id": "p4", "payl'),
        # Decodes, but its context is unusable: the learner and the model hooks reject it.
        ("decision", "p5", json.dumps(_event("decision", "p5", {"arm": 1, "context": strings}))),
    ]
    good = _event(
        "feedback", "after", {"decision_id": decision_id, "kind": "thumbs", "value": "up"}
    )
    db = sqlite3.connect(path)
    with db:
        for kind, event_id, body in [*rows, ("feedback", "after", json.dumps(good))]:
            db.execute(
                "INSERT INTO events (tenant, event_id, user_id, kind, ts, body) "
                "VALUES ('acme', ?, 'u0', ?, ?, ?)",
                (event_id, kind, time.time(), body),
            )
    db.close()


def _event(kind: str, event_id: str, payload: dict) -> dict:
    return {
        "kind": kind,
        "event_id": event_id,
        "tenant": "acme",
        "user_id": "u0",
        "ts": time.time(),
        "payload": payload,
        "version": 1,
    }


def test_poison_events_of_each_kind_then_a_restart_recovers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data, settings=SETTINGS).start()
    try:
        with server.client() as http:
            acked = traffic(http, users=24, turns=4)
            last = http.post("/v1/decisions", json={"user_id": "u0"}).json()["decision_id"]
    finally:
        server.stop()
    _poison(data / "attune.sqlite", last)

    server.start()  # recovery replays the poison: it must not stop there
    try:
        with server.client() as http:
            assert http.get("/healthz").status_code == 200
            evidence = http.get("/v1/users/u0/profile").json()["evidence"]
            assert evidence["feedback_events"] == acked["u0"] + 1  # the one after the poison
        db = sqlite3.connect(data / "attune.sqlite")
        moved = dict(db.execute("SELECT event_id, reason FROM quarantine"))
        left = {e for (e,) in db.execute("SELECT event_id FROM events WHERE event_id LIKE 'p%'")}
        db.close()
        assert {"p2", "p3", "p4"} <= moved.keys() <= {"p1", "p2", "p3", "p4"}, moved
        assert all(r.startswith("undecodable event") for r in moved.values()), moved
        assert "version 9" in moved["p3"] and "not valid JSON" in moved["p4"]
        assert left == {"p1", "p5"} - moved.keys()  # decodable: kept, the learner rejected them

        # A CF model trains on the log with the poison in it, and the running server installs
        # it (its install replays the log too).
        train = cli(
            "train", "--min-users", "10", "--clusters", "2", "--factors", "4",
            "--iterations", "3", "--no-progress", data_dir=data,
        )  # fmt: skip
        assert train.returncode == 0, train.stderr
        version = int(re.search(r"model v(\d+)", train.stderr).group(1))  # type: ignore[union-attr]

        def installed() -> bool:
            text = httpx.get(f"{server.url}/metrics", headers=OPERATOR).text
            found = re.search(r"^attune_model_version (\S+)$", text, re.M)
            return found is not None and float(found.group(1)) == version

        deadline = time.monotonic() + 30
        while not installed() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert installed()
        exported = cli("export-log", "--data-dir", str(data), "--out", str(tmp_path / "l.parquet"))
        assert exported.returncode == 0, exported.stderr
        assert "wrote 97 decisions" in exported.stderr  # 24 x 4 + 1; the poisoned ones left out
    finally:
        server.stop()
    server.start()  # and once more: the quarantined rows are out of the log
    server.stop()
