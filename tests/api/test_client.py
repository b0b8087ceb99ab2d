"""``api.client`` against real ``attune serve`` processes: every endpoint, sync and async;
the error types; retries across a server restart that leave one decision and one feedback."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.client import (
    AsyncClient,
    AttuneError,
    Client,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Retry,
    ServerError,
    Unauthorized,
    Unavailable,
)
from tests.attune_serve import KEY, REPO, FrontProxy, ServeProcess, free_port

SETTINGS = """
[[context.features]]
name = "role"
kind = "categorical"
scope = "user"
levels = ["engineer", "student"]
"""
FAST = Retry(attempts=3, backoff_s=0.01, max_backoff_s=0.05)
HISTORY = [
    {"role": "system", "content": "You are Acme's assistant."},
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "Hello! How can I help?"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    proc = ServeProcess(tmp_path_factory.mktemp("client") / "data", settings=SETTINGS).start()
    yield proc
    proc.stop()


@pytest.fixture
def attune(server: ServeProcess) -> Iterator[Client]:
    with Client(server.url, KEY, retry=FAST) as client:
        yield client


def test_every_endpoint(attune: Client) -> None:
    catalog = attune.catalog()
    assert catalog.name == "attune-default" and catalog.n_arms == len(catalog.arms) == 128
    assert catalog.dimensions["length"] == ("brief", "standard", "thorough")
    assert attune.ready()

    d = attune.decide("sync-ana", "How do I reverse a list?", features={"role": "engineer"})
    assert d.strategy.id in catalog.arms and 0 < d.propensity <= 1
    assert isinstance(d.seed, int) and d.request_id and d.explanation
    assert d.directives.openai["messages"][-1]["content"] == "How do I reverse a list?"
    req = d.directives.request(HISTORY)  # the product's history merged in, client-side
    assert [m["role"] for m in req["messages"]] == ["system", "user", "assistant", "user"]
    assert req["messages"][0]["content"].startswith(d.directives.system_prompt)
    assert req["messages"][0]["content"].endswith("You are Acme's assistant.")
    anthropic = d.directives.request(HISTORY, shape="anthropic")
    assert anthropic["messages"][-1] == {"role": "user", "content": "How do I reverse a list?"}
    assert (
        d.directives.generation("responses")["max_output_tokens"]
        == d.directives.params["max_tokens"]
    )
    other = attune.decide("sync-ana", "And a tuple?")

    receipts = [
        attune.feedback("sync-ana", d.decision_id, "thumbs", "up"),
        attune.feedback("sync-ana", d.decision_id, "rating", 4),
        attune.feedback("sync-ana", d.decision_id, "reward", 0.7),
        attune.feedback("sync-ana", d.decision_id, "implicit", signals=["copied"], dwell_ms=9000),
        attune.feedback("sync-ana", d.decision_id, "pairwise", other_decision_id=other.decision_id),
    ]
    assert [r.status for r in receipts] == ["accepted"] * 5
    again = attune.feedback(
        "sync-ana", d.decision_id, "thumbs", "up", event_id=receipts[0].event_id
    )
    assert again.status == "duplicate"

    prof = attune.update_profile("sync-ana", pins={"length": "brief"})
    assert prof.pins == {"length": "brief"} and prof.features == {"role": "engineer"}
    assert set(prof.preferences) == set(catalog.dimensions)
    prof = attune.profile("sync-ana")
    assert prof.evidence.decisions == 2 and prof.pins == {"length": "brief"}
    assert attune.decide("sync-ana", "x").strategy.levels["length"] == "brief"

    export = attune.export("sync-ana")
    assert export.tenant == "acme" and export.profile.user_id == "sync-ana"
    kinds = [e["kind"] for e in export.events]
    assert kinds.count("decision") == 3 and kinds.count("feedback") == 5

    attune.delete_user("sync-ana")
    with pytest.raises(NotFound):
        attune.profile("sync-ana")


def test_every_endpoint_async(server: ServeProcess) -> None:
    async def run() -> dict[str, Any]:
        async with AsyncClient(server.url, KEY, retry=FAST) as a:
            catalog = await a.catalog()
            d, e = await asyncio.gather(
                a.decide("async-bo", "Explain recursion", locale="ja"),
                a.decide("async-bo", "Explain iteration", locale="ja"),
            )
            fb = await a.feedback("async-bo", d.decision_id, "thumbs", "down")
            pair = await a.feedback(
                "async-bo", d.decision_id, "pairwise", other_decision_id=e.decision_id
            )
            patched = await a.update_profile("async-bo", pins={"tone": "warm"})
            prof = await a.profile("async-bo")
            export = await a.export("async-bo")
            await a.delete_user("async-bo")
            try:
                await a.profile("async-bo")
                gone = False
            except NotFound:
                gone = True
            return locals()

    out = asyncio.run(run())
    assert out["d"].directives.locale == "ja" and out["d"].decision_id != out["e"].decision_id
    assert out["d"].strategy.id in out["catalog"].arms
    assert out["fb"].status == out["pair"].status == "accepted"
    assert out["patched"].pins == {"tone": "warm"} and out["prof"].evidence.decisions == 2
    assert [ev["kind"] for ev in out["export"].events].count("feedback") == 2
    assert out["gone"]


def _closed_port_client() -> Client:
    return Client(f"http://127.0.0.1:{free_port()}", KEY, retry=FAST)


Call = Callable[[Client, ServeProcess], Any]
ERRORS: list[tuple[str, Call, type[AttuneError], str, tuple[str, ...]]] = [
    ("no key", lambda c, s: Client(s.url, "").decide("a"), Unauthorized, "401 missing bearer", ()),
    (
        "unknown key",
        lambda c, s: Client(s.url, "nope-nope-nope").profile("a"),
        Forbidden,
        "403",
        (),
    ),
    ("unknown user", lambda c, s: c.profile("nobody"), NotFound, "404 unknown user 'nobody'", ()),
    (
        "unknown decision",
        lambda c, s: c.feedback("ana", "d_missing", "thumbs", "up"),
        NotFound,
        "unknown decision 'd_missing'",
        (),
    ),
    ("empty user", lambda c, s: c.decide(""), InvalidRequest, "422 invalid request", ("user_id",)),
    (
        "bad constraint",
        lambda c, s: c.decide("ana", constraints={"length": "huge"}),
        InvalidRequest,
        r"constraints\.length: .*unknown level 'huge'",
        ("constraints.length",),
    ),
    (
        "bad rating",
        lambda c, s: c.feedback("ana", "d_x", "rating", 9),
        InvalidRequest,
        "less than or equal to 5",
        ("rating.value",),
    ),
    (
        "bad pin",
        lambda c, s: c.update_profile("ana", pins={"mood": "happy"}),
        InvalidRequest,
        "unknown dimension 'mood'",
        ("pins.mood",),
    ),
    ("too large", lambda c, s: c.decide("ana", "x" * 70_000), PayloadTooLarge, "413", ()),
    (
        "nobody listening",
        lambda c, s: _closed_port_client().catalog(),
        Unavailable,
        r"GET /v1/catalog: attune unavailable after 3 attempts \(ConnectError",
        (),
    ),
]


@pytest.mark.parametrize("name,call,error,pattern,fields", ERRORS, ids=[r[0] for r in ERRORS])
def test_error_types(
    attune: Client,
    server: ServeProcess,
    name: str,
    call: Call,
    error: type[AttuneError],
    pattern: str,
    fields: tuple[str, ...],
) -> None:
    with pytest.raises(error, match=pattern) as info:
        call(attune, server)
    assert type(info.value) is error
    assert getattr(info.value, "fields", ()) == fields


def test_503_is_retried_then_unavailable_and_502_is_not_retried() -> None:
    proxy = FrontProxy(free_port())  # nothing behind it
    try:
        with Client(proxy.url, KEY, retry=FAST) as client, pytest.raises(Unavailable) as info:
            client.decide("ana", "hi")
        assert info.value.status == 503 and info.value.attempts == 3
        assert proxy.unavailable == 3
        proxy.status_when_down = 502
        with Client(proxy.url, KEY, retry=FAST) as client, pytest.raises(ServerError, match="502"):
            client.decide("ana", "hi")
        assert proxy.unavailable == 4  # one attempt: a 502 is not retried
    finally:
        proxy.close()


def _restart_while_retrying(server: ServeProcess) -> Callable[[], None]:
    """Stop the server now (the lost answer's client is still waiting), start it again in the
    background: the client's retries meet the proxy's 503s, then the new process."""

    def then() -> None:
        server.stop()
        threading.Thread(target=server.start, daemon=True).start()

    return then


def test_retries_across_a_restart_log_one_decision_and_one_feedback(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data").start()
    proxy = FrontProxy(server.port)
    patient = Retry(attempts=200, backoff_s=0.05, max_backoff_s=0.5, deadline_s=120)
    try:
        with Client(proxy.url, KEY, retry=patient) as attune:
            first_pid = server.pid
            proxy.lose_response("POST /v1/decisions", _restart_while_retrying(server))
            d = attune.decide("ana", "Explain closures")
            assert server.pid != first_pid and server.starts == 2
            [lost] = proxy.lost
            was = json.loads(lost.partition(b"\r\n\r\n")[2])
            # the answer the client never got is the one it got after the restart
            assert (d.decision_id, d.strategy.id, d.propensity, d.seed) == (
                was["decision_id"],
                was["strategy"]["id"],
                was["propensity"],
                was["seed"],
            )
            decision_retries = proxy.unavailable
            assert decision_retries > 0  # the client did meet the restart

            proxy.lose_response("POST /v1/feedback", _restart_while_retrying(server))
            receipt = attune.feedback("ana", d.decision_id, "thumbs", "up")
            assert receipt.status == "duplicate"  # the first attempt was logged before the loss
            assert server.starts == 3 and proxy.unavailable > decision_retries

            proxy.lose_response("PATCH /v1/users/ana/profile", lambda: None)
            assert attune.update_profile("ana", pins={"length": "brief"}).pins == {
                "length": "brief"
            }
            proxy.lose_response("DELETE /v1/users/bo", lambda: None)
            attune.decide("bo", "hi")
            attune.delete_user("bo")  # the retry finds bo gone: done, not NotFound

            events = attune.export("ana").events
            assert [e["event_id"] for e in events if e["kind"] == "decision"] == [d.decision_id]
            assert [e["event_id"] for e in events if e["kind"] == "feedback"] == [
                "fb:" + receipt.event_id
            ]
            assert len([e for e in events if e["kind"] == "profile"]) == 1
            assert attune.profile("ana").evidence.feedback_events == 1
            assert len(proxy.lost) == 4
    finally:
        proxy.close()
        server.stop()


def test_the_async_client_retries_a_lost_answer_without_a_second_decision(
    server: ServeProcess,
) -> None:
    proxy = FrontProxy(server.port)

    async def run() -> tuple[Any, Any, Any]:
        async with AsyncClient(proxy.url, KEY, retry=FAST) as a:
            proxy.lose_response("POST /v1/decisions")
            d = await a.decide("async-cy", "hi")
            proxy.lose_response("POST /v1/feedback")
            receipt = await a.feedback("async-cy", d.decision_id, "rating", 5)
            return d, receipt, await a.export("async-cy")

    try:
        d, receipt, export = asyncio.run(run())
    finally:
        proxy.close()
    assert json.loads(proxy.lost[0].partition(b"\r\n\r\n")[2])["decision_id"] == d.decision_id
    assert receipt.status == "duplicate" and len(proxy.lost) == 2
    assert [e["kind"] for e in export.events] == ["decision", "feedback"]


def test_the_client_imports_without_the_engine() -> None:
    code = (
        "import sys, api.client; "
        "print(sorted(m for m in ('bandit', 'numpy', 'numba', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_readme_client_example_runs(
    server: ServeProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    [block] = re.findall(r"```python client\n(.*?)```", readme, re.S)
    exec(compile(block, "README.md client example", "exec"), {"URL": server.url, "KEY": KEY})
    out = capsys.readouterr().out
    assert "GET /v1/users/nobody/profile: 404 unknown user 'nobody'" in out
