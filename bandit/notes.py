"""Rank a user's memory notes against a message: BM25 over words and CJK character bigrams.

A lexical ranker, deterministic and with no model to download: Latin-script text is split
into lower-cased words; Chinese, Japanese and Korean runs, which have no spaces to split on
(or, for Korean, words that inflect), into overlapping character bigrams, so "用户喜欢Rust" and
"喜欢什么" share the term "喜欢". Scores are Okapi BM25 (``K1``, ``B``) over the notes of one
user; ties go to the newer note, then to the smaller note id. ``naive_scores`` is the
from-scratch twin the index is tested against.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

K1 = 1.2
B = 0.75
# Function words of English and Spanish that would match every note; CJK bigrams need none.
STOP_WORDS = frozenset(
    {
        *("a", "an", "and", "are", "as", "at", "be", "but", "by", "de", "del", "do", "does"),
        *("el", "en", "es", "for", "from", "how", "i", "in", "is", "it", "la", "las", "los"),
        *("me", "my", "of", "on", "or", "para", "por", "que", "se", "the", "this", "to", "un"),
        *("una", "what", "y", "you", "your"),
    }
)
_TOKEN = re.compile(
    r"[0-9a-z\u00c0-\u024f]+"  # Latin words and numbers (with accents)
    r"|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+"  # a CJK run
)


def terms(text: str) -> list[str]:
    """The terms of ``text``: Latin words but ``STOP_WORDS``, and each CJK run as its
    character bigrams (a run of one character is itself a term).

    >>> terms("Prefers Rust; 用户喜欢")
    ['prefers', 'rust', '用户', '户喜', '喜欢']
    """
    out: list[str] = []
    for run in _TOKEN.findall(text.lower()):
        if run[0] < "\u3040":
            if run not in STOP_WORDS:
                out.append(run)
        elif len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


@dataclass(frozen=True)
class Note:
    """A note as the ranker sees it. ``updated`` (event time) breaks ties, newer first;
    ``expires`` (None: never) takes an expired note out of every result."""

    note_id: str
    text: str
    updated: float = 0.0
    expires: float | None = None
    pinned: bool = False

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


@dataclass(frozen=True)
class Hit:
    """A retrieved note and its score (0 for a pinned note the message does not match)."""

    note: Note
    score: float


@dataclass(frozen=True)
class NoteIndex:
    """An inverted index over one user's notes, built once per change of the notes.

    Each term's posting holds the notes that contain it and their whole BM25 term weight
    (idf included: both depend only on the notes), so a query adds one array per term of the
    message; the top notes are then picked from the notes that matched.

    Examples
    --------
    >>> index = NoteIndex.build([Note("n1", "Works as a data engineer, mostly in Rust"),
    ...                          Note("n2", "日本語で答えてほしい", pinned=True),
    ...                          Note("n3", "Has a dog called Rex")])
    >>> [h.note.note_id for h in index.search("How do I read a file in Rust?", now=0.0)]
    ['n1', 'n2']
    """

    notes: tuple[Note, ...]
    postings: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)  # term -> docs, w
    rank: np.ndarray = field(repr=False)  # each note's place in (newer first, then id) order
    expires: np.ndarray = field(repr=False)  # inf for a note that never expires
    pinned: tuple[int, ...] = field(repr=False)

    @classmethod
    def build(cls, notes: Iterable[Note]) -> NoteIndex:
        docs = tuple(notes)
        counts: list[dict[str, int]] = []
        for note in docs:
            tf: dict[str, int] = {}
            for t in terms(note.text):
                tf[t] = tf.get(t, 0) + 1
            counts.append(tf)
        lengths = [sum(tf.values()) for tf in counts]
        avg = (sum(lengths) / len(lengths)) if lengths and sum(lengths) else 1.0
        norms = [K1 * (1 - B + B * n / avg) for n in lengths]
        raw: dict[str, list[tuple[int, float]]] = {}
        for i, tf in enumerate(counts):
            for t, n in tf.items():
                raw.setdefault(t, []).append((i, n * (K1 + 1) / (n + norms[i])))
        postings = {}
        for t, posting in raw.items():
            idf = math.log(1.0 + (len(docs) - len(posting) + 0.5) / (len(posting) + 0.5))
            ids, weights = zip(*posting, strict=True)
            postings[t] = (np.array(ids, dtype=np.intp), idf * np.array(weights))
        order = sorted(range(len(docs)), key=lambda i: (-docs[i].updated, docs[i].note_id))
        rank = np.empty(len(docs), dtype=np.intp)
        rank[order] = np.arange(len(docs))
        expires = np.array([np.inf if n.expires is None else n.expires for n in docs])
        pinned = tuple(i for i, note in enumerate(docs) if note.pinned)
        return cls(docs, postings, rank, expires, pinned)

    def __len__(self) -> int:
        return len(self.notes)

    def _scores(self, message: str) -> np.ndarray:
        scores = np.zeros(len(self.notes))
        for t in set(terms(message)):
            posting = self.postings.get(t)
            if posting is not None:
                scores[posting[0]] += posting[1]  # a note appears once per posting
        return scores

    def scores(self, message: str) -> dict[int, float]:
        """BM25 score per note index that shares a term with ``message``."""
        scores = self._scores(message)
        return {int(i): float(scores[i]) for i in np.flatnonzero(scores)}

    def search(self, message: str, *, now: float, top: int = 3) -> list[Hit]:
        """The ``top`` best live notes for ``message``, then every live pinned note not among
        them (pinned notes are always included)."""
        if not self.notes:
            return []
        scores = self._scores(message)
        found = np.flatnonzero((scores > 0) & (self.expires > now))
        if len(found) > top:
            kth = -np.partition(-scores[found], top - 1)[top - 1]
            found = found[scores[found] >= kth]  # ties at the cut stay in for the tie-break
        found = found[np.lexsort((self.rank[found], -scores[found]))][:top]
        notes = self.notes
        hits = [Hit(notes[i], float(scores[i])) for i in found.tolist()]
        chosen = set(found.tolist())
        hits += [Hit(notes[i], 0.0) for i in self.pinned if i not in chosen and notes[i].live(now)]
        return hits


def naive_scores(notes: Sequence[Note], message: str) -> list[float]:
    """The BM25 score of every note, recomputed from scratch: the plain reference the index is
    tested and benchmarked against."""
    docs = [terms(n.text) for n in notes]
    avg = (sum(map(len, docs)) / len(docs)) if docs and sum(map(len, docs)) else 1.0
    out = []
    for doc in docs:
        score = 0.0
        for t in set(terms(message)):
            df = sum(1 for d in docs if t in d)
            tf = doc.count(t)
            if tf:
                idf = math.log(1.0 + (len(docs) - df + 0.5) / (df + 0.5))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(doc) / avg))
        out.append(score)
    return out
