"""Real ``attune serve`` processes for tests, and a small HTTP proxy to put in front of one.

``ServeProcess`` starts ``python -m api.cli serve`` on a free port with a data folder, and can
stop, kill and restart it on the same port and folder. ``FrontProxy`` forwards HTTP/1.1
between a client and the server the way a load balancer does: it answers 503 while the
server is down, and on request it loses one response (the server handled the request, the
client never hears back), which is how tests make a client retry across a restart.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
KEY = "key-acme-0123456789abcdef"
OTHER_KEY = "key-beta-0123456789abcdef"
OPERATOR_KEY = "key-operator-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """``attune serve`` in a child process (tenants ``acme`` and ``beta``, an operator key);
    ``settings`` is a TOML text, ``env`` more environment (``ATTUNE_BUS``, say)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        settings: str = "",
        port: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings = data_dir.parent / f"{data_dir.name}-settings.toml"
        self.settings.write_text(settings, encoding="utf-8")
        self.log = data_dir.parent / f"{data_dir.name}-serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout_s: float = 120.0) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
        env["ATTUNE_API_KEYS"] = f"acme:{KEY},beta:{OTHER_KEY}"
        env["ATTUNE_OPERATOR_KEYS"] = OPERATOR_KEY
        env.update(self.env)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(":")
        argv = ["serve", "--data-dir", str(self.data_dir), "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *argv, "--settings", str(self.settings)],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"attune serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"attune serve did not become ready:\n{self.log.read_text()}")

    def client(self, timeout: float = 10) -> httpx.Client:
        """An HTTP client to this server as tenant ``acme``."""
        return httpx.Client(base_url=self.url, headers=HEADERS, timeout=timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM (a clean stop: queued decisions are committed), then wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


class FrontProxy:
    """An HTTP/1.1 proxy on a free port in front of ``upstream_port`` (see the module
    docstring). ``lose_response(prefix, then)`` loses the answer to the next request whose
    request line starts with ``prefix`` (e.g. ``"POST /v1/decisions"``): the server handles it,
    ``then()`` runs, and the client's connection is closed unanswered."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.status_when_down = 503
        self.requests: list[str] = []  # request lines, as they arrived
        self.unavailable = 0  # answers given for a server that was down
        self.lost: list[bytes] = []  # responses never delivered
        self._lose: tuple[str, Callable[[], None]] | None = None
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_response(self, prefix: str, then: Callable[[], None] = lambda: None) -> None:
        self._lose = (prefix, then)

    def close(self) -> None:
        self._closed = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        with client:
            try:
                while (request := _read_message(client, is_response=False)) is not None:
                    line = request.split(b"\r\n", 1)[0].decode("latin-1")
                    self.requests.append(line)
                    if upstream is None:
                        upstream = self._connect()
                    if upstream is None:
                        self.unavailable += 1
                        client.sendall(_status(self.status_when_down))
                        continue
                    upstream.sendall(request)
                    response = _read_message(upstream, is_response=True)
                    if response is None:  # the server went away mid-request
                        upstream.close()
                        upstream = None
                        self.unavailable += 1
                        client.sendall(_status(self.status_when_down))
                        continue
                    lose, self._lose = self._lose, None
                    if lose is not None and line.startswith(lose[0]):
                        self.lost.append(response)
                        lose[1]()
                        return  # closes the client's connection unanswered
                    self._lose = lose
                    client.sendall(response)
            except OSError:
                return
            finally:
                if upstream is not None:
                    upstream.close()

    def _connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
        except OSError:
            return None


def _status(code: int) -> bytes:
    body = b'{"detail": "no server behind the proxy"}'
    head = (
        f"HTTP/1.1 {code} {'Service Unavailable' if code == 503 else 'Bad Gateway'}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Retry-After: 0\r\n\r\n"
    )
    return head.encode() + body


def _read_message(sock: socket.socket, *, is_response: bool) -> bytes | None:
    """One HTTP/1.1 message with a Content-Length body (all attune and httpx send), or None
    when the peer closes first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = _content_length(_headers(head))
    if is_response and head.split(b" ", 2)[1] in (b"204", b"304"):
        length = 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _headers(head: bytes) -> Mapping[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}


def _content_length(headers: Mapping[str, str]) -> int:
    return int(headers.get("content-length", "0") or 0)
