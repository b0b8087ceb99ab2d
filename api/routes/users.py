"""Profiles: read, pin, export, delete; always within the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ServiceDep, TenantDep
from api.fields import ID_PATTERN
from api.schemas import MAX_USER_ID, ExportPublic, ProfilePublic, ProfileUpdate

router = APIRouter(prefix="/v1/users", tags=["users"])
UserPath = Annotated[str, Path(min_length=1, max_length=MAX_USER_ID, pattern=ID_PATTERN)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=128,
        description="Makes the change idempotent: a resend with the same key is applied once.",
    ),
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown user (in this tenant)"}}


@router.get("/{user_id}/profile", response_model=ProfilePublic, responses=NOT_FOUND)
async def read_profile(user_id: UserPath, tenant: TenantDep, service: ServiceDep) -> dict:
    """Learned preferences per dimension with confidence, pins, evidence, last seen.
    (Async for one trip through the thread pool instead of two; see ``create_feedback``.)"""
    return await run_in_threadpool(service.profile, tenant, user_id)


@router.patch("/{user_id}/profile", response_model=ProfilePublic)
def update_profile(
    user_id: UserPath,
    body: ProfileUpdate,
    tenant: TenantDep,
    service: ServiceDep,
    idempotency_key: IdempotencyKey = None,
) -> dict:
    """Pin a level per dimension (``{"pins": {"length": "brief"}}``, ``null`` unpins), set
    declared user features (``{"features": {"role": "engineer"}}``, ``null`` forgets one) and
    pause or resume personalization (``{"personalization": "paused"}``).

    With an ``Idempotency-Key`` header, resending the change is logged and applied once."""
    return service.update_profile(
        tenant,
        user_id,
        dict(body.pins),
        dict(body.features),
        body.personalization,
        idempotency_key,
    )


@router.get("/{user_id}/export", response_model=ExportPublic, responses=NOT_FOUND)
def export_user(user_id: UserPath, tenant: TenantDep, service: ServiceDep) -> dict:
    """Everything attune stores about the user, as JSON."""
    return service.export(tenant, user_id)


@router.delete("/{user_id}", status_code=204, responses=NOT_FOUND)
def delete_user(user_id: UserPath, tenant: TenantDep, service: ServiceDep) -> Response:
    """Erase the user's state, pins and rows in every log attune keeps."""
    service.delete(tenant, user_id)
    return Response(status_code=204)
