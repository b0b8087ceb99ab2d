"""``POST /v1/feedback``: thumbs, ratings, rewards, implicit signals, pairwise preferences."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Body, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep, TenantDep
from api.schemas import FeedbackCreate, FeedbackPublic

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    response_model=FeedbackPublic,
    status_code=202,
    responses={404: {"description": "Unknown decision for this user"}},
)
async def create_feedback(
    body: Annotated[FeedbackCreate, Body()],
    tenant: TenantDep,
    service: ServiceDep,
    response: Response,
) -> dict:
    """Record feedback on a decision; 202 once it is durable (fsynced).

    The write (and its fsync) runs in the thread pool, not on the event loop; the handler
    itself is async so that the answer is validated on the loop, not in a second trip through
    the pool, as a plain ``def`` route's is. Resending the same ``event_id`` is accepted and
    ignored (``status: duplicate``).
    """
    start = time.perf_counter()
    out = await run_in_threadpool(service.feedback, tenant, body)
    service.metrics.feedback_latency.observe(time.perf_counter() - start)
    return out
