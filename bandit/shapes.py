"""Directives in the request shapes of the LLM APIs products call: OpenAI Chat Completions,
Anthropic Messages and OpenAI Responses.

One function, ``chat_request``, places attune's system fragment ahead of the product's own
conversation and system prompt and names the generation parameters the way each API does.
The rules (README.md, "Directives for your LLM"):

- One system prompt: attune's fragment first, then the product's own system prompt (the
  ``system`` argument, then every ``system``/``developer`` message of the history, in order).
  A text that repeats one already placed is dropped, and a system text that starts with the
  fragment's first line is an earlier turn's merged prompt: its attune part (up to the first
  blank line; a fragment never contains one) is replaced by this turn's.
- The rest of the history keeps its order, followed by the user's message (if not empty).
- Parameters: the catalog names parameters as Chat Completions does. Anthropic requires
  ``max_tokens`` (``DEFAULT_MAX_TOKENS`` when no level sets it), takes ``temperature`` in
  [0, 1] (clipped) and, on its current models, ``temperature`` or ``top_p`` but not both
  (``top_p`` is dropped when a level sets both); Responses calls ``max_tokens``
  ``max_output_tokens``. Neither has presence or frequency penalties.

Nothing here imports numpy or the rest of attune, so ``api.client`` renders the same shapes
without loading the engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SHAPES = ("openai", "anthropic", "responses")
SYSTEM_ROLES = ("system", "developer")
DEFAULT_MAX_TOKENS = 1024
_SAMPLING = ("temperature", "top_p")


def generation_params(params: Mapping[str, float | int], shape: str = "openai") -> dict[str, Any]:
    """The catalog's generation parameters named and bounded as ``shape``'s API takes them.

    >>> p = {"max_tokens": 300, "temperature": 1.2, "top_p": 0.9}
    >>> generation_params(p, "anthropic")
    {'max_tokens': 300, 'temperature': 1.0}
    >>> generation_params(p, "responses")
    {'max_output_tokens': 300, 'temperature': 1.2, 'top_p': 0.9}
    """
    _check_shape(shape)
    if shape == "openai":
        return dict(params)
    out: dict[str, Any] = {}
    if shape == "anthropic":
        out["max_tokens"] = int(params.get("max_tokens", DEFAULT_MAX_TOKENS))
        if "temperature" in params:
            out["temperature"] = min(float(params["temperature"]), 1.0)
        elif "top_p" in params:
            out["top_p"] = params["top_p"]
        return out
    if "max_tokens" in params:
        out["max_output_tokens"] = params["max_tokens"]
    out.update({k: params[k] for k in _SAMPLING if k in params})
    return out


def chat_request(
    fragment: str,
    params: Mapping[str, float | int],
    message: str = "",
    history: Iterable[Mapping[str, Any]] = (),
    *,
    shape: str = "openai",
    system: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of one LLM call in ``shape`` (model name aside).

    Parameters
    ----------
    fragment : str
        attune's system-prompt fragment for this turn.
    params : mapping
        The generation parameters the strategy implies (catalog names).
    message : str
        The user's message this turn; left out when empty.
    history : iterable of mappings
        The conversation so far, ``{"role": ..., "content": ...}`` each, oldest first.
    shape : {"openai", "anthropic", "responses"}
    system : str, optional
        The product's own system prompt.

    Returns
    -------
    dict
        openai: ``messages`` plus parameters; anthropic: ``system``, ``messages`` plus
        parameters; responses: ``instructions``, ``input`` plus parameters.

    Examples
    --------
    >>> history = [{"role": "system", "content": "You are Acme's assistant."},
    ...            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"}]
    >>> req = chat_request("Be brief.", {"max_tokens": 300}, "And in Go?", history)
    >>> [m["role"] for m in req["messages"]], req["messages"][0]["content"]
    (['system', 'user', 'assistant', 'user'], "Be brief.\\n\\nYou are Acme's assistant.")
    >>> again = chat_request("Be brief.", {}, "ok", req["messages"])  # no duplicates
    >>> again["messages"][0]["content"] == req["messages"][0]["content"]
    True
    """
    _check_shape(shape)
    texts, turns = _split(history, shape)
    if system or texts:
        prompt = merge_system(fragment, [system, *texts] if system else texts)
    else:  # the service's case, on every decision: nothing to merge
        prompt = fragment
    if message:
        turns.append({"role": "user", "content": message})
    gen = generation_params(params, shape)
    if shape == "openai":
        return {"messages": [{"role": "system", "content": prompt}, *turns], **gen}
    if shape == "anthropic":
        return {"system": prompt, "messages": turns, **gen}
    return {"instructions": prompt, "input": turns, **gen}


def merge_system(fragment: str, texts: Iterable[str]) -> str:
    """attune's fragment, then the product's system texts, without repeats (module docstring).

    >>> merge_system("A.\\n- x", ["A.\\n- y\\n\\nBe nice.", "Be nice.", ""])
    'A.\\n- x\\n\\nBe nice.'
    """
    marker = fragment.split("\n", 1)[0]
    parts = [fragment] if fragment else []
    for text in texts:
        if marker and text.startswith(marker):
            _, _, text = text.partition("\n\n")  # an earlier turn's fragment, then the product's
        text = text.strip()
        if text and text not in parts:
            parts.append(text)
    return "\n\n".join(parts)


def _split(
    history: Iterable[Mapping[str, Any]], shape: str
) -> tuple[list[str], list[dict[str, Any]]]:
    """The history's system texts and its other messages (shallow copies), in order."""
    texts: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, item in enumerate(history):
        if not isinstance(item, Mapping) or not isinstance(item.get("role"), str):
            raise ValueError(f"history[{i}]: expected a mapping with a 'role' string")
        role = item["role"]
        if role in SYSTEM_ROLES:
            texts.append(_text(item.get("content"), f"history[{i}].content"))
        elif shape == "anthropic" and role not in ("user", "assistant"):
            raise ValueError(
                f"history[{i}].role: Anthropic messages are 'user' or 'assistant', got {role!r}"
            )
        else:
            turns.append(dict(item))
    return texts, turns


def _text(content: Any, where: str) -> str:
    """A system message's text: a string, or the text of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, Mapping) and isinstance(p.get("text"), str) for p in content
    ):
        return "\n".join(p["text"] for p in content)
    raise ValueError(f"{where}: expected a string or a list of text parts")


def _check_shape(shape: str) -> None:
    if shape not in SHAPES:
        raise ValueError(f"shape: expected one of {', '.join(SHAPES)}, got {shape!r}")
