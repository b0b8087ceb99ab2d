"""Warm start: put a CF model into an engine.

``warm_start`` turns a ``CFModel`` into three things the engine uses: arm features (what the
attribute one-hots leave unexplained of the clusters' rewards and of the item factors), a
prior per known user (their group's measured rewards plus their own factor-predicted
deviation, fitted in the arm-feature space, ``PriorMap``), and a cold-start prior for new
users (the clusters' priors mixed by what their first request says, ``ClusterPrior``). It
switches all three under the engine's lock, and a retrain counts no feedback twice (see
``warm_start``). The README's "Collaborative-filtering warm start" section tells the story.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from bandit import Engine
from collab.arms import ArmSpace, arm_space
from collab.clusters import unit_rows
from collab.model import CFModel

CHUNK = 65_536
DEFAULT_COLD = 100.0  # for models trained before ``fit`` measured the members' spread


@dataclass(frozen=True)
class Priors:
    """How much the engine trusts the CF model.

    Parameters
    ----------
    per_event : float >= 0
        Prior precision a known user gains per training event (on top of the engine's
        ``prior_precision``), up to ``max_events`` events.
    max_events : int >= 0
    cold : float > 0 or None
        Prior precision of a new user's cluster prior, times the classifier's probability of
        its best guess (an unsure guess is held loosely). None: estimated from how far the
        model's cluster members stray from their cluster (``cold_precision``), or
        ``DEFAULT_COLD`` for a model without that estimate.
    embedding_norm : float > 0 or None
        Mean norm of an installed arm embedding; None = the norm of an arm's level one-hots
        (``sqrt(n_dimensions)``).
    """

    per_event: float = 0.5
    max_events: int = 20
    cold: float | None = None
    embedding_norm: float | None = None

    def __post_init__(self) -> None:
        if self.per_event < 0 or self.max_events < 0:
            raise ValueError("per_event and max_events must be >= 0")
        if self.cold is not None and not self.cold > 0:
            raise ValueError(f"cold must be > 0, got {self.cold}")
        if self.embedding_norm is not None and not self.embedding_norm > 0:
            raise ValueError(f"embedding_norm must be > 0, got {self.embedding_norm}")


class PriorMap:
    """The linear map from CF factors to prior means over an engine's arm features.

    Parameters
    ----------
    engine : Engine
    model : CFModel
    priors : Priors
    baseline : ndarray, shape (n_attributes,), optional
        The shared model's per-attribute baseline the priors are relative to; default the
        engine's now (``SharedModel.bias_column``).
    """

    def __init__(
        self,
        engine: Engine,
        model: CFModel,
        priors: Priors,
        *,
        baseline: np.ndarray | None = None,
    ) -> None:
        attrs = engine.catalog.attributes
        width = attrs.shape[1]
        # the model's whole factor space, so predicted rewards keep every factor
        self.space: ArmSpace = arm_space(engine.catalog, model, model.factors)
        self.a, self.b = model.calibration
        self.baseline = attrs @ (engine.shared.bias_column() if baseline is None else baseline)
        self.attr_pinv = np.linalg.pinv(attrs)  # (width, n_arms)
        self.attrs = attrs
        self.model = model
        self.arm_ids = engine.catalog.arm_ids
        self.center_rewards = self.rewards(model.cluster_centers.astype(np.float64))
        self.cluster_rewards = _cluster_rewards(self, model)
        blocks = self._blocks(engine.n_features - width)
        norms = np.linalg.norm(blocks, axis=1)
        target = priors.embedding_norm or float(np.sqrt(len(engine.catalog.dimensions)))
        self.embeddings = blocks * (target / max(float(norms.mean()), 1e-12))
        self.emb_pinv = np.linalg.pinv(self.embeddings)  # (e, n_arms)
        # mean squared norm of an installed arm feature vector (bias, one-hots, embedding)
        self.arm_norm2 = float(
            np.mean(np.sum(attrs**2, axis=1) + np.sum(self.embeddings**2, axis=1))
        )

    def _blocks(self, room: int) -> np.ndarray:
        """The arm embeddings before scaling, shape (n_arms, <= room): what the attributes leave
        unexplained, first of the clusters' rewards (the group block), then of the item
        factors (the factor block), each block scaled to unit mean squared norm per arm.

        Both blocks are orthogonal to the attribute one-hots and to each other, so a prior
        mean fitted in two steps (attributes, then embeddings) is the joint least-squares fit,
        and a cluster's prior reproduces its measured rewards exactly when the room holds its
        group block. The group block takes at most the room the factor block leaves it, and
        never less than half.
        """
        group = self._unexplained((self.cluster_rewards - self.baseline).T)
        factors = self._unexplained(self.space.factors)
        n_factor = np.linalg.matrix_rank(factors) if factors.size else 0
        g = _directions(group, room - min(n_factor, room // 2))
        if g.shape[1]:
            factors = factors - g @ np.linalg.lstsq(g, factors, rcond=None)[0]
        f = _directions(factors, room - g.shape[1])
        parts = [unit_rows(b) for b in (g, f) if b.shape[1]]
        if not parts:
            raise ValueError("the CF model adds nothing to the arm attributes (no embedding)")
        return np.hstack(parts)

    def _unexplained(self, m: np.ndarray) -> np.ndarray:
        """``m`` (n_arms, c) minus its least-squares fit on the attribute one-hots."""
        return m - self.attrs @ (self.attr_pinv @ m)

    def means(self, rows: np.ndarray) -> np.ndarray:
        """Prior means, shape (n, width + e), of the model's users at ``rows`` (n,).

        A user's rewards are their group's measured rewards plus their own factor-predicted
        deviation from the group's center, scaled by ``meta["individual_weight"]`` (how much
        of it held up on held-out events; 1 for models trained before it was measured).
        """
        model = self.model
        labels = model.user_clusters[rows]
        weight = float(model.meta.get("individual_weight", 1.0))
        own = self.rewards(model.user_factors[rows].astype(np.float64))
        deviation = own - self.center_rewards[labels]
        return self.fit_rewards(self.cluster_rewards[labels] + weight * deviation)

    def rewards(self, factors: np.ndarray) -> np.ndarray:
        """Calibrated rewards, shape (n, n_arms) in catalog order, of CF factors (n, factors)."""
        return self.a + self.b * (factors @ self.space.rotation) @ self.space.factors.T

    def fit_rewards(self, rewards: np.ndarray) -> np.ndarray:
        """Prior means, shape (n, width + f), whose arm scores best fit ``rewards`` (n, n_arms)
        on top of what the shared model already predicts (``W``'s bias column).

        The attribute block fits them on the one-hots (readable in a profile: "prefers
        brief"); the embedding block fits what the attributes leave unexplained.
        """
        rewards = rewards - self.baseline
        theta_attr = rewards @ self.attr_pinv.T
        rest = rewards - theta_attr @ self.attrs.T
        return np.hstack([theta_attr, rest @ self.emb_pinv.T])


def warm_start(
    engine: Engine,
    model: CFModel,
    *,
    reset_known: bool = True,
    users: str | Iterable[str] = "all",
    priors: Priors | None = None,
    replay: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Install ``model`` in ``engine``: arm embeddings, known users' priors, cold-start prior.

    Parameters
    ----------
    engine : Engine
    model : CFModel
    reset_known : bool
        Replace known users' posteriors by their new prior (see Notes for why this, plus
        ``replay``, counts no feedback twice). False only moves the prior their forgetting
        reverts to.
    users : "all", "present" or iterable of str
        Which model users get their prior: all (a row is created for each, of
        ``engine.bytes_per_user()``), those the engine already holds (a partitioned worker), or
        the given ids.
    priors : Priors, optional
    replay : polars.DataFrame, optional
        Feedback to re-apply (``user_id, arm, reward, ts``, optional ``context`` and
        ``weight``); only rows with ``ts > model.cutoff_ts`` are used, in time order. Engine
        users neither in the model nor in the replay restart from the population prior.

    Returns
    -------
    dict
        Counts: ``known_users``, ``imputed_arms``, ``replayed``, ``classifier``.

    Notes
    -----
    A known user's factors already contain all their feedback up to ``model.cutoff_ts``.
    ``reset_known=True`` therefore *replaces* their posterior by the new prior (dropping the
    evidence the engine had accumulated, which the new factors now summarize), and ``replay``
    then applies only feedback with ``ts > model.cutoff_ts``, the part the model has not seen.
    Users the model does not know have all their feedback after the cutoff: they restart from
    the cold-start prior and get all of it replayed. The shared interaction model ``W`` is
    restored after a replay, because it already learned from those events when they happened.

    Examples
    --------
    >>> from bandit import Engine
    >>> report = warm_start(Engine(random_state=0), model)  # doctest: +SKIP
    """
    priors = priors or Priors()
    if model.has_classifier and model.classifier_coef.shape[1] != engine.n_context:
        raise ValueError(
            f"the model's classifier reads {model.classifier_coef.shape[1]} "
            f"context columns, the engine makes {engine.n_context}"
        )
    pmap = PriorMap(engine, model, priors)
    ids = _select_users(engine, model, users)
    rows = model.rows(ids)
    base = engine.users.prior_precision
    cold = ClusterPrior(pmap, model, priors.cold, priors=priors, base_precision=base)
    with engine.lock:  # one consistent switch: no decision sees half a model
        engine.set_arm_embeddings(pmap.embeddings)
        for start in range(0, len(ids), CHUNK):
            r = rows[start : start + CHUNK]
            engine.set_prior(
                ids[start : start + CHUNK],
                pmap.means(r),
                cold.own_precision(model.user_events[r]),
                reset=reset_known,
            )
        engine.set_cold_start(cold)
        replayed = 0 if replay is None else _replay(engine, model, replay, cold)
    return {
        "known_users": len(ids),
        "imputed_arms": int(pmap.space.imputed.sum()),
        "replayed": replayed,
        "classifier": model.has_classifier,
    }


class ClusterPrior:
    """The cold-start prior: a first request's cluster mixture of cluster prior means.

    Callable as ``engine.set_cold_start`` expects: ``prior(contexts (m, n_context)) ->
    (means (m, d'), precisions (m,))``. It also keeps, per new user, the classifier's evidence
    of their requests so far (``observe_requests``), which ``refine_cluster_priors`` adds to the
    reward evidence; at most ``max_tracked`` users are kept, the least recently seen dropped.
    """

    def __init__(
        self,
        pmap: PriorMap,
        model: CFModel,
        precision: float | None = None,
        *,
        max_tracked: int = 100_000,
        priors: Priors | None = None,
        base_precision: float = 1.0,
    ) -> None:
        self.model = model
        self._pmap, self._priors, self._base = pmap, priors or Priors(), base_precision
        self.cluster_means = pmap.fit_rewards(pmap.cluster_rewards)
        self.precision = cold_precision(pmap, model) if precision is None else precision
        sizes = np.bincount(model.user_clusters, minlength=model.n_clusters).astype(float)
        self.shares = sizes / max(sizes.sum(), 1.0)
        self.max_tracked = max_tracked
        self._log_share = np.log(np.maximum(self.shares, 1e-12))
        self._requests: OrderedDict[str, np.ndarray] = OrderedDict()

    def __call__(self, contexts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = self.model.cluster_probabilities(contexts)
        # An unsure guess gets a wider prior: the user's first feedback then moves it sooner.
        return probs @ self.cluster_means, self.precision * probs.max(axis=1)

    def own_prior(self, user_id: str) -> tuple[int, np.ndarray, float] | None:
        """A known user's cluster and own CF prior as ``warm_start`` gives it (mean, shape
        (width + e,), and precision ``own_precision``); None for a user the model does not
        know."""
        [row] = self.model.rows([user_id])
        if row < 0:
            return None
        mean = self._pmap.means(np.array([row]))[0]
        precision = float(self.own_precision(self.model.user_events[[row]])[0])
        return int(self.model.user_clusters[row]), mean, precision

    def own_precision(self, events: np.ndarray) -> np.ndarray:
        """Known users' prior precision from their training events: ``base_precision +
        per_event * min(events, max_events)``, and never below this prior's (a known user
        is not held more loosely than a stranger placed in their cluster)."""
        events = np.minimum(events, self._priors.max_events)
        return np.maximum(self._base + self._priors.per_event * events, self.precision)

    def observe_requests(self, user_ids: Sequence[str], contexts: np.ndarray) -> None:
        """Add each request's naive-Bayes evidence ``log p(c | x) - log p(c)`` to its user's
        sum (``contexts`` shape (len(user_ids), n_context)); no classifier adds nothing."""
        if not len(user_ids):
            return
        probs = self.model.cluster_probabilities(contexts)
        # the floor keeps one odd request from ruling a cluster out for good
        ratios = np.log(np.maximum(probs, 1e-6)) - self._log_share
        for uid, ratio in zip(user_ids, ratios, strict=True):
            self._requests[uid] = self._requests.pop(uid, 0.0) + ratio
        while len(self._requests) > self.max_tracked:
            self._requests.popitem(last=False)

    def log_prior(self, user_id: str) -> np.ndarray:
        """The user's cluster log-posterior before their rewards: log share plus the evidence
        of their observed requests, shape (n_clusters,)."""
        return self._log_share + self._requests.get(user_id, 0.0)

    def forget(self, user_id: str) -> None:
        """Drop a user's request evidence (they no longer need a cluster prior)."""
        self._requests.pop(user_id, None)

    def request_evidence(self, user_id: str) -> np.ndarray | None:
        """The user's summed request evidence, shape (n_clusters,), or None."""
        evidence = self._requests.get(user_id)
        return None if evidence is None else np.asarray(evidence, dtype=np.float64)

    def set_request_evidence(self, user_id: str, evidence: np.ndarray | None) -> None:
        """Put back evidence a caller keeps elsewhere (a worker keeps it in the user's record,
        so it survives restores); None drops it."""
        if evidence is None:
            self._requests.pop(user_id, None)
        else:
            self._requests[user_id] = np.asarray(evidence, dtype=np.float64)


def cold_precision(pmap: PriorMap, model: CFModel) -> float:
    """The cluster prior's precision: noise variance over the prior variance of a coordinate.

    In the engine's units (unit weight per reward) a Gaussian prior ``N(m, tau^2 I)`` under
    reward noise ``sigma^2`` is precision ``sigma^2 / tau^2``. A member's expected reward of
    arm ``a`` then strays from the cluster's by variance ``tau^2 |x_a|^2``, which the model
    measured as ``member_var`` (``clusters.cluster_stats``), so ``tau^2 = member_var /
    mean |x_a|^2`` over the installed arm features.
    """
    member_var = model.meta.get("member_var")
    noise_var = model.meta.get("noise_var")
    if member_var is None or noise_var is None or not member_var > 0:
        return DEFAULT_COLD
    return float(noise_var * pmap.arm_norm2 / member_var)


def _directions(m: np.ndarray, limit: int) -> np.ndarray:
    """The principal directions of ``m`` (n_arms, c) scaled by their singular values, at most
    ``limit`` of them, dropping numerically null ones."""
    if limit < 1 or not m.size:
        return np.zeros((m.shape[0], 0))
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    keep = min(limit, int(np.sum(s > 1e-9 * max(float(s[0]), 1e-300))))
    return u[:, :keep] * s[:keep]


def _cluster_rewards(pmap: PriorMap, model: CFModel) -> np.ndarray:
    """Each cluster's reward per catalog arm, shape (k, n_arms): the members' measured rewards
    (``model.cluster_rewards``) where the model has them, else the centers' scores."""
    rewards = pmap.center_rewards.copy()
    if not len(model.cluster_rewards):
        return rewards
    index = {a: i for i, a in enumerate(model.arm_ids)}
    rows = np.array([index.get(a, -1) for a in pmap.arm_ids], dtype=np.int64)
    rewards[:, rows >= 0] = model.cluster_rewards[:, rows[rows >= 0]]
    return rewards


def _select_users(engine: Engine, model: CFModel, users: str | Iterable[str]) -> list[str]:
    if users == "all":
        return model.user_ids.tolist()
    if users == "present":
        return [u for u in model.user_ids.tolist() if u in engine.users]
    if isinstance(users, str):
        raise ValueError(f"users must be 'all', 'present' or an iterable of ids, got {users!r}")
    chosen = list(users)
    return [u for u, r in zip(chosen, model.rows(chosen), strict=True) if r >= 0]


def _replay(engine: Engine, model: CFModel, replay: pl.DataFrame, cold: ClusterPrior) -> int:
    after = replay.filter(pl.col("ts") > model.cutoff_ts).sort("ts", maintain_order=True)
    n = len(after)
    uids = after["user_id"].to_list()
    if "context" in after.columns:
        contexts = np.stack(list(after["context"].to_numpy())).astype(np.float64).reshape(n, -1)
    else:  # without the request, the bias feature alone
        contexts = np.zeros((n, engine.n_context))
        contexts[:, 0] = 1.0
    first: dict[str, int] = {}
    for i, u in enumerate(uids):
        first.setdefault(u, i)
    unknown = [u for u in first if model.rows([u])[0] < 0]
    idle = [u for u in engine.users.user_ids() if u not in first and model.rows([u])[0] < 0]
    if unknown:  # all their feedback is after the cutoff: rebuild them from the cold start
        mean, prec = cold(contexts[[first[u] for u in unknown]])
        engine.set_prior(unknown, mean, prec, reset=True)
    if idle:
        mean = np.repeat(cold.shares[None] @ cold.cluster_means, len(idle), axis=0)
        engine.set_prior(idle, mean, cold.precision, reset=True)
    if n:
        shared = engine.shared.snapshot()
        weights = after["weight"].to_numpy() if "weight" in after.columns else None
        engine.learn_arrays(
            engine.users.rows(uids),
            after["arm"].to_numpy(),
            contexts,
            after["reward"].to_numpy().astype(np.float64),
            weights,
        )
        # the shared model learned from these events when they first arrived
        engine.shared.restore(shared)
    return n
