"""``k=v`` command-line parameters shared by ``simulate`` and ``evaluate``."""

from __future__ import annotations

from collections.abc import Iterable


def parse_params(items: Iterable[str], flag: str) -> dict[str, float]:
    """``["alpha=0.5", "block=16"]`` -> ``{"alpha": 0.5, "block": 16.0}``; numbers only, because
    every engine policy parameter is a number."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"{flag} {item!r}: the value must be a number") from None
    return out
