"""A small simulated community for the collab tests: personas with distinct hidden preferences.

Each persona prefers one level per dimension of the default catalog (depth, tone, format,
length), writes its own kind of messages (code, Japanese, research questions, ...) and has a
few strategy-specific quirks (effects no attribute explains: what CF embeddings are for). A
user is a persona plus individual noise. Rewards are Bernoulli, like thumbs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

from bandit import Catalog, ContextSpec, DecisionRequest, Engine, Feedback

PERSONAS = {
    "novice": (
        {"depth": "basics", "tone": "warm", "format": "steps", "length": "standard"},
        [
            "How do I make a spreadsheet add up a column?",
            "How do I start learning to cook?",
            "How can I send a photo by email?",
            "What is a browser?",
            "How do I change my phone wallpaper?",
            "What does a router do at home?",
        ],
    ),
    "engineer": (
        {"depth": "expert", "tone": "direct", "format": "code-first", "length": "brief"},
        [
            "How do I reverse a list in Python? `xs[::-1]` is slow?",
            "Fix this: def f(x): return x +",
            "SELECT * FROM users WHERE id = 1; why slow?",
            "Write a bash loop over files in a directory",
            "const x = await fetch(url); error?",
            "How to profile memory of a numpy array in python?",
        ],
    ),
    "researcher": (
        {"depth": "research", "tone": "neutral", "format": "prose", "length": "thorough"},
        [
            "Why does the variance of the gradient estimator matter for convergence proofs?",
            "Why is the eigenvalue spectrum of the kernel matrix relevant to regression?",
            "Explain the theorem behind probability calibration of neural models",
            "Why do statistics of the dataset bias inference?",
        ],
    ),
    "ja_casual": (
        {"depth": "intermediate", "tone": "warm", "format": "bullets", "length": "brief"},
        [
            "週末に東京でおすすめの場所は？",
            "なぜ空は青いのですか",
            "カレーの作り方を教えて",
            "どうやって英語を勉強すればいいですか",
            "猫の名前を考えて",
        ],
    ),
    "zh_student": (
        {"depth": "intermediate", "tone": "neutral", "format": "steps", "length": "standard"},
        [
            "怎么准备数学考试？",
            "为什么月亮会变形状",
            "什么是光合作用",
            "帮我写一个学习计划",
            "如何提高写作水平",
        ],
    ),
    "es_manager": (
        {"depth": "intermediate", "tone": "direct", "format": "bullets", "length": "brief"},
        [
            "¿Cómo organizo una reunión de equipo eficaz?",
            "Escribe un correo para un cliente",
            "¿Por qué bajan las ventas en verano?",
            "Haz un resumen del trimestre",
            "¿Qué es un KPI?",
        ],
    ),
}
GENERIC = ["Thanks!", "Can you help me?", "Tell me more", "ok"]
BASE, PREFERRED, NEAR = 0.12, 0.19, 0.07  # reward parts: floor, per preferred level, neighbour


@dataclass
class User:
    uid: str
    persona: str
    mu: np.ndarray  # expected reward of every arm, shape (n_arms,)

    @property
    def oracle(self) -> float:
        return float(self.mu.max())


class Community:
    """Personas over a catalog; ``users(n)`` draws users, ``message`` their requests."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        noise: float = 0.04,
        quirk: float = 0.06,
        generic_share: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.catalog = catalog or Catalog.default()
        self.rng = np.random.default_rng(seed)
        self.noise, self.generic_share = noise, generic_share
        self.names = list(PERSONAS)
        self.base = {
            p: self._persona_mu(prefs) + quirk * self.rng.standard_normal(self.catalog.n_arms)
            for p, (prefs, _) in PERSONAS.items()
        }
        self._n = 0

    def _persona_mu(self, prefs: dict[str, str]) -> np.ndarray:
        mu = np.full(self.catalog.n_arms, BASE)
        for j, dim in enumerate(self.catalog.dimensions):
            best = dim.level_names.index(prefs[dim.name])
            gap = np.abs(self.catalog.arms[:, j] - best)
            mu += np.where(gap == 0, PREFERRED, np.where(gap == 1, NEAR, 0.0))
        return mu

    def users(self, n: int, prefix: str = "u") -> list[User]:
        out = []
        for i in range(n):
            persona = self.names[i % len(self.names)]
            dims = self.catalog.attributes[:, 1:]  # individual taste per level
            taste = self.noise * self.rng.standard_normal(dims.shape[1])
            mu = np.clip(self.base[persona] + dims @ taste, 0.02, 0.98)
            out.append(User(f"t/{prefix}{self._n}", persona, mu))
            self._n += 1
        return out

    def message(self, user: User) -> str:
        pool = GENERIC if self.rng.random() < self.generic_share else PERSONAS[user.persona][1]
        return str(pool[self.rng.integers(len(pool))])

    def history(self, users: list[User], events: int, t0: float = 0.0) -> pl.DataFrame:
        """Logged interactions under a uniform logging policy, with request features."""
        rows: dict[str, list] = {"user_id": [], "arm": [], "reward": [], "ts": []}
        messages = []
        t = t0
        for _ in range(events):
            for u in users:
                arm = int(self.rng.integers(self.catalog.n_arms))
                messages.append(self.message(u))
                rows["user_id"].append(u.uid)
                rows["arm"].append(arm)
                rows["reward"].append(float(self.rng.random() < u.mu[arm]))
                rows["ts"].append(t)
                t += 1.0
        rows["context"] = ContextSpec().featurize(messages).tolist()
        return pl.DataFrame(
            rows,
            schema={
                "user_id": pl.String,
                "arm": pl.Int64,
                "reward": pl.Float64,
                "ts": pl.Float64,
                "context": pl.List(pl.Float64),
            },
        )


def learn_history(engine: Engine, df: pl.DataFrame) -> None:
    """Feed logged interactions to an engine in time order (trains its shared model too)."""
    df = df.sort("ts")
    rows = engine.users.rows(df["user_id"].to_list())
    ctx = np.stack(df["context"].to_numpy()).astype(np.float64)
    engine.learn_arrays(rows, df["arm"].to_numpy(), ctx, df["reward"].to_numpy())


def run_new_users(
    engine: Engine,
    community: Community,
    users: list[User],
    horizon: int,
    seed: int,
    after_learn: Callable[[Feedback], object] | None = None,
) -> np.ndarray:
    """Play each new user for ``horizon`` turns, calling ``after_learn(feedback)`` after each
    learn; returns the expected reward of the action distribution before each feedback, shape
    (n_users, horizon)."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), horizon))
    for i, u in enumerate(users):
        for t in range(horizon):
            [d] = engine.decide(
                [DecisionRequest(u.uid, community.message(u))], seeds=[int(rng.integers(2**62))]
            )
            out[i, t] = float(d.action_dist @ u.mu)
            reward = float(rng.random() < u.mu[d.arm])
            feedback = Feedback(u.uid, d.arm, reward, d.context)
            engine.learn([feedback])
            if after_learn is not None:
                after_learn(feedback)
    return out


def turns_to_reach(
    expected: np.ndarray, oracle: np.ndarray, share: float = 0.9, window: int = 3
) -> np.ndarray:
    """Feedbacks before the expected reward first stays >= ``share`` of the user's oracle for
    ``window`` consecutive turns; the horizon if it never does. Shape (n_users,)."""
    n, horizon = expected.shape
    ok = expected >= share * oracle[:, None]
    out = np.full(n, horizon)
    for i in range(n):
        for t in range(horizon - window + 1):
            if ok[i, t : t + window].all():
                out[i] = t
                break
    return out


def oracle_ts(
    community: Community, users: list[User], horizon: int, seed: int, floor: float = 0.05
) -> np.ndarray:
    """A reference no CF model can beat: Thompson sampling that knows each user's persona and
    its true mean rewards, and has the exact Gaussian prior of the individual taste (the
    ``noise`` per level one-hot that ``Community.users`` draws), with the engine's floor.
    Returns the expected reward of its action distribution before each feedback, shape
    (n_users, horizon), like ``run_new_users``."""
    rng = np.random.default_rng(seed)
    levels = community.catalog.attributes[:, 1:]
    noise_var = 0.2  # about r (1 - r) of a thumbs reward near the top arms
    out = np.empty((len(users), horizon))
    for i, u in enumerate(users):
        base = community.base[u.persona]
        precision = np.eye(levels.shape[1]) / community.noise**2
        b = np.zeros(levels.shape[1])
        for t in range(horizon):
            cov = np.linalg.inv(precision)
            # by Cholesky, not ``multivariate_normal``: its SVD's signs vary with BLAS threads
            chol = np.linalg.cholesky(cov)
            taste = cov @ b + rng.standard_normal((64, len(b))) @ chol.T
            best = np.argmax(base[None] + taste @ levels.T, axis=1)
            dist = (1 - floor) * np.bincount(best, minlength=len(base)) / 64 + floor / len(base)
            out[i, t] = dist @ u.mu
            arm = rng.choice(len(base), p=dist)
            reward = float(rng.random() < u.mu[arm])
            x = levels[arm]
            precision += np.outer(x, x) / noise_var
            b += x * (reward - base[arm]) / noise_var
    return out
