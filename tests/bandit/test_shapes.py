"""Directives in OpenAI's and Anthropic's request shapes: one system prompt ahead of the
product's history, never duplicated; generation parameters named per API."""

from __future__ import annotations

from typing import Any

import pytest

from bandit import Catalog, DirectiveCompiler
from bandit.shapes import DEFAULT_MAX_TOKENS, chat_request, generation_params

CATALOG = Catalog.default()
COMPILER = DirectiveCompiler(CATALOG)
CODE = COMPILER.compile(CATALOG.arm_index("expert.direct.code-first.brief"), "en")
WARM = COMPILER.compile(CATALOG.arm_index("basics.warm.steps.thorough"), "en")
PRODUCT = "You are Acme's support assistant. Never promise refunds."
HISTORY: list[dict[str, Any]] = [
    {"role": "system", "content": PRODUCT},
    {"role": "user", "content": "My build fails."},
    {"role": "assistant", "content": "Which error do you see?"},
]


def test_openai_places_one_system_prompt_ahead_of_the_history() -> None:
    msgs = CODE.messages("error: linker not found", HISTORY)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == CODE.system_prompt + "\n\n" + PRODUCT
    assert msgs[1:3] == HISTORY[1:]
    assert msgs[3] == {"role": "user", "content": "error: linker not found"}
    assert msgs[1] is not HISTORY[1]  # copies: the product's history is not aliased


def test_a_later_turn_replaces_the_earlier_fragment_instead_of_piling_up() -> None:
    first = CODE.messages("error: linker not found", HISTORY)
    later = [*first, {"role": "assistant", "content": "Install binutils."}]
    msgs = WARM.messages("thanks, and on macOS?", later)
    system = [m for m in msgs if m["role"] == "system"]
    assert len(system) == 1 and msgs[0] is system[0]
    assert system[0]["content"] == WARM.system_prompt + "\n\n" + PRODUCT
    assert CODE.system_prompt not in system[0]["content"]
    assert system[0]["content"].count(PRODUCT) == 1
    # the same prompt passed again as ``system`` is not repeated either
    assert WARM.messages("x", later, system=PRODUCT)[0]["content"] == system[0]["content"]


def test_system_texts_merge_in_order_and_content_parts_count_as_text() -> None:
    history = [
        {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "Cite sources."},
    ]
    msgs = CODE.messages("", history, system=PRODUCT)
    assert msgs[0]["content"] == "\n\n".join(
        [CODE.system_prompt, PRODUCT, "Answer in English.", "Cite sources."]
    )
    assert msgs[1:] == [{"role": "user", "content": "hi"}]  # an empty message is left out


def test_anthropic_takes_the_system_prompt_apart_and_its_own_parameters() -> None:
    req = CODE.request("error: linker not found", HISTORY, shape="anthropic")
    assert set(req) == {"system", "messages", "max_tokens", "temperature"}
    assert req["system"] == CODE.system_prompt + "\n\n" + PRODUCT
    assert [m["role"] for m in req["messages"]] == ["user", "assistant", "user"]
    # code-first implies top_p, but current Claude models take temperature or top_p
    assert CODE.params["top_p"] == 0.9 and req["temperature"] == 0.3
    again = CODE.messages("q", HISTORY, shape="anthropic")
    assert again == [*req["messages"][:2], {"role": "user", "content": "q"}]


def test_responses_shape_names_instructions_input_and_max_output_tokens() -> None:
    req = CODE.request("error: linker not found", HISTORY, shape="responses")
    assert req["instructions"] == CODE.system_prompt + "\n\n" + PRODUCT
    assert req["input"][-1] == {"role": "user", "content": "error: linker not found"}
    assert (req["max_output_tokens"], req["temperature"], req["top_p"]) == (300, 0.3, 0.9)
    assert "max_tokens" not in req


@pytest.mark.parametrize(
    "params,shape,expected",
    [
        (
            {"max_tokens": 300, "temperature": 0.3},
            "openai",
            {"max_tokens": 300, "temperature": 0.3},
        ),
        ({"temperature": 1.6}, "anthropic", {"max_tokens": DEFAULT_MAX_TOKENS, "temperature": 1.0}),
        ({"top_p": 0.8, "max_tokens": 50}, "anthropic", {"max_tokens": 50, "top_p": 0.8}),
        ({"presence_penalty": 0.5, "max_tokens": 9}, "responses", {"max_output_tokens": 9}),
        ({"presence_penalty": 0.5}, "openai", {"presence_penalty": 0.5}),
    ],
)
def test_generation_params_per_shape(
    params: dict[str, Any], shape: str, expected: dict[str, Any]
) -> None:
    assert generation_params(params, shape) == expected


def test_top_p_comes_exactly_with_code_first_and_every_shape_is_valid() -> None:
    for arm in range(CATALOG.n_arms):
        d = COMPILER.compile(arm)
        code_first = CATALOG.levels_of(arm)["format"] == "code-first"
        assert ("top_p" in d.generation("openai")) == code_first
        anthropic = d.generation("anthropic")
        assert not {"temperature", "top_p"} <= set(anthropic) and anthropic["max_tokens"] > 0
        assert 0.0 <= anthropic["temperature"] <= 1.0


@pytest.mark.parametrize(
    "history,shape,pattern",
    [
        ([{"content": "x"}], "openai", r"history\[0\]: expected a mapping with a 'role'"),
        (["hi"], "openai", r"history\[0\]: expected a mapping"),
        (
            [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}],
            "anthropic",
            r"history\[1\].role: Anthropic messages are 'user' or 'assistant', got 'tool'",
        ),
        ([{"role": "system", "content": 3}], "openai", r"history\[0\].content: expected a string"),
        ([], "gemini", r"shape: expected one of openai, anthropic, responses, got 'gemini'"),
    ],
)
def test_bad_histories_and_shapes(history: list[Any], shape: str, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        chat_request("A.", {}, "q", history, shape=shape)


def test_tool_messages_pass_through_in_openai_shape() -> None:
    tool = {"role": "tool", "tool_call_id": "c1", "content": "42"}
    assert CODE.messages("", [tool])[1] == tool
