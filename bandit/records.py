"""Frozen records that cross the engine's public API, validated on construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from bandit.directives import Directives
from bandit.explain import Reason

MAX_USER_ID = 256
MAX_MESSAGE = 32_000


def _check_user_id(user_id: object) -> None:
    if not isinstance(user_id, str) or not 0 < len(user_id) <= MAX_USER_ID:
        raise ValueError(
            f"user_id must be a string of 1 to {MAX_USER_ID} characters, got {user_id!r}"
        )


@dataclass(frozen=True)
class DecisionRequest:
    """One turn to decide for.

    Attributes
    ----------
    user_id : str
    message : str
        The user's message this turn (featurized, never stored by the engine).
    locale : str
        BCP-47 tag of the user's language; directives render in it.
    features : mapping of str to float
        Optional product-supplied request features (``{"channel_voice": 1}``).
    constraints : mapping of str to str or list of str
        Allowed levels per dimension for this turn, from the product.
    notes : sequence of (note_id, text, score, pinned)
        Memory notes the caller retrieved for this turn (``bandit.notes``): they go into the
        directives and the explanation names them.
    paused : bool
        The user paused personalization: decide from the population model alone (their own
        posterior, pins and remembered features are left out).
    group : str, optional
        The user's group (a CF cluster), for explanations to name.
    """

    user_id: str
    message: str = ""
    locale: str = "en"
    features: Mapping[str, float] = field(default_factory=dict)
    constraints: Mapping[str, Any] = field(default_factory=dict)
    notes: Sequence[tuple[str, str, float, bool]] = ()
    paused: bool = False
    group: str | None = None

    def __post_init__(self) -> None:
        _check_user_id(self.user_id)
        if not isinstance(self.message, str) or len(self.message) > MAX_MESSAGE:
            raise ValueError(f"message must be a string of at most {MAX_MESSAGE} characters")
        if not isinstance(self.paused, bool):
            raise ValueError(f"paused must be true or false, got {self.paused!r}")
        for note in self.notes:
            if len(note) != 4 or not (isinstance(note[0], str) and isinstance(note[1], str)):
                raise ValueError(f"notes: expected (note_id, text, score, pinned), got {note!r}")


@dataclass(frozen=True)
class Feedback:
    """A scalar reward in [0, 1] for an arm played for a user under a request context.

    ``context`` is the request feature vector the decision was made with (``Decision.context``);
    ``weight`` scales how much this observation counts (1 for an explicit rating);
    ``user_score`` is ``Decision.user_score`` if known (else the engine computes it).
    """

    user_id: str
    arm: int
    reward: float
    context: np.ndarray
    weight: float = 1.0
    user_score: float | None = None

    def __post_init__(self) -> None:
        _check_user_id(self.user_id)
        if isinstance(self.arm, bool) or not isinstance(self.arm, int | np.integer) or self.arm < 0:
            raise ValueError(f"arm must be a non-negative integer, got {self.arm!r}")
        if not isinstance(self.reward, int | float | np.floating) or not 0.0 <= self.reward <= 1.0:
            raise ValueError(f"reward must be a number in [0, 1], got {self.reward!r}")
        if not (isinstance(self.weight, int | float) and 0.0 < self.weight <= 100.0):
            raise ValueError(f"weight must be in (0, 100], got {self.weight!r}")
        if math.isnan(float(self.reward)):
            raise ValueError("reward must be a number in [0, 1], got nan")


@dataclass(frozen=True)
class Decision:
    """The engine's answer for one request.

    Attributes
    ----------
    arm : int
        Index of the chosen strategy in the catalog.
    strategy_id : str
    levels : dict
        Level name per dimension.
    propensity : float
        Probability with which ``arm`` was drawn (exact, see ``LinTS``).
    action_dist : ndarray, shape (n_arms,)
        The full distribution it was drawn from; zero on arms the constraints exclude.
    seed : int
        Passing it back to ``Engine.decide`` with the same state reproduces this decision.
    context : ndarray, shape (n_request_features,)
        The request features; feed them back with the feedback.
    user_score : float
        The user's posterior-mean score of the arm at decision time (NaN for ``uniform``).
    directives : Directives
    policy : str
    explanation : tuple of Reason
        Computed on first access.
    """

    user_id: str
    arm: int
    strategy_id: str
    levels: Mapping[str, str]
    propensity: float
    action_dist: np.ndarray
    seed: int
    context: np.ndarray
    user_score: float
    directives: Directives
    policy: str
    _explain: Callable[[], tuple[Reason, ...]] = field(repr=False, compare=False)

    @cached_property
    def explanation(self) -> tuple[Reason, ...]:
        return self._explain()
