"""What can go wrong calling attune, one exception type per cause.

``AttuneError`` is the base; each subclass names a cause a product handles differently:
a key problem (``Unauthorized``, ``Forbidden``), an unknown user or decision (``NotFound``),
a request attune rejects (``InvalidRequest``, with the offending fields; ``PayloadTooLarge``),
attune out of reach after the retries (``Unavailable``) or failing (``ServerError``).
"""

from __future__ import annotations

from typing import Any

import httpx


class AttuneError(Exception):
    """A call to attune failed.

    Attributes
    ----------
    status : int or None
        The HTTP status, None when no response came (see ``Unavailable``).
    detail : Any
        The server's ``detail`` (a message, or FastAPI's list of field errors).
    method, path : str
        The call that failed.
    """

    def __init__(
        self, message: str, *, status: int | None, detail: Any, method: str, path: str
    ) -> None:
        super().__init__(message)
        self.status, self.detail, self.method, self.path = status, detail, method, path


class Unauthorized(AttuneError):
    """401: no API key was sent."""


class Forbidden(AttuneError):
    """403: the API key is not one the server knows."""


class NotFound(AttuneError):
    """404: an unknown user or decision in the key's tenant."""


class PayloadTooLarge(AttuneError):
    """413: the body is over the server's ``max_body_bytes``."""


class InvalidRequest(AttuneError):
    """422: attune rejected the body; ``fields`` names the offending ones (``"request_id"``,
    ``"features.role"``), ``errors`` pairs each with the server's message."""

    def __init__(self, message: str, *, errors: list[tuple[str, str]], **kw: Any) -> None:
        super().__init__(message, **kw)
        self.errors = errors
        self.fields = tuple(dict.fromkeys(f for f, _ in errors))


class Unavailable(AttuneError):
    """attune did not answer (503, or no connection) through every retry; ``attempts`` says
    how many were made and ``__cause__`` holds the last transport error, if any."""

    def __init__(self, message: str, *, attempts: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.attempts = attempts


class ServerError(AttuneError):
    """A 5xx other than 503: attune (or something in front of it) failed."""


_BY_STATUS: dict[int, type[AttuneError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
}


def error_for(response: httpx.Response, method: str, path: str) -> AttuneError:
    """The exception a non-success response stands for."""
    status = response.status_code
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:500] or None
    where = {"status": status, "detail": detail, "method": method, "path": path}
    if status == 422 and isinstance(detail, list):
        errors = [(_field(e.get("loc", ())), str(e.get("msg", ""))) for e in detail]
        said = "; ".join(f"{f}: {m}" for f, m in errors)
        return InvalidRequest(
            f"{method} {path}: 422 invalid request: {said}", errors=errors, **where
        )
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else AttuneError)
    return kind(
        f"{method} {path}: {status} {detail if detail else response.reason_phrase}", **where
    )


def unavailable(
    method: str, path: str, attempts: int, last: httpx.Response | Exception
) -> Unavailable:
    """The error after the last retry: the last 503 or transport failure."""
    if isinstance(last, httpx.Response):
        status, detail = last.status_code, last.text[:500] or None
        why = f"{status} {detail or last.reason_phrase}"
    else:
        status, detail, why = None, None, f"{type(last).__name__}: {last}"
    return Unavailable(
        f"{method} {path}: attune unavailable after {attempts} attempts ({why})",
        attempts=attempts,
        status=status,
        detail=detail,
        method=method,
        path=path,
    )


def _field(loc: Any) -> str:
    """A FastAPI error location as a dotted field name, without its ``body``/``path`` part."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"
