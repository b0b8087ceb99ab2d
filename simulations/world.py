"""The hidden truth of a scenario: who the users are and what each of them would reward.

The true reward probability of user ``u`` for arm ``a`` on a request with features ``c`` is::

    p = sigmoid(base + attributes_a . (theta_u + W_persona(u) c))

``theta_u`` is the persona's preference vector (which drift may replace at set rounds) plus a
per-user Gaussian offset; ``W_persona`` holds the persona's request-feature interactions. The
engine never sees any of it: it only sees features and the rewards drawn from ``p``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bandit import FEATURE_NAMES, N_FEATURES, Catalog, check_random_state, featurize
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
    arrival : ndarray of int, shape (n_users,)
        The round at which a user makes their first request.
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

    @property
    def n_users(self) -> int:
        return len(self.persona)

    @property
    def persona_names(self) -> np.ndarray:
        return np.array([p.name for p in self.scenario.personas])[self.persona]

    # ------------------------------------------------------------------ truth
    def preferences(self, round_: int) -> np.ndarray:
        """Persona preference vectors in force at a round, shape (n_personas, n_attributes)."""
        current = self._epochs[0][1]
        for start, prefs in self._epochs:
            if start <= round_:
                current = prefs
        return current

    def contexts(self, users: np.ndarray, round_: int, rng: object = None) -> np.ndarray:
        """Request features for one turn of each user, shape (n, N_FEATURES)."""
        gen = check_random_state(rng) if rng is not None else np.random.default_rng(round_)  # type: ignore[arg-type]
        p = self.persona[users]
        u = gen.random((2, len(users)))
        topic = (u[0][:, None] > self._topic_cum[p]).sum(axis=1)
        topic = np.minimum(topic, len(self._topic_count) - 1)
        msg = self._topic_start[topic] + (u[1] * self._topic_count[topic]).astype(np.int64)
        return self._messages[msg]

    def probabilities(self, users: np.ndarray, contexts: np.ndarray, round_: int) -> np.ndarray:
        """True reward probability of every arm, shape (n, n_arms)."""
        prefs = self.preferences(round_)
        persona = self.persona[users]
        theta = prefs[persona] + self.offset[users]
        for k in np.unique(persona):
            sel = persona == k
            if self.W[k].any():
                theta[sel] += contexts[sel] @ self.W[k].T
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

    def _topic_contexts(self, scenario: Scenario) -> None:
        names = list(scenario.topics)
        blocks = []
        for name in names:
            t = scenario.topics[name]
            if t.messages:
                blocks.append(featurize(list(t.messages)))
            else:
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
