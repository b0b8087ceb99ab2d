"""Directives: every level renders in every locale; notes, adapters, messages."""

from __future__ import annotations

import pytest

from bandit import Catalog, DirectiveCompiler

CATALOG = Catalog.default()
COMPILER = DirectiveCompiler(CATALOG)


@pytest.mark.parametrize("locale", CATALOG.locales)
def test_every_level_renders_in_every_locale(locale: str) -> None:
    for dim in CATALOG.dimensions:
        for level in dim.levels:
            arm = next(
                a for a in range(CATALOG.n_arms) if CATALOG.levels_of(a)[dim.name] == level.name
            )
            prompt = COMPILER.compile(arm, locale).system_prompt
            assert level.text[locale] in prompt
            assert CATALOG.preamble[locale] in prompt
    other = [loc for loc in CATALOG.locales if loc != locale]
    english_words = COMPILER.compile(0, "en").system_prompt.split()[:3]
    if locale != "en":
        assert not all(w in COMPILER.compile(0, locale).system_prompt for w in english_words)
    assert other


def test_generation_params_come_from_levels() -> None:
    arm = CATALOG.arm_index("expert.direct.bullets.thorough")
    assert COMPILER.compile(arm).params == {"temperature": 0.3, "max_tokens": 2000}


@pytest.mark.parametrize(
    "tag,expected",
    [("zh-CN", "zh"), ("ja_JP", "ja"), ("ES", "es"), ("fr", "en"), ("", "en"), ("ko-KR", "ko")],
)
def test_locale_resolution(tag: str, expected: str) -> None:
    assert COMPILER.resolve_locale(tag) == expected


def test_notes_adapter_and_messages() -> None:
    base = COMPILER.compile(5, "es")
    d = base.with_context(["Prefiere ejemplos en Rust", "  "], adapter="cluster-3")
    assert d.notes == ("Prefiere ejemplos en Rust",) and d.adapter == "cluster-3"
    assert d.system_prompt.startswith(base.system_prompt)
    assert "Lo que sabes de este usuario:\n- Prefiere ejemplos en Rust" in d.system_prompt
    again = d.with_context(["otra nota"])  # notes replace, never pile up
    assert "Rust" not in again.system_prompt and "otra nota" in again.system_prompt
    msgs = d.messages("¿Qué es una mónada?")
    assert msgs == [
        {"role": "system", "content": d.system_prompt},
        {"role": "user", "content": "¿Qué es una mónada?"},
    ]
    assert d.to_dict()["adapter"] == "cluster-3"
