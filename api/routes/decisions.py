"""``POST /v1/decisions``: a strategy for this turn."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Response

from api.deps import ServiceDep, TenantDep
from api.schemas import DecisionCreate, DecisionPublic

router = APIRouter(prefix="/v1", tags=["decisions"])


@router.post("/decisions", response_model=DecisionPublic, status_code=200)
async def create_decision(body: DecisionCreate, tenant: TenantDep, service: ServiceDep) -> Response:
    """Choose a response strategy for one turn of one user.

    Runs on the event loop: the engine call and the (non-fsynced) log append take a fraction
    of a millisecond, less than a hop to the thread pool would.
    """
    start = time.perf_counter()
    out = service.decide(tenant, body)
    # Serialized here rather than re-validated against the response model: the service built
    # it from typed engine output, and validation would cost a tenth of the latency budget.
    response = Response(json.dumps(out, separators=(",", ":")), media_type="application/json")
    service.metrics.decision_latency.observe(time.perf_counter() - start)
    return response
