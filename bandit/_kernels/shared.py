"""Kernels of the shared (population) model: its terms for one request, and one observation
into its per-tenant posterior (``bandit.shared`` tells the model)."""

from __future__ import annotations

import numpy as np

from bandit._config import serial


@serial
def shared_terms(
    mean: np.ndarray, cov: np.ndarray, c: np.ndarray, g: np.ndarray, v: np.ndarray
) -> None:
    """Per attribute column ``s``: the mean ``g[s] = mean[s] @ c`` of its term for context
    ``c`` and that term's variance ``v[s] = c @ cov[s] @ c``."""
    p, q = mean.shape
    for s in range(p):
        m = 0.0
        for j in range(q):
            m += mean[s, j] * c[j]
        g[s] = m
        total = 0.0
        cs = cov[s]
        for i in range(q):
            ci = c[i]
            if ci != 0.0:
                row = 0.0
                for j in range(q):
                    row += cs[i, j] * c[j]
                total += ci * row
        v[s] = total


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
