"""Signed, short-lived links to a user's profile page.

A token names one user of one tenant and an expiry, signed with HMAC-SHA256 under the server
secret: ``base64url(json) . base64url(mac)``. Whoever holds it can see and change that one
user's profile until it expires, and nothing else; a token whose signature does not match
(tampered, or signed with another secret) or whose time is up is refused with the reason.
The secret comes from settings (``[server] secret``, ``ATTUNE_SECRET``), the same on every
replica; the embedded backend may make one and keep it in the data dir, readable by its owner
only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

_DOMAIN = b"attune profile link v1\x00"  # keeps these MACs apart from any other use of the key
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{43}$")


class LinkError(ValueError):
    """A profile link that does not open: ``reason`` is ``"expired"`` or ``"invalid"``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Link:
    """Whose page a link opens, and until when (epoch seconds)."""

    tenant: str
    user_id: str
    expires_at: float


class LinkSigner:
    """Signs and checks profile-link tokens.

    >>> signer = LinkSigner(b"k" * 32)
    >>> token = signer.sign("acme", "ana", ttl_s=60, now=1000.0)
    >>> signer.verify(token, now=1030.0)
    Link(tenant='acme', user_id='ana', expires_at=1060.0)
    >>> signer.verify(token, now=1061.0)
    Traceback (most recent call last):
    api.links.LinkError: expired
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("secret: expected at least 16 bytes")
        self._secret = secret

    def sign(self, tenant: str, user_id: str, *, ttl_s: float, now: float | None = None) -> str:
        expires = round((time.time() if now is None else now) + ttl_s, 3)
        body = _b64(orjson.dumps({"t": tenant, "u": user_id, "e": expires}))
        return f"{body}.{_b64(self._mac(body))}"

    def verify(self, token: str, *, now: float | None = None) -> Link:
        """The link a token stands for; ``LinkError`` if it is forged, damaged or expired."""
        if not _TOKEN.match(token):
            raise LinkError("invalid")
        body, _, mac = token.partition(".")
        if not hmac.compare_digest(_unb64(mac), self._mac(body)):
            raise LinkError("invalid")
        doc = orjson.loads(_unb64(body))  # signed by us: well formed
        link = Link(str(doc["t"]), str(doc["u"]), float(doc["e"]))
        if link.expires_at <= (time.time() if now is None else now):
            raise LinkError("expired")
        return link

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._secret, _DOMAIN + body.encode("ascii"), hashlib.sha256).digest()


def local_secret(data_dir: Path) -> bytes:
    """The embedded mode's secret: ``<data_dir>/profile-link.secret``, made on first use with
    permissions 0600."""
    path = Path(data_dir) / "profile-link.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip().encode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
