"""The end user's profile page behind a signed link, and the API call that makes the link.

``POST /v1/users/{user_id}/profile-link`` (tenant key) returns a short-lived URL the product
shows its user; ``/u/{token}`` serves that user's page: server-rendered HTML and one
stylesheet, every action a plain form (``POST`` then a redirect back), so it works without
JavaScript, from the keyboard and with a screen reader. A link that is expired, forged or
damaged gets an error page and nothing else.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api import notes
from api.deps import ServiceDep, TenantDep
from api.links import Link, LinkError, LinkSigner, local_secret
from api.routes.users import NOT_FOUND, UserPath
from api.schemas import NoteCreate, NoteUpdate, ProfileLinkCreate, ProfileLinkPublic
from api.service import InputError, NotFound, Service
from api.web.strings import LANGUAGE_NAMES, STRINGS, page_locale
from api.web.view import page_context, when

WEB = Path(__file__).resolve().parents[1] / "web"
STATIC = WEB / "static"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(WEB / "templates"), autoescape=True, auto_reload=False
)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never pass it on
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}

api_router = APIRouter(prefix="/v1/users", tags=["users"])
router = APIRouter(prefix="/u", include_in_schema=False)


def get_signer(request: Request, service: ServiceDep) -> LinkSigner:
    """The link signer: the settings' secret, or (embedded only) one kept in the data dir."""
    signer: LinkSigner | None = getattr(request.app.state, "link_signer", None)
    if signer is None:
        settings = service.settings
        if settings.secret:
            signer = LinkSigner(settings.secret.encode())
        elif service.backend.store_path is not None:
            signer = LinkSigner(local_secret(settings.data_dir))
        else:
            raise HTTPException(
                503, "profile links need [server] secret (or ATTUNE_SECRET) on every replica"
            )
        request.app.state.link_signer = signer
    return signer


SignerDep = Annotated[LinkSigner, Depends(get_signer)]


@api_router.post("/{user_id}/profile-link", response_model=ProfileLinkPublic, responses=NOT_FOUND)
def create_link(
    user_id: UserPath,
    request: Request,
    tenant: TenantDep,
    service: ServiceDep,
    signer: SignerDep,
    body: ProfileLinkCreate | None = None,
) -> dict[str, Any]:
    """A signed link to the user's profile page, valid for ``profile_link_ttl_s``."""
    if not service.lane(tenant).backend.knows(tenant, user_id):
        raise NotFound(f"unknown user {user_id!r}")
    ttl = service.settings.profile_link_ttl_s
    token = signer.sign(tenant, user_id, ttl_s=ttl)
    locale = page_locale(
        (body.locale if body else None) or _latest_locale(service, tenant, user_id)
    )
    base = service.settings.public_url or str(request.base_url)
    expires = signer.verify(token).expires_at
    return {"url": f"{base.rstrip('/')}/u/{token}?lang={locale}", "expires_at": expires}


def _latest_locale(service: Service, tenant: str, user_id: str) -> str | None:
    raw = service.lane(tenant).backend.export_user(f"{tenant}/{user_id}")
    recent = json.loads(raw).get("recent") if raw else None
    return recent[-1].get("locale") if recent else None


# ---------------------------------------------------------------------- the page
def render(name: str, locale: str, status: int = 200, **context: Any) -> HTMLResponse:
    languages = [(code, LANGUAGE_NAMES[code]) for code in STRINGS]
    html = _TEMPLATES.get_template(name).render(
        locale=locale, t=STRINGS[locale], languages=languages, **context
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _open(signer: LinkSigner, token: str, locale: str) -> Link | HTMLResponse:
    try:
        return signer.verify(token)
    except LinkError as exc:
        t = STRINGS[locale]
        status = 410 if exc.reason == "expired" else 403
        text = t["error_expired"] if exc.reason == "expired" else t["error_invalid"]
        return render("message.html", locale, status, heading=t["error_title"], text=text,
                      alert=True)  # fmt: skip


@router.get("/{token}")
async def page(
    token: str, request: Request, service: ServiceDep, signer: SignerDep
) -> HTMLResponse:
    locale = page_locale(request.query_params.get("lang"))
    link = _open(signer, token, locale)
    if isinstance(link, HTMLResponse):
        return link
    done = request.query_params.get("done") == "1"
    return await run_in_threadpool(_page, service, link, token, locale, done, "", 200)


def _page(
    service: Service, link: Link, token: str, locale: str, done: bool, problem: str, status: int
) -> HTMLResponse:
    t = STRINGS[locale]
    try:
        context = page_context(service, link.tenant, link.user_id, locale)
    except NotFound:
        return render("message.html", locale, 404, heading=t["title"], text=t["nothing_stored"])
    expires = t["link_expires"].format(time=when(link.expires_at))
    return render("page.html", locale, status, base=f"/u/{token}", expires=expires, done=done,
                  problem=problem, **context)  # fmt: skip


async def _form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body: the last value of each field."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


async def _act(request: Request, token: str, service: Service, signer: LinkSigner, action: Any,
               anchor: str) -> Response:  # fmt: skip
    """Run one form action for the link's user, then redirect back to the page (or show the
    page with the problem when the input is refused)."""
    form = await _form(request)
    locale = page_locale(form.get("lang"))
    link = _open(signer, token, locale)
    if isinstance(link, HTMLResponse):
        return link
    try:
        await run_in_threadpool(action, service, link, form)
    except (InputError, ValidationError, NotFound, notes.Conflict) as exc:
        problem = STRINGS[locale]["error_input"].format(detail=_detail(exc))
        return await run_in_threadpool(_page, service, link, token, locale, False, problem, 422)
    url = f"/u/{token}?lang={locale}&done=1#{anchor}"
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def _detail(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
    return str(exc)


@router.post("/{token}/pin")
async def pin(token: str, request: Request, service: ServiceDep, signer: SignerDep) -> Response:
    def action(service: Service, link: Link, form: dict[str, str]) -> None:
        dim = form.get("dimension", "")
        service.update_profile(link.tenant, link.user_id, {dim: form.get("level") or None})

    return await _act(request, token, service, signer, action, "h-preferences")


@router.post("/{token}/personalization")
async def personalization(
    token: str, request: Request, service: ServiceDep, signer: SignerDep
) -> Response:
    def action(service: Service, link: Link, form: dict[str, str]) -> None:
        value = "paused" if form.get("value") == "paused" else "active"
        service.update_profile(link.tenant, link.user_id, {}, None, value)

    return await _act(request, token, service, signer, action, "h-personalization")


@router.post("/{token}/notes")
async def add_note(
    token: str, request: Request, service: ServiceDep, signer: SignerDep
) -> Response:
    def action(service: Service, link: Link, form: dict[str, str]) -> None:
        body = NoteCreate(
            text=form.get("text", "").strip(),
            key=form.get("key") or None,
            source="user",
            ttl_s=None,
            pinned=form.get("pinned") == "1",
        )
        notes.add_note(service, link.tenant, link.user_id, body.model_dump())

    return await _act(request, token, service, signer, action, "h-notes")


@router.post("/{token}/notes/{note_id}")
async def edit_note(
    token: str, note_id: str, request: Request, service: ServiceDep, signer: SignerDep
) -> Response:
    def action(service: Service, link: Link, form: dict[str, str]) -> None:
        body = NoteUpdate(text=form.get("text", "").strip(), pinned=form.get("pinned") == "1")
        changes = body.model_dump(exclude_unset=True)
        notes.edit_note(service, link.tenant, link.user_id, note_id, changes)

    return await _act(request, token, service, signer, action, "h-notes")


@router.post("/{token}/notes/{note_id}/delete")
async def delete_note(
    token: str, note_id: str, request: Request, service: ServiceDep, signer: SignerDep
) -> Response:
    def action(service: Service, link: Link, form: dict[str, str]) -> None:
        notes.delete_note(service, link.tenant, link.user_id, note_id)

    return await _act(request, token, service, signer, action, "h-notes")


@router.get("/{token}/export")
async def export(token: str, service: ServiceDep, signer: SignerDep) -> Response:
    link = _open(signer, token, "en")
    if isinstance(link, HTMLResponse):
        return link
    try:
        out = await run_in_threadpool(service.export, link.tenant, link.user_id)
    except NotFound:
        out = {"user_id": link.user_id, "tenant": link.tenant}
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="attune-profile.json"'}
    body = json.dumps(out, ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json", headers=headers)


@router.get("/{token}/delete")
async def confirm_delete(token: str, request: Request, signer: SignerDep) -> HTMLResponse:
    locale = page_locale(request.query_params.get("lang"))
    link = _open(signer, token, locale)
    if isinstance(link, HTMLResponse):
        return link
    return render("confirm.html", locale, base=f"/u/{token}")


@router.post("/{token}/delete")
async def delete_everything(
    token: str, request: Request, service: ServiceDep, signer: SignerDep
) -> Response:
    form = await _form(request)
    locale = page_locale(form.get("lang"))
    link = _open(signer, token, locale)
    if isinstance(link, HTMLResponse):
        return link
    with contextlib.suppress(NotFound):  # nothing left to delete: the same page
        await run_in_threadpool(service.delete, link.tenant, link.user_id)
    t = STRINGS[locale]
    return render("message.html", locale, heading=t["deleted_title"], text=t["nothing_stored"])
