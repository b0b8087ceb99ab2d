"""What the HTTP edge accepts in ids and in a decision's audit attributes, in one place.

Ids (users, decisions, events, sessions) are 1 to ``MAX_ID`` characters without ``/`` and
without control characters (``ID_PATTERN``): a ``/`` would make an id that ``{user_id}`` routes
can never address, and control characters have no business in a key that logs, exports and
file names carry. Audit values are what every JSON reader agrees on: strings of at most
``MAX_AUDIT_TEXT`` characters, booleans, and finite numbers within ±2^53 (integers beyond
64 bits and NaN are valid Python but not valid for every JSON decoder downstream).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field

MAX_ID = 128
MAX_USER_ID = 200  # the engine allows 256 for "tenant/user"; the tenant takes the rest
MAX_AUDIT_KEYS = 32
MAX_AUDIT_TEXT = 256
MAX_SAFE_NUMBER = 2**53  # the largest magnitude every JSON reader holds exactly
# No "/", no C0 or C1 control character, no DEL.
ID_PATTERN = "^[^/\\x00-\\x1f\\x7f-\\x9f]+$"
_FORBIDDEN = frozenset("/") | {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))}


def encodable(value: str) -> str:
    """Reject lone surrogates: they survive JSON decoding but not UTF-8 encoding (SQLite,
    logs), so they are refused here, with the field named, instead of failing later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def check_id(value: str) -> str:
    """An id as ``ID_PATTERN`` allows it.

    >>> check_id("ana@example.com")
    'ana@example.com'
    >>> check_id("a/b")
    Traceback (most recent call last):
    ValueError: must not contain '/' or control characters
    """
    if not _FORBIDDEN.isdisjoint(value):
        raise ValueError("must not contain '/' or control characters")
    return encodable(value)


def check_number(value: int | float) -> int | float:
    """A finite number within ±2^53."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if abs(value) > MAX_SAFE_NUMBER:
        raise ValueError("must be a number within ±2^53")
    return value


def check_audit_value(value: Any) -> Any:
    """A string (at most ``MAX_AUDIT_TEXT`` characters), a boolean or a finite number within
    ±2^53; one error naming what is allowed otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_AUDIT_TEXT:
            raise ValueError(f"an audit string has at most {MAX_AUDIT_TEXT} characters")
        return encodable(value)
    if isinstance(value, int | float):
        return check_number(value)
    raise ValueError("must be a string, a boolean or a finite number within ±2^53")


# The pattern is documented in the OpenAPI schema; ``check_id`` enforces it with a message
# that says what is wrong.
_SCHEMA = {"pattern": ID_PATTERN}
UserId = Annotated[
    str,
    Field(min_length=1, max_length=MAX_USER_ID, json_schema_extra=_SCHEMA),
    AfterValidator(check_id),
]
Id = Annotated[
    str, Field(min_length=1, max_length=MAX_ID, json_schema_extra=_SCHEMA), AfterValidator(check_id)
]
AuditKey = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_id)]
AuditValue = Annotated[Any, AfterValidator(check_audit_value)]
