"""Scenario files: every shipped one loads; malformed ones fail naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import Catalog
from simulations.scenario import (
    ScenarioError,
    load_scenario,
    scenario_from_dict,
    shipped_scenarios,
)
from simulations.world import World

MINIMAL = {
    "scenario": {"users": 10, "rounds": 3},
    "topics": {"t": {"messages": ["How do I sort a list?"]}},
    "personas": {"p": {"topics": {"t": 1.0}, "prefer": {"length": {"brief": 1.0}}}},
}


def test_the_five_required_scenarios_ship():
    assert {"default", "cold-start", "drift", "sparse", "groups"} <= set(shipped_scenarios())


@pytest.mark.parametrize("name", ["default", "cold-start", "drift", "sparse", "groups"])
def test_shipped_scenarios_build_a_world(name):
    sc = load_scenario(name).with_size(users=50)
    world = World(sc, Catalog.default(), random_state=0)
    p = world.probabilities(np.arange(50), world.contexts(np.arange(50), 0), 0)
    assert p.shape == (50, 128)
    assert ((p > 0) & (p < 1)).all()
    # the personas must disagree: otherwise personalization has nothing to learn
    best = p.argmax(axis=1)
    assert len(np.unique(best)) > 1


def _with(path: tuple[str, ...], value: object) -> dict:
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in MINIMAL.items()}
    node = data
    for key in path[:-1]:
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = value
    return data


ERRORS = [
    (("scenario", "reward"), "poisson", "reward must be one of"),
    (("scenario", "feedback_rate"), 0.0, r"feedback_rate must be in \(0, 1\]"),
    (("scenario", "users"), 0, "users must be >= 1"),
    (("scenario", "colour"), "red", "scenario.colour: unknown key"),
    (("topics",), {"t": {}}, "exactly one of messages or features"),
    (("topics",), {"t": {"features": {"sarcasm": 1.0}}}, "unknown 'sarcasm'"),
    (("personas",), {"p": {"topics": {"nope": 1.0}}}, "unknown topic 'nope'"),
    (("personas",), {"p": {"share": -1, "topics": {"t": 1.0}}}, "share must be > 0"),
    (("drift",), [{"round": 2, "persona": "ghost"}], "drift.persona: unknown 'ghost'"),
    (("drift",), [{"round": 0, "persona": "p"}], "drift.round must be >= 1"),
]


@pytest.mark.parametrize(("path", "value", "pattern"), ERRORS)
def test_malformed_scenarios_name_the_problem(path, value, pattern):
    with pytest.raises(ScenarioError, match=pattern):
        scenario_from_dict(_with(path, value))


def test_unknown_catalog_level_is_named_when_the_world_is_built():
    sc = scenario_from_dict(
        _with(("personas",), {"p": {"topics": {"t": 1.0}, "prefer": {"length": {"epic": 1.0}}}})
    )
    with pytest.raises(ScenarioError, match=r"unknown level length\.epic; allowed: brief"):
        World(sc, Catalog.default())


def test_unknown_scenario_name_lists_the_shipped_ones(tmp_path):
    with pytest.raises(ScenarioError, match="shipped: cold-start, default"):
        load_scenario("nope")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scenario\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_drift_replaces_the_persona_preferences_from_its_round():
    world = World(load_scenario("drift").with_size(users=20), Catalog.default(), random_state=0)
    before, after = world.preferences(39), world.preferences(40)
    changed = [i for i in range(len(before)) if not np.allclose(before[i], after[i])]
    assert [world.scenario.personas[i].name for i in changed] == ["researcher"]


def test_new_users_arrive_after_round_zero():
    world = World(
        load_scenario("cold-start").with_size(users=1000), Catalog.default(), random_state=0
    )
    late = (world.arrival > 0).mean()
    assert 0.5 < late < 0.7
    assert world.arrival.max() < world.scenario.rounds
