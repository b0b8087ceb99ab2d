"""Erasure, read as raw bytes: after ``DELETE /v1/users/{id}`` nothing of the user is left in
the data folder of ``attune serve`` (the SQLite file with its free pages, its WAL and shared
memory file, the exports and the kept CF models), and the same id coming back starts fresh.

Every trace is first found in the same files before the delete, so the scan can fail.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from collab import CFModel
from collab.watch import load_latest
from streaming.user_record import decode
from tests.attune_serve import OPERATOR, ServeProcess
from tests.faults.erasable import KEY, ROLE_FEATURE, USER, give_history, user_traces
from tests.faults.server import cli, traffic
from tests.faults.traces import find, folder_contents

SETTINGS = "[models]\npoll_interval_s = 0.2\n" + ROLE_FEATURE


def _wait(predicate: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _train_and_install(server: ServeProcess, data: Path) -> CFModel:
    train = cli(
        "train", "--min-users", "10", "--clusters", "2", "--factors", "4",
        "--iterations", "3", "--no-progress", data_dir=data,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    model = load_latest(data / "models")
    assert model is not None

    def installed() -> bool:
        text = httpx.get(f"{server.url}/metrics", headers=OPERATOR).text
        found = re.search(r"^attune_model_version (\S+)$", text, re.M)
        return found is not None and float(found.group(1)) == model.version

    _wait(installed)
    return model


def _saved_state(data: Path) -> dict[str, np.ndarray]:
    """The user's engine arrays as the learner checkpointed them after the model install
    (which gives the user a prior mean from their factors)."""
    engine: dict[str, np.ndarray] = {}

    def saved() -> bool:
        db = sqlite3.connect(data / "attune.sqlite")
        try:
            rows = db.execute("SELECT data FROM user_state WHERE key=?", (KEY,)).fetchall()
        finally:
            db.close()
        if rows:
            engine.update(decode(bytes(rows[0][0]))["engine"])
        return bool(engine) and bool(np.any(engine["prior_mean"]))

    _wait(saved)
    return engine


def _others_saved(data: Path) -> bytes:
    """Every other user's saved record, as the file holds them."""
    db = sqlite3.connect(data / "attune.sqlite")
    try:
        rows = db.execute("SELECT data FROM user_state WHERE key != ?", (KEY,)).fetchall()
    finally:
        db.close()
    return b"\0".join(bytes(r[0]) for r in rows)


def _profile(http: httpx.Client, user: str) -> dict:
    r = http.get(f"/v1/users/{user}/profile")
    assert r.status_code == 200, r.text
    return r.json()


def _assert_fresh(http: httpx.Client, control: str) -> None:
    """The erased id, back with one decision, looks like a user never seen before with one."""
    _wait(lambda: all(_profile(http, u)["evidence"]["decisions"] == 1 for u in (USER, control)))
    again, fresh = _profile(http, USER), _profile(http, control)
    assert again["pins"] == {} and again["features"] == {} and again["notes"] == []
    for field in ("evidence", "cluster", "preferences"):
        assert again[field] == fresh[field], field
    assert http.get(f"/v1/users/{USER}/notes").json()["notes"] == []


def test_an_erased_user_leaves_no_bytes_behind_and_comes_back_fresh(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServeProcess(data, settings=SETTINGS).start()
    control = "never-seen-0b1d"
    try:
        with server.client() as http:
            traffic(http, users=12, turns=4)
            give_history(http)
            model = _train_and_install(server, data)
            out = str(data / "exports" / "log.parquet")
            exported = cli("export-log", "--data-dir", str(data), "--out", out)
            assert exported.returncode == 0, exported.stderr
            traces = user_traces(model, _saved_state(data)["B"], _others_saved(data))
            old = _profile(http, USER)
            assert old["pins"] and old["features"] and old["notes"], old

            # The scan finds every trace first, the id in each kind of file.
            before = find(folder_contents(data), traces)
            assert before.keys() == traces.keys(), f"not found: {traces.keys() - before.keys()}"
            kinds = {re.sub(r"-\d+", "", w) for w in before["id"]}
            assert {"exports/interactions.parquet", "exports/log.parquet"} <= kinds
            # The store's rows are in the file or still in the WAL, as checkpoints fell.
            assert kinds & {"attune.sqlite", "attune.sqlite-wal"}, kinds
            assert "models/cf.npz" in kinds and before["factors"] == [
                f"models/cf-{model.version}.npz"
            ]

            # The promise holds when the delete returns, with the server running.
            assert http.delete(f"/v1/users/{USER}").status_code == 204
            assert find(folder_contents(data), traces) == {}

            # The same id again, while the installed model still holds their row in memory.
            for user in (USER, control):
                r = http.post("/v1/decisions", json={"user_id": user, "message": "hello"})
                assert r.status_code == 200, r.text
            _assert_fresh(http, control)
    finally:
        server.stop()
    # Stopped, the id is back (the new decision), nothing of the old user is.
    assert find(folder_contents(data), {k: v for k, v in traces.items() if k != "id"}) == {}
    server.start()  # recovery and the scrubbed model bring nothing back either
    try:
        with server.client() as http:
            _assert_fresh(http, control)
    finally:
        server.stop()
