"""Scenario files: the synthetic world a simulation runs in.

A scenario is a TOML file::

    [scenario]
    name = "default"
    users = 2000              # users in the world (``--users`` overrides)
    rounds = 60               # turns per user (``--rounds`` overrides)
    reward = "bernoulli"      # or "gaussian": clip(p + noise * N(0, 1), 0, 1)
    noise = 0.1               # only for "gaussian"
    base = -1.0               # score offset: reward probability is sigmoid(base + utility)
    feedback_rate = 1.0       # probability that a turn's reward is observed at all
    individual_sd = 0.3       # spread of a user's hidden preferences around their persona's
    new_users = 0.0           # share of users who arrive after round 0 (uniformly over rounds)
    cf_history_rounds = 20    # uniform-logged turns per initial user that lints-cf trains on
    turns_per_user = 0.0      # mean turns before a user leaves (geometric); 0: they never do

    [context]                 # optional: product-declared features that drive tastes
    user_features = 16        # boolean user-scope features u0.. (fixed per user)
    request_features = 16     # boolean request-scope features r0.. (drawn per turn)
    rate = 0.3                # probability that a feature is on
    effect_sd = 0.8           # spread of a feature's effect on a level's utility
    density = 0.25            # share of (feature, level) pairs with an effect

    [topics.coding]           # a request topic: messages (featurized) or a feature dict
    messages = ["How do I reverse a linked list in Python?", "..."]

    [groups.locale]           # audit attributes; they never enter the features
    en = 0.6
    ja = 0.4

    [personas.researcher]
    share = 0.3
    topics = { coding = 0.5, maths = 0.5 }
    groups = { locale = { en = 1.0 } }               # optional: overrides [groups.locale]
    prefer = { depth = { research = 1.5, basics = -1.0 }, length = { thorough = 1.0 } }
    interactions = [{ feature = "has_code", dim = "format", level = "code-first", weight = 1.0 }]

    [[drift]]                 # from this round on, the persona's preferences are replaced
    round = 30
    persona = "researcher"
    prefer = { length = { brief = 1.0 } }

Preferences are utilities per catalog level (unlisted levels are 0); interactions add
``weight * feature`` to the utility of one level; declared features (``[context]``) add their
drawn effects to every level's utility. Shipped scenarios live in
``simulations/scenarios/``; ``load_scenario`` takes one of their names or a path.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bandit import FEATURE_NAMES

REWARDS = ("bernoulli", "gaussian")
_FEATURES = ", ".join(FEATURE_NAMES)
Prefs = Mapping[str, Mapping[str, float]]


class ScenarioError(ValueError):
    """A scenario file is malformed; the message names the file, the place and the problem."""


@dataclass(frozen=True)
class Interaction:
    feature: str
    dim: str
    level: str
    weight: float

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_NAMES:
            raise ScenarioError(
                f"interaction.feature: unknown {self.feature!r}; allowed: {_FEATURES}"
            )


@dataclass(frozen=True)
class Topic:
    name: str
    messages: tuple[str, ...] = ()
    features: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if bool(self.messages) == bool(self.features):
            raise ScenarioError(f"topics.{self.name}: give exactly one of messages or features")
        bad = [f for f in self.features if f not in FEATURE_NAMES]
        if bad:
            raise ScenarioError(
                f"topics.{self.name}.features: unknown {bad[0]!r}; allowed: {_FEATURES}"
            )


@dataclass(frozen=True)
class Persona:
    name: str
    share: float
    topics: Mapping[str, float]
    prefer: Prefs
    interactions: tuple[Interaction, ...] = ()
    groups: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.share > 0:
            raise ScenarioError(f"personas.{self.name}.share must be > 0, got {self.share}")
        if not self.topics or min(self.topics.values()) < 0 or sum(self.topics.values()) <= 0:
            raise ScenarioError(f"personas.{self.name}.topics: give positive topic weights")


@dataclass(frozen=True)
class Drift:
    round: int
    persona: str
    prefer: Prefs

    def __post_init__(self) -> None:
        if self.round < 1:
            raise ScenarioError(f"drift.round must be >= 1, got {self.round}")


@dataclass(frozen=True)
class ContextWorld:
    """Declared product features in a scenario (``[context]``): boolean user features fixed per
    user and request features drawn per turn, each with random effects on the levels."""

    user_features: int = 16
    request_features: int = 16
    rate: float = 0.3
    effect_sd: float = 0.8
    density: float = 0.25

    def __post_init__(self) -> None:
        checks = [
            (0 <= self.user_features <= 256, "user_features must be in [0, 256]"),
            (0 <= self.request_features <= 256, "request_features must be in [0, 256]"),
            (0 < self.rate < 1, f"rate must be in (0, 1), got {self.rate}"),
            (self.effect_sd >= 0, f"effect_sd must be >= 0, got {self.effect_sd}"),
            (0 < self.density <= 1, f"density must be in (0, 1], got {self.density}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ScenarioError(f"context.{message}")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. See the module docstring for the file format."""

    name: str
    users: int
    rounds: int
    topics: Mapping[str, Topic]
    personas: tuple[Persona, ...]
    groups: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    drift: tuple[Drift, ...] = ()
    description: str = ""
    reward: str = "bernoulli"
    noise: float = 0.1
    base: float = -1.0
    feedback_rate: float = 1.0
    individual_sd: float = 0.3
    new_users: float = 0.0
    cf_history_rounds: int = 20
    turns_per_user: float = 0.0
    context: ContextWorld | None = None
    source: str = "<dict>"

    def __post_init__(self) -> None:
        checks = [
            (self.users >= 1, f"users must be >= 1, got {self.users}"),
            (self.rounds >= 1, f"rounds must be >= 1, got {self.rounds}"),
            (
                self.reward in REWARDS,
                f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}",
            ),
            (self.noise >= 0, f"noise must be >= 0, got {self.noise}"),
            (
                0 < self.feedback_rate <= 1,
                f"feedback_rate must be in (0, 1], got {self.feedback_rate}",
            ),
            (self.individual_sd >= 0, f"individual_sd must be >= 0, got {self.individual_sd}"),
            (0 <= self.new_users < 1, f"new_users must be in [0, 1), got {self.new_users}"),
            (self.cf_history_rounds >= 0, "cf_history_rounds must be >= 0"),
            (
                self.turns_per_user == 0 or self.turns_per_user >= 1,
                f"turns_per_user must be 0 or >= 1, got {self.turns_per_user}",
            ),
            (bool(self.personas), "declare at least one persona"),
        ]
        for ok, message in checks:
            if not ok:
                raise ScenarioError(f"{self.source}: scenario.{message}")
        names = {p.name for p in self.personas}
        for p in self.personas:
            unknown = sorted(set(p.topics) - set(self.topics))
            if unknown:
                raise ScenarioError(
                    f"{self.source}: personas.{p.name}.topics: unknown topic "
                    f"{unknown[0]!r}; declared: {', '.join(self.topics)}"
                )
        for d in self.drift:
            if d.persona not in names:
                raise ScenarioError(
                    f"{self.source}: drift.persona: unknown {d.persona!r}; "
                    f"declared: {', '.join(sorted(names))}"
                )

    def with_size(self, users: int | None = None, rounds: int | None = None) -> Scenario:
        """A copy with another number of users and/or rounds (drift rounds are kept)."""
        from dataclasses import replace

        return replace(self, users=users or self.users, rounds=rounds or self.rounds)


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped in ``simulations/scenarios/``."""
    folder = resources.files("simulations") / "scenarios"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name (``"default"``) or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{path}: no such scenario file")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        if str(name_or_path) not in shipped_scenarios():
            raise ScenarioError(
                f"unknown scenario {str(name_or_path)!r}; shipped: "
                f"{', '.join(shipped_scenarios())} (or give a .toml path)"
            )
        res = resources.files("simulations") / "scenarios" / f"{name_or_path}.toml"
        text, source = res.read_text(encoding="utf-8"), f"scenarios/{name_or_path}.toml"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
    return scenario_from_dict(data, source=source)


def scenario_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> Scenario:
    """Build a ``Scenario`` from the parsed TOML tables."""
    head = dict(data.get("scenario", {}))
    known = {
        "name",
        "description",
        "users",
        "rounds",
        "reward",
        "noise",
        "base",
        "feedback_rate",
        "individual_sd",
        "new_users",
        "cf_history_rounds",
        "turns_per_user",
    }
    unknown = sorted(set(head) - known)
    if unknown:
        raise ScenarioError(
            f"{source}: scenario.{unknown[0]}: unknown key; allowed: {', '.join(sorted(known))}"
        )
    try:
        topics = {
            name: Topic(name, tuple(t.get("messages", ())), dict(t.get("features", {})))
            for name, t in data.get("topics", {}).items()
        }
        personas = tuple(_persona(name, p) for name, p in data.get("personas", {}).items())
        drift = tuple(
            Drift(int(d["round"]), str(d["persona"]), _prefs(d.get("prefer", {})))
            for d in data.get("drift", [])
        )
        groups = {
            g: {k: float(v) for k, v in levels.items()}
            for g, levels in data.get("groups", {}).items()
        }
        context = ContextWorld(**data["context"]) if "context" in data else None
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScenarioError(f"{source}: malformed table ({type(exc).__name__}: {exc})") from None
    return Scenario(
        topics=topics,
        personas=personas,
        drift=drift,
        groups=groups,
        context=context,
        source=source,
        name=str(head.pop("name", Path(source).stem)),
        **head,
    )


def _persona(name: str, p: Mapping[str, Any]) -> Persona:
    inter = tuple(
        Interaction(str(i["feature"]), str(i["dim"]), str(i["level"]), float(i["weight"]))
        for i in p.get("interactions", [])
    )
    groups = {
        g: {k: float(v) for k, v in levels.items()} for g, levels in p.get("groups", {}).items()
    }
    return Persona(
        name,
        float(p.get("share", 1.0)),
        {k: float(v) for k, v in p.get("topics", {}).items()},
        _prefs(p.get("prefer", {})),
        inter,
        groups,
    )


def _prefs(raw: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    return {dim: {lv: float(v) for lv, v in levels.items()} for dim, levels in raw.items()}
