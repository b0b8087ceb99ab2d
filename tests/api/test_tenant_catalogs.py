"""A tenant with a catalog of its own: decisions, training, simulation, evaluation and export
use that catalog, in a lane (store, learner, models) of its own, while another tenant keeps
the server's catalog.

The app is real (stores, learner threads, model watchers); ``attune train``, ``simulate``,
``export-log`` and ``evaluate`` run as processes on the same settings file, as an operator
would run them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.settings import Settings, SettingsError, load_settings
from bandit import Catalog
from collab import load_latest
from tests.api.conftest import ACME, BETA, decide, service_of, wait_until
from tests.api.test_train_catalog import acme_catalog

REPO = Path(__file__).resolve().parents[2]
BETA_TONES = {"friendly", "plain", "blunt"}
USERS, TURNS = 24, 4


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv], cwd=REPO, capture_output=True, text=True
    )


def _traffic(client: TestClient, headers: dict[str, str]) -> None:
    """Two personas: even users like brief answers, odd users thorough ones."""
    for u in range(USERS):
        liked = "brief" if u % 2 == 0 else "thorough"
        for t in range(TURNS):
            d = decide(client, f"u{u}", headers=headers, message=f"question {t}")
            up = d["strategy"]["levels"]["length"] == liked
            body = {"user_id": f"u{u}", "decision_id": d["decision_id"], "kind": "thumbs"}
            r = client.post("/v1/feedback", json={**body, "value": "up" if up else "down"},
                            headers=headers)  # fmt: skip
            assert r.status_code == 202, r.text


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(settings file, data folder, beta's catalog file)."""
    catalog = acme_catalog(tmp_path / "beta-catalog.toml")
    settings = tmp_path / "settings.toml"
    settings.write_text('[tenants.beta]\ncatalog = "beta-catalog.toml"\n', encoding="utf-8")
    return settings, tmp_path / "data", catalog


def test_each_tenant_decides_trains_simulates_and_evaluates_on_its_catalog(
    make_client: Callable[..., TestClient], setup: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    settings_file, data, catalog = setup
    tenant_catalogs = load_settings(settings_file, {}).tenant_catalogs
    assert tenant_catalogs == {"beta": catalog.resolve()}
    client = make_client(
        data, tenant_catalogs=tenant_catalogs, poll_interval_s=0.2, adapter_template="g{k}"
    )

    # Decisions: each tenant's strategies come from its own catalog.
    a, b = decide(client, "u0", headers=ACME), decide(client, "u0", headers=BETA)
    assert a["policy"]["version"] == "attune-default.v2"
    assert b["policy"]["version"] == "acme-support.v1"
    assert a["strategy"]["levels"]["tone"] not in BETA_TONES
    assert b["strategy"]["levels"]["tone"] in BETA_TONES
    assert client.get("/v1/catalog", headers=BETA).json()["name"] == "acme-support"
    assert client.get("/v1/catalog", headers=ACME).json()["name"] == "attune-default"
    assert client.get("/v1/catalog").json()["name"] == "attune-default"
    # A pin names a level of the tenant's own catalog.
    pin = {"pins": {"tone": "friendly"}}
    assert client.patch("/v1/users/u1/profile", json=pin, headers=BETA).status_code == 200
    wrong = client.patch("/v1/users/u1/profile", json=pin, headers=ACME)
    assert wrong.status_code == 422, wrong.text
    [error] = wrong.json()["detail"]
    assert (
        error["loc"] == ["body", "pins", "tone"]
        and "allowed: warm, neutral, direct" in error["msg"]
    )
    assert decide(client, "u1", headers=BETA)["strategy"]["levels"]["tone"] == "friendly"

    _traffic(client, BETA)
    _traffic(client, ACME)
    lanes = service_of(client).lanes
    assert len(lanes) == 2
    for lane in lanes:
        assert wait_until(lambda lane=lane: lane.backend.lag() == 0, timeout=20)

    # Beta's events are in its catalog's store, not in the server's.
    lane_store = data / "catalogs" / "acme-support" / "attune.sqlite"
    assert _tenants(lane_store) == {"beta"}
    assert _tenants(data / "attune.sqlite") == {"acme"}

    # attune train --tenant beta trains on beta's catalog and publishes to its lane, whose
    # users then get group adapters; the server's lane has no model.
    trained = _cli(
        "train", "--settings", str(settings_file), "--data-dir", str(data), "--tenant", "beta",
        "--min-users", "10", "--clusters", "2", "--factors", "4", "--iterations", "5",
        "--no-progress",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    model = load_latest(data / "catalogs" / "acme-support" / "models")
    assert model is not None and model.catalog == Catalog.from_toml(catalog).identity()
    assert load_latest(data / "models") is None

    made = {"beta": USERS * TURNS + 2}  # + the probe and the pinned decision

    def adapter(headers: dict[str, str]) -> str | None:
        adapter: str | None = decide(client, "u2", headers=headers)["directives"]["adapter"]
        made["beta"] += headers is BETA
        return adapter

    assert wait_until(lambda: adapter(BETA) is not None, timeout=20)
    assert adapter(ACME) is None

    # export-log and evaluate --tenant beta read beta's store and replay on its catalog.
    beta_decisions = made["beta"]
    assert wait_until(lambda: _count(lane_store, "decision") == beta_decisions)  # group commits
    log = tmp_path / "beta-log.parquet"
    exported = _cli(
        "export-log", "--settings", str(settings_file), "--data-dir", str(data),
        "--tenant", "beta", "--out", str(log),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {beta_decisions} decisions" in exported.stderr
    evaluated = _cli(
        "evaluate", "--settings", str(settings_file), "--tenant", "beta", "--log", str(log),
        "--policy", "lints", "--bootstrap", "10", "--out", str(tmp_path / "eval.json"),
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["rounds"] == beta_decisions

    # simulate --tenant beta simulates beta's catalog (on a scenario naming its levels).
    scenario = tmp_path / "beta-scenario.toml"
    text = resources.files("simulations").joinpath("scenarios/default.toml").read_text("utf-8")
    for old, new in (("warm", "friendly"), ("neutral", "plain"), ("direct", "blunt")):
        text = text.replace(f"{old} = ", f"{new} = ")
    scenario.write_text(text, encoding="utf-8")
    for tenant, expected, scenario_arg in (
        ("beta", "acme-support", str(scenario)),
        ("acme", "attune-default", "default"),
    ):
        out = tmp_path / f"sim-{tenant}"
        simulated = _cli(
            "simulate", "--settings", str(settings_file), "--tenant", tenant,
            "--scenario", scenario_arg, "--users", "40", "--rounds", "3",
            "--policies", "lints", "--out", str(out), "--no-progress",
        )  # fmt: skip
        assert simulated.returncode == 0, simulated.stderr
        assert json.loads((out / "summary.json").read_text())["meta"]["catalog"] == expected


def _count(store: Path, kind: str) -> int:
    db = sqlite3.connect(store)
    try:
        return int(db.execute("SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)).fetchone()[0])
    finally:
        db.close()


def _tenants(store: Path) -> set[str]:
    db = sqlite3.connect(store)
    try:
        return {t for (t,) in db.execute("SELECT DISTINCT tenant FROM events")}
    finally:
        db.close()


def test_lanes_follow_the_bus_and_refuse_a_clash(setup: tuple[Path, Path, Path]) -> None:
    settings_file, data, catalog = setup
    base = load_settings(settings_file, {}, data_dir=data)
    assert base.for_tenant("acme") is base
    beta = base.for_tenant("beta")
    assert beta.data_dir == data / "catalogs" / "acme-support" and beta.catalog == catalog
    kafka = Settings(bus="kafka://k:9092?prefix=prod", tenant_catalogs={"beta": catalog})
    assert kafka.for_tenant("beta").bus == "kafka://k:9092?prefix=prod-acme-support"

    # A tenant's catalog named like the server's but different is refused, naming both.
    shipped = resources.files("bandit").joinpath("catalogs/default.toml").read_text("utf-8")
    clash = catalog.with_name("clash.toml")
    clash.write_text(shipped.replace("version = 2", "version = 3"), encoding="utf-8")
    with pytest.raises(SettingsError, match="named 'attune-default' like the server's"):
        Settings(tenant_catalogs={"beta": clash}).for_tenant("beta")
    # A file that is not there is refused when the settings load.
    with pytest.raises(SettingsError, match=r"tenants\.beta\.catalog: no such file"):
        Settings(tenant_catalogs={"beta": catalog.with_name("missing.toml")})
