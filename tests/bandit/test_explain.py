"""Explanations: every reason kind worded in all five locales; pins, groups and pauses named."""

from __future__ import annotations

import numpy as np
import pytest

from bandit import Catalog, ContextSpec, DecisionRequest, DeclaredFeature, Engine
from bandit.explain import KINDS, Memory, explain, reason_text
from bandit.features import FEATURE_NAMES
from bandit.reason_texts import LOCALES, TEMPLATES

CATALOG = Catalog.default()
SPEC = ContextSpec(
    (
        DeclaredFeature("role", "categorical", "user", levels=("engineer", "student")),
        DeclaredFeature("surface", "categorical", "request", levels=("chat", "ide")),
    )
)
ARM = CATALOG.arm_index("expert.direct.code-first.brief")


def every_kind(locale: str) -> dict[str, list[str]]:
    """One explanation that has every reason kind but exploration, and one that explores."""
    width = CATALOG.attributes.shape[1]
    names = CATALOG.attribute_names()
    mu, prior = np.zeros(64), np.zeros(64)
    mu[names.index("depth=expert")] = 2.0  # the user's own taste...
    prior[names.index("tone=direct")] = 1.0  # ...their group's...
    mu[names.index("tone=direct")] = 1.0
    W = np.zeros((width, SPEC.n_columns))
    W[names.index("format=code-first"), FEATURE_NAMES.index("has_code")] = 1.5  # ...the message
    W[names.index("format=code-first"), SPEC.names.index("role=engineer")] = 1.4  # ...the role
    W[names.index("depth=expert"), SPEC.names.index("surface=ide")] = 1.3  # ...the surface
    context = np.zeros(SPEC.n_columns)
    context[[FEATURE_NAMES.index("has_code"), SPEC.names.index("role=engineer")]] = 1.0
    context[SPEC.names.index("surface=ide")] = 1.0
    dist = np.full(CATALOG.n_arms, 1.0 / CATALOG.n_arms)
    memory = Memory(
        pins={"length": "brief"},
        group="cluster-3",
        notes=[("n1", "Works on a Rust compiler", 2.5, False), ("n2", "Metric units", 0.0, True)],
    )
    kw = {"spec": SPEC, "locale": locale, "top": 5, "prior": prior, "memory": memory}
    rich = explain(CATALOG, ARM, mu, W, context, dist, **kw)
    skewed = dist.copy()
    skewed[ARM + 1] += 0.5
    new_user = explain(CATALOG, ARM, np.zeros(64), W * 0, context, skewed, locale=locale)
    paused = explain(
        CATALOG, ARM, np.zeros(64), W * 0, context, dist, locale=locale, memory=Memory(paused=True)
    )
    out: dict[str, list[str]] = {}
    for r in (*rich, *new_user, *paused):
        out.setdefault(r.kind, []).append(r.text)
    return out


@pytest.mark.parametrize("locale", LOCALES)
def test_every_reason_kind_renders_in_every_locale(locale: str) -> None:
    texts = every_kind(locale)
    assert set(texts) == set(KINDS)
    joined = " ".join(t for ts in texts.values() for t in ts)
    level_labels = {
        dim.name: dim.levels[dim.level_names.index(CATALOG.levels_of(ARM)[dim.name])]
        for dim in CATALOG.dimensions
    }
    for dim in CATALOG.dimensions:
        label = level_labels[dim.name].label_in(locale)
        assert label in joined, (dim.name, label, joined)
    assert "cluster-3" in " ".join(texts["group"]) and "role engineer" in joined
    assert "surface ide" in joined and "Works on a Rust compiler" in joined
    if locale != "en":
        english = every_kind("en")
        for kind, ts in texts.items():
            assert set(ts).isdisjoint(english[kind]), (kind, ts)
            for t in ts:  # no English template word survives translation
                for word in ("pinned", "responded", "favours", "trying", "paused", "group"):
                    assert word not in t, (kind, t)


def test_every_template_has_every_locale_and_the_same_fields() -> None:
    for kind, row in TEMPLATES.items():
        assert set(row) == set(LOCALES), kind
        fields = {f for f in ("{dimension}", "{level}", "{phrase}", "{note}", "{group}")}
        for locale, text in row.items():
            assert {f for f in fields if f in text} == {f for f in fields if f in row["en"]}, (
                kind,
                locale,
            )


def test_a_pinned_decision_says_so_not_still_trying() -> None:
    engine = Engine(random_state=0)
    engine.pin("ana", {"length": "brief", "depth": "basics", "tone": "warm", "format": "steps"})
    [d] = engine.decide([DecisionRequest("ana", "hi", locale="ja")])
    kinds = [r.kind for r in d.explanation]
    assert kinds == ["pin"] * 4, d.explanation
    assert "あなたが長さを「簡潔」に固定しました" in [r.text for r in d.explanation]
    engine.pin("bo", {"length": "brief"})
    [d] = engine.decide([DecisionRequest("bo", "hi")])
    assert d.explanation[0].kind == "pin" and d.levels["length"] == "brief"
    assert not any("still trying" in r.text for r in d.explanation)


def test_a_paused_request_ignores_pins_and_the_users_own_posterior() -> None:
    engine = Engine(random_state=0)
    engine.pin("acme/ana", {"length": "brief"})
    rows = engine.users.rows(["acme/ana"])
    engine.users.set_prior(rows, np.full((1, 20), 3.0), 100.0)  # a strong taste of her own
    ours = engine.decide([DecisionRequest("acme/ana", "hi", paused=True) for _ in range(60)])
    assert {d.levels["length"] for d in ours} != {"brief"}
    assert all(d.explanation[0].kind == "paused" for d in ours)
    assert all(not d.user_score for d in ours)  # the neutral row knows nothing
    assert engine.users.n_decisions[rows[0]] == 0


def test_reason_text_rewords_a_stored_reason() -> None:
    for locale in LOCALES:
        text = reason_text(
            CATALOG, locale, "request", dimension="format", level="steps", feature="asks_how"
        )
        assert CATALOG.dimension("format").levels[2].label_in(locale) in text
    assert reason_text(CATALOG, "es", "note_deleted") == "attune usó una nota que después borraste"
