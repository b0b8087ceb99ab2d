"""The engine: one facade over catalog, featurizer, reward model, policy and user state.

The service, the streaming workers and the simulations all use it the same way: decide for a
batch of requests, learn from a batch of rewards, snapshot and restore.

The reward model for user ``u``, arm ``a`` and request features ``c`` is::

    r = theta_u . x_a  +  attributes_a . W . c  +  noise

``x_a`` is the arm's bias, attribute one-hots and (once collab trained) CF item embedding,
zero-padded to ``n_features``. ``theta_u`` has a Gaussian posterior per user (prior mean set by
collab, isotropic prior precision); ``W`` is shared by all users, so "code question -> code-first
format" transfers to a user's first turn.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bandit import _kernels as K
from bandit._config import PARALLEL_MIN_BATCH
from bandit.catalog import Catalog
from bandit.config import EngineConfig, configure
from bandit.directives import DirectiveCompiler
from bandit.explain import Reason, explain
from bandit.features import N_FEATURES, featurize
from bandit.random import check_random_state
from bandit.records import Decision, DecisionRequest, Feedback
from bandit.state import SchemaError, UserState, save_npz

ColdStart = Callable[[np.ndarray], tuple[np.ndarray, "float | np.ndarray"]]
ENGINE_SCHEMA_VERSION = 1
POOL_ROWS = 4096
_SEED_BLOCK = 4096


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


class Engine:
    """Decide, learn, snapshot.

    Parameters
    ----------
    catalog : Catalog, optional
        Defaults to the shipped catalog.
    config : EngineConfig, optional
        The hyperparameters; defaults to ``EngineConfig()``.
    random_state : int, Generator or None
    **params
        ``EngineConfig`` fields that override ``config`` (``policy="linucb"``, ``floor=0.1``).
        ``policy`` may also be a ``Policy`` instance.

    Examples
    --------
    >>> engine = Engine(random_state=0)
    >>> [d] = engine.decide([DecisionRequest("ana", "How do I sort a dict in Python?")])
    >>> 0 < d.propensity <= 1 and d.directives.params["max_tokens"] > 0
    True
    >>> engine.learn([Feedback("ana", d.arm, 1.0, d.context)])
    """

    def __init__(
        self,
        catalog: Catalog | None = None,
        config: EngineConfig | None = None,
        *,
        random_state: Any = None,
        **params: Any,
    ) -> None:
        self.catalog = catalog or Catalog.default()
        self.config, self.policy = configure(config, params)
        n_features = self.config.n_features
        width = self.catalog.attributes.shape[1]
        if n_features < width:
            raise ValueError(
                f"n_features must be >= {width} (bias + one-hots of catalog "
                f"{self.catalog.name!r}), got {n_features}"
            )
        self.rng = check_random_state(random_state)
        self.users = UserState(n_features, prior_precision=self.config.prior_precision)
        self.X = np.zeros((self.catalog.n_arms, n_features))
        self.X[:, :width] = self.catalog.attributes
        self._XT = np.ascontiguousarray(self.X.T)  # the decide kernel reads arms along rows
        self.W = np.zeros((width, N_FEATURES))
        self.shared_updates = 0  # feedback events the shared model has learned from
        self.pins: dict[str, dict[str, str]] = {}
        self.directives = DirectiveCompiler(self.catalog)
        self._pool_seed = int(self.rng.integers(2**62))
        self._pool = self._make_pool()
        self._all_arms = np.ones(self.catalog.n_arms, dtype=bool)
        self._all_masks = np.ones((1, self.catalog.n_arms), dtype=bool)
        self._locales: dict[str, str] = {}
        self._seed_buffer = np.empty(0, dtype=np.int64)
        self._seed_pos = 0
        self._kernel_args = (*self.policy.kernel_args(), self.config.floor)
        self._levels = [self.catalog.levels_of(a) for a in range(self.catalog.n_arms)]
        self._lock = threading.RLock()
        self.cold_start: ColdStart | None = None

    # ------------------------------------------------------------------ properties
    @property
    def n_arms(self) -> int:
        return self.catalog.n_arms

    @property
    def n_features(self) -> int:
        return self.config.n_features

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lock(self) -> threading.RLock:
        """The engine's re-entrant lock. Every public method takes it; hold it yourself to make
        several calls, or direct writes to ``users`` arrays, one step for concurrent threads."""
        return self._lock

    # ------------------------------------------------------------------ deciding
    def decide(
        self, requests: Sequence[DecisionRequest], *, seeds: Sequence[int] | None = None
    ) -> list[Decision]:
        """Decide a strategy for each request.

        Returns one ``Decision`` per request, in order. Constraints and the user's pins narrow
        the arms; when a pin conflicts with the product's constraints, the constraints win.
        """
        n = len(requests)
        extra = [r.features for r in requests] if any(r.features for r in requests) else None
        contexts = featurize([r.message for r in requests], extra)
        masks = self._masks(requests)
        locales = [self._locale(r.locale) for r in requests]
        with self._lock:
            rows = self._rows_with_cold_start([r.user_id for r in requests], contexts)
            mu = np.empty((n, self.n_features))
            sel = self._select(rows, contexts, masks, seeds, mu)
            now = time.time()
            n_decisions, last_seen = self.users.n_decisions, self.users.last_seen
            for row in rows.tolist():
                n_decisions[row] += 1
                last_seen[row] = now
        ids, levels, compile_ = self.catalog.arm_ids, self._levels, self.directives.compile
        out = []
        scores = sel.user_scores.tolist()
        for i, (r, a, s) in enumerate(
            zip(requests, sel.arms.tolist(), sel.seeds.tolist(), strict=True)
        ):
            dist = sel.action_dist[i]
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
                    directives=compile_(a, locales[i]),
                    policy=self.policy.name,
                    _explain=partial(explain, self.catalog, a, mu[i], self.W, contexts[i], dist),
                )
            )
        return out

    def decide_arrays(
        self,
        rows: np.ndarray,
        contexts: np.ndarray,
        masks: np.ndarray | None = None,
        seeds: np.ndarray | None = None,
    ) -> Selection:
        """The batch path: decide for user rows (see ``users.rows``) and request features.

        Parameters
        ----------
        rows : int array, shape (n,)
        contexts : float array, shape (n, N_FEATURES)
        masks : bool array, shape (n, n_arms), optional
        seeds : int array, shape (n,), optional
        """
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        contexts = np.ascontiguousarray(contexts, dtype=np.float64)
        n = len(rows)
        if contexts.shape != (n, N_FEATURES):
            raise ValueError(f"contexts: expected shape ({n}, {N_FEATURES}), got {contexts.shape}")
        if n and (rows.min() < 0 or rows.max() >= len(self.users._row_ids)):
            raise ValueError("rows: unknown user row; get rows from engine.users.rows(user_ids)")
        if masks is None:
            masks = np.ones((n, self.n_arms), dtype=bool)
        masks = np.ascontiguousarray(masks, dtype=np.bool_)
        if masks.shape != (n, self.n_arms):
            raise ValueError(f"masks: expected shape ({n}, {self.n_arms}), got {masks.shape}")
        if n and not masks.any(axis=1).all():
            raise ValueError("masks: every request needs at least one allowed arm")
        with self._lock:
            return self._select(rows, contexts, masks, seeds, np.empty((n, self.n_features)))

    def expected_rewards(self, rows: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """The model's posterior-mean reward of every arm, shape (n, n_arms)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        contexts = np.ascontiguousarray(contexts, dtype=np.float64)
        out = np.empty((len(rows), self.n_arms))
        kernel = K.mean_batch_parallel if len(rows) >= PARALLEL_MIN_BATCH else K.mean_batch_serial
        with self._lock:
            kernel(
                rows,
                self.users.A,
                self.users.B,
                self.X,
                self.catalog.attributes,
                self.W,
                contexts,
                out,
            )
        return out

    def _select(
        self,
        rows: np.ndarray,
        contexts: np.ndarray,
        masks: np.ndarray,
        seeds: Any,
        mu_out: np.ndarray,
    ) -> Selection:
        n = len(rows)
        seeds = self._draw_seeds(n) if seeds is None else np.ascontiguousarray(seeds, np.int64)
        if seeds.shape != (n,):
            raise ValueError(f"seeds: expected {n} seeds, got shape {seeds.shape}")
        dist = np.empty((n, self.n_arms))
        arms = np.empty(n, dtype=np.int64)
        scores = np.empty(n)
        kernel = K.decide_parallel if n >= PARALLEL_MIN_BATCH else K.decide_serial
        kernel(
            *self._kernel_args,
            rows,
            self.users.A,
            self.users.B,
            self._XT,
            self.catalog.attributes,
            self.W,
            contexts,
            masks,
            self._pool,
            seeds,
            dist,
            arms,
            mu_out,
            scores,
        )
        if self.policy.code == K.POLICY_UNIFORM:
            scores[:] = np.nan  # the uniform kernel never computes the posterior
        return Selection(arms, dist[np.arange(n), arms], dist, seeds, scores)

    def _rows_with_cold_start(self, user_ids: list[str], contexts: np.ndarray) -> np.ndarray:
        """Rows of the users; users seen for the first time get the cold-start prior, chosen
        from the features of their first request."""
        if self.cold_start is None:
            return self.users.rows(user_ids)
        new = [i for i, u in enumerate(user_ids) if u not in self.users.ids]
        rows = self.users.rows(user_ids)
        if new:
            mean, precision = self.cold_start(contexts[new])
            self.users.set_prior(rows[new], mean, precision, reset=True)
        return rows

    def set_cold_start(self, prior: ColdStart | None) -> None:
        """Install (or remove, with None) the prior for users seen for the first time.

        ``prior(contexts)`` takes the first requests' features, shape (m, N_FEATURES), and
        returns ``(mean, precision)``: means of shape (m, d' <= n_features) over the arm
        features, and a scalar or (m,) precision. collab installs a cluster prior here.
        """
        with self._lock:
            self.cold_start = prior

    def _draw_seeds(self, n: int) -> np.ndarray:
        """Decision seeds from the engine's Generator, drawn in blocks: one draw of a block costs
        about what one draw of a single seed does."""
        if n > len(self._seed_buffer) - self._seed_pos:
            block = max(n, _SEED_BLOCK)
            self._seed_buffer = self.rng.integers(0, 2**62, size=block, dtype=np.int64)
            self._seed_pos = 0
        out = self._seed_buffer[self._seed_pos : self._seed_pos + n]
        self._seed_pos += n
        return out

    def _masks(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        pins = self.pins
        unpinned = not pins or not any(r.user_id in pins for r in requests)
        if unpinned and not any(r.constraints for r in requests):
            if len(requests) > len(self._all_masks):
                self._all_masks = np.ones((len(requests), self.n_arms), dtype=bool)
            return self._all_masks[: len(requests)]
        return (
            np.stack([self._mask(r) for r in requests])
            if requests
            else np.zeros((0, self.n_arms), dtype=bool)
        )

    def _locale(self, locale: str) -> str:
        resolved = self._locales.get(locale)
        if resolved is None:
            resolved = self.directives.resolve_locale(locale)
            if len(self._locales) < 1024:
                self._locales[locale] = resolved
        return resolved

    def _mask(self, request: DecisionRequest) -> np.ndarray:
        pins = self.pins.get(request.user_id)
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

    # ------------------------------------------------------------------ learning
    def learn(self, feedback: Sequence[Feedback]) -> None:
        """Learn from rewards, in order (a user's later feedback sees their earlier)."""
        if not feedback:
            return
        with self._lock:
            rows = self.users.rows([f.user_id for f in feedback])
            self.learn_arrays(
                rows,
                np.array([f.arm for f in feedback]),
                np.stack([f.context for f in feedback]),
                np.array([f.reward for f in feedback], dtype=np.float64),
                np.array([f.weight for f in feedback], dtype=np.float64),
                np.array([np.nan if f.user_score is None else f.user_score for f in feedback]),
            )

    def learn_arrays(
        self,
        rows: np.ndarray,
        arms: np.ndarray,
        contexts: np.ndarray,
        rewards: np.ndarray,
        weights: np.ndarray | None = None,
        user_scores: np.ndarray | None = None,
    ) -> None:
        """The batch path of ``learn``: arrays of shape (n,), (n,), (n, N_FEATURES), (n,).

        ``weights`` (n,) scale each observation; ``user_scores`` (n,) are the decision-time
        scores from ``Selection.user_scores`` (NaN or omitted: computed from the posterior).
        """
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
        _check_shapes(n, arms=arms, rewards=rewards, weights=weights, user_scores=user_scores)
        if contexts.shape != (n, N_FEATURES):
            raise ValueError(f"contexts: expected shape ({n}, {N_FEATURES}), got {contexts.shape}")
        if n and (arms.min() < 0 or arms.max() >= self.n_arms):
            raise ValueError(f"arms: every arm must be in [0, {self.n_arms})")
        if n and not (rewards.min() >= 0.0 and rewards.max() <= 1.0):  # NaN fails both
            raise ValueError("rewards: every reward must be in [0, 1]")
        with self._lock:
            if n and (rows.min() < 0 or rows.max() >= len(self.users._row_ids)):
                raise ValueError("rows: unknown user row")
            feedback = (rows, arms, contexts, rewards, weights, user_scores)
            model = (self.X, self.catalog.attributes, self.W)
            steps = self.shared_steps(n)
            users = self.users.learning_arrays()
            K.learn_batch(
                *K.learn_batch_args(feedback, users, model, self.config.forgetting, steps)
            )
            self.shared_updates += n

    def shared_steps(self, n: int) -> np.ndarray:
        """The shared model's step sizes for its next ``n`` updates, shape (n,)."""
        c = self.config
        t = self.shared_updates + np.arange(n, dtype=np.float64)
        floor = min(c.shared_lr, c.shared_lr_min)
        return np.maximum(floor, c.shared_lr / (1.0 + t / c.shared_lr_tau))

    def learn_pairwise(
        self, user_ids: Sequence[str], winners: Sequence[int], losers: Sequence[int]
    ) -> None:
        """Learn that each user preferred the response of arm ``winners[i]`` to ``losers[i]``
        (a Bradley-Terry update on the feature difference)."""
        winners_a = np.asarray(winners, dtype=np.int64)
        losers_a = np.asarray(losers, dtype=np.int64)
        _check_shapes(len(user_ids), winners=winners_a, losers=losers_a)
        for name, arr in (("winners", winners_a), ("losers", losers_a)):
            if len(arr) and (arr.min() < 0 or arr.max() >= self.n_arms):
                raise ValueError(f"{name}: every arm must be in [0, {self.n_arms})")
        with self._lock:
            rows = self.users.rows(list(user_ids))
            diff = np.ascontiguousarray(self.X[winners_a] - self.X[losers_a])
            users = self.users.learning_arrays()
            K.learn_pairwise(rows, diff, *users, self.config.forgetting)

    # ------------------------------------------------------------------ priors and arms
    def set_prior(
        self,
        user_ids: Sequence[str],
        mean: np.ndarray,
        precision: float | np.ndarray,
        *,
        reset: bool = True,
    ) -> None:
        """Start users from ``N(mean, (precision I)^-1)`` over the arm features (collab's
        warm start); ``reset`` drops the evidence they had, so it is not counted twice."""
        with self._lock:
            self.users.set_prior(self.users.rows(list(user_ids)), mean, precision, reset=reset)

    def set_arm_embeddings(self, embeddings: np.ndarray) -> None:
        """Put CF item embeddings, shape (n_arms, e), into the arm features after the one-hots."""
        width = self.catalog.attributes.shape[1]
        emb = np.asarray(embeddings, dtype=np.float64)
        room = self.n_features - width
        if emb.ndim != 2 or emb.shape[0] != self.n_arms or emb.shape[1] > room:
            raise ValueError(
                f"embeddings: expected shape ({self.n_arms}, <= {room}), got {emb.shape}"
            )
        with self._lock:
            self.X[:, width:] = 0.0
            self.X[:, width : width + emb.shape[1]] = emb
            self._XT = np.ascontiguousarray(self.X.T)

    # ------------------------------------------------------------------ profiles
    def pin(self, user_id: str, pins: Mapping[str, str | None]) -> dict[str, str]:
        """Set (level) or clear (None) pins per dimension; returns the user's pins."""
        current = dict(self.pins.get(user_id, {}))
        for dim, level in pins.items():
            if level is None:
                current.pop(dim, None)
            else:
                self.catalog.mask({dim: level})  # raises naming the allowed values
                current[dim] = level
        with self._lock:
            if current:
                self.pins[user_id] = current
            else:
                self.pins.pop(user_id, None)
        return current

    def forget(self, user_id: str) -> bool:
        """Erase everything the engine holds about a user. Returns whether it knew them."""
        with self._lock:
            had_pins = self.pins.pop(user_id, None) is not None
            return self.users.remove(user_id) or had_pins

    def profile(self, user_id: str) -> dict[str, Any]:
        """What the engine has learned about a user, per dimension, with confidence.

        Raises ``KeyError`` for a user it does not know.
        """
        with self._lock:
            row = self.users.rows([user_id], create=False)
            mu = np.empty((1, self.n_features))
            var = np.empty((1, self.n_features))
            K.posterior_batch(row, self.users.A, self.users.B, mu, var)
            counts = (int(self.users.n_feedback[row[0]]), int(self.users.n_decisions[row[0]]))
            last_seen = float(self.users.last_seen[row[0]])
        prior_sd = 1.0 / np.sqrt(self.users.prior_precision)
        prefs: dict[str, Any] = {}
        for dim, off in zip(self.catalog.dimensions, self.catalog.level_offsets, strict=True):
            block = mu[0, off : off + len(dim.levels)]
            sd = np.sqrt(var[0, off : off + len(dim.levels)])
            lift = block - block.mean()
            prefs[dim.name] = {
                "preferred": dim.levels[int(np.argmax(lift))].name,
                "confidence": float(np.clip(1.0 - sd.mean() / prior_sd, 0.0, 1.0)),
                "levels": {
                    lv.name: {"score": float(s), "sd": float(e)}
                    for lv, s, e in zip(dim.levels, lift, sd, strict=True)
                },
            }
        return {
            "user_id": user_id,
            "preferences": prefs,
            "pins": dict(self.pins.get(user_id, {})),
            "evidence": {"feedback_events": counts[0], "decisions": counts[1]},
            "last_seen": last_seen or None,
        }

    def explain(self, decision: Decision) -> tuple[Reason, ...]:
        return decision.explanation

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Snapshot everything to one ``.npz`` (no pickle), atomically."""
        with self._lock:
            arrays = {f"users.{k}": v for k, v in self.users.to_arrays().items()}
            meta = {
                "schema_version": ENGINE_SCHEMA_VERSION,
                "catalog": self.catalog.raw,
                "policy": self.policy.name,
                "policy_params": self.policy.params,
                "config": _saved_config(self.config),
                "pins": self.pins,
                "pool_seed": self._pool_seed,
                "rng": self.rng.bit_generator.state,
                "shared_updates": self.shared_updates,
            }
            arrays["seed_buffer"] = self._seed_buffer[self._seed_pos :]
            arrays.update({"X": self.X, "W": self.W, "meta": np.array(json.dumps(meta))})
            save_npz(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        with np.load(path, allow_pickle=False) as data:
            arrays = dict(data)
        meta = json.loads(str(arrays["meta"]))
        if meta.get("schema_version") != ENGINE_SCHEMA_VERSION:
            raise SchemaError(
                f"{path}: engine schema version {meta.get('schema_version')} is not supported "
                f"(this attune reads version {ENGINE_SCHEMA_VERSION})"
            )
        catalog = Catalog.from_dict(meta["catalog"], source=f"{path}:catalog")
        config = {
            **meta["config"],
            "policy": meta["policy"],
            "policy_params": meta["policy_params"],
        }
        engine = cls(catalog, EngineConfig.from_dict(config))
        engine.users = UserState.from_arrays(
            {k.removeprefix("users."): v for k, v in arrays.items() if k.startswith("users.")}
        )
        engine.X[:] = arrays["X"]
        engine._XT = np.ascontiguousarray(engine.X.T)
        engine.W[:] = arrays["W"]
        engine.shared_updates = int(meta.get("shared_updates", 0))
        engine.pins = meta["pins"]
        engine._pool_seed = meta["pool_seed"]
        engine._pool = engine._make_pool()
        engine.rng.bit_generator.state = meta["rng"]
        engine._seed_buffer = arrays["seed_buffer"]
        engine._seed_pos = 0
        return engine

    def warm(self) -> None:
        """Compile every kernel this engine calls (on a throwaway copy of its state)."""
        probe = Engine(self.catalog, self.config)
        [d] = probe.decide([DecisionRequest("warm-up", "How does this work?")])
        d.explanation  # noqa: B018  (the explanation's kernel compiles on first use)
        probe.learn([Feedback("warm-up", d.arm, 1.0, d.context)])
        probe.learn_pairwise(["warm-up"], [d.arm], [(d.arm + 1) % self.n_arms])
        probe.profile("warm-up")
        rows = probe.users.rows([f"w{i}" for i in range(PARALLEL_MIN_BATCH)])
        probe.decide_arrays(rows, np.repeat(d.context[None], len(rows), axis=0))

    def bytes_per_user(self) -> float:
        return self.users.bytes_per_user()

    def _make_pool(self) -> np.ndarray:
        _, _, _, n_max = self.policy.kernel_args()
        rng = np.random.default_rng(self._pool_seed)
        # float32, as the Thompson draws are scored (half the memory the draws stream through)
        return rng.standard_normal((POOL_ROWS + n_max, self.n_features), dtype=np.float32)


def _check_shapes(n: int, **arrays: np.ndarray) -> None:
    for name, arr in arrays.items():
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {arr.shape}")


def _saved_config(config: EngineConfig) -> dict[str, Any]:
    """``meta["config"]`` of a saved engine: the fields but the policy (saved beside it)."""
    out = config.to_dict()
    del out["policy"], out["policy_params"]
    return out
