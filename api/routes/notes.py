"""Memory notes: ``/v1/users/{user_id}/notes``, always within the caller's tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from api import notes
from api.deps import ServiceDep, TenantDep
from api.fields import ID_PATTERN
from api.routes.users import NOT_FOUND, UserPath
from api.schemas import NoteCreate, NotePublic, NotesPublic, NoteUpdate

router = APIRouter(prefix="/v1/users", tags=["notes"])
NotePath = Annotated[str, Path(min_length=1, max_length=128, pattern=ID_PATTERN)]
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The note was superseded"}}


@router.post("/{user_id}/notes", response_model=NotePublic, status_code=201)
def add_note(user_id: UserPath, body: NoteCreate, tenant: TenantDep, service: ServiceDep) -> dict:
    """Remember a note; a newer note with the same ``key`` supersedes the older one."""
    return notes.add_note(service, tenant, user_id, body.model_dump())


@router.get("/{user_id}/notes", response_model=NotesPublic, responses=NOT_FOUND)
def list_notes(user_id: UserPath, tenant: TenantDep, service: ServiceDep) -> dict:
    """Every note: live, expired (until retention deletes it) and superseded, with history."""
    return {"notes": notes.list_notes(service, tenant, user_id)}


@router.patch(
    "/{user_id}/notes/{note_id}", response_model=NotePublic, responses={**NOT_FOUND, **CONFLICT}
)
def edit_note(
    user_id: UserPath, note_id: NotePath, body: NoteUpdate, tenant: TenantDep, service: ServiceDep
) -> dict:
    """Change a note's text, key, source, time to live or pin; the old text stays in its
    history."""
    changes = body.model_dump(exclude_unset=True)
    return notes.edit_note(service, tenant, user_id, note_id, changes)


@router.delete("/{user_id}/notes/{note_id}", status_code=204, responses=NOT_FOUND)
def delete_note(
    user_id: UserPath, note_id: NotePath, tenant: TenantDep, service: ServiceDep
) -> Response:
    """Forget a note and its history."""
    notes.delete_note(service, tenant, user_id, note_id)
    return Response(status_code=204)
