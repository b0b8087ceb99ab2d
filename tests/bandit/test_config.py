"""EngineConfig: one record of the engine's hyperparameters, and how an Engine takes it."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from bandit import Engine, EngineConfig, make_policy
from bandit.policies import LinUCB


def test_dict_round_trip_and_field_names() -> None:
    config = EngineConfig(policy="egreedy", policy_params={"epsilon": 0.2}, floor=0.1)
    data = config.to_dict()
    assert list(data) == [f.name for f in dataclasses.fields(EngineConfig)]
    assert data["policy_params"] == {"epsilon": 0.2} and type(data["policy_params"]) is dict
    assert EngineConfig.from_dict(data) == config
    assert EngineConfig.from_dict({}) == EngineConfig()


def test_is_frozen_and_copies() -> None:
    config = EngineConfig(policy="linucb", policy_params={"alpha": 1.0})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.floor = 0.5  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.policy_params["alpha"] = 2.0  # type: ignore[index]
    assert pickle.loads(pickle.dumps(config)) == config == copy.deepcopy(config)


def test_numbers_are_normalised() -> None:
    config = EngineConfig(prior_precision=2, floor=0, policy_params=None)  # type: ignore[arg-type]
    assert type(config.prior_precision) is float and type(config.floor) is float
    assert config.policy_params == {}


def test_engine_takes_a_config_and_overrides() -> None:
    config = EngineConfig(policy="linucb", floor=0.2, forgetting=0.9)
    engine = Engine(config=config, floor=0.1, random_state=0)
    assert engine.config == dataclasses.replace(config, floor=0.1)
    assert engine.policy.name == "linucb"
    assert Engine(random_state=0).config == EngineConfig()


def test_a_policy_instance_is_used_as_is() -> None:
    policy = LinUCB(alpha=2.0)
    engine = Engine(policy=policy, random_state=0)
    assert engine.policy is policy
    assert engine.config.policy == "linucb" and engine.config.policy_params == {"alpha": 2.0}
    with pytest.raises(TypeError, match="not with an instance"):
        Engine(policy=make_policy("linucb"), policy_params={"alpha": 1.0})
