"""Explanations: what moved a choice, in the words of the decision's locale.

The reasons a decision can give (``KINDS``): the user's ``pin`` of a level; the user's
``preference`` learned from their own feedback; their ``group``'s taste, the prior
collaborative filtering gave them; a ``request`` feature of this message or this turn; a
declared ``user_feature`` the product knows (role, plan); ``exploration``; ``paused`` when the
user paused personalization; and each memory ``note`` put into the directives. The words of
each kind in each locale live in ``bandit.reason_texts``; ``reason_text`` renders one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from bandit import _kernels as K
from bandit import reason_texts
from bandit.catalog import Catalog
from bandit.context import ContextSpec
from bandit.features import FEATURE_NAMES, N_FEATURES

KINDS = (
    "pin",
    "preference",
    "group",
    "request",
    "user_feature",
    "exploration",
    "paused",
    "note",
)
NOTE_CHARS = 120  # a note is quoted in an explanation up to this many characters
MAX_CACHED_TEXTS = 100_000  # rendered texts kept per catalog and context (groups multiply them)


class Reason(NamedTuple):
    """One reason behind a decision: its ``kind`` (see ``KINDS``), its text in the decision's
    locale and its weight, and what it is about: a ``dimension`` and ``level``, a request or
    user ``feature`` column, a ``note_id``, the user's ``group``. (A named tuple: every
    decision builds several, and a frozen dataclass takes twice as long to make.)"""

    kind: str
    text: str
    weight: float
    dimension: str | None = None
    level: str | None = None
    feature: str | None = None
    note_id: str | None = None
    group: str | None = None

    def to_dict(self) -> dict[str, object]:
        # Spelled out rather than ``dict(zip(...))``: every decision turns each of its reasons
        # into a dict for its answer, and a literal is the cheaper way to build one.
        kind, text, weight, dimension, level, feature, note_id, group = self
        return {
            "kind": kind,
            "text": text,
            "weight": weight,
            "dimension": dimension,
            "level": level,
            "feature": feature,
            "note_id": note_id,
            "group": group,
        }


@dataclass(frozen=True)
class Memory:
    """What the caller knew about the user when deciding: pins, the group's name, notes put
    into the directives (``(note_id, text, score, pinned)``) and whether personalization was
    paused."""

    pins: Mapping[str, str] = field(default_factory=dict)
    group: str | None = None
    notes: Sequence[tuple[str, str, float, bool]] = ()
    paused: bool = False


_NO_MEMORY = Memory()


def explain(
    catalog: Catalog,
    arm: int,
    mu: np.ndarray,
    W: np.ndarray,
    context: np.ndarray,
    dist: np.ndarray,
    *,
    spec: ContextSpec | None = None,
    top: int = 3,
    min_weight: float = 0.01,
    locale: str = "en",
    prior: np.ndarray | None = None,
    memory: Memory = _NO_MEMORY,
) -> tuple[Reason, ...]:
    """Reasons for choosing ``arm``: pins first, then up to ``top`` model reasons strongest
    first, exploration if it applies, then the notes used.

    Parameters
    ----------
    mu : ndarray, shape (d,)
        The user's posterior mean over arm features (attribute columns first).
    W : ndarray, shape (n_attributes, n_context)
        The shared interaction weights of the user's tenant.
    context : ndarray, shape (n_context,)
    dist : ndarray, shape (n_arms,)
        The action distribution the arm was drawn from.
    spec : ContextSpec, optional
        Names the context's columns (default: ``ContextSpec()``).
    locale : str
        A catalog locale; the texts are in it.
    prior : ndarray, shape (d,), optional
        The user's prior mean: the part of ``mu`` that came from their group.
    memory : Memory
    """
    # Every decision is explained, so this runs once per request: the numbers (each chosen
    # level's lift over its dimension's average, and each dimension's two strongest request
    # features) come from one kernel call against a precomputed centring matrix, and only
    # reasons that can make the cut get words.
    spec = spec or _DEFAULT_SPEC
    tables = _tables(catalog, spec)
    centring = tables.centring[arm]  # (n_dimensions, n_attribute_columns)
    terms = np.empty((centring.shape[0], 5))
    p_max = K.explain_terms(centring, mu, W, context, dist, terms)
    pins = memory.pins
    chosen = tables.chosen[arm]
    pinned = [(d, lv) for d, lv in chosen if pins.get(d) == lv] if pins else []
    group_lift = None
    if prior is not None and prior.any():
        group_lift = (centring @ prior[: centring.shape[1]]).tolist()
    candidates: list[tuple[float, str, str, str, int | None]] = []
    for j, ((dim, level), (lift, q1, w1, q2, w2)) in enumerate(
        zip(chosen, terms.tolist(), strict=True)
    ):
        if pins.get(dim) == level:
            continue  # the pin decided this dimension, not the model
        if group_lift is not None:
            candidates.append((group_lift[j], "group", dim, level, None))
            lift -= group_lift[j]
        candidates.append((lift, "preference", dim, level, None))
        for q, w in ((int(q1), w1), (int(q2), w2)):
            if q in tables.kinds:
                candidates.append((w, tables.kinds[q], dim, level, q))
    # A stable sort keeps the scoring order among equal weights.
    kept = sorted((c for c in candidates if c[0] >= min_weight), key=_by_weight)[:top]
    words = _Words(tables, catalog, locale, memory.group)
    best = [words.reason("paused", 1.0)] if memory.paused else []
    best += [words.reason("pin", 1.0, dim, level) for dim, level in pinned]
    best += [words.reason(kind, w, dim, level, q) for w, kind, dim, level, q in kept]
    p = float(dist[arm])
    if p < p_max or not best:
        best.append(words.reason("exploration_more" if best else "exploration", p_max - p))
    best += [words.note(*note) for note in memory.notes]
    return tuple(best)


def _by_weight(candidate: tuple[float, str, str, str, int | None]) -> float:
    return -candidate[0]


class _Words:
    """Builds the reasons of one explanation in one locale."""

    def __init__(self, tables: _Tables, catalog: Catalog, locale: str, group: str | None):
        self.tables, self.catalog, self.locale, self.group = tables, catalog, locale, group

    def reason(
        self,
        template: str,
        weight: float,
        dim: str | None = None,
        level: str | None = None,
        q: int | None = None,
    ) -> Reason:
        feature = None if q is None else self.tables.names[q]
        kind = "exploration" if template.startswith("exploration") else template
        group = self.group if kind == "group" else None
        key = (self.locale, template, dim, level, q, group)
        text = self.tables.texts.get(key)
        if text is None:
            text = reason_text(
                self.catalog,
                self.locale,
                template,
                dimension=dim,
                level=level,
                feature=feature,
                group=group,
                tables=self.tables,
            )
            if len(self.tables.texts) < MAX_CACHED_TEXTS:
                self.tables.texts[key] = text
        return Reason(kind, text, weight, dim, level, feature, group=group)

    def note(self, note_id: str, text: str, score: float, pinned: bool) -> Reason:
        template = "note_pinned" if pinned and not score else "note"
        words = reason_texts.template(template, self.locale).format(note=_quoted(text), group="")
        return Reason("note", words, score, note_id=note_id)


def reason_text(
    catalog: Catalog,
    locale: str,
    template: str,
    *,
    dimension: str | None = None,
    level: str | None = None,
    feature: str | None = None,
    note: str | None = None,
    group: str | None = None,
    spec: ContextSpec | None = None,
    tables: _Tables | None = None,
) -> str:
    """One reason's text in ``locale``: ``template`` is a kind or one of its variants
    (``exploration_more``, ``note_pinned``, ``note_deleted``; a feature's reason and an
    unnamed group pick their variants themselves). ``explain`` words its reasons with it, and
    the profile page re-words stored reasons in its reader's locale.

    >>> reason_text(Catalog.default(), "ja", "pin", dimension="length", level="brief")
    'あなたが長さを「簡潔」に固定しました'
    """
    tables = tables or _tables(catalog, spec or _DEFAULT_SPEC)
    values: dict[str, str] = {}
    if dimension is not None:
        dim = catalog.dimension(dimension)
        values["dimension"] = dim.label_in(locale)
        if level is not None:
            values["level"] = dim.levels[dim.level_names.index(level)].label_in(locale)
    if feature is not None:
        q = tables.names.index(feature)
        template = tables.words[q]
        if q < N_FEATURES:
            values["phrase"] = reason_texts.phrase(feature, locale)
        else:
            values["feature"] = feature.replace("=", " ")
    if template == "group" and not group:
        template = "group_unnamed"
    values["group"] = group or ""
    if note is not None:
        values["note"] = _quoted(note)
    return reason_texts.template(template, locale).format(**values)


def _quoted(note: str) -> str:
    """A note as an explanation quotes it: cut to ``NOTE_CHARS`` characters."""
    return note if len(note) <= NOTE_CHARS else note[: NOTE_CHARS - 1] + "…"


@dataclass(frozen=True)
class _Tables:
    """What explaining a catalog's decisions needs that the catalog and context decide.

    ``centring``: per arm, one row per dimension that takes the chosen level's column minus
    the mean of the dimension's columns, shape (n_arms, n_dimensions, n_attribute_columns).
    ``chosen``: per arm, ``(dimension name, level name)`` per dimension. ``kinds``: the reason
    kind of each context column an explanation can name; ``words``: its template.
    """

    catalog: Catalog  # kept (with the spec) so the ids the tables are cached under stay unique
    spec: ContextSpec
    names: tuple[str, ...]
    centring: np.ndarray
    chosen: list[list[tuple[str, str]]]
    kinds: dict[int, str]
    words: dict[int, str]
    texts: dict[tuple[str, str, str | None, str | None, int | None, str | None], str] = field(
        default_factory=dict, compare=False
    )  # rendered texts, filled as explanations need them


_TABLES: dict[tuple[int, int], _Tables] = {}
_DEFAULT_SPEC = ContextSpec()


def _tables(catalog: Catalog, spec: ContextSpec) -> _Tables:
    """The explanation tables of a catalog and context, built once (both are immutable)."""
    cached = _TABLES.get((id(catalog), id(spec)))
    if cached is not None and cached.catalog is catalog and cached.spec is spec:
        return cached
    n_arms, n_dims = catalog.arms.shape
    centring = np.zeros((n_arms, n_dims, catalog.attributes.shape[1]))
    for j, (dim, start) in enumerate(zip(catalog.dimensions, catalog.level_offsets, strict=True)):
        centring[:, j, start : start + len(dim.levels)] = -1.0 / len(dim.levels)
        centring[np.arange(n_arms), j, start + catalog.arms[:, j]] += 1.0
    centring.setflags(write=False)
    chosen = [
        [
            (dim.name, dim.levels[idx].name)
            for dim, idx in zip(catalog.dimensions, catalog.arms[arm].tolist(), strict=True)
        ]
        for arm in range(n_arms)
    ]
    kinds = {q: "request" for q, n in enumerate(FEATURE_NAMES) if n in reason_texts.PHRASES}
    words = dict(kinds)
    q = N_FEATURES
    for f in spec.features:
        for _ in f.columns:
            kinds[q] = "user_feature" if f.scope == "user" else "request"
            words[q] = "user_feature" if f.scope == "user" else "request_declared"
            q += 1
    tables = _Tables(catalog, spec, spec.names, centring, chosen, kinds, words)
    _TABLES[(id(catalog), id(spec))] = tables
    return tables
