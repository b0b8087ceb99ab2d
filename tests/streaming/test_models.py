"""``ModelProcessor``: what an installed CF model adds to applying events."""

from __future__ import annotations

import numpy as np

from bandit import ContextSpec, Engine
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.models import ModelProcessor
from tests.collab.conftest import World, world  # noqa: F401  (the shared fitted community)

JAPANESE = ["週末に東京でおすすめの場所は？", "カレーの作り方を教えて", "猫の名前を考えて"]


def _processor(world: World) -> ModelProcessor:  # noqa: F811
    processor = ModelProcessor(Engine(random_state=0), RewardComposer())
    processor.install(world.model)
    return processor


def _decision(i: int, message: str) -> Event:
    context = ContextSpec().featurize([message])[0].tolist()
    return Event("decision", f"d{i}", "acme", "newbie", 1000.0 + i, {"arm": 5, "context": context})


def test_request_evidence_counts_every_request_and_travels_in_the_record(
    world: World,  # noqa: F811
) -> None:
    a = _processor(world)
    a.apply([_decision(i, m) for i, m in enumerate(JAPANESE)])
    evidence = a.books["acme/newbie"].extra["cluster_evidence"]
    # The sum of the classifier's evidence over all three requests, kept in the user's book.
    cold = a.installed.cold if a.installed else None
    assert cold is not None
    cold.observe_requests(["probe"] * 3, ContextSpec().featurize(JAPANESE))
    expected = cold.request_evidence("probe")
    cold.forget("probe")
    np.testing.assert_allclose(evidence, expected)
    assert len(evidence) == world.model.n_clusters

    b = _processor(world)  # a restored worker: the record is all it gets
    record = a.export_record("acme/newbie")
    assert record is not None
    b.import_user("acme/newbie", record)
    assert b.books["acme/newbie"].extra["cluster_evidence"] == evidence
    thumbs = Event(
        "feedback", "f0", "acme", "newbie", 1010.0,
        {"decision_id": "d2", "kind": "thumbs", "value": "up"},
    )  # fmt: skip
    for p in (a, b):
        p.apply([thumbs])
    rows = [p.engine.users.ids["acme/newbie"] for p in (a, b)]
    np.testing.assert_array_equal(
        a.engine.users.prior_mean[rows[0]], b.engine.users.prior_mean[rows[1]]
    )
    # The user writes Japanese: their prior is the cluster most Japanese-writing users are in.
    ja = [u.uid for u in world.known if u.persona == "ja_casual"]
    target = np.bincount([world.model.cluster_of(u) for u in ja]).argmax()
    means = a.installed.cold.cluster_means if a.installed else None
    assert means is not None
    chosen = np.argmin(((means - a.engine.users.prior_mean[rows[0], : means.shape[1]]) ** 2).sum(1))
    assert chosen == target
