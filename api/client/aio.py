"""``AsyncClient``: attune's HTTP API from asyncio code, call for call like ``Client``."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import httpx

from api.client import _calls as calls
from api.client._calls import DEFAULT_TIMEOUT, Call, Retry
from api.client.records import CatalogInfo, Decision, Export, FeedbackReceipt, Profile

T = TypeVar("T")


class AsyncClient:
    """``Client`` for asyncio: the same methods, awaited; the same retries and errors.

    Parameters are ``Client``'s (``http``: an ``httpx.AsyncClient``).

    Examples
    --------
    >>> async with AsyncClient("http://127.0.0.1:8000", "attune-dev-...") as a:  # doctest: +SKIP
    ...     d = await a.decide("ana", "How do I reverse a list?")
    ...     await a.feedback("ana", d.decision_id, "thumbs", "up")
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: Retry | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.retry = retry or Retry()
        self._owned = http is None
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._rng = random.Random()

    # ------------------------------------------------------------------ the endpoints
    async def decide(
        self,
        user_id: str,
        message: str = "",
        *,
        locale: str = "en",
        features: Mapping[str, Any] | None = None,
        constraints: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        audit: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Decision:
        """``POST /v1/decisions``: the strategy for this turn. ``request_id`` (default: a new
        one per call, kept across its retries) makes a resend return the same decision; pass
        your own (e.g. the message's id) to make resends across processes safe too."""
        return await self._send(
            calls.decide(
                user_id,
                message,
                locale=locale,
                features=features,
                constraints=constraints,
                session_id=session_id,
                audit=audit,
                request_id=request_id,
            )
        )

    async def feedback(
        self,
        user_id: str,
        decision_id: str,
        kind: str,
        value: Any = None,
        *,
        signals: Iterable[str] = (),
        dwell_ms: int = 0,
        other_decision_id: str | None = None,
        event_id: str | None = None,
    ) -> FeedbackReceipt:
        """``POST /v1/feedback``: ``kind`` is thumbs (``value`` "up"/"down"), rating (1-5),
        reward (0-1), implicit (``signals``, ``dwell_ms``) or pairwise (``decision_id`` won
        over ``other_decision_id``). ``event_id`` (default: new per call) makes it count
        once however often it is sent."""
        call = calls.feedback(
            user_id,
            decision_id,
            kind,
            value,
            signals=signals,
            dwell_ms=dwell_ms,
            other_decision_id=other_decision_id,
            event_id=event_id,
        )
        return await self._send(call)

    async def profile(self, user_id: str) -> Profile:
        """``GET /v1/users/{id}/profile``."""
        return await self._send(calls.profile(user_id))

    async def update_profile(
        self,
        user_id: str,
        *,
        pins: Mapping[str, str | None] | None = None,
        features: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Profile:
        """``PATCH /v1/users/{id}/profile``: pin levels (None unpins), set declared user
        features (None forgets one). Sent with an ``Idempotency-Key`` (default: new per call),
        so a retried change is applied once and never over a newer one."""
        return await self._send(calls.update_profile(user_id, pins, features, idempotency_key))

    async def export(self, user_id: str) -> Export:
        """``GET /v1/users/{id}/export``: everything attune stores about the user."""
        return await self._send(calls.export(user_id))

    async def delete_user(self, user_id: str) -> None:
        """``DELETE /v1/users/{id}``: returns once the erasure is durable."""
        await self._send(calls.delete_user(user_id))

    async def catalog(self) -> CatalogInfo:
        """``GET /v1/catalog``: the strategies serving this key's tenant."""
        return await self._send(calls.catalog())

    async def ready(self) -> bool:
        """``GET /readyz`` once, without retries: whether attune serves decisions now."""
        try:
            return (await self._http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    # ------------------------------------------------------------------ plumbing
    async def _send(self, call: Call[T]) -> T:
        attempts = calls.Attempts(call, self.retry, self._rng)
        while True:
            try:
                outcome: httpx.Response | Exception = await self._http.request(
                    call.method, call.path, json=call.json, headers={**self._auth, **call.headers}
                )
            except calls.RETRYABLE as exc:
                outcome = exc
            if isinstance(outcome, httpx.Response) and outcome.status_code != 503:
                return calls.finish(call, outcome, retried=attempts.failed > 0)
            await asyncio.sleep(attempts.pause(outcome))

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
