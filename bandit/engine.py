"""The engine: one facade over catalog, featurizer, reward model, policy and user state.

The service, the streaming workers and the simulations all use it the same way: decide for a
batch of requests, learn from a batch of rewards, snapshot and restore. Every public method
takes the engine's lock, so threads may share one engine.

The reward model for user ``u``, arm ``a`` and request context ``c`` is::

    r = theta_u . x_a  +  attributes_a . W_tenant c  +  noise

``x_a`` is the arm's bias, attribute one-hots and (once collab trained) CF item embedding,
zero-padded to ``n_features``. ``c`` holds the message's features, the product's declared
request and user features and an overflow block (``bandit.context``). ``W_tenant`` is the
population's part, learned from every user of the user's tenant with a Gaussian posterior
(``bandit.shared``), so "code question -> code-first" and "self-described beginners ->
basics" reach a user on their first turn; ``theta_u`` is the user's own deviation from it, a
Gaussian posterior per user whose prior width is estimated from how far users deviate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bandit import _kernels as K
from bandit._config import PARALLEL_MIN_BATCH
from bandit.catalog import Catalog
from bandit.config import EngineConfig, configure
from bandit.context import ContextSpec
from bandit.directives import DirectiveCompiler
from bandit.explain import Reason
from bandit.inputs import arm_pairs, decision_arrays, feedback_arrays, feedback_records
from bandit.persist import load_engine, save_engine
from bandit.profile import forget_user, forget_users, set_pins, set_user_features, user_profile
from bandit.random import check_random_state
from bandit.records import Decision, DecisionRequest, Feedback
from bandit.replay import explain_logged
from bandit.selection import ArmMasks, SeedStream, Selection, decisions, make_pool, select
from bandit.shared import EB_HORIZON, SharedModel, tenant_of
from bandit.state import UserState

ColdStart = Callable[[np.ndarray], tuple[np.ndarray, "float | np.ndarray"]]
PAUSED_USER = "\x00paused"  # the neutral row's user part (a NUL byte: not an id a product uses)

__all__ = ["ColdStart", "Engine", "Selection"]


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
    >>> Engine(config=EngineConfig(policy="linucb"), floor=0.1).config.floor
    0.1
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
        c = self.config
        self.shared = SharedModel(
            width,
            c.context.n_columns,
            prior_sd=c.shared_prior_sd,
            noise_sd=c.noise_sd,
            prior_precision=c.prior_precision,
            empirical=c.empirical_prior,
        )
        self.users = UserState(
            n_features, prior_precision=c.prior_precision, new_user=self.shared.user_prior
        )
        self.X = np.zeros((self.catalog.n_arms, n_features))
        self.X[:, :width] = self.catalog.attributes
        self._XT = np.ascontiguousarray(self.X.T)  # the decide kernel reads arms along rows
        self.pins: dict[str, dict[str, str]] = {}
        self.user_features: dict[str, dict[str, Any]] = {}  # remembered user-scope features
        self.directives = DirectiveCompiler(self.catalog)
        self._set_pool(int(self.rng.integers(2**62)))
        self._masks = ArmMasks(self.catalog)
        self._locales: dict[str, str] = {}
        self._seeds = SeedStream(self.rng)
        self._kernel_args = (*self.policy.kernel_args(), self.config.floor, self.config.noise_sd)
        # Batches of at least this many requests take the parallel kernels; None: never (a
        # server, whose other core has work of its own, see ``ServingOptions.engine``).
        self.parallel_min_batch: int | None = PARALLEL_MIN_BATCH
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

    @property
    def context(self) -> ContextSpec:
        return self.config.context

    @property
    def n_context(self) -> int:
        """Columns of a request's context vector."""
        return self.config.context.n_columns

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
        the arms; when a pin conflicts with the product's constraints, the constraints win. A
        paused request is decided for the tenant's neutral row (``paused_row``).
        """
        n = len(requests)
        contexts = self._contexts(requests)
        masks = self._masks.of(requests, self.pins)
        locales = [self._locale(r.locale) for r in requests]
        with self._lock:
            rows = self._rows_with_cold_start([r.user_id for r in requests], contexts)
            for i, r in enumerate(requests):
                if r.paused:
                    rows[i] = self.paused_row(r.user_id)
            mu = np.empty((n, self.n_features))
            sel = select(self, rows, contexts, masks, seeds, mu)
            now = time.time()
            n_decisions, last_seen = self.users.n_decisions, self.users.last_seen
            for row in rows.tolist():
                n_decisions[row] += 1
                last_seen[row] = now
        return decisions(self, requests, sel, contexts, mu, locales, rows)

    def _contexts(self, requests: Sequence[DecisionRequest]) -> np.ndarray:
        """The requests' context vectors, shape (n, n_context). A user's remembered user-scope
        features fill in what a request leaves out; those a request sends are remembered."""
        remembered = self.user_features
        features = [
            {**remembered[r.user_id], **r.features}
            if r.user_id in remembered and not r.paused
            else r.features
            for r in requests
        ]
        spec = self.context
        contexts = spec.featurize(
            [r.message for r in requests], features if any(features) else None
        )
        if spec.features and any(r.features for r in requests):
            with self._lock:
                for r in requests:
                    mine = None if r.paused else spec.user_scoped(r.features)
                    if mine:
                        remembered[r.user_id] = {**remembered.get(r.user_id, {}), **mine}
        return contexts

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
        contexts : float array, shape (n, n_context)
        masks : bool array, shape (n, n_arms), optional
        seeds : int array, shape (n,), optional
        """
        n_rows = len(self.users._row_ids)
        rows, contexts, masks = decision_arrays(
            rows, contexts, masks, n_rows, self.n_arms, self.n_context
        )
        n = len(rows)
        with self._lock:
            return select(self, rows, contexts, masks, seeds, np.empty((n, self.n_features)))

    def _parallel(self, n: int) -> bool:
        return self.parallel_min_batch is not None and n >= self.parallel_min_batch

    def expected_rewards(self, rows: np.ndarray, contexts: np.ndarray) -> np.ndarray:
        """The model's posterior-mean reward of every arm, shape (n, n_arms)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        contexts = np.ascontiguousarray(contexts, dtype=np.float64)
        out = np.empty((len(rows), self.n_arms))
        kernel = K.mean_batch_parallel if self._parallel(len(rows)) else K.mean_batch_serial
        with self._lock:
            users, attributes = self.users, self.catalog.attributes
            mean = self.shared.mean
            kernel(rows, users.tenant, users.A, users.B, self.X, attributes, mean, contexts, out)
        return out

    def paused_row(self, user_id: str) -> int:
        """The row a paused user is decided with: their tenant's neutral row (``PAUSED_USER``),
        reset to the prior a new user of the tenant gets now, so only the population model
        and this request shape the choice."""
        key = f"{tenant_of(user_id)}/{PAUSED_USER}"
        row = int(self.users.rows([key])[0])
        _, precision = self.shared.user_prior(key)
        self.users.set_prior(np.array([row]), np.zeros((1, 1)), precision, reset=True)
        return row

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

    def _locale(self, locale: str) -> str:
        resolved = self._locales.get(locale)
        if resolved is None:
            resolved = self.directives.resolve_locale(locale)
            if len(self._locales) < 1024:
                self._locales[locale] = resolved
        return resolved

    # ------------------------------------------------------------------ learning
    def learn(self, feedback: Sequence[Feedback]) -> None:
        """Learn from rewards, in order (a user's later feedback sees their earlier)."""
        if not feedback:
            return
        arrays = feedback_records(feedback, self.n_arms, self.n_context)
        with self._lock:
            self._learn((self.users.rows([f.user_id for f in feedback]), *arrays))

    def learn_arrays(
        self,
        rows: np.ndarray,
        arms: np.ndarray,
        contexts: np.ndarray,
        rewards: np.ndarray,
        weights: np.ndarray | None = None,
        user_scores: np.ndarray | None = None,
    ) -> None:
        """The batch path of ``learn``: arrays of shape (n,), (n,), (n, n_context), (n,).

        ``weights`` (n,) scale each observation; ``user_scores`` (n,) are the decision-time
        scores from ``Selection.user_scores`` (NaN or omitted: computed from the posterior).
        """
        feedback = feedback_arrays(
            rows, arms, contexts, rewards, weights, user_scores, self.n_arms, self.n_context
        )
        rows, n = feedback[0], len(feedback[0])
        with self._lock:
            if n and (rows.min() < 0 or rows.max() >= len(self.users._row_ids)):
                raise ValueError("rows: unknown user row")
            self._learn(feedback)

    def _learn(self, feedback: tuple[np.ndarray, ...]) -> None:
        """``learn_batch`` on checked arrays ``(rows, arms, contexts, rewards, weights,
        user_scores)``; the caller holds the lock."""
        sh = self.shared
        model = (self.X, self.catalog.attributes, sh.mean, sh.cov, sh.info, sh.info_mean)
        users, sums = self.users.learning_arrays(), self.users.prior_sums()
        c = self.config
        keep = 1.0 - 1.0 / EB_HORIZON
        args = K.learn_batch_args(
            feedback, users, sums, (*model, sh.eb, sh.updates), c.forgetting, c.noise_sd**2, keep
        )
        K.learn_batch(*args)

    def learn_pairwise(
        self, user_ids: Sequence[str], winners: Sequence[int], losers: Sequence[int]
    ) -> None:
        """Learn that each user preferred the response of arm ``winners[i]`` to ``losers[i]``
        (a Bradley-Terry update on the feature difference)."""
        winners_a, losers_a = arm_pairs(len(user_ids), winners, losers, self.n_arms)
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

    def set_cold_start(self, prior: ColdStart | None) -> None:
        """Install (or remove, with None) the prior for users seen for the first time.

        ``prior(contexts)`` takes the first requests' features, shape (m, n_context), and
        returns ``(mean, precision)``: means of shape (m, d' <= n_features) over the arm
        features, and a scalar or (m,) precision. collab installs a cluster prior here.
        """
        with self._lock:
            self.cold_start = prior

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

    def _set_pool(self, seed: int) -> None:
        """Make the pool of normal draws the Thompson kernel reads from ``seed``."""
        self._pool_seed = seed
        self._pool = make_pool(seed, self.policy.kernel_args()[3], self.n_features)

    # ------------------------------------------------------------------ profiles
    def pin(self, user_id: str, pins: Mapping[str, str | None]) -> dict[str, str]:
        """Set (level) or clear (None) pins per dimension; returns the user's pins."""
        return set_pins(self, user_id, pins)

    def set_user_features(self, user_id: str, features: Mapping[str, Any | None]) -> dict[str, Any]:
        """Remember (or, with None, clear) declared user-scope features; returns the user's."""
        return set_user_features(self, user_id, features)

    def forget(self, user_id: str) -> bool:
        """Erase everything the engine holds about a user. Returns whether it knew them."""
        return forget_user(self, user_id)

    def forget_many(self, user_ids: Sequence[str]) -> int:
        """``forget`` for many users at once (users leaving memory); returns how many it
        knew."""
        return forget_users(self, user_ids)

    def profile(self, user_id: str) -> dict[str, Any]:
        """What the engine has learned about a user, per dimension, with confidence.

        Raises ``KeyError`` for a user it does not know.
        """
        return user_profile(self, user_id)

    def explain(self, decision: Decision) -> tuple[Reason, ...]:
        return decision.explanation

    def explain_logged(
        self,
        user_id: str,
        arm: int,
        context: Sequence[float],
        action_dist: Sequence[float] = (),
        propensity: float = 1.0,
    ) -> tuple[Reason, ...]:
        """Reasons for a logged decision, from the model as it is now (``bandit.replay``)."""
        return explain_logged(self, user_id, arm, context, action_dist, propensity)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Snapshot everything to one ``.npz`` (no pickle), atomically."""
        save_engine(self, path)

    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """The engine ``save`` wrote to ``path``; raises ``SchemaError`` for another version."""
        return load_engine(cls, path)

    def warm(self) -> None:
        """Compile every kernel this engine calls (on a throwaway copy of its state)."""
        probe = Engine(self.catalog, replace(self.config, context=self.context.optional()))
        [d] = probe.decide([DecisionRequest("warm-up", "How does this work?")])
        d.explanation  # noqa: B018  (the explanation's kernel compiles on first use)
        probe.learn([Feedback("warm-up", d.arm, 1.0, d.context)])
        probe.learn_pairwise(["warm-up"], [d.arm], [(d.arm + 1) % self.n_arms])
        probe.profile("warm-up")
        if self.parallel_min_batch is not None:
            rows = probe.users.rows([f"w{i}" for i in range(self.parallel_min_batch)])
            probe.decide_arrays(rows, np.repeat(d.context[None], len(rows), axis=0))

    def bytes_per_user(self) -> float:
        return self.users.bytes_per_user()
