"""The traffic ``bench_soak.py`` sends: the mix of requests, and the books kept on the answers.

Decisions for users drawn uniformly from ``n_users`` ids, a fifth of them instead the next turn
of the user with the latest decision; feedback of the scalar kinds (``tests.loadgen``) on a
decision of the same user about ``FEEDBACK_AFTER_S`` old, and pairwise feedback on a user's two
latest decisions; profile reads of users who have had a decision; and requests the API must
refuse with a 4xx, in turn.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np
import orjson

from benchmarks.bench_http import MESSAGES, http_request
from tests.loadgen import feedback_payload

CLASSES = ("decision", "feedback", "profile", "invalid")
MIX = (0.50, 0.34, 0.15, 0.01)  # share of each class in CLASSES
PAIRWISE = 0.15  # share of feedback that is pairwise (when a user has two open decisions)
FOLLOW_UP = 0.2  # share of decisions that are the next turn of the latest decision's user
FEEDBACK_AFTER_S = 10.0  # about how old a decision is when its feedback is sent


def invalid_requests() -> list[tuple[str, bytes]]:
    """Requests the API must refuse with a 4xx, each with what is wrong with it."""

    def post(path: str, doc: dict[str, Any]) -> bytes:
        return http_request("POST", path, json.dumps(doc).encode())  # orjson refuses 2**70

    user, feedback = {"user_id": "u1"}, {"user_id": "u1", "decision_id": "d_none"}
    return [
        ("body is not JSON", http_request("POST", "/v1/decisions", b'{"user_id": "u1",')),
        ("user id with a slash", post("/v1/decisions", {"user_id": "a/b"})),
        ("audit integer past 2^53", post("/v1/decisions", {**user, "audit": {"n": 2**70}})),
        ("message over 32,000 chars", post("/v1/decisions", {**user, "message": "x" * 32_001})),
        ("unknown API key", http_request("GET", "/v1/users/u1/profile", key="not-a-key-" * 3)),
        ("rating out of range", post("/v1/feedback", {**feedback, "kind": "rating", "value": 9})),
        ("unknown feedback kind", post("/v1/feedback", {**feedback, "kind": "stars", "value": 5})),
        ("unknown decision", post("/v1/feedback", {**feedback, "kind": "thumbs", "value": "up"})),
        ("unknown user", http_request("GET", "/v1/users/nobody-at-all/profile")),
    ]  # fmt: skip


class Traffic:
    """Builds each request when a connection is free to send it, from what earlier answers
    returned (decision ids for feedback), and keeps the books: acknowledged feedback ids and
    statuses per class.

    Parameters
    ----------
    n_users : int
        Distinct user ids, ``u0`` ... ``u{n_users - 1}``.
    rate : float
        Requests per second; sizes the pool of decisions waiting for feedback.
    seed : int
    """

    def __init__(self, n_users: int, rate: float, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_users = n_users
        self.known = np.zeros(n_users, dtype=bool)
        self.known_ids: list[int] = []
        size = max(100, int(rate * MIX[0] * FEEDBACK_AFTER_S))
        self.pending: collections.deque[tuple[int, str]] = collections.deque(maxlen=size)
        self.pairs: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=size)
        self.invalid = invalid_requests()
        self.acked: set[str] = set()
        self.sent: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        self.n_feedback = 0

    def request(self, cls: str) -> tuple[str, bytes, Any]:
        """``(class, raw request, context for done)`` for a slot of class ``cls`` (a feedback
        or profile slot with nothing to refer to yet becomes a decision)."""
        if cls == "feedback" and self.pending:
            return self._feedback()
        if cls == "profile" and self.known_ids:
            user = self.known_ids[int(self.rng.integers(len(self.known_ids)))]
            self.sent["profile"] += 1
            return "profile", http_request("GET", f"/v1/users/u{user}/profile"), None
        if cls == "invalid":
            what, raw = self.invalid[self.sent["invalid"] % len(self.invalid)]
            self.sent["invalid"] += 1
            return "invalid", raw, what
        previous = None
        if self.pending and self.rng.random() < FOLLOW_UP:
            previous = self.pending[-1]
            user = previous[0]
        else:
            user = int(self.rng.integers(self.n_users))
        self.sent["decision"] += 1
        message = MESSAGES[int(self.rng.integers(len(MESSAGES)))]
        body = orjson.dumps({"user_id": f"u{user}", "message": message})
        return "decision", http_request("POST", "/v1/decisions", body), (user, previous)

    def _feedback(self) -> tuple[str, bytes, Any]:
        if self.pairs and self.rng.random() < PAIRWISE:
            user, winner, loser = self.pairs.popleft()
            doc: dict[str, Any] = {
                "decision_id": winner,
                "other_decision_id": loser,
                "kind": "pairwise",
            }
        else:
            user, decision_id = self.pending.popleft()
            doc = feedback_payload(self.rng, decision_id)
        self.n_feedback += 1
        event_id = f"s{self.n_feedback}"  # unique: found in the log afterwards
        doc.update(user_id=f"u{user}", event_id=event_id)
        self.sent[f"feedback_{doc['kind']}"] += 1
        return "feedback", http_request("POST", "/v1/feedback", orjson.dumps(doc)), event_id

    def done(self, cls: str, status: int, body: bytes, ctx: Any) -> None:
        """Book an answer."""
        self.statuses[cls, status] += 1
        if cls == "decision" and status == 200:
            user, previous = ctx
            decision_id = orjson.loads(body)["decision_id"]
            self.introduce(user)
            self.pending.append((user, decision_id))
            if previous is not None:
                self.pairs.append((user, decision_id, previous[1]))
        elif cls == "feedback" and status == 202:
            self.acked.add(ctx)

    def introduce(self, user: int) -> None:
        """The user has had a decision: profile reads may ask for them."""
        if not self.known[user]:
            self.known[user] = True
            self.known_ids.append(user)

    def unexpected(self) -> dict[str, int]:
        """Statuses a valid request should not get, and invalid requests that got no 4xx."""
        ok = {"decision": 200, "feedback": 202, "profile": 200}
        return {
            f"{cls} {status}": n
            for (cls, status), n in sorted(self.statuses.items())
            if (status != ok[cls] if cls in ok else not 400 <= status < 500)
        }
