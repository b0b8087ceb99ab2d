"""The one join of decisions with their feedback, over any stream of events in log order.

The embedded store's decision log, ``attune train`` (from the store or from Kafka) and the
replay after a CF model install all read the log through ``FeedbackJoin``. Only non-pairwise
feedback carries a reward (the reward composer's); a feedback the composer rejects is left out,
as the learner rejected it too. A user's delete forgets every decision of theirs before it (a
Kafka topic cannot be rewritten; the embedded store has already erased those rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import polars as pl

from streaming.composer import RewardComposer
from streaming.events import Event

REPLAY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "arm": pl.Int64(),
    "reward": pl.Float64(),
    "weight": pl.Float64(),
    "ts": pl.Float64(),
    "context": pl.List(pl.Float64()),
}


class Joined(NamedTuple):
    """One rewarded feedback and the decision it is about."""

    decision: Event
    reward: float
    weight: float


class FeedbackJoin:
    """Feed it events in log order (``add``); it remembers decisions and their rewards.

    Parameters
    ----------
    composer : RewardComposer
    since : float
        Only decisions with an event time after this are remembered.
    tenant : str, optional
        Only this tenant's events count.

    Examples
    --------
    >>> join = FeedbackJoin(RewardComposer())
    >>> d = Event("decision", "d1", "acme", "ana", 1.0, {"arm": 2, "context": [1.0]})
    >>> f = Event("feedback", "f1", "acme", "ana", 2.0, {"decision_id": "d1", "kind": "rating",
    ...           "value": 5})
    >>> join.add(d) is None, join.add(f).reward
    (True, 1.0)
    """

    def __init__(
        self, composer: RewardComposer, *, since: float = float("-inf"), tenant: str | None = None
    ) -> None:
        self.composer = composer
        self.since = since
        self.tenant = tenant
        self.decisions: dict[tuple[str, str], Event] = {}
        self.rewards: dict[tuple[str, str], list[float]] = {}
        self._by_user: dict[str, list[tuple[str, str]]] = {}

    def add(self, e: Event) -> Joined | None:
        """Take the next event; returns the join when it is a rewarded feedback."""
        if self.tenant is not None and e.tenant != self.tenant:
            return None
        if e.kind == "decision":
            if e.ts > self.since and _readable(e):
                self.decisions[(e.tenant, e.event_id)] = e
                self._by_user.setdefault(e.key, []).append((e.tenant, e.event_id))
        elif e.is_delete:
            for gone in self._by_user.pop(e.key, []):
                self.decisions.pop(gone, None)
                self.rewards.pop(gone, None)
        elif e.kind == "feedback":
            return self._feedback(e)
        return None

    def _feedback(self, e: Event) -> Joined | None:
        try:
            fb = e.feedback
            if fb.kind == "pairwise":
                return None
            reward, weight = self.composer.compose(fb)
        except ValueError:
            return None
        key = (e.tenant, fb.decision_id)
        decision = self.decisions.get(key)
        self.rewards.setdefault(key, []).append(reward)
        return None if decision is None else Joined(decision, reward, weight)

    def decision_rows(self) -> Iterator[dict[str, Any]]:
        """Every remembered decision with its mean reward (the composer's default reward when
        it got none), in the names off-policy evaluation tools expect."""
        for key, e in self.decisions.items():
            p = e.decision
            got = self.rewards.get(key)
            yield {
                "context": p.context,
                "action": p.arm,
                "reward": sum(got) / len(got) if got else self.composer.default_reward,
                "pscore": p.propensity,
                "action_dist": p.action_dist,
                "user_id": e.user_id,
                "tenant": e.tenant,
                "audit": p.audit,
                "ts": e.ts,
                "decision_id": e.event_id,
                "strategy_id": p.strategy_id,
                "policy": p.policy,
                "has_feedback": bool(got),
            }


def _readable(e: Event) -> bool:
    """A decision whose payload parses (the learner rejected the others: they taught nothing)."""
    try:
        p = e.decision
    except ValueError:
        return False
    return all(isinstance(x, int | float) and not isinstance(x, bool) for x in p.context)


def decision_log(
    events: Iterable[Event], composer: RewardComposer | None = None, *, tenant: str | None = None
) -> list[dict[str, Any]]:
    """Logged decisions with their rewards, one dict per decision: ``context``, ``action``
    (arm), ``reward``, ``pscore`` (propensity), ``action_dist``, ``user_id``, ``tenant``,
    ``audit``, ``ts``, ``decision_id``, ``strategy_id``, ``policy``, ``has_feedback``."""
    join = FeedbackJoin(composer or RewardComposer(), tenant=tenant)
    for e in events:
        join.add(e)
    return list(join.decision_rows())


def replay_frame(
    events: Iterable[Event], cutoff_ts: float, composer: RewardComposer
) -> pl.DataFrame:
    """The feedback a CF model has not seen, as ``collab.warm_start``'s ``replay``: one row per
    rewarded feedback on a decision made after ``cutoff_ts``, in log order."""
    join = FeedbackJoin(composer, since=cutoff_ts)
    rows: dict[str, list[Any]] = {name: [] for name in REPLAY_SCHEMA}
    for e in events:
        joined = join.add(e)
        if joined is None:
            continue
        d = joined.decision
        rows["user_id"].append(d.key)
        rows["arm"].append(d.decision.arm)
        rows["reward"].append(float(joined.reward))
        rows["weight"].append(float(joined.weight))
        rows["ts"].append(float(d.ts))
        rows["context"].append([float(x) for x in d.decision.context])
    return pl.DataFrame(rows, schema=REPLAY_SCHEMA)
