"""Events: round trip, validation as a table, unknown fields ignored, unknown versions refused."""

from __future__ import annotations

import json

import pytest

from streaming.events import Event, EventError, split_key
from streaming.payloads import DecisionPayload

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


def _payloads() -> list[DecisionPayload]:
    full = DecisionPayload(
        arm=3,
        context=[0.5, 1.0, 0.0],
        decision_id="d_1",
        propensity=0.25,
        action_dist=[0.25, 0.75],
        strategy_id="s3",
        levels={"depth": "deep"},
        user_score=float("nan"),  # to_dict writes None: the one field it changes
        policy="lints",
        locale="ja",
        seed=7,
        audit={"group": "b"},
        session_id="s1",
        user_features={"expertise": "expert"},
        reasons=[{"kind": "pin", "dimension": "depth"}],
    )
    return [full, DecisionPayload(arm=0, context=[1.0]), full._replace(user_score=2.0, audit={})]


@pytest.mark.parametrize("payload", _payloads())
def test_a_decision_event_is_parsed_as_its_row_would_be(payload: DecisionPayload) -> None:
    # The embedded learner reads the event the service made, never its row: what it finds
    # parsed must be what parsing the row gives.
    event = Event.decision_of("d_1", "acme", "ana", 1.5, payload)
    from_row = Event.from_bytes(event.to_bytes())
    assert event == from_row
    assert event.decision == from_row.decision
    assert event.decision.user_score == payload.to_dict()["user_score"]
