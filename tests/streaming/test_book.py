"""A user's book: the recent decisions it keeps, in memory and in its document."""

from __future__ import annotations

import gc

import orjson

from bandit import ContextSpec, Engine
from streaming import user_record
from streaming.book import RECENT_DECISIONS, Book, recent_of
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor

CTX = [1.0, 0.5] + [0.0] * (ContextSpec().n_columns - 2)
REASONS = [
    {"kind": "preference", "weight": 0.25, "dimension": "depth", "level": "expert"},
    {"kind": "note", "weight": 1.5, "note_id": "n1"},
]


def decision(did: str, ts: float, reasons: list[dict] = REASONS) -> Event:
    payload = {"arm": 3, "context": CTX, "strategy_id": "s3", "locale": "ja", "reasons": reasons}
    return Event("decision", did, "acme", "ana", ts, payload)


def test_recent_decisions_are_kept_newest_last_and_bounded() -> None:
    p = Processor(Engine(random_state=0), RewardComposer())
    p.apply([decision(f"d{i}", float(i)) for i in range(RECENT_DECISIONS + 3)])
    doc = p.books["acme/ana"].document(None, {}, {})
    assert [r["decision_id"] for r in doc["recent"]] == [f"d{i}" for i in range(3, 13)]
    assert doc["recent"][-1] == {
        "decision_id": "d12",
        "ts": 12.0,
        "strategy_id": "s3",
        "locale": "ja",
        "reasons": REASONS,
    }


def test_the_document_round_trips_through_json() -> None:
    book = Book()
    book.remember_decision(recent_of("d1", 1.5, "s3", "es", REASONS))
    book.remember_decision(recent_of("d2", 2.5, None, None, []))
    doc = orjson.loads(orjson.dumps(book.document(None, {}, {})))
    again = Book.from_document(doc)
    assert again.recent == book.recent
    assert again.document(None, {}, {})["recent"] == doc["recent"]
    assert doc["recent"][1] == {
        "decision_id": "d2",
        "ts": 2.5,
        "strategy_id": None,
        "locale": None,
        "reasons": [],
    }


def test_recent_decisions_leave_the_collectors_sight() -> None:
    # Every resident user keeps ten of them: tracked, each would be walked by every full
    # collection (streaming/book.py says why they are plain tuples of strings and numbers).
    p = Processor(Engine(random_state=0), RewardComposer())
    p.apply([decision(f"d{i}", float(i), [dict(r) for r in REASONS]) for i in range(4)])
    loaded = Book.from_document(p.books["acme/ana"].document(None, {}, {}))
    gc.collect()
    entries = [*p.books["acme/ana"].recent, *loaded.recent]
    assert len(entries) == 8
    assert not any(gc.is_tracked(entry) for entry in entries)


def test_reasons_that_cannot_be_encoded_reject_the_decision_whole() -> None:
    p = Processor(Engine(random_state=0), RewardComposer())
    p.apply([decision("d1", 1.0)])
    p.apply([decision("d2", 2.0, [{"kind": "preference", "weight": 2**70}])])
    [(event, reason)] = p.take_rejected()
    assert event.event_id == "d2" and "Integer exceeds 64-bit range" in reason
    assert list(p.books["acme/ana"].pending) == ["d1"]
    assert p.counters("acme/ana")["decisions"] == 1
    assert [r[0] for r in p.books["acme/ana"].recent] == ["d1"]


def test_the_binary_record_carries_the_reasons_the_json_export_does() -> None:
    # The binary record embeds the kept JSON as it is (Book.document(raw=True)); decoded, it
    # must be the document the user's JSON export holds.
    p = Processor(Engine(random_state=0), RewardComposer())
    p.apply([decision(f"d{i}", float(i)) for i in range(3)])
    record = user_record.decode(p.export_record("acme/ana") or b"")
    export = user_record.decode(p.export_user("acme/ana") or b"")
    assert record["recent"] == export["recent"]
    assert [r["reasons"] for r in record["recent"]] == [REASONS] * 3
    q = Processor(Engine(random_state=0), RewardComposer())
    q.import_user("acme/ana", p.export_record("acme/ana"))
    assert q.books["acme/ana"].recent == p.books["acme/ana"].recent
