"""Compile a strategy and a locale into generation directives for the product's LLM."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bandit.catalog import Catalog
from bandit.shapes import chat_request, generation_params

_LOCALE = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")
_NOTES_HEADING = {
    "en": "What you know about this user:",
    "zh": "关于该用户的已知信息：",
    "ja": "このユーザーについて分かっていること：",
    "ko": "이 사용자에 대해 알고 있는 정보:",
    "es": "Lo que sabes de este usuario:",
}


@dataclass(frozen=True)
class Directives:
    """What the product hands its LLM for one turn.

    Attributes
    ----------
    system_prompt : str
        The system-prompt fragment in the user's locale.
    params : dict
        Generation parameters (``max_tokens``, ``temperature``, ``top_p``, ...), named as
        OpenAI's Chat Completions names them; ``generation(shape)`` names them for others.
    locale : str
        The catalog locale the fragment was rendered in.
    notes : tuple of str
        Profile notes relevant to this turn, already included in ``system_prompt``.
    adapter : str or None
        Optional adapter id (for serving stacks with per-group LoRA adapters).
    """

    system_prompt: str
    params: Mapping[str, float | int]
    locale: str
    notes: tuple[str, ...] = ()
    adapter: str | None = None
    _base_prompt: str = field(default="", repr=False, compare=False)

    def messages(
        self,
        user_message: str = "",
        history: Iterable[Mapping[str, Any]] = (),
        *,
        shape: str = "openai",
        system: str | None = None,
    ) -> list[dict[str, Any]]:
        """The messages of this turn's LLM call: the system prompt (attune's fragment merged
        with the product's own, once), the ``history`` and the user's message if not empty.

        ``shape="anthropic"`` and ``"responses"`` leave the system prompt out (those APIs take
        it as ``system``/``instructions``: use ``request``). ``bandit.shapes`` has the rules.
        """
        out = self.request(user_message, history, shape=shape, system=system)
        turns: list[dict[str, Any]] = out["input"] if shape == "responses" else out["messages"]
        return turns

    def request(
        self,
        user_message: str = "",
        history: Iterable[Mapping[str, Any]] = (),
        *,
        shape: str = "openai",
        system: str | None = None,
    ) -> dict[str, Any]:
        """The keyword arguments of this turn's LLM call in ``shape`` ("openai",
        "anthropic" or "responses"): messages and generation parameters, model aside.

        >>> d = DirectiveCompiler(Catalog.default()).compile(0)
        >>> req = d.request("hi", [{"role": "system", "content": "You are Acme."}],
        ...                 shape="anthropic")
        >>> req["system"].endswith("You are Acme."), req["messages"], req["max_tokens"]
        (True, [{'role': 'user', 'content': 'hi'}], 300)
        """
        return chat_request(
            self.system_prompt, self.params, user_message, history, shape=shape, system=system
        )

    def generation(self, shape: str = "openai") -> dict[str, Any]:
        """The generation parameters as ``shape``'s API names them (``params``: the
        catalog's names, which are OpenAI Chat Completions')."""
        return generation_params(self.params, shape)

    def with_context(self, notes: Sequence[str] = (), adapter: str | None = None) -> Directives:
        """A copy with profile notes appended to the prompt and an adapter id set."""
        notes = tuple(n.strip() for n in notes if n and n.strip())
        base = self._base_prompt or self.system_prompt
        prompt = base
        if notes:
            heading = _NOTES_HEADING.get(self.locale, _NOTES_HEADING["en"])
            prompt = base + "\n" + heading + "\n" + "\n".join(f"- {n}" for n in notes)
        # Built directly: ``dataclasses.replace`` costs several times more, on every decision.
        return Directives(prompt, self.params, self.locale, notes, adapter, base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "system_prompt": self.system_prompt,
            "params": dict(self.params),
            "locale": self.locale,
            "notes": list(self.notes),
            "adapter": self.adapter,
        }


class DirectiveCompiler:
    """Renders every (arm, locale) once and serves the result from a table.

    >>> compiler = DirectiveCompiler(Catalog.default())
    >>> d = compiler.compile(0, "ja-JP")
    >>> d.locale, d.params["max_tokens"]
    ('ja', 300)
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._table: dict[tuple[int, str], Directives] = {}
        for arm in range(catalog.n_arms):
            for locale in catalog.locales:
                self._table[arm, locale] = _render(catalog, arm, locale)

    def compile(self, arm: int, locale: str = "en") -> Directives:
        if not 0 <= arm < self.catalog.n_arms:
            raise ValueError(f"arm must be in [0, {self.catalog.n_arms}), got {arm}")
        return self._table[arm, self.resolve_locale(locale)]

    def resolve_locale(self, locale: str | None) -> str:
        """The catalog locale for a BCP-47 tag: its primary subtag if declared, else English.

        A string that is not a locale tag at all raises ``ValueError``.
        """
        if not locale:
            return "en"
        if locale in self.catalog.locales:  # the common case, without the pattern
            return locale
        if not _LOCALE.match(locale):
            raise ValueError(f"locale: {locale!r} is not a BCP-47 tag such as 'en' or 'zh-CN'")
        primary = locale.replace("_", "-").split("-")[0].lower()
        return primary if primary in self.catalog.locales else "en"


def _render(catalog: Catalog, arm: int, locale: str) -> Directives:
    lines = [catalog.preamble.get(locale, "")] if catalog.preamble else []
    params: dict[str, float | int] = {}
    for dim, idx in zip(catalog.dimensions, catalog.arms[arm], strict=True):
        level = dim.levels[idx]
        lines.append(f"- {level.text[locale]}")
        params.update(level.params)
    prompt = "\n".join(line for line in lines if line)
    return Directives(system_prompt=prompt, params=params, locale=locale, _base_prompt=prompt)
