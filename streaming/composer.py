"""The reward composer: every kind of feedback becomes a reward in [0, 1] and a weight.

How each kind maps (all numbers are settings, ``[rewards]`` in the settings TOML):

=========  ==========================================================  ==================
kind       reward                                                      weight
=========  ==========================================================  ==================
thumbs     ``thumbs_up`` (1.0) or ``thumbs_down`` (0.0)                ``thumbs_weight``
rating     ``(value - 1) / 4`` for a 1..5 rating                       ``rating_weight``
reward     the value itself, in [0, 1]                                 ``reward_weight``
implicit   ``implicit_base`` (0.5) plus the sum of the signals'        ``implicit_weight``
           values (copied +0.3, regenerated -0.4, asked_simpler -0.3,
           asked_deeper -0.2, abandoned -0.5) plus ``dwell_bonus`` x
           ``min(1, dwell_ms / dwell_full_ms)``, clipped to [0, 1]
pairwise   not a reward: a Bradley-Terry update on the difference of
           the two arms' features (see ``Processor``)
(none)     ``default_reward`` (0.5) once the wait window passes        ``default_weight``
=========  ==========================================================  ==================

The weight scales how much one observation counts: implicit signals and silence say less
than an explicit thumbs, so they count less by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from streaming.payloads import FEEDBACK_KINDS, FeedbackPayload

SIGNALS = ("copied", "regenerated", "asked_simpler", "asked_deeper", "abandoned")
DEFAULT_SIGNALS = {
    "copied": 0.3,
    "regenerated": -0.4,
    "asked_simpler": -0.3,
    "asked_deeper": -0.2,
    "abandoned": -0.5,
}


def _unit(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def _weight(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
        raise ValueError(f"{name} must be a number in (0, 100], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class RewardComposer:
    """Turns a feedback payload into ``(reward, weight)``; the table above says how.

    Examples
    --------
    >>> c = RewardComposer()
    >>> c.compose({"kind": "rating", "value": 4})
    (0.75, 1.0)
    >>> c.compose({"kind": "implicit", "signals": ["copied"], "dwell_ms": 0})
    (0.8, 0.5)
    """

    thumbs_up: float = 1.0
    thumbs_down: float = 0.0
    thumbs_weight: float = 1.0
    rating_weight: float = 1.0
    reward_weight: float = 1.0
    implicit_base: float = 0.5
    implicit_weight: float = 0.5
    signals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SIGNALS))
    dwell_bonus: float = 0.1
    dwell_full_ms: float = 30_000.0
    default_reward: float = 0.5
    default_weight: float = 0.25

    def __post_init__(self) -> None:
        for name in ("thumbs_up", "thumbs_down", "implicit_base", "default_reward", "dwell_bonus"):
            _unit(getattr(self, name), name)
        for name in (
            "thumbs_weight",
            "rating_weight",
            "reward_weight",
            "implicit_weight",
            "default_weight",
        ):
            _weight(getattr(self, name), name)
        if not (isinstance(self.dwell_full_ms, int | float) and self.dwell_full_ms > 0):
            raise ValueError(f"dwell_full_ms must be > 0, got {self.dwell_full_ms!r}")
        unknown = sorted(set(self.signals) - set(SIGNALS))
        if unknown:
            raise ValueError(f"signals.{unknown[0]}: unknown signal; allowed: {', '.join(SIGNALS)}")
        for name, value in self.signals.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or abs(value) > 1:
                raise ValueError(f"signals.{name} must be a number in [-1, 1], got {value!r}")
        object.__setattr__(self, "signals", {**DEFAULT_SIGNALS, **self.signals})

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None) -> RewardComposer:
        """Build from the ``[rewards]`` table of a settings file; unknown keys are errors."""
        table = dict(table or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ValueError(
                f"rewards.{unknown[0]}: unknown setting; allowed: {', '.join(allowed)}"
            )
        return cls(**table)

    def compose(self, feedback: FeedbackPayload | Mapping[str, Any]) -> tuple[float, float]:
        """``(reward in [0, 1], weight)`` of a non-pairwise feedback (a payload record or its
        JSON object). Raises ``ValueError`` naming the offending field."""
        fb = feedback if isinstance(feedback, FeedbackPayload) else _parse(feedback)
        kind, value = fb.kind, fb.value
        if kind == "thumbs":
            if value not in ("up", "down"):
                raise ValueError(f"value: thumbs must be 'up' or 'down', got {value!r}")
            return (self.thumbs_up if value == "up" else self.thumbs_down), self.thumbs_weight
        if kind == "rating":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
                raise ValueError(f"value: a rating must be an integer 1..5, got {value!r}")
            return (value - 1) / 4.0, self.rating_weight
        if kind == "reward":
            return _unit(value, "value"), self.reward_weight
        if kind == "implicit":
            return self._implicit(fb), self.implicit_weight
        raise ValueError(f"kind: {kind!r} has no reward; allowed: thumbs, rating, reward, implicit")

    def default(self) -> tuple[float, float]:
        """``(reward, weight)`` for a decision that got no feedback within the wait window."""
        return self.default_reward, self.default_weight

    def _implicit(self, fb: FeedbackPayload) -> float:
        bad = [s for s in fb.signals if s not in SIGNALS]
        if bad:
            raise ValueError(f"signals: unknown signal {bad[0]!r}; allowed: {', '.join(SIGNALS)}")
        dwell = fb.dwell_ms
        if isinstance(dwell, bool) or not isinstance(dwell, int | float) or dwell < 0:
            raise ValueError(f"dwell_ms must be a non-negative number, got {dwell!r}")
        total = self.implicit_base + sum(self.signals[s] for s in set(fb.signals))
        total += self.dwell_bonus * min(1.0, dwell / self.dwell_full_ms)
        return round(min(1.0, max(0.0, total)), 12)


def _parse(doc: Mapping[str, Any]) -> FeedbackPayload:
    if doc.get("kind") not in FEEDBACK_KINDS:  # worded as the composer's own kind error
        raise ValueError(
            f"kind: {doc.get('kind')!r} has no reward; allowed: thumbs, rating, reward, implicit"
        )
    return FeedbackPayload.from_dict(doc)


COMPOSERS: dict[str, type[RewardComposer]] = {"linear": RewardComposer}


def make_composer(name: str = "linear", **params: Any) -> RewardComposer:
    """The registered composer ``name`` built from ``params``."""
    try:
        cls = COMPOSERS[name]
    except KeyError:
        raise ValueError(f"unknown composer {name!r}; allowed: {', '.join(COMPOSERS)}") from None
    return cls.from_dict(params)
