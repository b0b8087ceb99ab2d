"""Events: round trip, validation as a table, unknown fields ignored, unknown versions refused."""

from __future__ import annotations

import json

import pytest

from streaming.events import Event, EventError, split_key

GOOD = Event(
    "feedback", "f1", "acme", "ana/x", 12.5, {"decision_id": "d1", "kind": "thumbs", "value": "up"}
)


def test_round_trip_and_key() -> None:
    assert Event.from_bytes(GOOD.to_bytes()) == GOOD
    assert GOOD.key == "acme/ana/x"
    assert split_key(GOOD.key) == ("acme", "ana/x")


def test_unknown_extra_fields_are_ignored() -> None:
    doc = json.loads(GOOD.to_bytes())
    doc["trace_id"] = "abc"
    assert Event.from_bytes(json.dumps(doc)) == GOOD


BAD = [
    (b"not json", "valid JSON"),
    (b"[1, 2]", "JSON object"),
    (json.dumps({"kind": "feedback"}).encode(), "lacks field"),
    (json.dumps({**GOOD.to_dict(), "kind": "click"}).encode(), "kind must be one of"),
    (json.dumps({**GOOD.to_dict(), "version": 2}).encode(), "version 2 is not supported"),
    (json.dumps({**GOOD.to_dict(), "event_id": ""}).encode(), "event_id must be"),
    (json.dumps({**GOOD.to_dict(), "tenant": "a/b"}).encode(), "must not contain"),
    (json.dumps({**GOOD.to_dict(), "ts": "now"}).encode(), "ts must be"),
    (json.dumps({**GOOD.to_dict(), "payload": [1]}).encode(), "payload must be an object"),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_malformed_events_raise_event_error(raw: bytes, message: str) -> None:
    with pytest.raises(EventError, match=message):
        Event.from_bytes(raw)


def test_event_error_is_a_value_error() -> None:
    assert issubclass(EventError, ValueError)
