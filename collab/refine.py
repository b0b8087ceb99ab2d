"""Re-choosing a user's cluster prior as their requests and feedback come in.

The cold-start prior is picked from one request; when that request says little ("thanks!") or
points at the wrong group, a prior around the wrong cluster holds the user back for many turns.
A known user's CF cluster can be just as wrong when their history was short.
``refine_cluster_priors``, run after each of a user's first feedbacks, picks the most
likely cluster from everything seen so far (its share, the user's requests, their rewards) and
swaps the prior in place, keeping every observation the posterior holds. Its Notes give the
posterior it maximizes; the README's "Collaborative-filtering warm start" section tells the
story.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from bandit import Engine
from bandit.state import unpack
from collab.warm import ClusterPrior


def refine_cluster_priors(
    engine: Engine,
    prior: ClusterPrior,
    user_ids: Sequence[str],
    contexts: np.ndarray | None = None,
    *,
    max_feedback: int = 20,
    own: Callable[[str], tuple[int, np.ndarray, float] | None] | None = None,
) -> np.ndarray:
    """Give each user (with fewer than ``max_feedback`` feedbacks) the most likely cluster prior.

    Parameters
    ----------
    engine : Engine
        An engine warm-started with ``prior`` (``engine.cold_start``).
    prior : ClusterPrior
    user_ids : sequence of str
        Users just updated; unknown ids are skipped. A user may appear more than once.
    contexts : ndarray, shape (len(user_ids), n_context), optional
        The request features of the feedback just learned (``Feedback.context``), one row per
        entry of ``user_ids``: their classifier evidence is added to the user's log-posterior.
        Without them only the reward evidence and earlier requests count.
    max_feedback : int
        Users with more evidence than this keep their prior (it no longer matters much);
        their request evidence is dropped.
    own : callable, optional
        A user's own CF prior ``(cluster, mean, precision)`` or None (default
        ``prior.own_prior``; a service passes one that knows erased users). For a known user
        it stands in for their cluster's prior among the candidates: their CF cluster picks
        where they start, their first feedbacks may still move them to another cluster, and
        they stay on their own prior while it explains their rewards best.

    Returns
    -------
    ndarray of int64, shape (n,)
        The chosen cluster per entry of ``user_ids``, -1 where nothing changed.

    Notes
    -----
    The user's cluster log-posterior::

        log p(c | user) = log share_c
                          + sum over the user's requests of [log p(c | x) - log p(c)]
                          + log p(reward evidence | prior of c)

    The middle term is naive Bayes over the classifier's outputs: every request of a user is an
    independent sample of how they write, so a user who once said "thanks!" and then asked
    three questions in Japanese ends up in the Japanese group. Its sum is kept per user in the
    ``ClusterPrior`` (the engine's posterior cannot give it back), fed by the decision-time
    ``contexts``. The last term is the Gaussian marginal likelihood of the linear reward model
    under each cluster prior.

    The swap goes to the single most likely cluster: a posterior-weighted mixture of the
    cluster means (held at ``precision * max p``) did worse on the simulated community of
    ``tests/collab``, since a mixture of two groups' means recommends what neither group likes.

    The swap is exact because of how the engine keeps a posterior: with forgetting, the prior's
    share of the natural parameters stays ``A = lam I + evidence``, ``b = lam m + evidence``
    (the engine's update re-adds ``(1 - gamma) lam`` each step), so subtracting the old prior's
    part and adding the new one changes the prior and keeps every observation.
    """
    state = engine.users
    d = state.d
    means = np.zeros((prior.cluster_means.shape[0], d))
    means[:, : prior.cluster_means.shape[1]] = prior.cluster_means
    own = own or prior.own_prior
    out = np.full(len(user_ids), -1, dtype=np.int64)
    with engine.lock:  # the swap must not interleave with a learn of the same row
        eligible = [_eligible(engine, uid, max_feedback) for uid in user_ids]
        if contexts is not None:
            take = [i for i, ok in enumerate(eligible) if ok]
            prior.observe_requests([user_ids[i] for i in take], np.asarray(contexts)[take])
        done: dict[str, int] = {}
        for i, uid in enumerate(user_ids):
            if not eligible[i]:
                prior.forget(uid)
                continue
            if uid in done:
                out[i] = done[uid]
                continue
            row = state.ids[uid]
            lam_old = float(state.prior_prec[row])
            A = unpack(state.A[row].astype(np.float64), d) - lam_old * np.eye(d)
            b = state.B[row].astype(np.float64) - lam_old * state.prior_mean[row]
            candidates, lams = means, np.full(len(means), prior.precision)
            mine = own(uid)
            if mine is not None:
                label, mean, precision = mine
                candidates, lams = means.copy(), lams.copy()
                candidates[label] = 0.0
                candidates[label, : len(mean)] = mean
                lams[label] = precision
            log_post = prior.log_prior(uid) + _log_evidence(A, b, candidates, lams)
            k = int(np.argmax(log_post))
            A += lams[k] * np.eye(d)
            b += lams[k] * candidates[k]
            state.A[row] = A[np.tril_indices(d)]
            state.B[row] = b
            state.prior_mean[row] = candidates[k]
            state.prior_prec[row] = lams[k]
            out[i] = done[uid] = k
    return out


def _eligible(engine: Engine, uid: str, max_feedback: int) -> bool:
    row = engine.users.ids.get(uid)
    return row is not None and 0 < engine.users.n_feedback[row] <= max_feedback


def _log_evidence(A: np.ndarray, b: np.ndarray, means: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Log marginal likelihood (up to a constant shared by all candidates) of the evidence
    ``(A, b)`` under each prior ``N(means[k], (lams[k] I)^-1)``, shape (k,)::

        0.5 * (mu_k . r_k - lam_k |m_k|^2 + d log lam_k - log det(A + lam_k I)),
        r_k = b + lam_k m_k,  mu_k = (A + lam_k I)^-1 r_k

    With one precision for all (new users) the last two terms are shared, and one solve
    serves every candidate."""
    d = len(A)
    if np.all(lams == lams[0]):
        lam = float(lams[0])
        rhs = b[None, :] + lam * means  # (k, d)
        mu = np.linalg.solve(A + lam * np.eye(d), rhs.T).T
        return 0.5 * (np.einsum("kd,kd->k", mu, rhs) - lam * np.einsum("kd,kd->k", means, means))
    out = np.empty(len(means))
    for k, (m, lam) in enumerate(zip(means, lams, strict=True)):
        post = A + lam * np.eye(d)
        rhs = b + lam * m
        out[k] = 0.5 * (
            np.linalg.solve(post, rhs) @ rhs
            - lam * (m @ m)
            + d * np.log(lam)
            - np.linalg.slogdet(post)[1]
        )
    return out
