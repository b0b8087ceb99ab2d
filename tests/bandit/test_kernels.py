"""Every kernel against its plain NumPy twin (tests/bandit/naive.py), on small and edge cases."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bandit import _kernels as K
from bandit.state import packed_identity, unpack
from tests.bandit import naive

REPO = Path(__file__).resolve().parents[2]

D = 6
N_ARMS = 5
P = 3  # attribute columns: the first P arm features, as in the engine


def spd_packed(rng: np.random.Generator, d: int = D, *, near_singular: bool = False) -> np.ndarray:
    """A symmetric positive-definite matrix as a packed float32 triangle."""
    if near_singular:
        v = rng.normal(size=(d, 1))
        full = 1e3 * v @ v.T + 1e-4 * np.eye(d)  # condition number ~1e7
    else:
        m = rng.normal(size=(d, 2 * d))
        full = m @ m.T / d + np.eye(d)
    return full[np.tril_indices(d)].astype(np.float32)


@pytest.mark.parametrize("near_singular", [False, True])
def test_posterior_matches_twin(rng: np.random.Generator, near_singular: bool) -> None:
    ap = spd_packed(rng, near_singular=near_singular)
    b = rng.normal(size=D).astype(np.float32)
    L, Linv, mu = np.empty((D, D)), np.empty((D, D)), np.empty(D)
    K.posterior(ap, b, L, Linv, mu)
    L_ref, mu_ref = naive.posterior(ap, b)
    A = unpack(ap.astype(np.float64), D)
    np.testing.assert_allclose(L @ L.T, A, rtol=1e-6, atol=1e-6 * np.abs(A).max())
    if near_singular:  # the mean is ill-determined; what must hold is A @ mu == b
        np.testing.assert_allclose(A @ mu, b, atol=1e-2 * np.abs(b).max())
    else:
        np.testing.assert_allclose(L, L_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(mu, mu_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(Linv @ L, np.eye(D), atol=1e-6)


def test_cholesky_survives_a_singular_matrix() -> None:
    ap = np.zeros(D * (D + 1) // 2, dtype=np.float32)  # all-zero: not positive definite at all
    L = np.empty((D, D))
    K.chol_from_packed(ap, L)
    assert np.all(np.isfinite(L)) and np.all(np.diag(L) > 0)


@pytest.mark.parametrize("code,param", [(0, 0.0), (1, 0.2), (1, 0.0), (2, 0.1), (3, 50.0)])
@pytest.mark.parametrize("mask_kind", ["all", "some", "one"])
def test_greedy_family_matches_twin(
    rng: np.random.Generator, code: int, param: float, mask_kind: str
) -> None:
    m = rng.normal(size=N_ARMS)
    mask = {
        "all": np.ones(N_ARMS, bool),
        "some": np.array([1, 0, 1, 1, 0], bool),
        "one": np.array([0, 0, 0, 1, 0], bool),
    }[mask_kind]
    out = np.empty(N_ARMS)
    K.greedy_family(code, param, m, mask, out)
    np.testing.assert_allclose(out, naive.greedy_family(code, param, m, mask), atol=1e-12)
    assert out[~mask].sum() == 0 and out.sum() == pytest.approx(1.0)


def factored(rng: np.random.Generator, near_singular: bool = False):  # type: ignore[no-untyped-def]
    ap = spd_packed(rng, near_singular=near_singular)
    b = rng.normal(size=D).astype(np.float32)
    X, shared = rng.normal(size=(N_ARMS, D)), rng.normal(size=N_ARMS)
    L, GT = np.empty((D, D)), np.empty((D, N_ARMS))
    m, mu = np.empty(N_ARMS), np.empty(D)
    K.factor_scores(ap, b, np.ascontiguousarray(X.T), shared, L, GT, m, mu)
    return ap, b, X, shared, L, GT, m, mu


@pytest.mark.parametrize("near_singular", [False, True])
def test_factor_scores_matches_twin(rng: np.random.Generator, near_singular: bool) -> None:
    ap, b, X, shared, L, GT, m, mu = factored(rng, near_singular)
    np.testing.assert_allclose(L @ GT, X.T, atol=1e-8)  # GT solves L GT = X^T
    np.testing.assert_allclose(m, shared + X @ mu, atol=1e-6 * max(1.0, np.abs(m).max()))
    if not near_singular:  # near-singular: the mean is ill-determined, the identities hold
        _, GT_ref, m_ref, mu_ref = naive.factor_scores(ap, b, X, shared)
        np.testing.assert_allclose(GT, GT_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(m, m_ref, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(mu, mu_ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize(
    "mask",
    [np.ones(N_ARMS, bool), np.array([0, 1, 0, 0, 1], bool), np.array([0, 0, 1, 0, 0], bool)],
)
@pytest.mark.parametrize("shared_sd", [0.0, 0.4])
def test_ucb_matches_twin(rng: np.random.Generator, mask: np.ndarray, shared_sd: float) -> None:
    _, _, X, _, L, GT, m, _ = factored(rng)
    attributes, sv = np.ascontiguousarray(X[:, :P]), shared_sd * rng.random(P)
    out = np.empty(N_ARMS)
    K.ucb_distribution(GT, m, 0.7, mask, out, attributes, sv)
    ref = naive.ucb_distribution(L, X, m, 0.7, mask, attributes, sv)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("scale", [0.0, 0.3, 5.0])
@pytest.mark.parametrize(
    "mask",
    [np.ones(N_ARMS, bool), np.array([1, 0, 0, 0, 0], bool), np.array([0, 1, 0, 1, 1], bool)],
)
# The kernel scores four draws at a time: blocks that are not a multiple of four, and draws
# that end exactly at the end of the pool, must count each draw once and read nothing past it.
@pytest.mark.parametrize(
    ("block", "n_max", "at_end"), [(8, 64, False), (5, 15, True), (1, 3, True)]
)
@pytest.mark.parametrize("shared_sd", [0.0, 0.5])
def test_ts_distribution_matches_twin(
    rng: np.random.Generator,
    scale: float,
    mask: np.ndarray,
    block: int,
    n_max: int,
    at_end: bool,
    shared_sd: float,
) -> None:
    _, _, X, shared, L, GT, m, mu = factored(rng)
    attributes, sv = np.ascontiguousarray(X[:, :P]), shared_sd * rng.random(P)
    pool = rng.standard_normal((200, D)).astype(np.float32)
    offset = len(pool) - n_max if at_end else 17
    offset2 = 60 if at_end else len(pool) - n_max  # the shared draws' rows, at the end too
    out = np.empty(N_ARMS)
    used = K.ts_distribution(GT, m, scale, mask, pool, offset, block, n_max, out, L, sv, offset2)
    ref, ref_used = naive.ts_distribution(
        L,
        mu,
        X,
        shared,
        scale,
        mask,
        pool.astype(np.float64),
        offset,
        block,
        n_max,
        attributes,
        sv,
        offset2,
    )
    assert used == ref_used
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert out[~mask].sum() == 0 and out.sum() == pytest.approx(1.0)
    if scale == 0.0 and shared_sd == 0.0:  # no uncertainty: one block, the mean's best arm
        assert used == block and out.max() == 1.0


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.5])
@pytest.mark.parametrize("u", [0.0, 0.37, 0.999999])
def test_floor_and_pick_matches_twin(rng: np.random.Generator, floor: float, u: float) -> None:
    mask = np.array([1, 1, 0, 1, 0], bool)
    dist = rng.random(N_ARMS) * mask
    dist /= dist.sum()
    ours = dist.copy()
    arm = K.apply_floor_and_pick(ours, mask, floor, u)
    ref, ref_arm = naive.apply_floor_and_pick(dist, mask, floor, u)
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert arm == ref_arm and mask[arm]
    assert ours[mask].min() >= floor / mask.sum() - 1e-12


def test_seed_draws_match_twin() -> None:
    for seed in (0, 1, 12345, 2**62 - 1):
        off, u = K.seed_draws(seed, 4096)
        ref_off, ref_u = naive.seed_draws(seed, 4096)
        assert (off, u) == (ref_off, pytest.approx(ref_u, abs=0))
        assert 0 <= off < 4096 and 0 <= u < 1


def test_shared_row_matches_twin(rng: np.random.Generator) -> None:
    W, attributes, c = (
        rng.normal(size=(4, 3)),
        rng.integers(0, 2, (N_ARMS, 4)) * 1.0,
        rng.normal(size=3),
    )
    out = np.empty(N_ARMS)
    K.shared_row(W, attributes, c, out)
    np.testing.assert_allclose(out, naive.shared_scores(W, attributes, c[None])[0])


def test_shared_terms_match_twin(rng: np.random.Generator) -> None:
    mean = rng.normal(size=(P, 4))
    m = rng.normal(size=(P, 4, 4))
    cov = m @ m.transpose(0, 2, 1) + np.eye(4)
    c = np.array([1.0, 0.0, -0.5, 2.0])  # a zero column too
    g, v = np.empty(P), np.empty(P)
    K.shared_terms(mean, cov, c, g, v)
    ref_g, ref_v = naive.shared_terms(mean, cov, c)
    np.testing.assert_allclose(g, ref_g, rtol=1e-12)
    np.testing.assert_allclose(v, ref_v, rtol=1e-12)


@pytest.mark.parametrize("attrs", [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
def test_shared_update_matches_twin(rng: np.random.Generator, attrs: list[float]) -> None:
    q = 4
    mean = rng.normal(size=(P, q)) * 0.1
    m = rng.normal(size=(P, q, q))
    cov = m @ m.transpose(0, 2, 1) * 0.1 + np.eye(q) * 0.2
    info, info_mean = rng.random((P, q, q)), rng.random((P, q))
    c, a = rng.normal(size=q), np.array(attrs)
    c[1] = 0.0  # the kernel's sums skip zero columns
    ref = naive.shared_update(mean, cov, info, info_mean, a, c, 0.7, 0.3)
    pred = K.shared_update(mean, cov, info, info_mean, a, c, 0.7, 0.3, np.empty((P, q)))
    for ours, theirs in zip((mean, cov, info, info_mean, pred), ref, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    idle = np.flatnonzero(a == 0)  # columns the arm does not have learn nothing
    np.testing.assert_array_equal(info[idle], ref[2][idle])


def _learning_inputs(rng: np.random.Generator, n_users: int = 3, n: int = 20, q: int = 3):
    A = np.stack([spd_packed(rng) for _ in range(n_users)])
    B = rng.normal(size=(n_users, D)).astype(np.float32)
    prior_mean = rng.normal(size=(n_users, D)).astype(np.float32)
    prior_prec = np.array([1.0, 2.0, 0.5][:n_users], dtype=np.float32)
    n_obs = np.zeros(n_users, dtype=np.int32)
    tenant = np.array([0, 1, 0][:n_users], dtype=np.int32)  # two tenants
    resid_sum = rng.normal(size=n_users).astype(np.float32)
    x_sum = rng.normal(size=(n_users, D)).astype(np.float32)
    X = rng.normal(size=(N_ARMS, D))
    attributes = rng.integers(0, 2, (N_ARMS, 4)) * 1.0
    mean = rng.normal(size=(2, 4, q)) * 0.1
    cov = np.broadcast_to(np.eye(q) * 0.25, (2, 4, q, q)).copy()
    info, info_mean = np.zeros((2, 4, q, q)), np.zeros((2, 4, q))
    eb, updates = np.zeros((2, 2)), np.zeros(2, dtype=np.int64)
    rows = rng.integers(0, n_users, n)
    arms = rng.integers(0, N_ARMS, n)
    contexts = rng.normal(size=(n, q))
    rewards = rng.random(n)
    weights = rng.uniform(0.5, 2.0, n)
    scores = np.where(rng.random(n) < 0.5, np.nan, rng.normal(size=n))  # given, or computed
    feedback = (rows, arms, contexts, rewards, weights, scores)
    users = (A, B, prior_mean, prior_prec, n_obs)
    sums = (tenant, resid_sum, x_sum)
    return feedback, users, sums, (X, attributes, mean, cov, info, info_mean, eb, updates)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_learn_batch_matches_twin(rng: np.random.Generator, gamma: float) -> None:
    feedback, users, sums, model = _learning_inputs(rng)
    args = K.learn_batch_args(feedback, users, sums, model, gamma, 0.25, 0.99)
    ref_users, ref_shared = naive.learn_batch(*args)
    K.learn_batch(*args)
    A, B, _, _, n_obs = users
    _, resid_sum, x_sum = sums
    for ours, theirs in zip((A, B, n_obs, resid_sum, x_sum), ref_users, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)  # float32 rows
    for ours, theirs in zip(model[2:], ref_shared, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    assert model[-1].sum() == len(feedback[0])  # every observation updated its tenant


def test_learn_pairwise_matches_twin(rng: np.random.Generator) -> None:
    _, (A, B, pm, pp, n_obs), _, (X, *_) = _learning_inputs(rng)
    rows = np.array([0, 2, 0])
    diff = X[[1, 3, 4]] - X[[0, 0, 2]]
    ref_A, ref_B = naive.learn_pairwise(rows, diff, A, B, pm, pp, 0.95)
    K.learn_pairwise(rows, diff, A, B, pm, pp, n_obs, 0.95)
    np.testing.assert_allclose(A, ref_A, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(B, ref_B, rtol=1e-4, atol=1e-5)
    assert n_obs.tolist() == [2, 0, 1]


def test_pairwise_update_moves_the_winner_up(rng: np.random.Generator) -> None:
    A = np.stack([packed_identity(D)])
    B = np.zeros((1, D), dtype=np.float32)
    x_w, x_l = np.eye(D)[1], np.eye(D)[2]
    K.learn_pairwise(
        np.array([0]),
        (x_w - x_l)[None],
        A,
        B,
        np.zeros((1, D), np.float32),
        np.ones(1, np.float32),
        np.zeros(1, np.int32),
        1.0,
    )
    mu = np.linalg.solve(unpack(A[0].astype(float), D), B[0])
    assert mu[1] > 0 > mu[2]


def test_posterior_batch_variances_match_twin(rng: np.random.Generator) -> None:
    A = np.stack([spd_packed(rng) for _ in range(2)])
    B = rng.normal(size=(2, D)).astype(np.float32)
    mu, var = np.empty((2, D)), np.empty((2, D))
    K.posterior_batch(np.array([1, 0]), A, B, mu, var)
    for i, r in enumerate([1, 0]):
        full = unpack(A[r].astype(float), D)
        np.testing.assert_allclose(mu[i], np.linalg.solve(full, B[r]), rtol=1e-6)
        np.testing.assert_allclose(var[i], np.diag(np.linalg.inv(full)), rtol=1e-6)


@pytest.mark.parametrize("case", ["random", "silent request", "tied features"])
def test_explain_terms_match_twin(rng: np.random.Generator, case: str) -> None:
    centring = np.array(
        [[0.5, -0.5, 0.0, 0.0, 0.0], [0.0, 0.0, -1 / 3, 2 / 3, -1 / 3]]
    )  # two dimensions of 2 and 3 levels over 5 attribute columns
    mu = rng.normal(size=D + 1)
    W = rng.normal(size=(5, 7))
    context = rng.normal(size=7)
    if case == "silent request":  # every contribution 0: the first two features, in order
        context[:] = 0.0
    elif case == "tied features":  # features 2 and 4 tie, above all others, in dimension 0
        W[:, 4] = W[:, 2]
        context[4] = context[2] = np.sign(centring[0] @ W[:, 2]) * abs(context).max() * 10
    dist = rng.dirichlet(np.ones(N_ARMS))
    out = np.empty((2, 5))
    p_max = K.explain_terms(centring, mu, W, context, dist, out)
    ref, ref_max = naive.explain_terms(centring, mu, W, context, dist)
    np.testing.assert_allclose(out, ref, atol=1e-12)
    assert p_max == ref_max
    if case == "tied features":  # the tie goes to the lower feature index first
        assert out[0, 1] == 2.0 and out[0, 3] == 4.0 and out[0, 2] == out[0, 4]


_POOL_PROBE = """
import sys
from bandit import DecisionRequest, Engine
engine = Engine(random_state=0)
if sys.argv[1] == "parallel-first":
    rows = engine.users.rows([f"w{i}" for i in range(64)])
    engine.decide_arrays(rows, engine.context.featurize(["hi"] * 64))
engine.decide([DecisionRequest("u", "hi")])
pools = ("omppool", "workqueue", "tbbpool")
print(any(f"numba.np.ufunc.{pool}" in sys.modules for pool in pools))
"""


@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compiled kernels, no cache, no pool"
)
def test_a_serial_kernel_never_loads_its_parallel_builds_cache(tmp_path: Path) -> None:
    """numba's disk cache keys a kernel by its function's name: a parallel build written
    first must not be what the serial kernel loads next time (it would start the thread
    pool, whose idle workers spin on the other core)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}

    def run(mode: str) -> str:
        out = subprocess.run(
            [sys.executable, "-c", _POOL_PROBE, mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        return out.stdout.strip()

    assert run("parallel-first") == "True"  # both built, the parallel one first
    assert run("serial-only") == "False"
