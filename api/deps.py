"""Dependencies, declared once as ``Annotated`` aliases the routes use by name."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from api.keys import bearer_key
from api.service import Service

# Both are ``async def`` although they never await: FastAPI runs a plain ``def`` dependency in
# the thread pool, and two pool round trips per request cost more than the decision itself.


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


async def get_tenant(request: Request, service: Annotated[Service, Depends(get_service)]) -> str:
    """The tenant of the request's ``Authorization: Bearer <key>``: 401 without a key,
    403 for a key no tenant has."""
    header = request.headers.get("authorization", "")
    if bearer_key(header) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    tenant = service.tenant_of_header(header)
    if tenant is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "unknown API key")
    return tenant


ServiceDep = Annotated[Service, Depends(get_service)]
TenantDep = Annotated[str, Depends(get_tenant)]
