"""A seeded community, its logged history and a model fitted on it, shared by the collab tests."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pytest

import collab
from bandit import Engine
from tests.collab.community import Community, User, learn_history

N_HISTORY_USERS = 600
HISTORY_EVENTS = 100  # per known user, logged under a uniform policy


@dataclass
class World:
    community: Community
    known: list[User]
    history: pl.DataFrame
    model: collab.CFModel


def fit_model(history: pl.DataFrame, random_state: int) -> collab.CFModel:
    """The community tests' model. One ALS thread: two threads sum in a varying order, and the
    time-to-90% numbers these tests assert are sensitive to the last bits of the factors."""
    return collab.fit(
        history,
        factors=8,
        regularization=20.0,
        n_clusters=6,
        num_threads=1,
        random_state=random_state,
    )


@pytest.fixture(scope="session")
def world() -> World:
    community = Community(seed=1)
    known = community.users(N_HISTORY_USERS, "h")
    history = community.history(known, HISTORY_EVENTS)
    model = fit_model(history, random_state=0)
    return World(community, known, history, model)


@pytest.fixture
def trained_engine(world: World) -> Engine:
    """An engine that served the history (so its shared model learned from it), no CF yet."""
    engine = Engine(random_state=0)
    learn_history(engine, world.history)
    return engine
