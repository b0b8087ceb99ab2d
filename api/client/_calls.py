"""The calls of the HTTP API, written once for the sync and the async client.

Each endpoint is a builder returning a ``Call``: method, path, body, headers and the parser of
its answer. A client sends it with its own transport, and ``Attempts`` decides after each
attempt whether to finish, retry after a pause, or give up (``Client._send``,
``AsyncClient._send``). Adding an endpoint (another
branch's notes or profile link) is a record in ``records.py``, a builder here and a
one-line method in each client.

Every call is safe to retry: decisions carry a ``request_id`` and feedback an ``event_id``
(generated when the caller gives none, the same on every attempt), profile changes an
``Idempotency-Key`` header; reads change nothing, and a retried delete that finds the user
gone (404) means an earlier attempt erased them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from api.client.errors import error_for, unavailable
from api.client.records import CatalogInfo, Decision, Export, FeedbackReceipt, Profile

T = TypeVar("T")
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)

# Transport failures after which a request may or may not have reached attune: retried, as
# every call is idempotent. Local protocol errors and bad URLs are the caller's to fix.
RETRYABLE = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True)
class Retry:
    """When to try a call again: on 503 and on connection failures, never on other answers.

    Parameters
    ----------
    attempts : int
        Tries in all, the first included (1: no retries).
    backoff_s : float
        The pause before the first retry; it doubles each time, up to ``max_backoff_s``. Each
        pause is drawn between half of that and all of it (jitter, so clients that failed
        together do not retry together); a 503's ``Retry-After`` lengthens it.
    deadline_s : float or None
        No retry starts later than this after the first attempt.
    """

    attempts: int = 4
    backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    deadline_s: float | None = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if not 0 <= self.backoff_s <= self.max_backoff_s:
            raise ValueError("backoff_s must be in [0, max_backoff_s]")

    def pause(
        self, attempt: int, elapsed: float, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1, 2, ...), None to give up."""
        if attempt >= self.attempts:
            return None
        ceiling = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        pause = rng.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            pause = max(pause, min(retry_after, self.max_backoff_s))
        if self.deadline_s is not None and elapsed + pause > self.deadline_s:
            return None
        return pause


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    done_on_retry: frozenset[int] = frozenset()  # statuses meaning "done" on a retry


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date: the backoff decides


class Attempts:
    """The retry decisions of one call, without its transport (each client sends and sleeps
    its own way): a 503 or a ``RETRYABLE`` error asks ``pause`` how long to wait before the
    next attempt, and ``pause`` raises the error that ends the call once the budget is spent."""

    def __init__(self, call: Call[Any], retry: Retry, rng: random.Random) -> None:
        self.call, self.retry, self.rng = call, retry, rng
        self.started = time.monotonic()
        self.failed = 0

    def pause(self, failure: httpx.Response | Exception) -> float:
        """Seconds to wait after ``failure`` (a 503, or the error an attempt raised)."""
        wait = retry_after(failure) if isinstance(failure, httpx.Response) else None
        self.failed += 1
        pause = self.retry.pause(self.failed, time.monotonic() - self.started, wait, self.rng)
        if pause is None:
            error = unavailable(self.call.method, self.call.path, self.failed, failure)
            raise error from (failure if isinstance(failure, Exception) else None)
        return pause


def finish(call: Call[T], response: httpx.Response, retried: bool) -> T:
    """The parsed answer, or the error it stands for."""
    status = response.status_code
    if 200 <= status < 300 or (retried and status in call.done_on_retry):
        body = response.json() if status != 204 and response.content else None
        return call.parse(body)
    raise error_for(response, call.method, call.path)


def new_key() -> str:
    return uuid.uuid4().hex


def _user(user_id: str) -> str:
    return "/v1/users/" + quote(user_id, safe="")


# ---------------------------------------------------------------------- the endpoints
def decide(
    user_id: str,
    message: str,
    *,
    locale: str,
    features: Mapping[str, Any] | None,
    constraints: Mapping[str, Any] | None,
    session_id: str | None,
    audit: Mapping[str, Any] | None,
    request_id: str | None,
) -> Call[Decision]:
    body: dict[str, Any] = {
        "user_id": user_id,
        "message": message,
        "locale": locale,
        "request_id": request_id or new_key(),
    }
    optional = {
        "features": features,
        "constraints": constraints,
        "session_id": session_id,
        "audit": audit,
    }
    body.update({k: v for k, v in optional.items() if v})
    return Call("POST", "/v1/decisions", lambda d: Decision.from_json(d, message), body)


def feedback(
    user_id: str,
    decision_id: str,
    kind: str,
    value: Any,
    *,
    signals: Iterable[str],
    dwell_ms: int,
    other_decision_id: str | None,
    event_id: str | None,
) -> Call[FeedbackReceipt]:
    body: dict[str, Any] = {
        "user_id": user_id,
        "decision_id": decision_id,
        "kind": kind,
        "event_id": event_id or new_key(),
    }
    if kind == "implicit":
        body.update(signals=list(signals), dwell_ms=dwell_ms)
    elif kind == "pairwise":
        body["other_decision_id"] = other_decision_id
    else:
        body["value"] = value
    return Call("POST", "/v1/feedback", FeedbackReceipt.from_json, body)


def profile(user_id: str) -> Call[Profile]:
    return Call("GET", _user(user_id) + "/profile", Profile.from_json)


def update_profile(
    user_id: str,
    pins: Mapping[str, str | None] | None,
    features: Mapping[str, Any] | None,
    idempotency_key: str | None,
) -> Call[Profile]:
    body = {"pins": dict(pins or {}), "features": dict(features or {})}
    headers = {"Idempotency-Key": idempotency_key or new_key()}
    return Call("PATCH", _user(user_id) + "/profile", Profile.from_json, body, headers)


def export(user_id: str) -> Call[Export]:
    return Call("GET", _user(user_id) + "/export", Export.from_json)


def delete_user(user_id: str) -> Call[None]:
    return Call("DELETE", _user(user_id), lambda _: None, done_on_retry=frozenset({404}))


def catalog() -> Call[CatalogInfo]:
    return Call("GET", "/v1/catalog", CatalogInfo.from_json)
