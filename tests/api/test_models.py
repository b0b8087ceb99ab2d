"""CF models in ``attune serve``: ``attune train`` on logged traffic, hot reload, groups.

The app is real (store, learner thread, model watcher) and ``attune train`` runs as its own
process on the app's data folder, as a cron job would.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import SettingsError
from bandit.state import unpack
from collab import CFModel, latest_version, load_latest, publish
from streaming.sqlite.backend import FolderModels
from tests.api.conftest import (
    ACME,
    OPERATOR,
    decide,
    make_settings,
    service_of,
    wait_learner,
    wait_until,
)
from tests.api.test_feedback import feedback

REPO = Path(__file__).resolve().parents[2]
USERS = 24
TURNS = 5


def _traffic(client: TestClient, users: range, turns: int = TURNS) -> None:
    """Two personas: even users like brief answers, odd users thorough ones."""
    for u in users:
        liked = "brief" if u % 2 == 0 else "thorough"
        for t in range(turns):
            d = decide(client, f"u{u}", message=f"question {t} of user {u}")
            up = d["strategy"]["levels"]["length"] == liked
            feedback(
                client,
                user_id=f"u{u}",
                decision_id=d["decision_id"],
                kind="thumbs",
                value="up" if up else "down",
            )
    wait_learner(client)


def _run_train(data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["train", "--data-dir", str(data_dir), "--min-users", "10", "--clusters", "2"]
    argv += ["--factors", "4", "--iterations", "5", "--no-progress", *extra]
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv], cwd=REPO, capture_output=True, text=True
    )


def _train(data_dir: Path, *extra: str) -> CFModel:
    result = _run_train(data_dir, *extra)
    assert result.returncode == 0, result.stderr
    model = load_latest(data_dir / "models")
    assert model is not None
    return model


def _model_version(client: TestClient) -> float:
    text = client.get("/metrics", headers=OPERATOR).text
    match = re.search(r"^attune_model_version (\S+)$", text, re.M)
    assert match is not None
    return float(match.group(1))


def _profile(client: TestClient, user: str) -> dict:
    r = client.get(f"/v1/users/{user}/profile", headers=ACME)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_train_then_hot_reload_groups_and_adapters(
    make_client: Callable[..., TestClient], data_dir: Path
) -> None:
    client = make_client(data_dir, poll_interval_s=0.2, adapter_template="grp-{k}")
    _traffic(client, range(USERS))
    assert _profile(client, "u0")["cluster"] is None  # no model yet
    assert _model_version(client) == 0.0
    assert decide(client, "u0")["directives"]["adapter"] is None

    model = _train(data_dir)
    # Picked up by the running app, no restart.
    assert wait_until(lambda: _model_version(client) == model.version, timeout=20)
    for u in range(USERS):
        assert _profile(client, f"u{u}")["cluster"] == model.cluster_of(f"acme/u{u}")

    # A new user gets a cold-start cluster and the adapter of it.
    d = decide(client, "newcomer", message="Explain recursion briefly")
    cluster = _profile(client, "newcomer")["cluster"]
    assert cluster in range(model.n_clusters)
    assert d["directives"]["adapter"] == f"grp-{cluster}"
    known = decide(client, "u1")
    assert known["directives"]["adapter"] == f"grp-{model.cluster_of('acme/u1')}"

    # Their first feedback re-picks the cluster from the evidence: the prior becomes exactly
    # one cluster's (a cold start mixes them by the classifier's probabilities).
    feedback(client, user_id="newcomer", decision_id=d["decision_id"], kind="thumbs", value="up")
    wait_learner(client)
    service = service_of(client)
    learner = service.backend.processor.engine
    installed = service.backend.processor.installed
    assert installed is not None
    means = installed.cold.cluster_means
    prior = learner.users.prior_mean[learner.users.ids["acme/newcomer"], : means.shape[1]]
    assert np.isclose(means, prior, atol=1e-5).all(axis=1).any()
    assert _profile(client, "newcomer")["cluster"] in range(model.n_clusters)

    # The new model's arm embeddings are in both engines.
    width = service.catalog.attributes.shape[1]
    emb = service.engine.X[:, width:]
    assert np.abs(emb).sum() > 0
    assert np.array_equal(emb, service.backend.processor.engine.X[:, width:])

    # A newer version replaces it, again without a restart.
    bumped = replace(model, version=model.version + 1)
    publish(bumped, data_dir / "models")
    assert wait_until(lambda: _model_version(client) == bumped.version, timeout=20)


def test_train_reads_the_store_serve_was_given_with_a_sqlite_bus(
    make_client: Callable[..., TestClient], tmp_path: Path, data_dir: Path
) -> None:
    # ``attune serve --bus sqlite:///...`` keeps its store outside the data folder; ``attune
    # train`` reads it from the same URL and still publishes to <data-dir>/models.
    store = tmp_path / "elsewhere" / "log.sqlite"
    client = make_client(data_dir, bus=f"sqlite://{store.resolve()}")
    _traffic(client, range(USERS))

    missed = _run_train(data_dir)
    assert missed.returncode == 2 and "no embedded store" in missed.stderr

    bad = _run_train(data_dir, "--bus", "redis://x")
    assert bad.returncode == 2 and "expected kafka://host:port or sqlite:///path" in bad.stderr

    model = _train(data_dir, "--bus", f"sqlite://{store.resolve()}")
    assert {f"acme/u{u}" for u in range(USERS)} <= set(model.user_ids)


def test_retrain_resets_known_users_and_replays_only_newer_feedback(
    make_client: Callable[..., TestClient], data_dir: Path
) -> None:
    # A long poll interval: the test triggers the watcher's poll itself, after the feedback
    # that arrives between training and installation.
    client = make_client(data_dir, poll_interval_s=3600)
    _traffic(client, range(USERS))
    model = _train(data_dir)
    assert model.cluster_of("acme/u0") is not None
    d = decide(client, "u0")  # after the model's cutoff
    feedback(client, user_id="u0", decision_id=d["decision_id"], kind="thumbs", value="up")
    wait_learner(client)
    service = service_of(client)
    assert isinstance(service.models, FolderModels)
    assert service.models.watcher.poll() is not None
    users = service.backend.processor.engine.users
    for key, replayed in (("acme/u0", True), ("acme/u2", False)):
        row = users.ids[key]
        A = unpack(users.A[row].astype(np.float64), users.d)
        prior = float(users.prior_prec[row]) * np.eye(users.d)
        # u2's evidence is all in the model's factors: reset to the new prior, not added to
        # it. u0's feedback after the cutoff is applied on top of the prior, once.
        assert np.allclose(A, prior) != replayed, key
    # Feedback after the install is learned as usual, and reaches the serving engine.
    before = service.engine.users.get("acme/u2")["A"].copy()
    d = decide(client, "u2")
    feedback(client, user_id="u2", decision_id=d["decision_id"], kind="thumbs", value="up")
    wait_learner(client)
    assert not np.array_equal(service.engine.users.get("acme/u2")["A"], before)


def test_restart_installs_the_newest_model_and_adapters_are_off_by_default(
    make_client: Callable[..., TestClient], data_dir: Path
) -> None:
    with TestClient(create_app(make_settings(data_dir, poll_interval_s=3600))) as first:
        _traffic(first, range(USERS), turns=4)
        model = _train(data_dir)
    again = make_client(data_dir, poll_interval_s=3600)
    assert latest_version(data_dir / "models") == model.version
    assert _model_version(again) == model.version
    assert _profile(again, "u3")["cluster"] == model.cluster_of("acme/u3")
    assert decide(again, "u3")["directives"]["adapter"] is None


@pytest.mark.parametrize(
    ("template", "pattern"),
    [("cluster", "must contain"), ("c-{j}", "expected text with a {k} field"), ("{", "{k}")],
)
def test_bad_adapter_templates_are_refused(template: str, pattern: str, data_dir: Path) -> None:
    with pytest.raises(SettingsError, match=re.escape(pattern)):
        make_settings(data_dir, adapter_template=template)


def test_a_deleted_user_is_not_warm_started_from_the_model_again(
    make_client: Callable[..., TestClient], data_dir: Path
) -> None:
    client = make_client(data_dir, poll_interval_s=3600)
    _traffic(client, range(USERS))
    model = _train(data_dir)
    service = service_of(client)
    assert isinstance(service.models, FolderModels)
    assert service.models.watcher.poll() is not None
    installed = service.backend.processor.installed
    assert installed is not None
    own = installed.pmap.means(model.rows(["acme/u4"]))[0]

    def prior_of() -> np.ndarray:
        users = service.backend.processor.engine.users
        return users.prior_mean[users.ids["acme/u4"], : len(own)].astype(np.float64)

    assert np.allclose(prior_of(), own, atol=1e-4)  # the model's prior for a known user
    assert client.delete("/v1/users/u4", headers=ACME).status_code == 204
    decide(client, "u4", message="hello again")
    wait_learner(client)
    # Back after the delete: a new user to attune, whatever the old model remembers.
    assert not np.allclose(prior_of(), own, atol=1e-3)
    # ... also after a restart, which re-installs the newest model for every model user.
    client.close()
    again = make_client(data_dir, poll_interval_s=3600)
    service = service_of(again)
    assert "acme/u4" in service.backend.processor.engine.users
    assert not np.allclose(prior_of(), own, atol=1e-3)
