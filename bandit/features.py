"""Request features: a small, deterministic vector from the turn's message.

No network and no model: regular expressions, character classes and a stable hash
(``zlib.crc32``, never Python's salted ``hash``), so the same message gives the same vector
in every process. The columns are named by ``FEATURE_NAMES``. Only a message's first
``MAX_FEATURIZED_CHARS`` characters are read (its length feature saturates long before), and
every pattern runs in time linear in what it reads, so no message can hold the event loop.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

N_TOPIC_BUCKETS = 4
MAX_FEATURIZED_CHARS = 2000
FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "technicality",
    "has_code",
    "asks_how",
    "asks_why",
    "asks_what",
    "asks_task",
    "length",
    "script_latin",
    "script_han",
    "script_kana",
    "script_hangul",
    *(f"topic_{i}" for i in range(N_TOPIC_BUCKETS)),
)
N_FEATURES = len(FEATURE_NAMES)

_CODE = re.compile(
    r"```|`[^`\n]+`|\b(?:def|class|import|return|function|const|var|SELECT|#include)\b"
    # ``[^()]*``, not ``[^)]*``: a scan from one "(" stops at the next parenthesis, so the
    # scans never overlap and the search stays linear on "a(a(a(..." with no ")".
    r"|=>|::|[{};]\s*$|\w\([^()]*\)\s*[;:{]",
    re.MULTILINE,
)
# Every pattern _CODE matches contains one of these characters or a keyword; a character-class
# search is cheaper than the alternation, so prose skips _CODE entirely.
_CODE_HINT = re.compile(r"[`{};=:()#]|\b(?:def|class|import|return|function|const|var|SELECT)\b")
_TECH = frozenset(
    [
        "algorithm",
        "gradient",
        "matrix",
        "tensor",
        "function",
        "api",
        "database",
        "latency",
        "complexity",
        "theorem",
        "proof",
        "derivative",
        "integral",
        "regression",
        "kernel",
        "compiler",
        "thread",
        "async",
        "memory",
        "protocol",
        "probability",
        "variance",
        "eigenvalue",
        "eigenvector",
        "optimize",
        "optimise",
        "optimization",
        "optimisation",
        "neural",
        "model",
        "vector",
        "query",
        "schema",
        "docker",
        "kubernetes",
        "sql",
        "python",
        "rust",
        "java",
        "javascript",
        "typescript",
        "numpy",
        "pytorch",
        "http",
        "json",
        "regex",
        "linux",
        "bash",
        "git",
        "server",
        "cache",
        "index",
        "hash",
        "loop",
        "array",
        "pointer",
        "recursion",
        "inference",
        "training",
        "dataset",
        "statistics",
        "calculus",
        "equation",
    ]
)
_HOW = frozenset({"how", "cómo", "como"})
_WHY = frozenset({"why", "por"})
_WHAT = frozenset({"what", "which", "who", "define", "explain", "qué", "que", "cuál"})
_TASK = frozenset(
    [
        "write",
        "make",
        "create",
        "fix",
        "build",
        "generate",
        "give",
        "list",
        "summarize",
        "summarise",
        "translate",
        "convert",
        "escribe",
        "haz",
        "crea",
    ]
)
_CJK_MARKERS = (
    (3, ("怎么", "如何", "どうやって", "どのように", "어떻게")),
    (4, ("为什么", "なぜ", "どうして", "왜")),
    (5, ("什么是", "是什么", "とは", "何", "무엇", "뭐")),
    (6, ("帮我", "请写", "書いて", "作って", "써 줘", "만들어")),
)
_WORD = re.compile(r"[a-z0-9_\u00c0-\u024f]+|[\u4e00-\u9fff]|[\u3040-\u30ff]+|[\uac00-\ud7af]+")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")


def featurize(
    messages: Sequence[str], extra: Sequence[Mapping[str, float] | None] | None = None
) -> np.ndarray:
    """Featurize a batch of messages.

    Parameters
    ----------
    messages : sequence of str, length n
    extra : sequence of mappings, length n, optional
        Product-supplied features (``{"channel_voice": 1.0}``): each name is hashed into the
        topic buckets with a sign, scaled by its value (clipped to [-1, 1]).

    Returns
    -------
    ndarray of float64, shape (n, N_FEATURES)

    Examples
    --------
    >>> x = featurize(["How do I reverse a list in Python?"])
    >>> x.shape, float(x[0, FEATURE_NAMES.index("asks_how")])
    ((1, 16), 1.0)
    """
    if extra is not None and len(extra) != len(messages):
        raise ValueError(f"extra: expected {len(messages)} entries, got {len(extra)}")
    rows = []
    for i, msg in enumerate(messages):
        row = _one(msg or "")
        if extra is not None and extra[i]:
            _add_extra(extra[i], row)  # type: ignore[arg-type]
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(len(messages), N_FEATURES)


def _one(msg: str) -> list[float]:
    # A Python list, filled then converted once: setting NumPy elements one by one from Python
    # pays a conversion per element.
    row = [0.0] * N_FEATURES
    row[0] = 1.0
    row[7] = min(1.0, math.log1p(len(msg)) / math.log1p(2000))
    msg = msg[:MAX_FEATURIZED_CHARS]
    tokens = _WORD.findall(msg.lower())
    has_code = _CODE_HINT.search(msg) is not None and _CODE.search(msg) is not None
    tech_hits = sum(1 for tok in tokens if tok in _TECH)
    row[1] = min(1.0, (tech_hits + 2 * has_code) / (1.0 + 0.15 * max(1, len(tokens))))
    row[2] = float(has_code)
    if tokens:
        first = tokens[0]
        row[3] = float(first in _HOW)
        row[4] = float(first in _WHY)
        row[5] = float(first in _WHAT)
        row[6] = float(first in _TASK)
    ascii_only = msg.isascii()
    if not ascii_only:
        for col, markers in _CJK_MARKERS:
            if any(m in msg for m in markers):
                row[col] = 1.0
    if ascii_only:
        row[8] = 1.0 if tokens else 0.0
    else:
        counts = [len(p.findall(msg)) for p in (_LATIN, _HAN, _KANA, _HANGUL)]
        total = sum(counts) or 1
        row[8:12] = [c / total for c in counts]
    if tokens:
        norm = 1.0 / math.sqrt(len(tokens))
        for tok in tokens:
            h = zlib.crc32(tok.encode("utf-8"))
            row[12 + h % N_TOPIC_BUCKETS] += norm if (h >> 8) & 1 else -norm
    return row


def _add_extra(extra: Mapping[str, float], row: list[float]) -> None:
    for name, value in extra.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"features.{name}: expected a number, got {value!r}")
        h = zlib.crc32(name.encode("utf-8"))
        sign = 1.0 if (h >> 8) & 1 else -1.0
        row[12 + h % N_TOPIC_BUCKETS] += sign * max(-1.0, min(1.0, float(value)))
