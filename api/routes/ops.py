"""Operations: liveness, readiness, metrics, the catalog."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import ServiceDep
from api.keys import bearer_key
from api.schemas import CatalogPublic

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={503: {"description": "A background thread died"}})
async def healthz(service: ServiceDep) -> JSONResponse:
    """Liveness: the process and every background thread it needs (the learner and the store's
    writer, or the changelog view on Kafka) run. A failure needs a restart."""
    for backend in (lane.backend for lane in service.lanes):
        if not backend.alive or backend.error is not None:
            stopped = "a background thread stopped"
            reason = repr(backend.error) if backend.error is not None else stopped
            return JSONResponse({"status": "failing", "reason": reason}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/readyz", responses={503: {"description": "Not ready (yet, or for now)"}})
async def readyz(service: ServiceDep) -> JSONResponse:
    """Readiness: state is recovered, kernels are warm, the background threads run and durable
    writes succeed (not during a full disk or a broker outage; decisions are still served)."""
    backends = [lane.backend for lane in service.lanes]
    alive = all(b.alive and b.error is None for b in backends)
    writable = all(b.writable for b in backends)
    ok = service.ready and alive and writable
    body = {"ready": ok, "writable": writable, "learner_lag": sum(b.lag() for b in backends)}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    responses={401: {"description": "No operator key"}, 403: {"description": "Not an operator"}},
)
def metrics(service: ServiceDep, request: Request) -> Response:
    """Prometheus text format. Needs an operator key (``Authorization: Bearer``) unless the
    settings open it (``[metrics] public``); an anonymous caller never sees tenant names."""
    header = request.headers.get("authorization", "")
    operator = service.is_operator(header)
    if not operator and not service.settings.metrics_public:
        if bearer_key(header) is None:
            raise HTTPException(401, "metrics need an operator key", {"WWW-Authenticate": "Bearer"})
        raise HTTPException(403, "not an operator key")
    return Response(service.metrics.render(tenants=operator), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/catalog", response_model=CatalogPublic)
def catalog(service: ServiceDep, request: Request) -> dict:
    """The strategy catalog: dimensions, levels and arm ids; with a tenant key, that tenant's
    (a tenant may have a catalog of its own), else the server's."""
    tenant = service.tenant_of_header(request.headers.get("authorization", ""))
    return service.catalog_public(tenant)
