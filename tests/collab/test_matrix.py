"""The confidence matrix against a plain-Python twin, weighting schemes, input errors."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import polars as pl
import pytest

import collab
from collab.matrix import Weighting, build_matrix, user_contexts


def _frame(rows: list[tuple[str, int, float, float]], **extra: list) -> pl.DataFrame:
    data = {
        "user_id": [r[0] for r in rows],
        "arm": [r[1] for r in rows],
        "reward": [r[2] for r in rows],
        "ts": [r[3] for r in rows],
        **extra,
    }
    return pl.DataFrame(data)


def _naive(df: pl.DataFrame, n_arms: int, w: Weighting) -> dict[tuple[str, int], float]:
    """Signed confidence per (user, arm) cell, by the formula in collab.matrix's docstring."""
    signal: dict[tuple[str, int], float] = defaultdict(float)
    weights = df["weight"].to_list() if "weight" in df.columns else [1.0] * len(df)
    for (u, a, r), wt in zip(
        df.select("user_id", "arm", "reward").iter_rows(), weights, strict=True
    ):
        signal[(u, a)] += wt * (r - w.threshold)
    out = {}
    for key, s in signal.items():
        if s == 0:
            continue
        mag = {"linear": abs(s), "log": np.log1p(abs(s) / w.epsilon), "binary": 1.0}[w.scheme]
        out[key] = float(np.sign(s) * (1 + w.alpha * mag))
    return out


@pytest.mark.parametrize("scheme", ["linear", "log", "binary"])
def test_matrix_matches_the_naive_twin(rng, scheme) -> None:
    n = 400
    df = _frame(
        [
            (
                f"t/u{rng.integers(30)}",
                int(rng.integers(7)),
                float(rng.choice([0.0, 0.5, 0.8, 1.0])),
                float(i),
            )
            for i in range(n)
        ],
        weight=rng.choice([0.5, 1.0, 2.0], size=n).tolist(),
    )
    w = Weighting(scheme=scheme, alpha=3.0)
    data = build_matrix(df, 7, w)
    expected = _naive(df, 7, w)
    coo = data.matrix.tocoo()
    got = {
        (str(data.user_ids[r]), int(c)): float(v)
        for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    }
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5)
    assert data.cutoff_ts == n - 1 and data.n_interactions == n
    assert data.n_events.sum() <= n and len(data.cell_reward) == data.matrix.nnz
    first_seen = list(dict.fromkeys(df["user_id"].to_list()))
    assert list(data.user_ids) == first_seen  # deterministic row order


def test_neutral_cells_are_dropped() -> None:
    df = _frame([("a", 0, 0.5, 0.0), ("a", 1, 1.0, 1.0), ("b", 1, 1.0, 2.0), ("b", 1, 0.0, 3.0)])
    data = build_matrix(df, 3)
    assert data.matrix.nnz == 1 and data.matrix[0, 1] == pytest.approx(6.0)
    assert data.cell_reward.tolist() == [1.0]


@pytest.mark.parametrize(
    ("df", "error", "pattern"),
    [
        (
            pl.DataFrame({"user_id": ["a"], "arm": [0], "reward": [1.0]}),
            ValueError,
            "missing column 'ts'",
        ),
        (
            pl.DataFrame({"user_id": [1], "arm": [0], "reward": [1.0], "ts": [0.0]}),
            ValueError,
            "user_id: expected strings",
        ),
        (
            pl.DataFrame({"user_id": ["a"], "arm": ["x"], "reward": [1.0], "ts": [0.0]}),
            ValueError,
            "arm: expected numbers",
        ),
        (
            pl.DataFrame({"user_id": ["a"], "arm": [9], "reward": [1.0], "ts": [0.0]}),
            ValueError,
            r"arm: every arm must be in \[0, 3\)",
        ),
        (
            pl.DataFrame(
                {"user_id": [], "arm": [], "reward": [], "ts": []},
                schema={
                    "user_id": pl.String,
                    "arm": pl.Int64,
                    "reward": pl.Float64,
                    "ts": pl.Float64,
                },
            ),
            collab.NotEnoughData,
            "no events",
        ),
    ],
)
def test_bad_interactions(df, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        build_matrix(df, 3)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"scheme": "sqrt"}, "scheme must be one of"),
        ({"alpha": 0.0}, "alpha must be > 0"),
        ({"threshold": 1.5}, r"threshold must be in \[0, 1\]"),
        ({"epsilon": -1.0}, "epsilon"),
    ],
)
def test_bad_weighting(kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        Weighting(**kwargs)


def test_user_contexts_follow_the_user_rows() -> None:
    df = _frame(
        [("b", 0, 1.0, 0.0), ("a", 1, 1.0, 1.0), ("zz", 1, 1.0, 2.0)],
        context=[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
    )
    ctx, rows = user_contexts(df, np.array(["a", "b"]))
    assert sorted(zip(rows.tolist(), ctx[:, 0].tolist(), strict=True)) == [(0, 3.0), (1, 1.0)]
    assert user_contexts(df.drop("context"), np.array(["a"])) is None


def test_too_little_data_fails_with_counts() -> None:
    df = _frame([(f"u{i}", i % 3, 1.0, float(i)) for i in range(10)])
    with pytest.raises(collab.NotEnoughData, match="0 users with feedback on at least 2"):
        collab.fit(df, arm_ids=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"model must be one of \['als', 'bpr'\]"):
        collab.fit(df, model="svd", arm_ids=["a", "b", "c"])
