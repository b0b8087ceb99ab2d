"""Operations: liveness, readiness, metrics, the catalog."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import ServiceDep
from api.schemas import CatalogPublic

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready yet"}})
async def readyz(service: ServiceDep) -> JSONResponse:
    """Ready once state is recovered and kernels are warm, while the learner runs."""
    backend = service.backend
    ok = service.ready and backend.alive and backend.error is None
    return JSONResponse({"ready": ok, "learner_lag": backend.lag()}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/catalog", response_model=CatalogPublic)
def catalog(service: ServiceDep) -> dict:
    """The strategy catalog: dimensions, levels and arm ids."""
    return service.catalog_public()
