"""User state records: the binary changelog format (version 2) and the JSON one (version 1)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from bandit import ContextSpec, Engine
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor
from streaming.user_record import decode, encode_binary

KEY = "acme/ana"
CTX = [1.0, 0.123456789] + [0.0] * (ContextSpec().n_columns - 2)


def _writer() -> Processor:
    p = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=10.0)
    d = [
        Event("decision", f"d{i}", "acme", "ana", float(i), {"arm": i, "context": CTX})
        for i in range(3)
    ]
    f = Event(
        "feedback", "f1", "acme", "ana", 4.0, {"decision_id": "d0", "kind": "rating", "value": 4}
    )
    n = Event("profile", "n1", "acme", "ana", 4.0, {"op": "note", "note_id": "x", "text": "héllo"})
    pin = Event("profile", "p1", "acme", "ana", 4.0, {"op": "pin", "pins": {"length": "brief"}})
    p.apply([*d, f, n, pin])
    return p


def test_binary_and_json_records_decode_to_the_same_state() -> None:
    p = _writer()
    binary, text = p.export_record(KEY), p.export_user(KEY)
    assert binary is not None and text is not None
    assert binary[0] == 2 and text[:1] == b"{"
    assert len(binary) < len(text)  # raw arrays, no base64
    a, b = decode(binary), decode(text)
    for field in ("pins", "pending", "seen", "seen_ts", "counters", "notes"):
        assert a[field] == b[field], field
    assert a["engine"].keys() == b["engine"].keys()
    for name, arr in b["engine"].items():
        assert a["engine"][name].dtype == arr.dtype
        np.testing.assert_array_equal(a["engine"][name], arr)


@pytest.mark.parametrize("export", ["export_record", "export_user"])
def test_a_replica_imports_either_format(export: str) -> None:
    p = _writer()
    q = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=10.0)
    q.import_user(KEY, getattr(p, export)(KEY))
    assert q.export_record(KEY) == p.export_record(KEY)
    assert q.expire(100.0) == {KEY}  # the open decisions came along


def test_a_version_1_export_without_seen_times_still_imports() -> None:
    doc = json.loads(_writer().export_user(KEY) or b"")
    del doc["seen_ts"]
    q = Processor(Engine(random_state=0), RewardComposer(), wait_window_s=10.0)
    q.import_user(KEY, json.dumps(doc).encode())
    assert set(q.books[KEY].seen.values()) == {2.0}  # dated by the newest decision held
    assert (
        q.apply(
            [
                Event(
                    "feedback",
                    "f1",
                    "acme",
                    "ana",
                    5.0,
                    {"decision_id": "d1", "kind": "thumbs", "value": "up"},
                )
            ]
        )
        == set()
    )


BAD = [
    (b"", "version None"),
    (struct.pack("<BI", 3, 2) + b"{}", "version 3"),
    (b'{"version": 7}', "version 7"),
]


@pytest.mark.parametrize(("data", "message"), BAD)
def test_unknown_versions_are_rejected_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(data)


def test_a_user_without_engine_arrays_round_trips() -> None:
    doc: dict[str, object] = {
        "engine": None,
        "pins": {},
        "pending": {},
        "seen": ["x"],
        "seen_ts": [1.0],
        "counters": {},
        "notes": {},
    }
    assert decode(encode_binary(doc)) == doc
