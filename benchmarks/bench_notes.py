"""Note retrieval benchmark: one decision's retrieval over a user's live notes.

Builds ``--notes`` live notes per user (mixed English, Chinese, Japanese, Korean and Spanish
text, a few pinned) and times ``UserMemory.retrieve`` (the inverted BM25 index the service
queries on every decision) on messages in those languages. The reference, measured in the
same run on the same notes and messages: ``rank_bm25.BM25Okapi`` (an established BM25
library) scoring every note with the same terms, when it is installed, and attune's own
from-scratch scorer (``bandit.notes.naive_scores``) otherwise.

    python benchmarks/bench_notes.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from typing import Any

import numpy as np

from bandit.notes import naive_scores, terms
from streaming.memory import UserMemory

WORDS = {
    "en": [
        *("rust", "python", "data", "engineer", "teacher", "chemistry", "hiking", "bakery"),
        *("metric", "cats", "kyoto", "night", "shift", "nurse", "violin", "guitar"),
        *("marathon", "vegan", "allergy", "peanuts", "budget", "travel"),
    ],
    "es": ["profesora", "química", "madrid", "ingeniero", "datos", "cocina", "viaje", "guitarra"],
    "zh": ["数学老师", "数据工程师", "喜欢徒步", "住在上海", "学习日语", "素食主义", "对花生过敏"],
    "ja": [
        "東京で働く",
        "看護師です",
        "夜勤が多い",
        "猫を飼っている",
        "バイオリン",
        "日本語で答えて",
    ],
    "ko": ["파이썬 초보자", "서울에 산다", "데이터 엔지니어", "기타를 친다", "마라톤"],
}
MESSAGES = [
    "How do I read a file in Rust as a data engineer?",
    "请用数学老师能懂的方式解释梯度下降",
    "看護師の夜勤のコツは？",
    "파이썬 리스트는 어떻게 정렬하나요?",
    "¿Qué receta vegana sin cacahuetes me recomiendas para un viaje?",
    "What is the capital of France?",
]


def make_notes(n: int, rng: random.Random, now: float) -> dict[str, dict[str, Any]]:
    """``n`` live notes in the book's shape (``streaming.notes``)."""
    out = {}
    langs = list(WORDS)
    for i in range(n):
        words = WORDS[langs[i % len(langs)]]
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        note_id = f"n{i:05d}"
        out[note_id] = {
            "note_id": note_id,
            "text": text,
            "key": None,
            "source": "product",
            "pinned": i % 97 == 0,
            "ttl_s": None,
            "created": now - i,
            "updated": now - i,
            "expires": None,
            "version": 1,
            "valid_to": None,
            "superseded_by": None,
            "history": [],
        }
    return out


def time_calls(fn: Any, messages: list[str], repeat: int) -> np.ndarray:
    """Microseconds per call, one sample per call."""
    out = []
    for _ in range(repeat):
        for m in messages:
            start = time.perf_counter()
            fn(m)
            out.append((time.perf_counter() - start) * 1e6)
    return np.array(out)


def reference(notes: dict[str, dict[str, Any]]) -> tuple[str, Any]:
    texts = [n["text"] for n in notes.values()]
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        from bandit.notes import Note

        docs = [Note(k, t) for k, t in zip(notes, texts, strict=True)]
        return "naive_scores", lambda m: naive_scores(docs, m)
    bm25 = BM25Okapi([terms(t) or ["_"] for t in texts])
    return "rank_bm25.BM25Okapi", lambda m: bm25.get_scores(terms(m))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--notes", type=int, default=1000, help="live notes per user")
    p.add_argument("--repeat", type=int, default=300, help="passes over the messages")
    args = p.parse_args()
    rng, now = random.Random(0), time.time()
    notes = make_notes(args.notes, rng, now)
    start = time.perf_counter()
    memory = UserMemory.of(notes, paused=False)
    build_ms = (time.perf_counter() - start) * 1e3
    assert memory is not None
    ours = time_calls(lambda m: memory.retrieve(m, now), MESSAGES, args.repeat)
    name, ref_fn = reference(notes)
    ref = time_calls(ref_fn, MESSAGES, max(1, args.repeat // 10))
    result = {
        "cores": os.cpu_count(),
        "notes_per_user": args.notes,
        "retrieve_p50_us": round(float(np.percentile(ours, 50)), 1),
        "retrieve_p99_us": round(float(np.percentile(ours, 99)), 1),
        "index_build_ms": round(build_ms, 2),
        "reference": name,
        "reference_p50_us": round(float(np.percentile(ref, 50)), 1),
        "reference_p99_us": round(float(np.percentile(ref, 99)), 1),
        "target_p99_us": 2000,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
