"""A client that never gives up on refused feedback: the traffic of the tests that take the
store or the broker away (``tests/faults/test_full_disk.py``,
``tests/integration/test_kafka_outage.py``)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """One feedback request: when its decision was made, when it was sent and answered, and
    what it got."""

    event_id: str
    decided: float
    sent: float
    answered: float
    status: int
    body: Any = None  # the answer's JSON, when it had one
    retry_after: str | None = None

    @property
    def took(self) -> float:
        return self.answered - self.sent


def feedback_body(user: str, decision_id: str, event_id: str, value: str = "up") -> dict[str, Any]:
    return {
        "user_id": user,
        "decision_id": decision_id,
        "kind": "thumbs",
        "value": value,
        "event_id": event_id,
    }


def send_feedback(
    http: Any, body: dict[str, Any], decided: float, headers: dict[str, str] | None = None
) -> Answer:
    """POST the feedback with ``http`` (an ``httpx.Client`` or starlette's ``TestClient``)."""
    sent = time.monotonic()
    r = http.post("/v1/feedback", json=body, headers=headers)
    is_json = r.headers.get("content-type", "").startswith("application/json")
    return Answer(
        body["event_id"],
        decided,
        sent,
        time.monotonic(),
        r.status_code,
        r.json() if is_json else None,
        r.headers.get("retry-after"),
    )


@dataclass
class ResendingClient:
    """One user's client: a decision every turn and feedback on it (thumbs alternating down
    and up), while fewer than ``max_unsent`` refused feedbacks wait; a 503'd feedback is sent
    again (same ``event_id``) on each later turn until it gets another answer. It pauses
    ``pause_s`` between turns, ``refused_pause_s`` while something waits (a back-off)."""

    http: Any
    user: str
    headers: dict[str, str] | None = None
    max_unsent: int | None = None
    pause_s: float = 0.01
    refused_pause_s: float = 0.01
    decisions: list[tuple[float, int]] = field(default_factory=list)  # (took, status)
    answers: list[Answer] = field(default_factory=list)
    unsent: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    def run(self, stop: threading.Event, deadline: float) -> None:
        turn = 0
        while (not stop.is_set() or self.unsent) and time.monotonic() < deadline:
            decided = time.monotonic()
            r = self.http.post("/v1/decisions", json={"user_id": self.user}, headers=self.headers)
            self.decisions.append((time.monotonic() - decided, r.status_code))
            room = self.max_unsent is None or len(self.unsent) < self.max_unsent
            if r.status_code == 200 and room:
                value = "up" if turn % 2 else "down"
                event_id = f"{self.user}-fb{turn}"
                body = feedback_body(self.user, r.json()["decision_id"], event_id, value)
                self.unsent[event_id] = (decided, body)
            for event_id, (when, body) in list(self.unsent.items()):
                answer = send_feedback(self.http, body, when, self.headers)
                self.answers.append(answer)
                if answer.status != 503:
                    del self.unsent[event_id]
            turn += 1
            time.sleep(self.refused_pause_s if self.unsent else self.pause_s)
