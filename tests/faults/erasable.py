"""One user with everything attune can keep about them, for the erase tests: decisions with
audit and session values, feedback of every kind, a pin and a note (``give_history``)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from collab import CFModel
from tests.faults.traces import rows_bytes, text_traces, vector_traces, whole_vector_traces

USER = "erase-me-7f3a9c"
KEY = f"acme/{USER}"
NOTE = "NOTE-7f3a9c: answers in Rust, please"
TICKET = "TICKET-7f3a9c"  # an audit value
SESSION = "session-7f3a9c"
# A declared user-scope feature the history sets; attune serve and workers declare it.
ROLE_FEATURE = """
[[context.features]]
name = "role"
kind = "categorical"
scope = "user"
levels = ["engineer", "pm", "researcher"]
"""


class Client(Protocol):
    """An ``httpx.Client`` or a ``TestClient`` sending the tenant's key."""

    def post(self, url: str, *, json: Any = ...) -> Any: ...

    def patch(self, url: str, *, json: Any = ...) -> Any: ...


def give_history(http: Client, turns: int = 8) -> list[str]:
    """The user's decisions with feedback of every kind, a pin, a declared feature and a
    note; returns the decision ids."""
    decisions = []
    for t in range(turns):
        body = {
            "user_id": USER,
            "message": f"how do I parse argument {t} in Rust?",
            "features": {"role": "researcher"},
            "session_id": SESSION,
            "audit": {"ticket": TICKET},
        }
        r = http.post("/v1/decisions", json=body)
        assert r.status_code == 200, r.text
        decisions.append(r.json()["decision_id"])
    kinds: list[dict[str, Any]] = [
        {"kind": "thumbs", "value": "up"},
        {"kind": "rating", "value": 4},
        {"kind": "reward", "value": 0.9},
        {"kind": "implicit", "signals": ["copied"], "dwell_ms": 4000},
        {"kind": "pairwise", "other_decision_id": decisions[0]},
        {"kind": "thumbs", "value": "down"},
        {"kind": "rating", "value": 2},
        {"kind": "thumbs", "value": "up"},
    ]
    for did, kind in zip(decisions[1:] + decisions[:1], kinds[:turns], strict=False):
        r = http.post("/v1/feedback", json={"user_id": USER, "decision_id": did, **kind})
        assert r.status_code == 202, r.text
    r = http.patch(f"/v1/users/{USER}/profile", json={"pins": {"length": "brief"}})
    assert r.status_code == 200, r.text
    r = http.post(f"/v1/users/{USER}/notes", json={"text": NOTE, "key": "language"})
    assert r.status_code == 201, r.text
    return decisions


def user_traces(model: CFModel, state_b: np.ndarray, others: bytes) -> dict[str, list[bytes]]:
    """The byte patterns of ``USER`` an erasure must leave nowhere: their id, what they wrote
    (note, audit, session), their CF factors and their learned state ``B``. Values another user
    shares (the same history) are no trace of this one: the factors' run is one no other row
    of the model holds, and since ``B``'s entries are small sums (reward-weighted contexts),
    its trace is the whole array, which ``others`` (the other users' records) must not hold."""
    [row] = model.rows([KEY])
    assert row >= 0, "the model was trained on the user"
    other_factors = rows_bytes(np.delete(model.user_factors, row, axis=0))
    return {
        **text_traces("id", USER),
        **text_traces("note", NOTE),
        **text_traces("audit", TICKET),
        **text_traces("session", SESSION),
        **vector_traces("factors", model.user_factors[row], avoid=other_factors),
        **whole_vector_traces("state", state_b, avoid=others),
    }
