"""The context of a request: the message's features plus what the product declares.

A product declares its features once (settings ``[[features]]`` or ``ContextSpec``): each has a
name, a kind, a scope and whether it is required. Every declared feature gets columns of its
own; keys nobody declared are refused in strict mode, otherwise hashed with a sign into a small
overflow block at the end, so a product that sends free-form features keeps working.

========== ======================================= =================================
kind       value                                   columns
========== ======================================= =================================
numeric    a number; with ``range = [lo, hi]``     1: ``(x - lo) / (hi - lo)``, or
           it must lie in it                       ``x / scale`` clipped to [-1, 1]
boolean    true or false                           1: 1.0 or 0.0
categorical one of ``levels``                      one per level (one-hot)
tags       a list of ``levels``                    one per level (multi-hot)
========== ======================================= =================================

Scope ``user`` features (role, plan, stated expertise) describe the user: sent with a decision
or set on the profile, they are remembered per user. Scope ``request`` features (channel, app
surface) describe one turn only.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit.features import FEATURE_NAMES, N_FEATURES, featurize

KINDS = ("numeric", "boolean", "categorical", "tags")
SCOPES = ("user", "request")
MAX_OVERFLOW = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:")


@dataclass(frozen=True)
class DeclaredFeature:
    """One declared product feature (see the module docstring for kinds and columns)."""

    name: str
    kind: str
    scope: str = "request"
    required: bool = False
    levels: tuple[str, ...] = ()
    range: tuple[float, float] | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        where = f"features.{self.name}"
        if not self.name or len(self.name) > 64 or not set(self.name) <= _NAME_CHARS:
            raise ValueError(f"features: a name must be 1-64 of [A-Za-z0-9_-.:], got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"{where}.kind: expected one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"{where}.scope: expected user or request, got {self.scope!r}")
        object.__setattr__(self, "levels", tuple(self.levels))
        if self.kind in ("categorical", "tags"):
            if not self.levels or len(set(self.levels)) != len(self.levels):
                raise ValueError(f"{where}.levels: expected distinct levels, got {self.levels!r}")
        elif self.levels:
            raise ValueError(f"{where}.levels: only categorical and tags features have levels")
        if self.range is not None:
            lo, hi = (float(v) for v in self.range)
            if self.kind != "numeric" or not lo < hi:
                raise ValueError(f"{where}.range: expected [lo, hi] with lo < hi, numeric only")
            object.__setattr__(self, "range", (lo, hi))
        if not (isinstance(self.scale, int | float) and self.scale > 0):
            raise ValueError(f"{where}.scale: expected a number > 0, got {self.scale!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        if self.kind in ("categorical", "tags"):
            return tuple(f"{self.name}={level}" for level in self.levels)
        return (self.name,)

    def encode(self, value: Any, row: np.ndarray, start: int) -> None:
        """Write the value's columns into ``row[start:]``; ValueError naming the feature."""
        where = f"features.{self.name}"
        if self.kind == "boolean":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false, got {value!r}")
            row[start] = float(value)
        elif self.kind == "numeric":
            row[start] = self._number(value, where)
        elif self.kind == "categorical":
            if not isinstance(value, str) or value not in self.levels:
                raise ValueError(
                    f"{where}: expected one of {', '.join(self.levels)}, got {value!r}"
                )
            row[start + self.levels.index(value)] = 1.0
        else:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}: expected a list of tags, got {value!r}")
            for tag in value:
                if tag not in self.levels:
                    raise ValueError(
                        f"{where}: unknown tag {tag!r}; allowed: {', '.join(self.levels)}"
                    )
                row[start + self.levels.index(tag)] = 1.0

    def _number(self, value: Any, where: str) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{where}: expected a finite number, got {value!r}")
        if self.range is None:
            return max(-1.0, min(1.0, float(value) / self.scale))
        lo, hi = self.range
        if not lo <= value <= hi:
            raise ValueError(f"{where}: expected a number in [{lo:g}, {hi:g}], got {value!r}")
        return (float(value) - lo) / (hi - lo)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "scope": self.scope}
        if self.required:
            out["required"] = True
        if self.levels:
            out["levels"] = list(self.levels)
        if self.range is not None:
            out["range"] = list(self.range)
        if self.scale != 1.0:
            out["scale"] = self.scale
        return out

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> DeclaredFeature:
        allowed = ("name", "kind", "scope", "required", "levels", "range", "scale")
        unknown = sorted(set(table) - set(allowed))
        if unknown:
            raise ValueError(
                f"features.{table.get('name', '?')}.{unknown[0]}: unknown; allowed: "
                + ", ".join(allowed)
            )
        if "name" not in table or "kind" not in table:
            raise ValueError("features: every declared feature needs a name and a kind")
        values = dict(table)
        if "levels" in values:
            values["levels"] = tuple(values["levels"])
        if "range" in values:
            values["range"] = tuple(values["range"])
        return cls(**values)


@dataclass(frozen=True)
class ContextSpec:
    """Which columns a request's context vector has, and how product features fill them.

    Parameters
    ----------
    features : sequence of DeclaredFeature
    overflow : int
        Columns for keys nobody declared (hashed with a sign); 0 only in strict mode.
    strict : bool
        Refuse undeclared keys instead of hashing them.

    Examples
    --------
    >>> spec = ContextSpec((DeclaredFeature("plan", "categorical", "user", levels=("free", "pro")),
    ...                     DeclaredFeature("voice", "boolean")), overflow=2)
    >>> spec.n_columns, spec.names[-4:]
    (21, ('plan=pro', 'voice', 'overflow_0', 'overflow_1'))
    >>> x = spec.featurize(["hi"], [{"plan": "pro", "voice": True}])
    >>> x[0, spec.names.index("plan=pro")], x[0, spec.names.index("voice")]
    (np.float64(1.0), np.float64(1.0))
    """

    features: tuple[DeclaredFeature, ...] = ()
    overflow: int = 8
    strict: bool = False
    _index: dict[str, tuple[DeclaredFeature, int]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not (isinstance(self.overflow, int) and 0 <= self.overflow <= MAX_OVERFLOW):
            raise ValueError(
                f"overflow: expected 0 to {MAX_OVERFLOW} columns, got {self.overflow!r}"
            )
        if self.overflow == 0 and not self.strict:
            raise ValueError("overflow: undeclared keys need at least one column unless strict")
        start = N_FEATURES
        for f in self.features:
            if f.name in self._index or f.name in FEATURE_NAMES:
                raise ValueError(f"features.{f.name}: declared twice or a message feature's name")
            self._index[f.name] = (f, start)
            start += len(f.columns)

    # ------------------------------------------------------------------ layout
    @property
    def names(self) -> tuple[str, ...]:
        declared = [c for f in self.features for c in f.columns]
        return (*FEATURE_NAMES, *declared, *(f"overflow_{i}" for i in range(self.overflow)))

    @property
    def n_columns(self) -> int:
        return N_FEATURES + sum(len(f.columns) for f in self.features) + self.overflow

    def optional(self) -> ContextSpec:
        """The same columns with no feature required (for probes that send none)."""
        features = tuple(dataclasses.replace(f, required=False) for f in self.features)
        return ContextSpec(features, self.overflow, self.strict)

    def declared(self, name: str) -> DeclaredFeature | None:
        hit = self._index.get(name)
        return None if hit is None else hit[0]

    def user_scoped(self, features: Mapping[str, Any]) -> dict[str, Any]:
        """The user-scope features among ``features`` (validated)."""
        self.validate(features)
        return {k: v for k, v in features.items() if (f := self.declared(k)) and f.scope == "user"}

    # ------------------------------------------------------------------ values
    def validate(self, features: Mapping[str, Any], *, complete: bool = False) -> None:
        """Raise ValueError naming the first bad feature; ``complete``: required ones too."""
        self._fill(np.zeros(self.n_columns), features, complete)

    def featurize(
        self,
        messages: Sequence[str],
        features: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        check_required: bool = True,
    ) -> np.ndarray:
        """Context vectors of a batch, shape (n, n_columns): message features, then the
        declared columns, then the overflow block."""
        n = len(messages)
        if features is not None and len(features) != n:
            raise ValueError(f"features: expected {n} entries, got {len(features)}")
        out = np.zeros((n, self.n_columns))
        out[:, :N_FEATURES] = featurize(messages)
        if features is None and not self.features:
            return out
        for i in range(n):
            self._fill(
                out[i], (features[i] if features is not None else None) or {}, check_required
            )
        return out

    def _fill(self, row: np.ndarray, values: Mapping[str, Any], check_required: bool) -> None:
        for name, value in values.items():
            hit = self._index.get(name)
            if hit is not None:
                hit[0].encode(value, row, hit[1])
            elif self.strict:
                declared = ", ".join(self._index) or "none"
                raise ValueError(
                    f"features.{name}: not declared (strict mode); declared: {declared}"
                )
            else:
                self._hash(name, value, row)
        if check_required:
            for f in self.features:
                if f.required and f.name not in values:
                    raise ValueError(f"features.{f.name}: required ({f.kind}, scope {f.scope})")

    def _hash(self, name: str, value: Any, row: np.ndarray) -> None:
        """An undeclared key into the overflow block: a number (or boolean) by its value, a
        string or list of strings as one ``name=value`` indicator each."""
        if isinstance(value, bool):
            items = [(name, float(value))]
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"features.{name}: expected a finite number, got {value!r}")
            items = [(name, max(-1.0, min(1.0, float(value))))]
        elif isinstance(value, str):
            items = [(f"{name}={value}", 1.0)]
        elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            items = [(f"{name}={v}", 1.0) for v in value]
        else:
            raise ValueError(f"features.{name}: expected a number, boolean, string or list")
        base = self.n_columns - self.overflow
        for key, v in items:
            h = zlib.crc32(key.encode("utf-8"))
            row[base + h % self.overflow] += v if (h >> 8) & 1 else -v

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "overflow": self.overflow,
            "strict": self.strict,
        }

    @classmethod
    def from_dict(cls, table: Mapping[str, Any] | None) -> ContextSpec:
        table = dict(table or {})
        unknown = sorted(set(table) - {"features", "overflow", "strict"})
        if unknown:
            raise ValueError(f"context.{unknown[0]}: unknown; allowed: features, overflow, strict")
        features = tuple(DeclaredFeature.from_dict(f) for f in table.pop("features", []))
        return cls(features, **table)
