"""The arrays of the engine's batch paths, checked and made contiguous before a kernel sees
them. Each error names the array and what was expected of it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from bandit.records import Feedback


def decision_arrays(
    rows: np.ndarray,
    contexts: np.ndarray,
    masks: np.ndarray | None,
    n_rows: int,
    n_arms: int,
    n_context: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``decide_arrays``'s ``(rows, contexts, masks)``; masks default to all arms allowed.
    ``n_rows`` is the number of user rows the state has, ``n_context`` a context's width."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    contexts = np.ascontiguousarray(contexts, dtype=np.float64)
    n = len(rows)
    _check_contexts(contexts, n, n_context)
    if n and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError("rows: unknown user row; get rows from engine.users.rows(user_ids)")
    if masks is None:
        masks = np.ones((n, n_arms), dtype=bool)
    masks = np.ascontiguousarray(masks, dtype=np.bool_)
    if masks.shape != (n, n_arms):
        raise ValueError(f"masks: expected shape ({n}, {n_arms}), got {masks.shape}")
    if n and not masks.any(axis=1).all():
        raise ValueError("masks: every request needs at least one allowed arm")
    return rows, contexts, masks


def feedback_arrays(
    rows: np.ndarray,
    arms: np.ndarray,
    contexts: np.ndarray,
    rewards: np.ndarray,
    weights: np.ndarray | None,
    user_scores: np.ndarray | None,
    n_arms: int,
    n_context: int,
) -> tuple[np.ndarray, ...]:
    """``learn_arrays``'s inputs in ``learn_batch_args``'s order: ``(rows, arms, contexts,
    rewards, weights, user_scores)``, weights 1 and user scores NaN (unknown) when None."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    arms = np.ascontiguousarray(arms, dtype=np.int64)
    contexts = np.ascontiguousarray(contexts, dtype=np.float64)
    rewards = np.ascontiguousarray(rewards, dtype=np.float64)
    n = len(rows)
    weights = np.ones(n) if weights is None else np.ascontiguousarray(weights, dtype=np.float64)
    user_scores = (
        np.full(n, np.nan)
        if user_scores is None
        else np.ascontiguousarray(user_scores, dtype=np.float64)
    )
    check_shapes(n, arms=arms, rewards=rewards, weights=weights, user_scores=user_scores)
    _check_contexts(contexts, n, n_context)
    if n and (arms.min() < 0 or arms.max() >= n_arms):
        raise ValueError(f"arms: every arm must be in [0, {n_arms})")
    if n and not (rewards.min() >= 0.0 and rewards.max() <= 1.0):  # NaN fails both
        raise ValueError("rewards: every reward must be in [0, 1]")
    return rows, arms, contexts, rewards, weights, user_scores


def feedback_records(
    feedback: Sequence[Feedback], n_arms: int, n_context: int
) -> tuple[np.ndarray, ...]:
    """``feedback_arrays``'s ``(arms, contexts, rewards, weights, user_scores)`` from records.
    A ``Feedback`` checked its own arm (>= 0), reward and weight when it was made, so only
    the arms' upper bound and the contexts are left: ``learn`` is called once per feedback in
    the service, where each array-wide check costs about as much as the update itself."""
    arms = [f.arm for f in feedback]
    if max(arms) >= n_arms:
        raise ValueError(f"arms: every arm must be in [0, {n_arms})")
    contexts = np.stack([f.context for f in feedback]).astype(np.float64, copy=False)
    _check_contexts(contexts, len(arms), n_context)
    return (
        np.array(arms, dtype=np.int64),
        contexts,
        np.array([f.reward for f in feedback], dtype=np.float64),
        np.array([f.weight for f in feedback], dtype=np.float64),
        np.array([np.nan if f.user_score is None else f.user_score for f in feedback]),
    )


def arm_pairs(
    n: int, winners: Sequence[int], losers: Sequence[int], n_arms: int
) -> tuple[np.ndarray, np.ndarray]:
    """``learn_pairwise``'s winning and losing arms, shape (n,) each."""
    winners_a = np.asarray(winners, dtype=np.int64)
    losers_a = np.asarray(losers, dtype=np.int64)
    check_shapes(n, winners=winners_a, losers=losers_a)
    for name, arr in (("winners", winners_a), ("losers", losers_a)):
        if len(arr) and (arr.min() < 0 or arr.max() >= n_arms):
            raise ValueError(f"{name}: every arm must be in [0, {n_arms})")
    return winners_a, losers_a


def check_shapes(n: int, **arrays: np.ndarray) -> None:
    for name, arr in arrays.items():
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")


def _check_contexts(contexts: np.ndarray, n: int, n_context: int) -> None:
    if contexts.shape != (n, n_context):
        raise ValueError(f"contexts: expected shape ({n}, {n_context}), got {contexts.shape}")
    if n and not np.isfinite(contexts).all():
        raise ValueError("contexts: every value must be finite")
