"""CFModel persistence and lookups, publishing, hot reload, and ``attune train``."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import polars as pl
import pytest

import collab
from api.cli import main
from bandit import ContextSpec, Engine, SchemaError


def test_save_load_round_trip(world, tmp_path) -> None:
    path = tmp_path / "m.npz"
    world.model.save(path)
    back = collab.CFModel.load(path)
    for name in (
        "user_ids",
        "user_factors",
        "arm_factors",
        "user_events",
        "user_clusters",
        "cluster_centers",
        "classifier_coef",
        "classifier_intercept",
        "cluster_rewards",
    ):
        np.testing.assert_array_equal(getattr(back, name), getattr(world.model, name))
    assert back.meta == world.model.meta
    assert (back.version, back.arm_ids, back.calibration, back.cutoff_ts) == (
        world.model.version,
        world.model.arm_ids,
        world.model.calibration,
        world.model.cutoff_ts,
    )
    uid = world.known[0].uid
    assert back.cluster_of(uid) == world.model.cluster_of(uid) is not None
    assert back.cluster_of("t/nobody") is None


def test_unknown_schema_version_is_refused(world, tmp_path) -> None:
    path = tmp_path / "m.npz"
    world.model.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["schema_version"] = 99
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    with pytest.raises(SchemaError, match="schema version 99 is not supported"):
        collab.CFModel.load(path)


def test_version_1_model_loads_without_cluster_rewards(world, tmp_path) -> None:
    path = tmp_path / "m.npz"
    world.model.save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "cluster_rewards"}
    meta = json.loads(str(arrays["meta"]))
    meta["schema_version"] = 1
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    back = collab.CFModel.load(path)
    assert back.cluster_rewards.shape == (0, 0)
    engine = Engine(random_state=0)
    collab.warm_start(engine, back, users=[])  # the centers' scores stand in
    assert engine.cold_start is not None


def test_clusters_and_adapters(world) -> None:
    model = world.model
    assert collab.adapter_id(model.cluster_of(world.known[0].uid)).startswith("cluster-")
    assert collab.adapter_id(None) is None
    assert collab.adapter_id(2, template="lora-{k}") == "lora-2"
    width = ContextSpec().n_columns
    probs = model.cluster_probabilities(np.zeros((3, width)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert model.has_classifier and model.meta["classifier_accuracy"] > 0.5
    assert model.predict_cluster(np.zeros((2, width))).shape == (2,)


def test_without_leaves_no_center_that_gives_an_erased_user_back() -> None:
    # a alone in cluster 0; b and c share cluster 1. Centers are the members' mean factors.
    u = np.array([[0.3, 0.7], [0.2, 0.1], [0.6, 0.5]], np.float32)
    model = collab.CFModel(
        version=1, cutoff_ts=0.0, kind="als", user_ids=np.array(["t/a", "t/b", "t/c"]),
        arm_ids=("x", "y"), user_factors=u, arm_factors=np.eye(2, dtype=np.float32),
        user_events=np.array([3, 4, 5]), user_clusters=np.array([0, 1, 1]),
        cluster_centers=np.array([u[0], (u[1] + u[2]) / 2]),
        cluster_rewards=np.array([[0.9, 0.1], [0.4, 0.6]]), calibration=(0.5, 2.0),
    )  # fmt: skip
    alone = model.without(["t/a"])
    everyone = (u[1] + u[2]) / 2  # what training gives a cluster without members
    np.testing.assert_allclose(alone.cluster_centers, [everyone, everyone], rtol=1e-6)
    np.testing.assert_allclose(alone.cluster_rewards[0], 0.5 + 2.0 * everyone, rtol=1e-6)
    np.testing.assert_array_equal(alone.cluster_rewards[1], [0.4, 0.6])  # b and c's, kept
    assert alone.n_users == 2 and alone.cluster_of("t/a") is None
    # One of two: the center was (b + c) / 2, which c's row would turn back into b's factors.
    pair = model.without(["t/b"])
    np.testing.assert_array_equal(pair.cluster_centers, [u[0], u[2]])
    assert model.without(["t/nobody"]) is model


def test_a_model_whose_erasures_emptied_a_cluster_still_warm_starts(world) -> None:
    model = world.model
    members = [u for u, c in zip(model.user_ids, model.user_clusters, strict=True) if c == 2]
    engine = Engine(random_state=0)
    collab.warm_start(engine, model.without(members), users=[])
    cold = engine.cold_start
    assert isinstance(cold, collab.ClusterPrior)
    assert cold.shares[2] == 0 and np.isfinite(cold.cluster_means).all()


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"arm_factors": np.zeros((3, 8), np.float32)}, "arm_factors: expected shape"),
        ({"user_events": np.zeros(2)}, "user_events: expected shape"),
        ({"kind": "svd"}, "kind must be"),
        ({"classifier_coef": np.zeros((2, 16))}, "classifier: expected 6 rows"),
    ],
)
def test_invalid_models_are_refused(world, change, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        dataclasses.replace(world.model, **change)


def test_publish_and_watch_pick_up_new_versions(world, tmp_path) -> None:
    models = tmp_path / "models"
    seen: list[int] = []
    got = threading.Event()
    watcher = collab.ModelWatcher(
        models, lambda m: (seen.append(m.version), got.set()), interval_s=0.05
    )
    assert watcher.poll() is None  # empty folder
    collab.publish(dataclasses.replace(world.model, version=1), models)
    assert watcher.poll() is not None and seen == [1]
    assert watcher.poll() is None  # same version: no reload
    watcher.start()
    try:
        got.clear()
        collab.publish(dataclasses.replace(world.model, version=2), models)
        assert got.wait(10.0)
    finally:
        watcher.stop()
    assert seen == [1, 2] and collab.latest_version(models) == 2
    with pytest.raises(ValueError, match="already published"):
        collab.publish(dataclasses.replace(world.model, version=2), models)
    for v in (3, 4, 5):
        collab.publish(dataclasses.replace(world.model, version=v), models, keep=2)
    assert sorted(p.name for p in models.iterdir()) == ["cf-4.npz", "cf-5.npz"]


def test_watcher_survives_a_broken_file(world, tmp_path) -> None:
    errors: list[Exception] = []
    (tmp_path / "cf-7.npz").write_bytes(b"not a model")
    watcher = collab.ModelWatcher(tmp_path, lambda m: None, on_error=errors.append)
    assert watcher.poll() is None and len(errors) == 1


def test_train_command_publishes_and_exports(world, tmp_path, capsys) -> None:
    events = tmp_path / "events.parquet"
    world.history.head(20_000).write_parquet(events)
    rc = main(
        [
            "train",
            "--events",
            str(events),
            "--data-dir",
            str(tmp_path),
            "--clusters",
            "4",
            "--factors",
            "8",
            "--no-progress",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    [model_file] = (tmp_path / "models").glob("cf-*.npz")
    model = collab.CFModel.load(model_file)
    [export] = (tmp_path / "exports").glob("interactions-*.parquet")
    assert pl.read_parquet(export).height == 20_000 and model.n_clusters == 4


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["--data-dir", "{tmp}/none"], "no embedded store"),
        (["--events", "{tmp}/missing.parquet"], "no such file"),
        (["--events", "{tmp}/tiny.parquet"], "too little data to train"),
    ],
)
def test_train_command_errors_are_one_line(world, tmp_path, capsys, argv, pattern) -> None:
    world.history.head(30).write_parquet(tmp_path / "tiny.parquet")
    rc = main(["train", "--no-progress", *[a.format(tmp=tmp_path) for a in argv]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and pattern in err[-1] and "Traceback" not in "\n".join(err)
