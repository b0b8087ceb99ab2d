"""Synthetic event streams for the Kafka tests and the worker benchmark.

The stream looks like a product's traffic: decisions for many users, feedback of every scalar
kind on most of them (some decisions get none and later expire), a few notes and deletes. It is
a pure function of its seed, so a crash-free run and a crashing run see the same events.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bandit import ContextSpec, check_random_state
from streaming.events import Event


def synthetic_events(
    n_events: int,
    *,
    n_users: int = 200,
    tenant: str = "acme",
    n_arms: int = 128,
    start_ts: float = 1_700_000_000.0,
    step_s: float = 0.05,
    full_payload: bool = True,
    random_state: int | None = 0,
) -> Iterator[Event]:
    """Yield ``n_events`` events in log order.

    Parameters
    ----------
    full_payload : bool
        Decisions carry everything the API logs (``action_dist`` over all arms, ...), not only
        what the worker needs; keeps byte sizes realistic for benchmarks.
    """
    rng = check_random_state(random_state)
    open_decisions: dict[int, list[str]] = {}
    uniform = [1.0 / n_arms] * n_arms
    ts = start_ts
    for i in range(n_events):
        ts += step_s
        u = int(rng.integers(n_users))
        user = f"u{u}"
        pending = open_decisions.setdefault(u, [])
        roll = rng.random()
        if roll >= 0.997:
            pending.clear()
            yield Event("profile", f"x{i}", tenant, user, ts, {"op": "delete"})
        elif pending and roll < 0.55:
            yield _feedback(rng, i, tenant, user, ts, pending.pop(0))
        elif 0.55 <= roll < 0.57:
            yield Event(
                "profile",
                f"p{i}",
                tenant,
                user,
                ts,
                {"op": "note", "note_id": f"n{i % 3}", "text": f"note {i}"},
            )
        else:
            arm = int(rng.integers(n_arms))
            context = np.round(rng.random(ContextSpec().n_columns), 6)
            context[0] = 1.0
            payload = {
                "decision_id": f"d{i}",
                "arm": arm,
                "context": context.tolist(),
                "propensity": 1.0 / n_arms,
                "policy": "lints",
                "locale": "en",
                "seed": int(rng.integers(2**31)),
            }
            if full_payload:
                payload.update(strategy_id=f"arm{arm}", action_dist=uniform, audit={})
            pending.append(f"d{i}")
            del pending[:-4]  # older ones are left to expire
            yield Event("decision", f"d{i}", tenant, user, ts, payload)


FEEDBACK_KINDS = ("thumbs", "rating", "reward", "implicit")


def feedback_payload(rng: np.random.Generator, decision_id: str) -> dict[str, object]:
    """Feedback of a random scalar kind on ``decision_id``: the body ``POST /v1/feedback``
    takes, less ``user_id``."""
    kind = FEEDBACK_KINDS[int(rng.integers(len(FEEDBACK_KINDS)))]
    payload: dict[str, object] = {"decision_id": decision_id, "kind": kind}
    if kind == "thumbs":
        payload["value"] = "up" if rng.random() < 0.6 else "down"
    elif kind == "rating":
        payload["value"] = int(rng.integers(1, 6))
    elif kind == "reward":
        payload["value"] = round(float(rng.random()), 4)
    else:
        payload["signals"] = ["copied"] if rng.random() < 0.5 else ["regenerated"]
    return payload


def _feedback(
    rng: np.random.Generator, i: int, tenant: str, user: str, ts: float, decision_id: str
) -> Event:
    return Event("feedback", f"f{i}", tenant, user, ts, feedback_payload(rng, decision_id))
