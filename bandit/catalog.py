"""Strategy catalogs: the dimensions of a response strategy, their levels and the arms they make.

A catalog is a TOML file::

    [catalog]
    name = "my-product"
    version = 1
    locales = ["en", "zh", "ja", "ko", "es"]

    [catalog.preamble]          # heading of the compiled system-prompt fragment
    en = "Answer this user as follows:"
    ...

    [dimensions.depth]
    description = "How much background the answer assumes"
    labels = { en = "depth", ja = "深さ" }   # optional: the name shown to users, per locale

    [dimensions.depth.levels.basics]
    label = "No background assumed"
    labels = { ja = "予備知識なし" }           # optional: ``label`` in other locales
    params = { }                # generation parameters this level implies
    text.en = "Assume no background ..."
    text.zh = "..."             # one text per declared locale

    [[rules]]                   # forbidden combinations
    forbid = { depth = "research", length = "brief" }
    reason = "research-depth answers need room"

Arms are the cartesian product of all levels minus the forbidden combinations, in the order the
levels are declared. An arm's id joins its level names with dots:
``"expert.neutral.bullets.brief"``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
REQUIRED_LOCALES = ("en", "zh", "ja", "ko", "es")
GENERATION_PARAMS = {
    "max_tokens": (int, 16, 32768),
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
    "presence_penalty": (float, -2.0, 2.0),
    "frequency_penalty": (float, -2.0, 2.0),
}


class CatalogError(ValueError):
    """A catalog file is malformed; the message names the file, the place and the problem."""


@dataclass(frozen=True)
class Level:
    name: str
    label: str
    text: Mapping[str, str]
    params: Mapping[str, float | int]
    labels: Mapping[str, str] = field(default_factory=dict)  # ``label`` per locale

    def label_in(self, locale: str) -> str:
        """What users reading ``locale`` see for this level (``label`` if not translated)."""
        return self.labels.get(locale, self.label)


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str
    levels: tuple[Level, ...]
    labels: Mapping[str, str] = field(default_factory=dict)  # the dimension's name per locale

    @property
    def level_names(self) -> tuple[str, ...]:
        return tuple(level.name for level in self.levels)

    def label_in(self, locale: str) -> str:
        """The dimension's name for users reading ``locale`` (its ``name`` if not given)."""
        return self.labels.get(locale, self.name)


@dataclass(frozen=True)
class Rule:
    forbid: Mapping[str, str]
    reason: str


@dataclass(frozen=True)
class Catalog:
    """A validated catalog and the arms it declares.

    Attributes
    ----------
    arms : ndarray of int, shape (n_arms, n_dimensions)
        Level index of every arm in every dimension.
    attributes : ndarray of float, shape (n_arms, 1 + n_levels)
        A bias column, then one one-hot block per dimension: the arm's attribute vector.

    Examples
    --------
    >>> catalog = Catalog.default()
    >>> catalog.arm_ids[0]
    'basics.warm.prose.brief'
    >>> catalog.levels_of(0)["depth"]
    'basics'
    """

    name: str
    version: int
    locales: tuple[str, ...]
    preamble: Mapping[str, str]
    dimensions: tuple[Dimension, ...]
    rules: tuple[Rule, ...]
    source: str = "<dict>"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    arms: np.ndarray = field(init=False, repr=False, compare=False)
    attributes: np.ndarray = field(init=False, repr=False, compare=False)
    arm_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    level_offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_rules(self)
        arms = _enumerate_arms(self.dimensions, self.rules)
        if len(arms) == 0:
            raise CatalogError(f"{self.source}: the rules forbid every combination: no arms left")
        offsets, start = [], 1
        for dim in self.dimensions:
            offsets.append(start)
            start += len(dim.levels)
        attributes = np.zeros((len(arms), start))
        attributes[:, 0] = 1.0
        for j, off in enumerate(offsets):
            attributes[np.arange(len(arms)), off + arms[:, j]] = 1.0
        ids = tuple(
            ".".join(self.dimensions[j].levels[i].name for j, i in enumerate(row)) for row in arms
        )
        object.__setattr__(self, "arms", arms)
        object.__setattr__(self, "attributes", attributes)
        object.__setattr__(self, "arm_ids", ids)
        object.__setattr__(self, "level_offsets", tuple(offsets))
        arms.setflags(write=False)
        attributes.setflags(write=False)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_toml(cls, path: str | Path) -> Catalog:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogError(f"{path}: no such catalog file") from None
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{path}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> Catalog:
        return _parse(data, source)

    @classmethod
    def default(cls) -> Catalog:
        text = resources.files("bandit").joinpath("catalogs/default.toml").read_text("utf-8")
        return cls.from_dict(tomllib.loads(text), source="bandit/catalogs/default.toml")

    # ----------------------------------------------------------------- queries
    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)

    @property
    def dimension_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def dimension(self, name: str) -> Dimension:
        for dim in self.dimensions:
            if dim.name == name:
                return dim
        raise KeyError(f"unknown dimension {name!r}; allowed: {', '.join(self.dimension_names)}")

    def levels_of(self, arm: int) -> dict[str, str]:
        """The level name per dimension of one arm."""
        row = self.arms[arm]
        return {d.name: d.levels[i].name for d, i in zip(self.dimensions, row, strict=True)}

    def arm_index(self, arm_id: str) -> int:
        try:
            return self.arm_ids.index(arm_id)
        except ValueError:
            raise KeyError(f"unknown strategy {arm_id!r} in catalog {self.name!r}") from None

    def mask(self, constraints: Mapping[str, str | Collection[str]] | None = None) -> np.ndarray:
        """Boolean mask, shape (n_arms,), of the arms whose levels satisfy every constraint.

        ``constraints`` maps a dimension to one allowed level or a collection of them. Unknown
        dimensions or levels raise ``ValueError`` naming the allowed values.
        """
        keep = np.ones(self.n_arms, dtype=bool)
        for dim_name, allowed in (constraints or {}).items():
            if dim_name not in self.dimension_names:
                raise ValueError(
                    f"constraints: unknown dimension {dim_name!r}; "
                    f"allowed: {', '.join(self.dimension_names)}"
                )
            j = self.dimension_names.index(dim_name)
            names = self.dimensions[j].level_names
            wanted = [allowed] if isinstance(allowed, str) else list(allowed)
            bad = [w for w in wanted if w not in names]
            if bad or not wanted:
                raise ValueError(
                    f"constraints.{dim_name}: unknown level {bad[0] if bad else '(none)'!r}; "
                    f"allowed: {', '.join(names)}"
                )
            keep &= np.isin(self.arms[:, j], [names.index(w) for w in wanted])
        return keep

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of everything the catalog declares: name, version, locales, texts,
        parameters, rules; not the file's formatting or comments."""
        content = {
            "name": self.name,
            "version": self.version,
            "locales": list(self.locales),
            "preamble": dict(self.preamble),
            "dimensions": [
                [
                    d.name,
                    d.description,
                    [[lv.name, lv.label, dict(lv.text), dict(lv.params)] for lv in d.levels],
                ]
                for d in self.dimensions
            ],
            "rules": [[dict(r.forbid), r.reason] for r in self.rules],
        }
        text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def identity(self) -> dict[str, Any]:
        """What a CF model records of the catalog it was trained on: name, version and
        ``fingerprint``.

        >>> Catalog.default().identity()["name"]
        'attune-default'
        """
        return {"name": self.name, "version": self.version, "hash": self.fingerprint}

    def attribute_names(self) -> list[str]:
        """Names of the columns of ``attributes``: ``"bias"`` then ``"dimension=level"``."""
        return ["bias"] + [f"{d.name}={lv.name}" for d in self.dimensions for lv in d.levels]


# --------------------------------------------------------------------- parsing
def _parse(data: Mapping[str, Any], source: str) -> Catalog:
    head = _table(data.get("catalog"), f"{source}: [catalog]")
    name = _string(head.get("name"), f"{source}: catalog.name")
    version = head.get("version", 1)
    if not isinstance(version, int) or version < 1:
        raise CatalogError(f"{source}: catalog.version must be an integer >= 1, got {version!r}")
    locales = head.get("locales", list(REQUIRED_LOCALES))
    if not isinstance(locales, list) or not all(isinstance(x, str) for x in locales):
        raise CatalogError(f"{source}: catalog.locales must be a list of locale codes")
    missing = [loc for loc in REQUIRED_LOCALES if loc not in locales]
    if missing:
        raise CatalogError(
            f"{source}: catalog.locales lacks {', '.join(missing)} "
            f"(required: {', '.join(REQUIRED_LOCALES)})"
        )
    _no_duplicates(locales, f"{source}: catalog.locales")
    preamble = _texts(head.get("preamble", {}), locales, f"{source}: catalog.preamble")
    dims_table = _table(data.get("dimensions"), f"{source}: [dimensions]")
    if not dims_table:
        raise CatalogError(f"{source}: [dimensions] is empty: declare at least one dimension")
    dims = tuple(_dimension(n, t, locales, source) for n, t in dims_table.items())
    rules_raw = data.get("rules", [])
    if not isinstance(rules_raw, list):
        raise CatalogError(f"{source}: rules must be an array of tables ([[rules]])")
    rules = tuple(_rule(i, r, source) for i, r in enumerate(rules_raw))
    return Catalog(name, version, tuple(locales), preamble, dims, rules, source, dict(data))


def _dimension(name: str, table: Any, locales: list[str], source: str) -> Dimension:
    where = f"{source}: dimension {name!r}"
    if not _NAME.match(name):
        raise CatalogError(f"{where}: names must match {_NAME.pattern}")
    table = _table(table, where)
    levels_table = _table(table.get("levels"), f"{where}: levels")
    if not levels_table:
        raise CatalogError(f"{where}: no levels declared")
    levels = []
    for level_name, lt in levels_table.items():
        lwhere = f"{where}, level {level_name!r}"
        if not _NAME.match(level_name):
            raise CatalogError(f"{lwhere}: names must match {_NAME.pattern}")
        lt = _table(lt, lwhere)
        texts = _texts(lt.get("text"), locales, f"{lwhere}: text")
        params = _params(lt.get("params", {}), lwhere)
        label = _string(lt.get("label", level_name), f"{lwhere}: label")
        labels = _labels(lt.get("labels"), locales, f"{lwhere}: labels")
        levels.append(Level(level_name, label, texts, params, labels))
    labels = _labels(table.get("labels"), locales, f"{where}: labels")
    return Dimension(name, str(table.get("description", "")), tuple(levels), labels)


def _rule(i: int, raw: Any, source: str) -> Rule:
    where = f"{source}: rules[{i}]"
    raw = _table(raw, where)
    forbid = _table(raw.get("forbid"), f"{where}.forbid")
    if len(forbid) < 1 or not all(isinstance(v, str) for v in forbid.values()):
        raise CatalogError(f"{where}.forbid must map dimensions to level names")
    return Rule(dict(forbid), str(raw.get("reason", "")))


def _check_rules(catalog: Catalog) -> None:
    names = [d.name for d in catalog.dimensions]
    _no_duplicates(names, f"{catalog.source}: dimensions")
    for dim in catalog.dimensions:
        _no_duplicates(list(dim.level_names), f"{catalog.source}: dimension {dim.name!r} levels")
    for i, rule in enumerate(catalog.rules):
        for dim_name, level in rule.forbid.items():
            if dim_name not in names:
                raise CatalogError(
                    f"{catalog.source}: rules[{i}] names unknown dimension {dim_name!r}; "
                    f"allowed: {', '.join(names)}"
                )
            allowed = catalog.dimensions[names.index(dim_name)].level_names
            if level not in allowed:
                raise CatalogError(
                    f"{catalog.source}: rules[{i}] names unknown level {level!r} of dimension "
                    f"{dim_name!r}; allowed: {', '.join(allowed)}"
                )
    owner: dict[str, str] = {}  # a generation parameter belongs to one dimension
    for dim in catalog.dimensions:
        for key in sorted({k for level in dim.levels for k in level.params}):
            if key in owner:
                raise CatalogError(
                    f"{catalog.source}: generation parameter {key!r} is set by both "
                    f"dimension {owner[key]!r} and dimension {dim.name!r}; "
                    "give each parameter to one dimension"
                )
            owner[key] = dim.name


def _enumerate_arms(dims: tuple[Dimension, ...], rules: tuple[Rule, ...]) -> np.ndarray:
    names = [d.name for d in dims]
    forbidden = [
        {names.index(k): dims[names.index(k)].level_names.index(v) for k, v in r.forbid.items()}
        for r in rules
    ]
    rows = [
        combo
        for combo in itertools.product(*(range(len(d.levels)) for d in dims))
        if not any(all(combo[j] == i for j, i in f.items()) for f in forbidden)
    ]
    return np.array(rows, dtype=np.int64).reshape(len(rows), len(dims))


def _table(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        raise CatalogError(f"{where}: missing")
    if not isinstance(value, Mapping):
        raise CatalogError(f"{where}: expected a table, got {type(value).__name__}")
    return dict(value)


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _texts(value: Any, locales: list[str], where: str) -> dict[str, str]:
    table = _table(value, where)
    for loc in locales:
        if loc not in table:
            raise CatalogError(f"{where}: missing locale {loc!r} (required: {', '.join(locales)})")
        _string(table[loc], f"{where}.{loc}")
    extra = sorted(set(table) - set(locales))
    if extra:
        raise CatalogError(
            f"{where}: locale {extra[0]!r} is not declared in catalog.locales "
            f"({', '.join(locales)})"
        )
    return {loc: table[loc] for loc in locales}


def _labels(value: Any, locales: list[str], where: str) -> dict[str, str]:
    """Optional translations: any of the declared locales, each a non-empty string."""
    if value is None:
        return {}
    table = _table(value, where)
    for loc, text in table.items():
        if loc not in locales:
            raise CatalogError(
                f"{where}: locale {loc!r} is not declared in catalog.locales ({', '.join(locales)})"
            )
        _string(text, f"{where}.{loc}")
    return dict(table)


def _params(value: Any, where: str) -> dict[str, float | int]:
    table = _table(value, f"{where}: params")
    out: dict[str, float | int] = {}
    for key, val in table.items():
        if key not in GENERATION_PARAMS:
            raise CatalogError(
                f"{where}: unknown generation parameter {key!r}; "
                f"allowed: {', '.join(GENERATION_PARAMS)}"
            )
        kind, lo, hi = GENERATION_PARAMS[key]
        if isinstance(val, bool) or not isinstance(val, int | float) or not lo <= val <= hi:
            raise CatalogError(
                f"{where}: params.{key} must be a number in [{lo}, {hi}], got {val!r}"
            )
        out[key] = kind(val)
    return out


def _no_duplicates(items: list[str], where: str) -> None:
    seen = set()
    for item in items:
        if item in seen:
            raise CatalogError(f"{where}: duplicate name {item!r}")
        seen.add(item)
