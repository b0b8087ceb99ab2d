"""Running metrics of one compared policy: per round, per user, per group.

Rewards here are *expected* rewards (the true probability of the chosen arm), not the drawn
0/1 outcomes: the comparison between policies then carries no reward-noise variance, and the
regret of a turn is exactly ``p(oracle arm) - p(chosen arm)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

TTP_TARGET = 0.9
TTP_SMOOTHING = 0.3  # EWMA weight of the newest turn: one lucky turn does not count


class Tally:
    """Accumulates one policy's expected rewards.

    Parameters
    ----------
    n_users, n_arms, n_rounds : int
    """

    def __init__(self, n_users: int, n_arms: int, n_rounds: int) -> None:
        self.reward_sum = np.zeros(n_rounds)
        self.oracle_sum = np.zeros(n_rounds)
        self.active = np.zeros(n_rounds, dtype=np.int64)
        self.observed = np.zeros(n_rounds, dtype=np.int64)
        self.user_reward = np.zeros(n_users)
        self.user_oracle = np.zeros(n_users)
        self.turns = np.zeros(n_users, dtype=np.int64)
        self.ratio = np.zeros(n_users)
        self.ttp = np.full(n_users, -1, dtype=np.int64)
        self.arm_counts = np.zeros((n_users, n_arms), dtype=np.int32)

    def add(
        self,
        round_: int,
        users: np.ndarray,
        arms: np.ndarray,
        reward: np.ndarray,
        oracle: np.ndarray,
        n_observed: int,
    ) -> None:
        """Record one round: chosen arms, their expected rewards and the oracle's, shape (n,)."""
        self.reward_sum[round_] += reward.sum()
        self.oracle_sum[round_] += oracle.sum()
        self.active[round_] += len(users)
        self.observed[round_] += n_observed
        self.user_reward[users] += reward
        self.user_oracle[users] += oracle
        first = self.turns[users] == 0
        ratio = reward / oracle
        smoothed = np.where(
            first, ratio, (1 - TTP_SMOOTHING) * self.ratio[users] + TTP_SMOOTHING * ratio
        )
        self.ratio[users] = smoothed
        self.turns[users] += 1
        hit = (smoothed >= TTP_TARGET) & (self.ttp[users] < 0)
        self.ttp[users[hit]] = self.turns[users[hit]]
        np.add.at(self.arm_counts, (users, arms), 1)

    def rounds_frame(self, policy: str) -> pl.DataFrame:
        n = np.maximum(self.active, 1)
        regret = self.oracle_sum - self.reward_sum
        return pl.DataFrame(
            {
                "policy": [policy] * len(n),
                "round": np.arange(len(n)),
                "active_users": self.active,
                "observed": self.observed,
                "mean_reward": self.reward_sum / n,
                "oracle_reward": self.oracle_sum / n,
                "regret": regret,
                "cumulative_regret": np.cumsum(regret),
            }
        )

    def users_frame(self, policy: str, world: Any) -> pl.DataFrame:
        turns = np.maximum(self.turns, 1)
        freq = self.arm_counts / turns[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(freq > 0, freq * np.log(freq), 0.0).sum(axis=1)
        cols: dict[str, Any] = {
            "policy": [policy] * world.n_users,
            "user": np.arange(world.n_users),
            "persona": world.persona_names,
            "arrival": world.arrival,
            "turns": self.turns,
            "mean_reward": self.user_reward / turns,
            "oracle_reward": self.user_oracle / turns,
            "regret": (self.user_oracle - self.user_reward) / turns,
            "time_to_personalize": np.where(self.ttp > 0, self.ttp, np.nan),
            "distinct_arms": (self.arm_counts > 0).sum(axis=1),
            "diversity": np.exp(entropy),
        }
        cols.update({f"group_{g}": labels for g, labels in world.groups.items()})
        return pl.DataFrame(cols)


def summarize(rounds: pl.DataFrame, users: pl.DataFrame) -> dict[str, Any]:
    """Per-policy summary: the figures ``summary.json`` and the report's table show.

    ``time_to_personalize`` is the median, over users, of the turns until the smoothed ratio
    of their expected reward to their oracle's first reaches 0.9; users who never get there
    count as infinitely slow, so it is None when half of the users never do.
    """
    out: dict[str, Any] = {}
    group_cols = [c for c in users.columns if c.startswith("group_")]
    for policy in rounds["policy"].unique(maintain_order=True).to_list():
        r = rounds.filter(pl.col("policy") == policy)
        u = users.filter(pl.col("policy") == policy)
        total = float(r["active_users"].sum())
        ttp = u["time_to_personalize"].to_numpy()
        reached = np.isfinite(ttp)
        median = float(np.median(np.where(reached, ttp, np.inf))) if len(ttp) else np.inf
        groups: dict[str, Any] = {}
        for col in group_cols:
            g = (
                u.group_by(col)
                .agg(pl.col("mean_reward").mean(), pl.col("regret").mean(), pl.len().alias("users"))
                .sort(col)
            )
            groups[col.removeprefix("group_")] = {
                row[col]: {
                    "mean_reward": row["mean_reward"],
                    "regret": row["regret"],
                    "users": row["users"],
                }
                for row in g.iter_rows(named=True)
            }
        out[policy] = {
            "cumulative_regret": float(r["regret"].sum()),
            "regret_per_turn": float(r["regret"].sum()) / max(total, 1.0),
            "mean_reward": float((r["mean_reward"] * r["active_users"]).sum()) / max(total, 1),
            "oracle_reward": float((r["oracle_reward"] * r["active_users"]).sum()) / max(total, 1),
            "time_to_personalize": median if np.isfinite(median) else None,
            "personalized_share": float(reached.mean()) if len(ttp) else 0.0,
            "diversity": float(u["diversity"].to_numpy().mean()),
            "distinct_arms": float(u["distinct_arms"].to_numpy().mean()),
            "groups": groups,
        }
    return out
