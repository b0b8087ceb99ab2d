"""A Python client for attune's HTTP API: ``Client`` (sync) and ``AsyncClient`` (asyncio).

Typed answers (``records``), one exception per cause (``errors``), timeouts, and retries with
backoff on 503 and lost connections that are safe because every call is idempotent: a
decision carries a ``request_id``, feedback an ``event_id``, a profile change an
``Idempotency-Key`` (README.md, "The Python client")::

    from api.client import Client

    with Client("http://127.0.0.1:8000", api_key) as attune:
        d = attune.decide("ana", "How do I reverse a list in Python?")
        reply = openai.chat.completions.create(model=..., **d.directives.request(history))
        attune.feedback("ana", d.decision_id, "thumbs", "up")

It needs httpx and nothing else of attune's at run time (``bandit/shapes.py`` is loaded
without the engine), so a product process does not pay for numba to use it.
"""

from api.client._calls import Retry
from api.client.aio import AsyncClient
from api.client.errors import (
    AttuneError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServerError,
    Unauthorized,
    Unavailable,
)
from api.client.records import (
    CatalogInfo,
    Decision,
    Directives,
    Evidence,
    Export,
    FeedbackReceipt,
    Preference,
    Profile,
    Reason,
    Strategy,
)
from api.client.sync import Client

__all__ = [
    "AsyncClient",
    "AttuneError",
    "CatalogInfo",
    "Client",
    "Decision",
    "Directives",
    "Evidence",
    "Export",
    "FeedbackReceipt",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "Preference",
    "Profile",
    "Reason",
    "Retry",
    "ServerError",
    "Strategy",
    "Unauthorized",
    "Unavailable",
]
