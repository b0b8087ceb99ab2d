"""Bad catalogs and bad inputs: tables of (input, error type, message pattern)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from bandit import (
    Catalog,
    CatalogError,
    ContextSpec,
    DecisionRequest,
    DeclaredFeature,
    Engine,
    EngineConfig,
    Feedback,
    make_policy,
)

BASE = Catalog.default().raw


def catalog_with(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(dict(BASE))
    change(data)
    return data


def _del_locale(d: dict[str, Any]) -> None:
    del d["dimensions"]["depth"]["levels"]["expert"]["text"]["ko"]


CATALOG_CASES = [
    (
        lambda d: d["rules"].append({"forbid": {"depth": "phd"}}),
        r"rules\[2\].*unknown level 'phd'.*allowed: basics, intermediate, expert, research",
    ),
    (
        lambda d: d["rules"].append({"forbid": {"mood": "x"}}),
        r"unknown dimension 'mood'.*allowed: depth, tone, format, length",
    ),
    (
        _del_locale,
        r"dimension 'depth', level 'expert': text: missing locale 'ko' "
        r"\(required: en, zh, ja, ko, es\)",
    ),
    (lambda d: d["catalog"].update(locales=["en", "zh", "ja", "ko"]), r"catalog.locales lacks es"),
    (
        lambda d: d["catalog"].update(locales=["en", "zh", "ja", "ko", "es", "en"]),
        r"duplicate name 'en'",
    ),
    (
        lambda d: d.update(
            rules=[{"forbid": {"tone": lv}} for lv in ("warm", "neutral", "direct")]
        ),
        r"forbid every combination: no arms left",
    ),
    (
        lambda d: d["dimensions"]["length"]["levels"]["brief"].update(params={"max_tokens": -5}),
        r"params.max_tokens must be a number in \[16, 32768\]",
    ),
    (
        lambda d: d["dimensions"]["length"]["levels"]["brief"].update(params={"top_k": 5}),
        r"unknown generation parameter 'top_k'; allowed: max_tokens",
    ),
    (
        lambda d: d["dimensions"]["depth"]["levels"]["basics"].update(params={"max_tokens": 100}),
        r"'max_tokens' is set by both dimension 'depth' and dimension 'length'",
    ),
    (
        lambda d: d["dimensions"]["format"]["levels"]["code-first"].update(params={"top_p": 1.5}),
        r"params.top_p must be a number in \[0.0, 1.0\], got 1.5",
    ),
    (
        lambda d: d["dimensions"]["tone"]["levels"]["direct"]["params"].update(top_p=0.5),
        r"'top_p' is set by both dimension 'tone' and dimension 'format'",
    ),
    (
        lambda d: d["dimensions"].update({"Bad Name": {"levels": {}}}),
        r"dimension 'Bad Name': names must match",
    ),
    (lambda d: d["dimensions"]["tone"].update(levels={}), r"dimension 'tone': no levels declared"),
    (lambda d: d.update(dimensions={}), r"\[dimensions\] is empty"),
    (
        lambda d: d["dimensions"]["tone"]["levels"]["warm"]["text"].update(fr="Bonjour"),
        r"locale 'fr' is not declared",
    ),
    (lambda d: d["catalog"].pop("name"), r"catalog.name: expected a non-empty string"),
]


@pytest.mark.parametrize("change,pattern", CATALOG_CASES)
def test_bad_catalogs(change: Any, pattern: str) -> None:
    with pytest.raises(CatalogError, match=pattern) as info:
        Catalog.from_dict(catalog_with(change), source="my.toml")
    assert str(info.value).startswith("my.toml: ")


def test_catalog_file_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CatalogError, match="no such catalog file"):
        Catalog.from_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[catalog\nname=", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bad.toml: not valid TOML"):
        Catalog.from_toml(bad)


ENGINE = Engine(random_state=0)
CTX = np.zeros(ContextSpec().n_columns)
ROLES = ContextSpec(
    (DeclaredFeature("role", "categorical", "user", levels=("engineer", "manager")),),
    strict=True,
)
DECLARED = Engine(context=ROLES, random_state=0)

INPUT_CASES = [
    (
        lambda: make_policy("thompson"),
        ValueError,
        r"unknown policy 'thompson'; allowed: egreedy, lints, linucb, softmax, squarecb, uniform",
    ),
    (
        lambda: make_policy("egreedy", epsilon=1.5),
        ValueError,
        r"egreedy.epsilon must be in \[0, 1\], got 1.5",
    ),
    (
        lambda: make_policy("linucb", beta=1),
        TypeError,
        r"linucb: unknown parameter 'beta'; allowed: alpha",
    ),
    (
        lambda: make_policy("lints", block=16, max_samples=40),
        ValueError,
        r"max_samples must be a whole multiple of lints.block",
    ),
    (
        lambda: make_policy("softmax", temperature=0),
        ValueError,
        r"softmax.temperature must be in \(0, 100\]",
    ),
    (lambda: Engine(n_features=8), ValueError, r"n_features must be >= 15"),
    (lambda: Engine(floor=1.0), ValueError, r"floor must be in \[0, 1\)"),
    (lambda: Engine(forgetting=0), ValueError, r"forgetting must be in \(0, 1\]"),
    (lambda: Engine(flor=0.1), TypeError, r"unknown engine parameter 'flor'; allowed: policy,"),
    (
        lambda: EngineConfig.from_dict({"policy": "lints", "flor": 0.1}),
        ValueError,
        r"unknown engine parameter 'flor'; allowed: policy, policy_params, n_features",
    ),
    (lambda: EngineConfig(n_features=0), ValueError, r"n_features must be >= 1, got 0"),
    (lambda: EngineConfig(n_features=32.0), TypeError, r"n_features must be an integer"),
    (lambda: EngineConfig(prior_precision=0), ValueError, r"prior_precision must be > 0"),
    (lambda: EngineConfig(floor="0.1"), TypeError, r"floor must be a number, got '0.1'"),
    (lambda: EngineConfig(noise_sd=0), ValueError, r"noise_sd must be in \(0, 10\]"),
    (lambda: EngineConfig(shared_prior_sd=-1), ValueError, r"shared_prior_sd must be in"),
    (lambda: EngineConfig(empirical_prior=1), TypeError, r"empirical_prior must be true or"),
    (lambda: EngineConfig(context={"overflow": 0}), ValueError, r"overflow: undeclared keys"),
    (lambda: EngineConfig(policy="thompson"), ValueError, r"unknown policy 'thompson'"),
    (
        lambda: EngineConfig(policy="linucb", policy_params={"beta": 1}),
        TypeError,
        r"linucb: unknown parameter 'beta'; allowed: alpha",
    ),
    (
        lambda: Engine(random_state="seed"),
        TypeError,
        r"random_state must be an int, a numpy Generator or None",
    ),
    (lambda: DecisionRequest(""), ValueError, r"user_id must be a string of 1 to 256 characters"),
    (
        lambda: DecisionRequest("u", "x" * 40_000),
        ValueError,
        r"message must be a string of at most 32000",
    ),
    (
        lambda: Feedback("u", 3, 1.5, CTX),
        ValueError,
        r"reward must be a number in \[0, 1\], got 1.5",
    ),
    (lambda: Feedback("u", -1, 0.5, CTX), ValueError, r"arm must be a non-negative integer"),
    (lambda: Feedback("u", 1, 0.5, CTX, weight=0), ValueError, r"weight must be in \(0, 100\]"),
    (
        lambda: ENGINE.decide([DecisionRequest("u", constraints={"mood": "x"})]),
        ValueError,
        r"constraints: unknown dimension 'mood'; allowed: depth, tone, format, length",
    ),
    (
        lambda: ENGINE.decide([DecisionRequest("u", constraints={"length": "epic"})]),
        ValueError,
        r"constraints.length: unknown level 'epic'; allowed: brief, standard, thorough",
    ),
    (
        lambda: ENGINE.decide(
            [DecisionRequest("u", constraints={"depth": "research", "length": "brief"})]
        ),
        ValueError,
        r"no strategy in catalog 'attune-default' satisfies",
    ),
    (
        lambda: ENGINE.decide([DecisionRequest("u", locale="not a locale!")]),
        ValueError,
        r"locale: 'not a locale!' is not a BCP-47 tag",
    ),
    (
        lambda: ENGINE.decide([DecisionRequest("u", features={"x": {"nested": 1}})]),
        ValueError,
        r"features.x: expected a number, boolean, string or list",
    ),
    (
        lambda: DECLARED.decide([DecisionRequest("u", features={"role": "pilot"})]),
        ValueError,
        r"features.role: expected one of engineer, manager, got 'pilot'",
    ),
    (
        lambda: DECLARED.decide([DecisionRequest("u", features={"colour": 1})]),
        ValueError,
        r"features.colour: not declared \(strict mode\); declared: role",
    ),
    (
        lambda: DECLARED.set_user_features("u", {"role": 3}),
        ValueError,
        r"features.role: expected one of engineer, manager, got 3",
    ),
    (
        lambda: ContextSpec((DeclaredFeature("n", "numeric", range=(1, 1)),)),
        ValueError,
        r"features.n.range: expected \[lo, hi\] with lo < hi",
    ),
    (
        lambda: DeclaredFeature("tier", "categorical"),
        ValueError,
        r"features.tier.levels: expected distinct levels",
    ),
    (
        lambda: ContextSpec.from_dict({"features": [{"name": "a", "kind": "boolean", "size": 1}]}),
        ValueError,
        r"features.a.size: unknown",
    ),
    (
        lambda: ENGINE.learn([Feedback("u", 999, 0.5, CTX)]),
        ValueError,
        r"arms: every arm must be in \[0, 128\)",
    ),
    (
        lambda: ENGINE.learn_arrays(
            np.array([0]), np.array([0]), np.zeros((1, 5)), np.array([0.5])
        ),
        ValueError,
        r"contexts: expected shape \(1, 24\), got \(1, 5\)",
    ),
    (
        lambda: ENGINE.decide_arrays(ENGINE.users.rows(["u"]), CTX[None], np.zeros((1, 128), bool)),
        ValueError,
        r"masks: every request needs at least one allowed arm",
    ),
    (
        lambda: ENGINE.decide_arrays(np.array([10**6]), CTX[None]),
        ValueError,
        r"rows: unknown user row",
    ),
    (
        lambda: ENGINE.pin("u", {"tone": "sarcastic"}),
        ValueError,
        r"constraints.tone: unknown level 'sarcastic'; allowed: warm, neutral, direct",
    ),
    (lambda: ENGINE.profile("nobody"), KeyError, r"unknown user 'nobody'"),
    (
        lambda: ENGINE.set_arm_embeddings(np.zeros((128, 40))),
        ValueError,
        r"embeddings: expected shape \(128, <= 17\)",
    ),
]


@pytest.mark.parametrize("call,error,pattern", INPUT_CASES)
def test_bad_inputs(call: Any, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        call()


def test_refused_feedback_leaves_no_user_behind() -> None:
    engine = Engine(random_state=0)
    with pytest.raises(ValueError, match="arms"):
        engine.learn([Feedback("ghost", 999, 0.5, CTX)])
    with pytest.raises(ValueError, match="contexts"):
        engine.learn([Feedback("ghost", 0, 0.5, np.full_like(CTX, np.nan))])
    assert "ghost" not in engine.users
