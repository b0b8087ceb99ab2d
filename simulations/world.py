"""The hidden truth of a scenario: who the users are and what each of them would reward.

The true reward probability of user ``u`` for arm ``a`` on a request with features ``c`` is::

    p = sigmoid(base + attributes_a . (theta_u + W_persona(u) c + E_user f_u + E_request f_r))

``theta_u`` is the persona's preference vector (which drift may replace at set rounds) plus a
per-user Gaussian offset; ``W_persona`` holds the persona's message-feature interactions;
``E_user`` and ``E_request`` the effects of the product's declared features (``[context]``):
``f_u`` fixed per user, ``f_r`` drawn per turn. The engine never sees any of it: it only sees
features and the rewards drawn from ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bandit import (
    FEATURE_NAMES,
    N_FEATURES,
    Catalog,
    ContextSpec,
    DeclaredFeature,
    check_random_state,
    featurize,
)
from simulations.scenario import Interaction, Scenario, ScenarioError


class World:
    """Users, groups, arrivals and reward probabilities drawn for one scenario and seed.

    Parameters
    ----------
    scenario : Scenario
    catalog : Catalog
    random_state : int, Generator or None

    Attributes
    ----------
    persona : ndarray of int, shape (n_users,)
        Persona index per user (into ``scenario.personas``).
    arrival, last : ndarray of int, shape (n_users,)
        The rounds of a user's first and last request (they make one every round between).
    spec : ContextSpec
        The context columns the engines are declared with (``[context]`` features, if any).
    groups : dict of str to ndarray of str, shape (n_users,)
        Audit attributes; they never enter the features.

    Examples
    --------
    >>> from simulations.scenario import load_scenario
    >>> world = World(load_scenario("default").with_size(users=10), Catalog.default(),
    ...               random_state=0)
    >>> p = world.probabilities(np.arange(10), world.contexts(np.arange(10), 0), 0)
    >>> p.shape, bool(((p > 0) & (p < 1)).all())
    ((10, 128), True)
    """

    def __init__(self, scenario: Scenario, catalog: Catalog, *, random_state: object = None):
        rng = check_random_state(random_state)  # type: ignore[arg-type]
        self.scenario, self.catalog = scenario, catalog
        self.attributes = np.ascontiguousarray(catalog.attributes, dtype=np.float64)
        n, width = scenario.users, self.attributes.shape[1]
        personas = scenario.personas
        shares = np.array([p.share for p in personas])
        self.persona = rng.choice(len(personas), size=n, p=shares / shares.sum())
        self.offset = rng.normal(0.0, scenario.individual_sd, size=(n, width))
        self.arrival = np.zeros(n, dtype=np.int64)
        late = rng.random(n) < scenario.new_users
        if scenario.rounds > 1:
            self.arrival[late] = rng.integers(1, scenario.rounds, size=int(late.sum()))
        self.groups = self._draw_groups(rng)
        self._epochs = self._preference_epochs()
        self.W = np.stack([self._interactions(p.interactions) for p in personas])
        self._topic_contexts(scenario)
        # Drawn last, and only when the scenario asks: every other scenario's world is the
        # same as before for the same seed.
        self.last = self._lifetimes(rng)
        self.spec, self.user_values, self.effects = self._declared(rng)

    @property
    def n_users(self) -> int:
        return len(self.persona)

    @property
    def persona_names(self) -> np.ndarray:
        return np.array([p.name for p in self.scenario.personas])[self.persona]

    def active(self, round_: int) -> np.ndarray:
        """Users who make a request at a round, shape (m,), ascending."""
        return np.flatnonzero((self.arrival <= round_) & (self.last >= round_))

    # ------------------------------------------------------------------ truth
    def preferences(self, round_: int) -> np.ndarray:
        """Persona preference vectors in force at a round, shape (n_personas, n_attributes)."""
        current = self._epochs[0][1]
        for start, prefs in self._epochs:
            if start <= round_:
                current = prefs
        return current

    def contexts(self, users: np.ndarray, round_: int, rng: object = None) -> np.ndarray:
        """Request features for one turn of each user, shape (n, spec.n_columns)."""
        msg, requested = self._draw(users, round_, rng)
        out = np.zeros((len(users), self.spec.n_columns))
        out[:, :N_FEATURES] = self._messages[msg]
        if self.user_values is not None:
            n_u = self.user_values.shape[1]
            out[:, N_FEATURES : N_FEATURES + n_u] = self.user_values[users]
            out[:, N_FEATURES + n_u : N_FEATURES + n_u + requested.shape[1]] = requested
        return out

    def requests(
        self, users: np.ndarray, round_: int, rng: object = None
    ) -> tuple[list[str], list[dict[str, bool]]]:
        """The same turns as ``contexts`` (same ``rng``) as a product would send them: each
        message's text and its declared features (``{"u0": True, ..., "r3": False}``)."""
        msg, requested = self._draw(users, round_, rng)
        texts = [self._texts[i] for i in msg.tolist()]
        if self.user_values is None:
            return texts, [{} for _ in texts]
        names = [f.name for f in self.spec.features]
        rows = np.concatenate([self.user_values[users], requested], axis=1).tolist()
        return texts, [dict(zip(names, map(bool, row), strict=True)) for row in rows]

    def _draw(self, users: np.ndarray, round_: int, rng: object) -> tuple[np.ndarray, np.ndarray]:
        gen = check_random_state(rng) if rng is not None else np.random.default_rng(round_)  # type: ignore[arg-type]
        p = self.persona[users]
        u = gen.random((2, len(users)))
        topic = (u[0][:, None] > self._topic_cum[p]).sum(axis=1)
        topic = np.minimum(topic, len(self._topic_count) - 1)
        msg = self._topic_start[topic] + (u[1] * self._topic_count[topic]).astype(np.int64)
        ctx = self.scenario.context
        if ctx is None or not ctx.request_features:
            return msg, np.zeros((len(users), 0))
        return msg, (gen.random((len(users), ctx.request_features)) < ctx.rate).astype(float)

    def probabilities(self, users: np.ndarray, contexts: np.ndarray, round_: int) -> np.ndarray:
        """True reward probability of every arm, shape (n, n_arms)."""
        prefs = self.preferences(round_)
        persona = self.persona[users]
        theta = prefs[persona] + self.offset[users]
        for k in np.unique(persona):
            sel = persona == k
            if self.W[k].any():
                theta[sel] += contexts[sel, :N_FEATURES] @ self.W[k].T
        if self.effects is not None:
            declared = contexts[:, N_FEATURES : N_FEATURES + self.effects.shape[1]]
            theta += declared @ self.effects.T
        score = theta @ self.attributes.T
        score += self.scenario.base
        return 1.0 / (1.0 + np.exp(-score))

    # ------------------------------------------------------------------ construction
    def _vector(self, prefs: Mapping[str, Mapping[str, float]]) -> np.ndarray:
        vec = np.zeros(self.attributes.shape[1])
        for dim, levels in prefs.items():
            for level, value in levels.items():
                vec[self._column(dim, level)] += value
        return vec

    def _column(self, dim: str, level: str) -> int:
        names = self.catalog.dimension_names
        if dim not in names:
            raise ScenarioError(
                f"{self.scenario.source}: unknown dimension {dim!r}; "
                f"catalog {self.catalog.name!r} has {', '.join(names)}"
            )
        j = names.index(dim)
        levels = self.catalog.dimensions[j].level_names
        if level not in levels:
            raise ScenarioError(
                f"{self.scenario.source}: unknown level {dim}.{level}; allowed: {', '.join(levels)}"
            )
        return self.catalog.level_offsets[j] + levels.index(level)

    def _interactions(self, items: tuple[Interaction, ...]) -> np.ndarray:
        w = np.zeros((self.attributes.shape[1], N_FEATURES))
        for it in items:
            w[self._column(it.dim, it.level), FEATURE_NAMES.index(it.feature)] += it.weight
        return w

    def _preference_epochs(self) -> list[tuple[int, np.ndarray]]:
        base = np.stack([self._vector(p.prefer) for p in self.scenario.personas])
        epochs = [(0, base)]
        names = [p.name for p in self.scenario.personas]
        for d in sorted(self.scenario.drift, key=lambda d: d.round):
            nxt = epochs[-1][1].copy()
            nxt[names.index(d.persona)] = self._vector(d.prefer)
            epochs.append((d.round, nxt))
        return epochs

    def _draw_groups(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        names = set(self.scenario.groups)
        for p in self.scenario.personas:
            names |= set(p.groups)
        out: dict[str, np.ndarray] = {}
        for g in sorted(names):
            labels = np.empty(self.n_users, dtype=object)
            for k, p in enumerate(self.scenario.personas):
                dist = p.groups.get(g) or self.scenario.groups.get(g) or {"unknown": 1.0}
                sel = np.flatnonzero(self.persona == k)
                keys, w = list(dist), np.array(list(dist.values()), dtype=float)
                labels[sel] = np.array(keys, dtype=object)[
                    rng.choice(len(keys), size=len(sel), p=w / w.sum())
                ]
            out[g] = labels.astype(str)
        return out

    def _lifetimes(self, rng: np.random.Generator) -> np.ndarray:
        """Each user's last round: the horizon, or after a geometric number of turns (mean
        ``turns_per_user``) when users leave."""
        horizon = np.full(self.n_users, self.scenario.rounds - 1, dtype=np.int64)
        mean = self.scenario.turns_per_user
        if not mean:
            return horizon
        turns = rng.geometric(1.0 / mean, size=self.n_users)
        return np.minimum(horizon, self.arrival + turns - 1)

    def _declared(
        self, rng: np.random.Generator
    ) -> tuple[ContextSpec, np.ndarray | None, np.ndarray | None]:
        """The engines' context spec, each user's feature values and the features' effects
        (attributes x declared features), from ``[context]``."""
        ctx = self.scenario.context
        if ctx is None:
            return ContextSpec(), None, None
        features = [DeclaredFeature(f"u{i}", "boolean", "user") for i in range(ctx.user_features)]
        features += [
            DeclaredFeature(f"r{i}", "boolean", "request") for i in range(ctx.request_features)
        ]
        values = (rng.random((self.n_users, ctx.user_features)) < ctx.rate).astype(float)
        shape = (self.attributes.shape[1], len(features))
        effects = rng.normal(0.0, ctx.effect_sd, size=shape) * (rng.random(shape) < ctx.density)
        effects[0] = 0.0  # the bias row moves every arm alike: no effect on any choice
        return ContextSpec(tuple(features)), values, effects

    def _topic_contexts(self, scenario: Scenario) -> None:
        names = list(scenario.topics)
        blocks = []
        self._texts: list[str] = []
        for name in names:
            t = scenario.topics[name]
            if t.messages:
                blocks.append(featurize(list(t.messages)))
                self._texts += t.messages
            else:
                self._texts.append("")  # a feature topic has no text to send
                row = np.zeros((1, N_FEATURES))
                row[0, 0] = 1.0
                for f, v in t.features.items():
                    row[0, FEATURE_NAMES.index(f)] = v
                blocks.append(row)
        self._messages = np.ascontiguousarray(np.concatenate(blocks))
        self._topic_count = np.array([len(b) for b in blocks])
        self._topic_start = np.concatenate([[0], np.cumsum(self._topic_count)[:-1]])
        mix = np.array([[p.topics.get(n, 0.0) for n in names] for p in scenario.personas])
        self._topic_cum = np.cumsum(mix / mix.sum(axis=1, keepdims=True), axis=1)
