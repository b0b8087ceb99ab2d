"""How a batch of requests becomes arms: allowed-arm masks, decision seeds, the pool of normal
draws, one call of the decide kernel, and the ``Decision`` records made from its output.

A decision is reproducible from its seed alone: the seed stands for an offset into the
engine's pool of standard normal draws and one uniform (see ``bandit._kernels.rng``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from bandit import _kernels as K
from bandit.catalog import Catalog
from bandit.explain import Memory, explain
from bandit.records import Decision, DecisionRequest

if TYPE_CHECKING:
    from bandit.engine import Engine

POOL_ROWS = 4096
SEED_BLOCK = 4096


@dataclass(frozen=True)
class Selection:
    """Result of the batch path.

    Attributes
    ----------
    arms : ndarray of int64, shape (n,)
    propensities : ndarray of float64, shape (n,)
    action_dist : ndarray of float64, shape (n, n_arms)
    seeds : ndarray of int64, shape (n,)
    user_scores : ndarray of float64, shape (n,)
        Each user's posterior-mean score of the chosen arm (NaN where the policy did not look at
        the posterior); hand it back to ``learn_arrays`` to save a factorization per update.
    """

    arms: np.ndarray
    propensities: np.ndarray
    action_dist: np.ndarray
    seeds: np.ndarray
    user_scores: np.ndarray


class SeedStream:
    """Decision seeds from a Generator, drawn in blocks so that a decision does not pay for a
    Generator call of its own. ``pending()`` and ``restore()`` carry the undrawn rest of a
    block through a snapshot, so a restored engine draws the same seeds.

    >>> seeds = SeedStream(np.random.default_rng(0))
    >>> seeds.draw(3).shape, seeds.pending().shape
    ((3,), (4093,))
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._buffer = np.empty(0, dtype=np.int64)
        self._pos = 0

    def draw(self, n: int) -> np.ndarray:
        """The next ``n`` seeds, shape (n,), int64."""
        if n > len(self._buffer) - self._pos:
            block = max(n, SEED_BLOCK)
            self._buffer = self.rng.integers(0, 2**62, size=block, dtype=np.int64)
            self._pos = 0
        out = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return out

    def pending(self) -> np.ndarray:
        """The seeds drawn from the Generator but not handed out yet."""
        return self._buffer[self._pos :]

    def restore(self, pending: np.ndarray) -> None:
        self._buffer = pending
        self._pos = 0


def make_pool(seed: int, n_max: int, n_features: int) -> np.ndarray:
    """The pool of standard normal draws the Thompson kernel reads, shape
    (POOL_ROWS + n_max, n_features): every offset has ``n_max`` draws after it."""
    rng = np.random.default_rng(seed)
    # float32, as the Thompson draws are scored (half the memory the draws stream through)
    return rng.standard_normal((POOL_ROWS + n_max, n_features), dtype=np.float32)


class ArmMasks:
    """The allowed arms of each request: the product's constraints, narrowed by the user's
    pins where that leaves an arm (when a pin conflicts with the constraints, they win).

    >>> masks = ArmMasks(Catalog.default())
    >>> requests = [DecisionRequest("ana"), DecisionRequest("bo", constraints={"tone": "warm"})]
    >>> allowed = masks.of(requests, pins={"ana": {"length": "brief"}})
    >>> allowed.shape, allowed.sum(axis=1).tolist()
    ((2, 128), [32, 44])
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._all_arms = np.ones(catalog.n_arms, dtype=bool)
        self._all_masks = np.ones((1, catalog.n_arms), dtype=bool)

    def of(
        self, requests: Sequence[DecisionRequest], pins: Mapping[str, Mapping[str, str]]
    ) -> np.ndarray:
        """Masks of the requests, shape (n, n_arms), bool. A paused user's pins are left out."""
        unpinned = not pins or not any(r.user_id in pins and not r.paused for r in requests)
        if unpinned and not any(r.constraints for r in requests):
            if len(requests) > len(self._all_masks):
                self._all_masks = np.ones((len(requests), self.catalog.n_arms), dtype=bool)
            return self._all_masks[: len(requests)]
        return (
            np.stack([self._one(r, None if r.paused else pins.get(r.user_id)) for r in requests])
            if requests
            else np.zeros((0, self.catalog.n_arms), dtype=bool)
        )

    def _one(self, request: DecisionRequest, pins: Mapping[str, str] | None) -> np.ndarray:
        if not pins and not request.constraints:
            return self._all_arms
        allowed = self.catalog.mask(request.constraints)
        if not allowed.any():
            raise ValueError(
                f"constraints: no strategy in catalog {self.catalog.name!r} satisfies "
                f"{dict(request.constraints)}"
            )
        if pins:
            pinned = allowed & self.catalog.mask(pins)
            if pinned.any():
                return pinned
        return allowed


def select(
    engine: Engine,
    rows: np.ndarray,
    contexts: np.ndarray,
    masks: np.ndarray,
    seeds: Any,
    mu_out: np.ndarray,
) -> Selection:
    """One call of the decide kernel for validated inputs; ``seeds`` None draws new ones.
    Writes each user's posterior mean into ``mu_out`` (n, n_features)."""
    n = len(rows)
    seeds = engine._seeds.draw(n) if seeds is None else np.ascontiguousarray(seeds, np.int64)
    if seeds.shape != (n,):
        raise ValueError(f"seeds: expected {n} seeds, got shape {seeds.shape}")
    dist = np.empty((n, engine.n_arms))
    arms = np.empty(n, dtype=np.int64)
    scores = np.empty(n)
    kernel = K.decide_parallel if engine._parallel(n) else K.decide_serial
    users, shared = engine.users, engine.shared
    kernel(
        *engine._kernel_args,
        rows,
        users.tenant,
        users.A,
        users.B,
        engine._XT,
        engine.catalog.attributes,
        shared.mean,
        shared.cov,
        contexts,
        masks,
        engine._pool,
        seeds,
        dist,
        arms,
        mu_out,
        scores,
    )
    if engine.policy.code == K.POLICY_UNIFORM:
        scores[:] = np.nan  # the uniform kernel never computes the posterior
    return Selection(arms, dist[np.arange(n), arms], dist, seeds, scores)


def decisions(
    engine: Engine,
    requests: Sequence[DecisionRequest],
    sel: Selection,
    contexts: np.ndarray,
    mu: np.ndarray,
    locales: Sequence[str],
    rows: np.ndarray,
) -> list[Decision]:
    """One ``Decision`` per request from the kernel's output. Each explains itself on first
    access, from its posterior mean ``mu[i]``, its prior mean, its tenant's shared weights and
    what the request and the engine remember about the user (pins, notes, group)."""
    catalog, spec, shared = engine.catalog, engine.context, engine.shared
    tenant, prior_mean = engine.users.tenant, engine.users.prior_mean
    ids, levels, compile_ = catalog.arm_ids, engine._levels, engine.directives.compile
    out = []
    scores = sel.user_scores.tolist()
    for i, (r, a, s) in enumerate(
        zip(requests, sel.arms.tolist(), sel.seeds.tolist(), strict=True)
    ):
        dist = sel.action_dist[i]
        W = shared.mean[tenant[rows[i]]]
        prior = prior_mean[rows[i]].copy()  # the row may change before it is read
        memory = _memory(r, engine.pins)
        directives = compile_(a, locales[i])
        if r.notes:
            directives = directives.with_context([note[1] for note in r.notes])
        explain_ = partial(
            explain,
            catalog,
            a,
            mu[i],
            W,
            contexts[i],
            dist,
            spec=spec,
            locale=locales[i],
            prior=prior,
            memory=memory,
        )
        out.append(
            Decision(
                user_id=r.user_id,
                arm=a,
                strategy_id=ids[a],
                levels=levels[a],
                propensity=float(dist[a]),
                action_dist=dist,
                seed=s,
                context=contexts[i],
                user_score=scores[i],
                directives=directives,
                policy=engine.policy.name,
                _explain=explain_,
            )
        )
    return out


_NO_MEMORY = Memory()


def _memory(request: DecisionRequest, pins: Mapping[str, Mapping[str, str]]) -> Memory:
    """What an explanation needs to know about the user beyond the model."""
    mine = None if request.paused else pins.get(request.user_id)
    if not (mine or request.notes or request.paused or request.group):
        return _NO_MEMORY
    return Memory(mine or {}, request.group, request.notes, request.paused)
