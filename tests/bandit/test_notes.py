"""The note ranker: terms, BM25 against its from-scratch twin, pins, expiry, ties."""

from __future__ import annotations

import random

import pytest

from bandit.notes import Note, NoteIndex, naive_scores, terms


def test_terms_split_latin_words_and_cjk_bigrams() -> None:
    assert terms("The Rust compiler") == ["rust", "compiler"]
    assert terms("用户喜欢Rust") == ["用户", "户喜", "喜欢", "rust"]
    assert terms("東京で働く") == ["東京", "京で", "で働", "働く"]
    assert terms("파이썬 초보자") == ["파이", "이썬", "초보", "보자"]
    assert terms("猫") == ["猫"] and terms("") == []


def corpus(n: int, seed: int = 0) -> list[Note]:
    rng = random.Random(seed)
    words = ["rust", "python", "日本語", "数学老师", "hiking", "bakery", "파이썬", "metric", "cats"]
    return [
        Note(f"n{i}", " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))), float(i))
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_index_scores_equal_the_naive_scores(seed: int) -> None:
    notes = corpus(60, seed)
    index = NoteIndex.build(notes)
    for message in ("rust and python", "数学老师的日本語", "파이썬 metric", "nothing matches"):
        got = index.scores(message)
        want = naive_scores(notes, message)
        assert set(got) == {i for i, s in enumerate(want) if s > 0}
        for i, s in got.items():
            assert s == pytest.approx(want[i], rel=1e-12)


def test_search_orders_by_score_then_newer_then_id_and_adds_pinned() -> None:
    notes = [
        Note("b", "likes rust", 1.0),
        Note("a", "likes rust", 1.0),
        Note("c", "likes rust", 2.0),
        Note("p", "always metric units", 0.0, pinned=True),
        Note("x", "rust rust rust everywhere", 0.0, expires=5.0),
    ]
    index = NoteIndex.build(notes)
    hits = index.search("rust", now=10.0, top=3)
    assert [h.note.note_id for h in hits] == ["c", "a", "b", "p"]
    assert hits[-1].score == 0.0
    assert index.search("rust", now=1.0, top=1)[0].note.note_id == "x"  # not expired yet
    assert [h.note.note_id for h in index.search("metric", now=0.0)] == ["p"]
    assert NoteIndex.build([]).search("anything", now=0.0) == []
