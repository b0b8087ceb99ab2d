"""Kernels of the shared (population) model: its terms for one request, and one observation
into its per-tenant posterior (``bandit.shared`` tells the model)."""

from __future__ import annotations

import numpy as np

from bandit._config import serial


@serial
def nonzero(c: np.ndarray, out: np.ndarray) -> int:
    """The indices of ``c``'s nonzero entries into ``out``; returns how many. A request's
    context is mostly zeros (one script, one topic bucket, no overflow), so the shared model's
    quadratic forms run over these alone."""
    k = 0
    for j in range(c.shape[0]):
        if c[j] != 0.0:
            out[k] = j
            k += 1
    return k


@serial
def shared_terms(
    mean: np.ndarray, cov: np.ndarray, c: np.ndarray, g: np.ndarray, v: np.ndarray
) -> None:
    """Per attribute column ``s``: the mean ``g[s] = mean[s] @ c`` of its term for context
    ``c`` and that term's variance ``v[s] = c @ cov[s] @ c``."""
    p = mean.shape[0]
    nz = np.empty(c.shape[0], dtype=np.int64)
    k = nonzero(c, nz)
    for s in range(p):
        m = 0.0
        total = 0.0
        cs = cov[s]
        for a in range(k):  # cov is symmetric: the diagonal, then twice the lower triangle
            i = nz[a]
            ci = c[i]
            m += mean[s, i] * ci
            row = 0.5 * cs[i, i] * ci
            for b in range(a):
                row += cs[i, nz[b]] * c[nz[b]]
            total += ci * row
        g[s] = m
        v[s] = 2.0 * total


@serial
def shared_update(
    mean: np.ndarray,
    cov: np.ndarray,
    info: np.ndarray,
    info_mean: np.ndarray,
    attrs: np.ndarray,
    c: np.ndarray,
    target: float,
    noise: float,
    gain: np.ndarray,
) -> float:
    """One observation into a tenant's shared posterior; returns the prediction before it.

    ``target`` is the reward minus the user's own part and ``noise`` the observation's variance
    (the reward noise over its weight, plus the user's prior variance on this arm). Each active
    attribute column ``s`` (regressor ``z_s = attrs[s] c``) takes a Kalman step that treats the
    other columns' terms as noise with their current means and variances (a decoupled Kalman
    filter): with ``S`` the total predictive variance and ``e`` the innovation,
    ``mean[s] += cov[s] z_s e / S`` and ``cov[s] -= (cov[s] z_s)(cov[s] z_s)^T / S``. The same
    step in information form, ``info[s] += z_s z_s^T / r_s`` and ``info_mean[s] += z_s y_s /
    r_s`` (``r_s = S - v_s``, ``y_s`` the target minus the other columns' means), records what
    this model learned, so learners' contributions add up. ``gain`` is scratch, (p, q).
    """
    p, q = mean.shape
    total = noise
    pred = 0.0
    for s in range(p):
        a = attrs[s]
        if a == 0.0:
            continue
        cs = cov[s]
        vs = 0.0
        ps = 0.0
        for i in range(q):
            t = 0.0
            for j in range(q):
                t += cs[i, j] * c[j]
            gain[s, i] = a * t
            vs += a * c[i] * gain[s, i]
            ps += mean[s, i] * c[i]
        total += vs
        pred += a * ps
    e = target - pred
    inv_total = 1.0 / total
    for s in range(p):
        a = attrs[s]
        if a == 0.0:
            continue
        vs = 0.0
        ps = 0.0
        for i in range(q):
            vs += a * c[i] * gain[s, i]
            ps += mean[s, i] * c[i]
        inv_r = 1.0 / (total - vs)
        ys = target - (pred - a * ps)
        for i in range(q):
            zi = a * c[i]
            if zi != 0.0:
                for j in range(q):
                    info[s, i, j] += zi * a * c[j] * inv_r
                info_mean[s, i] += zi * ys * inv_r
        for i in range(q):
            ki = gain[s, i] * inv_total
            mean[s, i] += ki * e
            for j in range(q):
                cov[s, i, j] -= ki * gain[s, j]
    return pred
