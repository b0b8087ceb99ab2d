"""``POST /v1/decisions``: a strategy for this turn.

Chat products call this once per turn, so it has two paths to the same service call. The
FastAPI route declares the operation (OpenAPI, docs, fuzzing) and answers every request the
fast path passes on. ``DecisionFastPath`` (which ``api.app.AttuneAPI`` puts in front of
FastAPI) serves the common request, a JSON body from a known key that validates, without
FastAPI's request machinery, which costs more than the decision itself; anything else (no or
unknown key, a body that does not validate) goes to the route, so errors keep exactly
FastAPI's status codes and shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson
from fastapi import APIRouter, Response
from pydantic import ValidationError

from api.deps import ServiceDep, TenantDep
from api.loads import Loads
from api.schemas import DecisionCreate, DecisionPublic
from api.service import InputError, Service

PATH = "/v1/decisions"
_Queued = tuple[str, DecisionCreate, "asyncio.Future[Any]"]  # tenant, body, its answer
router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post("/decisions", response_model=DecisionPublic, status_code=200)
async def create_decision(body: DecisionCreate, tenant: TenantDep, service: ServiceDep) -> Response:
    """Choose a response strategy for one turn of one user.

    Runs on the event loop: the engine call and the (non-fsynced) log append take a fraction
    of a millisecond, less than a hop to the thread pool would.
    """
    start = time.perf_counter()
    await resident(service, [f"{tenant}/{body.user_id}"])
    out = service.decide(tenant, body)
    # Serialized here rather than re-validated against the response model: the service built
    # it from typed engine output, and validation would cost a tenth of the latency budget.
    response = Response(encode(out), media_type="application/json")
    service.metrics.decision_latency.observe(time.perf_counter() - start)
    return response


async def resident(service: Service, keys: list[str]) -> None:
    """Bring back the users the serving engine does not hold (new ones, or ones that left
    memory while idle), off the event loop and batched with other requests' (``api.loads``):
    that reads the store and may wait for the learner's lock, which on the event loop would
    hold up every other request too."""
    await Loads.of(service).resident(keys)


def encode(out: dict[str, Any]) -> bytes:
    # orjson: faster than the standard library's encoder on this dict, on every request; it
    # writes UTF-8 rather than \u escapes, the same JSON once parsed.
    return orjson.dumps(out)


class DecisionFastPath:
    """Serve valid, authenticated ``POST /v1/decisions`` requests straight from ASGI.

    The body is validated with the route's own model and the key checked like ``get_tenant``
    does; a request that fails either check is handed to ``fallback`` (the FastAPI app) with
    its body replayed, so the FastAPI route answers it (401, 403, 422 in FastAPI's shape).

    Parameters
    ----------
    app : FastAPI
        The application whose ``state.service`` decides.
    fallback : ASGI app
        Where every request this path does not serve goes.
    """

    def __init__(self, app: Any, fallback: Any) -> None:
        self.app = app
        self.fallback = fallback
        self._queued: list[_Queued] = []
        self._loading: set[asyncio.Future[None]] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = await _read_body(receive)
        if raw is None:
            return  # the client went away: nobody to answer
        service: Service = self.app.state.service
        tenant = _tenant(scope, service)
        body = _validate(raw) if tenant is not None else None
        if tenant is None or body is None:
            await self.fallback(scope, _replay(raw, receive), send)
            return
        start = time.perf_counter()
        out = await self._decide(tenant, body)
        if isinstance(out, InputError):
            await self.fallback(scope, _replay(raw, receive), send)  # the route words the 422
            return
        if isinstance(out, Exception):  # this request's own failure, logged by the service
            await _respond(send, 500, encode({"detail": "internal error"}))
            return
        payload = encode(out)
        service.metrics.decision_latency.observe(time.perf_counter() - start)
        await _respond(send, 200, payload)

    def _decide(self, tenant: str, body: DecisionCreate) -> asyncio.Future[Any]:
        """The decision for one request, made together with every other request that reached
        this point in the same turn of the event loop.

        Requests queue up whenever the loop falls behind (a GIL-holding learner slice, a
        collection, a burst); one engine call then decides all of them for much less than
        one call each, so the backlog clears faster the longer it grows.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queued:
            loop.call_soon(self._decide_queued)
        self._queued.append((tenant, body, future))
        return future

    def _decide_queued(self) -> None:
        queued, self._queued = self._queued, []
        users = self.app.state.service.engine.users
        held: list[_Queued] = []
        missing: list[_Queued] = []
        keys: list[str] = []  # of the missing
        for q in queued:
            key = f"{q[0]}/{q[1].user_id}"
            if key in users:
                held.append(q)
            else:
                missing.append(q)
                keys.append(key)
        if held:
            self._decide_now(held)
        if missing:  # decided as a batch of their own once they are back
            task = asyncio.ensure_future(self._decide_resident(missing, keys))
            self._loading.add(task)  # held until done: the loop keeps only a weak reference
            task.add_done_callback(self._loading.discard)

    async def _decide_resident(self, queued: list[_Queued], keys: list[str]) -> None:
        """The batch once its users are back (see ``resident``), still as one batch."""
        # Should the look-up fail, decide_many looks the users up again and answers per request.
        with contextlib.suppress(Exception):
            await resident(self.app.state.service, keys)
        self._decide_now(queued)

    def _decide_now(self, queued: list[_Queued]) -> None:
        service: Service = self.app.state.service
        requests = [(tenant, body) for tenant, body, _ in queued]
        try:
            outs = service.decide_many(requests)
        except Exception:
            # decide_many answers per request; should it still fail as a whole, each request
            # is decided alone, so an error reaches only the request that causes it.
            outs = [_decide_alone(service, request) for request in requests]
        for (*_, future), out in zip(queued, outs, strict=True):
            if not future.done():  # done: cancelled, its request is gone
                future.set_result(out)


def _decide_alone(service: Service, request: tuple[str, DecisionCreate]) -> Any:
    try:
        [out] = service.decide_many([request])
    except Exception as exc:
        return exc
    return out


async def _respond(send: Any, status: int, payload: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-length", str(len(payload)).encode()),
                (b"content-type", b"application/json"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body, or None when the client disconnects first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(raw: bytes, receive: Any) -> Any:
    """A ``receive`` that yields the already-read body once, then defers to the server."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            message: dict[str, Any] = await receive()
            return message
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}

    return replay


def _tenant(scope: dict[str, Any], service: Service) -> str | None:
    """The tenant of a well-formed bearer key on a JSON request, or None (the route then
    answers 401/403, or reads the body its own way)."""
    json_body = seen_key = False
    tenant = None
    for name, value in scope["headers"]:
        if name == b"authorization" and not seen_key:  # the first one counts, as in Starlette
            seen_key = True
            tenant = service.tenant_of_header(value.decode("latin-1"))
        elif name == b"content-type":
            json_body = value.split(b";", 1)[0].strip().lower() == b"application/json"
    return tenant if json_body else None


def _validate(raw: bytes) -> DecisionCreate | None:
    try:
        return DecisionCreate.model_validate_json(raw)
    except ValidationError:
        return None
