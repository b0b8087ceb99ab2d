"""Fairness audits: is any group of users served worse than the others?

Per group attribute (locale, age band, ...), per group: mean reward and (for simulations,
where the oracle is known) mean regret, each with a bootstrap percentile interval, and the
largest gap between groups with its interval. A group is flagged as *served worse* when its
mean reward is below that of all other groups pooled by more than ``tolerance`` and the
bootstrap interval of that difference excludes zero. Comparing with the rest rather than with
the best group avoids the winner's curse (the best of several groups is lucky as often as it is
good), and the interval is Bonferroni-widened over the attribute's groups, so an attribute
with many small groups does not flag one of them by chance.

The resampling unit is the user for simulation results (one row per user) and the logged
decision for decision logs; groups are resampled independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from bandit import check_random_state

GROUP_PREFIXES = ("group_", "audit_")


@dataclass(frozen=True)
class GroupStat:
    group: str
    n: int
    mean_reward: float
    reward_interval: tuple[float, float]
    gap_to_best: float
    gap_to_rest: float
    gap_interval: tuple[float, float]
    served_worse: bool
    regret: float | None = None
    regret_interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class AttributeAudit:
    """One attribute's audit for one policy."""

    policy: str
    attribute: str
    groups: tuple[GroupStat, ...]
    max_gap: float
    max_gap_interval: tuple[float, float]
    confidence: float

    @property
    def worse(self) -> list[str]:
        return [g.group for g in self.groups if g.served_worse]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["worse"] = self.worse
        return out


def group_columns(df: pl.DataFrame) -> list[str]:
    """The audit attribute columns of a frame (``group_*`` or ``audit_*``)."""
    return [c for c in df.columns if c.startswith(GROUP_PREFIXES)]


def audit(
    df: pl.DataFrame,
    *,
    by: Sequence[str] | None = None,
    reward: str = "mean_reward",
    regret: str | None = "regret",
    policy: str = "",
    tolerance: float = 0.02,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: Any = None,
) -> list[AttributeAudit]:
    """Audit one policy's rows: a simulation's users frame or a decision log.

    Parameters
    ----------
    df : polars.DataFrame
        One row per unit (user or decision), with the ``reward`` column and group columns.
    by : sequence of str, optional
        Group columns; default ``group_columns(df)``.
    reward, regret : str
        Column names; ``regret`` is skipped when None or absent.
    tolerance : float
        Gaps up to this are not flagged, however certain.

    Examples
    --------
    >>> df = pl.DataFrame({"mean_reward": [0.9, 0.8, 0.3, 0.35] * 25,
    ...                    "group_locale": ["en", "en", "ko", "ko"] * 25})
    >>> [a.worse for a in audit(df, regret=None, random_state=0)]
    [['ko']]
    """
    columns = list(by) if by else group_columns(df)
    missing = [c for c in [*columns, reward] if c not in df.columns]
    if missing:
        raise ValueError(
            f"column {missing[0]!r} not in the data; group columns: "
            f"{', '.join(group_columns(df)) or 'none'}"
        )
    if not columns:
        raise ValueError("no group columns (group_* or audit_*) to audit by")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 10:
        raise ValueError(f"n_bootstrap must be >= 10, got {n_bootstrap}")
    rng = check_random_state(random_state)
    use_regret = regret is not None and regret in df.columns
    return [
        _audit_one(
            df,
            col,
            reward,
            regret if use_regret else None,
            policy,
            tolerance,
            n_bootstrap,
            confidence,
            rng,
        )
        for col in columns
    ]


def _audit_one(
    df: pl.DataFrame,
    col: str,
    reward: str,
    regret: str | None,
    policy: str,
    tolerance: float,
    n_boot: int,
    confidence: float,
    rng: np.random.Generator,
) -> AttributeAudit:
    q = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
    labels = df[col].cast(pl.String).fill_null("unknown").to_numpy()
    names = sorted(set(labels.tolist()))
    values = df[reward].to_numpy().astype(np.float64)
    regrets = df[regret].to_numpy().astype(np.float64) if regret else None
    means, draws, regret_stats = [], [], []
    for g in names:
        idx = np.flatnonzero(labels == g)
        counts = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)), size=n_boot)
        means.append(float(values[idx].mean()))
        draws.append(counts @ values[idx] / len(idx))
        if regrets is not None:
            r = counts @ regrets[idx] / len(idx)
            regret_stats.append((float(regrets[idx].mean()), _interval(r, q)))
    boot = np.stack(draws)  # (groups, n_boot)
    sizes = np.array([(labels == g).sum() for g in names], dtype=np.float64)
    gaps = boot.max(axis=0) - boot.min(axis=0)
    alpha = (1 - confidence) / max(len(names) - 1, 1)
    q_diff = [100 * alpha / 2, 100 * (1 - alpha / 2)]
    stats = []
    for k, g in enumerate(names):
        others = np.arange(len(names)) != k
        if not others.any():  # one group: nothing to compare with
            rest, rest_boot = means[k], boot[k]
        else:
            w = sizes[others] / sizes[others].sum()
            rest, rest_boot = float(w @ np.array(means)[others]), w @ boot[others]
        lo, hi = _interval(rest_boot - boot[k], q_diff)
        gap = rest - means[k]
        stats.append(
            GroupStat(
                group=g,
                n=int((labels == g).sum()),
                mean_reward=means[k],
                reward_interval=_interval(boot[k], q),
                gap_to_best=max(means) - means[k],
                gap_to_rest=gap,
                gap_interval=(lo, hi),
                served_worse=bool(gap > tolerance and lo > 0),
                regret=regret_stats[k][0] if regret_stats else None,
                regret_interval=regret_stats[k][1] if regret_stats else None,
            )
        )
    return AttributeAudit(
        policy,
        col.removeprefix("group_"),
        tuple(stats),
        float(max(means) - min(means)),
        _interval(gaps, q),
        confidence,
    )


def _interval(draws: np.ndarray, q: list[float]) -> tuple[float, float]:
    lo, hi = np.percentile(draws, q)
    return float(lo), float(hi)


def format_audit(audits: Sequence[AttributeAudit]) -> str:
    """Plain-text tables and a verdict line per audited attribute."""
    lines = []
    for a in audits:
        lines.append(
            f"{a.policy + ': ' if a.policy else ''}{a.attribute}  (max gap "
            f"{a.max_gap:.4f} [{a.max_gap_interval[0]:.4f}, "
            f"{a.max_gap_interval[1]:.4f}])"
        )
        lines.append(
            f"  {'group':12s} {'n':>7s} {'reward':>8s} {'interval':>19s} "
            f"{'below rest':>10s} {'regret':>8s}  served worse"
        )
        for g in a.groups:
            reg = "" if g.regret is None else f"{g.regret:8.4f}"
            lines.append(
                f"  {g.group:12s} {g.n:7d} {g.mean_reward:8.4f} "
                f"[{g.reward_interval[0]:.4f}, {g.reward_interval[1]:.4f}] "
                f"{g.gap_to_rest:+10.4f} {reg:>8s}  {'YES' if g.served_worse else 'no'}"
            )
        verdict = (
            f"  -> served worse: {', '.join(a.worse)}"
            if a.worse
            else "  -> no group is served measurably worse"
        )
        lines += [verdict, ""]
    return "\n".join(lines)
