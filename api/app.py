"""The FastAPI application: ``create_app(settings)``; resources load in the lifespan."""

from __future__ import annotations

import importlib.metadata
import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from api.middleware import BodyLimit
from api.notes import Conflict
from api.routes import decisions, feedback, notes, ops, page, users
from api.service import InputError, NotFound, Service
from api.settings import Settings
from streaming.bus import Unavailable

log = logging.getLogger("attune")


def create_app(settings: Settings, *, service: Service | None = None) -> FastAPI:
    """The attune HTTP API over the embedded store.

    The service (store, engines, learner) is built and started in the lifespan: state is
    recovered and kernels warmed before ``/readyz`` turns true, and the learner saves a
    final checkpoint on shutdown.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or Service(settings)
        app.state.service = svc
        svc.start()
        if svc.dev_key:
            # Printed once: only the key's hash is stored.
            print(
                f"attune: created a local development API key for tenant 'dev' "
                f"(shown only now): {svc.dev_key}",
                flush=True,
            )
        try:
            yield
        finally:
            svc.stop()

    app = AttuneAPI(
        max_body_bytes=settings.max_body_bytes,
        title="attune",
        version=importlib.metadata.version("attune-engine"),
        summary="Response-strategy bandit for LLM chat products: decide, learn, explain.",
        lifespan=lifespan,
    )
    for router in (decisions.router, feedback.router, users.router, notes.router, ops.router):
        app.include_router(router)
    app.include_router(page.api_router)
    app.include_router(page.router)
    app.mount("/static/attune", StaticFiles(directory=page.STATIC), name="static")
    app.add_exception_handler(NotFound, _not_found)  # type: ignore[arg-type]
    app.add_exception_handler(InputError, _input_error)  # type: ignore[arg-type]
    app.add_exception_handler(TimeoutError, _timeout)  # type: ignore[arg-type]
    app.add_exception_handler(Conflict, _conflict)  # type: ignore[arg-type]
    app.add_exception_handler(Unavailable, _unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


class AttuneAPI(FastAPI):
    """FastAPI, with ``POST /v1/decisions`` served in front of its middleware stack.

    Products call that route once per chat turn, and the stack's layers (error pages,
    telemetry checks, exception routing) cost more than deciding. ``DecisionFastPath`` serves
    valid requests directly and hands every other one to FastAPI as usual; ``BodyLimit``
    guards both paths.
    """

    def __init__(self, *, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._decisions = BodyLimit(
            decisions.DecisionFastPath(self, fallback=super().__call__), max_bytes=max_body_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == decisions.PATH
            and scope["method"] == "POST"
        ):
            await self._decisions(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def _input_error(request: Request, exc: InputError) -> JSONResponse:
    # The same shape as FastAPI's own 422s, so clients parse one format.
    loc = ["body", *exc.field.split(".")] if exc.field != "body" else ["body"]
    return JSONResponse(
        {"detail": [{"loc": loc, "msg": str(exc), "type": "value_error"}]}, status_code=422
    )


async def _conflict(request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=409)


async def _timeout(request: Request, exc: TimeoutError) -> JSONResponse:
    return JSONResponse({"detail": str(exc) or "timed out"}, status_code=503)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own 422, except that the echoed input may hold what strict JSON cannot (a NaN,
    # an integer past 64 bits): encoding it would turn a client's error into our 500.
    return JSONResponse({"detail": _plain(jsonable_encoder(exc.errors()))}, status_code=422)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def _unavailable(request: Request, exc: Unavailable) -> JSONResponse:
    # Nothing was acknowledged; the same request (same event_id) can be sent again.
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})
