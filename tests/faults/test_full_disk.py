"""A full disk during traffic: feedback gets 503 (never 202) while the store cannot write,
decisions are still served, every 202 is in the log once, and the service recovers by itself
when space returns.

The disk is made full on the store's own connection with SQLite's ``max_page_count`` (the
database may not grow past the pages it has), the real store, learner and app otherwise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi.testclient import TestClient

from streaming.sqlite.backend import EmbeddedBackend
from streaming.sqlite.store import Store
from tests.api.conftest import ACME, service_of, wait_learner, wait_until
from tests.resending import ResendingClient

CLIENTS = 8
NORMAL_S, FULL_S, AFTER_S = 1.0, 2.0, 1.0


def _set_max_pages(store: Store, pages: int | None) -> int:
    """Cap the database at ``pages`` (None: at the pages it has now); returns the cap. On the
    store's connection, under its lock, like any of its statements."""
    with store._lock:
        if pages is None:
            [(pages,)] = store._db.execute("PRAGMA page_count").fetchall()
        [(cap,)] = store._db.execute(f"PRAGMA max_page_count={pages}").fetchall()
    return int(cap)


def test_a_full_disk_during_traffic_loses_no_acknowledged_feedback(
    make_client: Callable[..., TestClient],
) -> None:
    http = make_client()
    backend = service_of(http).backend
    assert isinstance(backend, EmbeddedBackend)
    store = backend.store
    clients = [ResendingClient(http, f"u{i}", headers=ACME) for i in range(CLIENTS)]
    stop = threading.Event()
    threads = [threading.Thread(target=c.run, args=(stop, time.monotonic() + 60)) for c in clients]
    for t in threads:
        t.start()
    try:
        time.sleep(NORMAL_S)
        _set_max_pages(store, None)
        # Full from the first write that finds no page; decisions keep the queue growing,
        # so once it fails every later transaction (each commits the queue first) fails too.
        assert wait_until(lambda: not store.writable, timeout=5)
        full_from = time.monotonic()
        time.sleep(FULL_S)
        assert http.get("/healthz").status_code == 200  # alive: nothing to restart
        assert http.get("/readyz").json()["writable"] is False
        full_until = time.monotonic()
        _set_max_pages(store, 1_073_741_823)
        time.sleep(AFTER_S)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not any(t.is_alive() for t in threads), "a client is still resending"

    answers = [a for c in clients for a in c.answers]
    # Decisions are served throughout: the disk only delays their logging.
    assert all(status == 200 for c in clients for _, status in c.decisions)
    assert {a.status for a in answers} <= {202, 503}, sorted({a.status for a in answers})
    during = [a for a in answers if full_from <= a.sent and a.answered <= full_until]
    assert len(during) > 10 * CLIENTS  # the full window saw traffic
    assert all(a.status == 503 for a in during), "a 202 while the store could not write"
    assert all(a.retry_after == "1" for a in answers if a.status == 503)
    refused = {a.event_id for a in answers if a.status == 503}
    assert len(refused) > CLIENTS
    # Recovery without a restart: every feedback refused while full got its 202 afterwards,
    # as new (a 503 wrote nothing), and so did feedback sent after space returned.
    accepted = [a for a in answers if a.status == 202]
    assert refused <= {a.event_id for a in accepted}
    assert all(a.body["status"] == "accepted" for a in accepted)
    assert any(a.sent > full_until for a in accepted if a.event_id not in refused)
    assert wait_until(lambda: http.get("/readyz").status_code == 200)

    # Every acknowledged feedback is in the log once and learned once.
    wait_learner(http)
    for c in clients:
        acked = sorted(a.event_id for a in c.answers if a.status == 202)
        logged = sorted(
            e.event_id.removeprefix("fb:")
            for e in store.iter_events(kinds=["feedback"], tenant="acme", user_id=c.user)
        )
        assert logged == acked, c.user
        r = http.get(f"/v1/users/{c.user}/profile", headers=ACME)
        assert r.json()["evidence"]["feedback_events"] == len(acked), c.user
