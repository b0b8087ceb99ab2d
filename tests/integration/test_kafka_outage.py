"""The broker stopped during traffic: feedback gets 503 within 2 s, decisions are served from
the replica's state, a burst of feedback larger than the thread pool holds no other route, and
after the restart feedback is accepted again and the workers count every 202 once. And a
worker whose commit the stop cuts finishes its work after the restart.

The session's broker is stopped and started again (same port, same data), so this lives in its
own module like ``test_kafka_restart``.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

import streaming.kafka.worker as worker_module
from streaming.kafka.bus import KafkaBus, KafkaConfig
from streaming.kafka.worker import KafkaWorker
from tests.attune_serve import ServeProcess
from tests.integration.kafka_harness import (
    WorkerProcess,
    assert_same_state,
    changelog_state,
    fresh_bus_url,
    make_processor,
    reference_state,
)
from tests.kafka_broker import session_state_dir, start_broker, stop_broker
from tests.loadgen import synthetic_events
from tests.resending import Answer, ResendingClient, feedback_body, send_feedback

pytestmark = pytest.mark.kafka

PARTITIONS = 2
CLIENTS = 4
BURST = 120  # concurrent feedback requests: three times anyio's 40 pool threads
REPLY_S = 2.0  # the bound on a feedback answer while the broker is down
OTHER_ROUTE_S = 1.0  # a decision, or a plain route during the burst
MAX_UNSENT = 3  # each costs a second after the outage if its decision was not logged


@pytest.fixture
def broker_dir(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session broker's state dir; the broker runs again after the test, whatever
    happened in it."""
    state_dir = session_state_dir(tmp_path_factory)
    if state_dir is None:
        pytest.skip("the broker is external (ATTUNE_KAFKA_BOOTSTRAP); not ours to stop")
    yield state_dir
    start_broker(state_dir)


@pytest.fixture
def replica(kafka_bootstrap: str, tmp_path: Path) -> Iterator[ServeProcess]:
    """A worker and an API replica on fresh topics."""
    url = fresh_bus_url(kafka_bootstrap, "out", PARTITIONS)
    worker = WorkerProcess(url, "out-w0", tmp_path)
    worker.start()
    server = ServeProcess(tmp_path / "replica", env={"ATTUNE_BUS": url})
    try:
        yield server.start()
    finally:
        server.stop()
        worker.stop()


def wait_for(predicate: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``predicate`` held; fails after ``timeout_s``."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout_s, "timed out"
        time.sleep(0.1)
    return time.monotonic() - start


def accepted(http: httpx.Client, body: dict[str, Any]) -> bool:
    return send_feedback(http, body, 0.0).status == 202


def evidence(http: httpx.Client, user: str) -> int:
    r = http.get(f"/v1/users/{user}/profile")
    return int(r.json()["evidence"]["feedback_events"]) if r.status_code == 200 else -1


def burst(server: ServeProcess, pending: list[dict[str, Any]]) -> tuple[list[Answer], list[float]]:
    """``pending`` feedback sent at once, one thread each, while this thread times GET
    /v1/catalog (it runs in the thread pool) and /healthz (on the event loop) until they are
    answered; returns the feedback answers and the plain routes' latencies."""
    answers: list[Answer] = []
    go = threading.Barrier(len(pending) + 1)
    shared = server.client(timeout=30)  # one connection pool, a connection per thread

    def one(body: dict[str, Any]) -> None:
        go.wait()
        answers.append(send_feedback(shared, body, 0.0))

    threads = [threading.Thread(target=one, args=(body,)) for body in pending]
    for t in threads:
        t.start()
    latencies: list[float] = []
    with shared, server.client(timeout=30) as http:
        go.wait()
        while True:
            for path in ("/v1/catalog", "/healthz"):
                start = time.monotonic()
                assert http.get(path).status_code == 200
                latencies.append(time.monotonic() - start)
            if not any(t.is_alive() for t in threads):
                break
            time.sleep(0.02)
    for t in threads:
        t.join(30)
    return answers, latencies


@dataclass
class Outage:
    """When the broker was told to stop, was gone, was told to start and answered again."""

    stopping: float = 0.0
    down: float = 0.0
    restarting: float = 0.0
    up: float = 0.0


def warm_up(server: ServeProcess, users: list[str]) -> list[dict[str, Any]]:
    """Decisions for the burst's feedback, made before the outage; returns once the worker
    applied them (it then holds every partition)."""
    with server.client(timeout=30) as http:
        made = [
            (u, http.post("/v1/decisions", json={"user_id": u}).json()["decision_id"])
            for u in users * -(-BURST // len(users))
        ]
        wait_for(lambda: all(evidence(http, u) == 0 for u in users), 90)
    return [feedback_body(u, d, f"burst-{i}") for i, (u, d) in enumerate(made[:BURST])]


def test_a_broker_outage_answers_fast_and_loses_no_acknowledged_feedback(
    broker_dir: Path, replica: ServeProcess
) -> None:
    users = [f"user{i}" for i in range(CLIENTS)]
    pending = warm_up(replica, users)
    clients = [
        # backs off while refused
        ResendingClient(
            replica.client(timeout=30), u, max_unsent=MAX_UNSENT, pause_s=0.05, refused_pause_s=0.25
        )
        for u in users
    ]
    stop, t = threading.Event(), Outage()
    threads = [threading.Thread(target=c.run, args=(stop, time.monotonic() + 120)) for c in clients]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        t.stopping = time.monotonic()
        stop_broker(broker_dir)
        t.down = time.monotonic()
        time.sleep(1.0)
        burst_answers, plain = burst(replica, pending)
        time.sleep(max(0.0, t.down + 3.0 - time.monotonic()))
        t.restarting = time.monotonic()
        start_broker(broker_dir)
        t.up = time.monotonic()
        recovered = wait_for(
            lambda: any(a.sent > t.up and a.status == 202 for c in clients for a in c.answers), 60
        )
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(90)
    assert not any(thread.is_alive() for thread in threads), "a client is still resending"
    answers = [a for c in clients for a in c.answers]
    slowest = max(a.took for a in answers)
    print(
        f"broker stop {t.down - t.stopping:.1f}s, start {t.up - t.restarting:.1f}s, feedback "
        f"accepted again {recovered:.1f}s later; slowest feedback {slowest:.2f}s, burst "
        f"{max(a.took for a in burst_answers):.2f}s, plain routes {max(plain):.2f}s"
    )

    # While the broker is down: decisions served, feedback refused within 2 s.
    assert all(
        status == 200 and took < OTHER_ROUTE_S for c in clients for took, status in c.decisions
    )
    outage = [a for a in answers if t.down <= a.sent and a.answered <= t.restarting]
    assert len(outage) > CLIENTS and all(a.status == 503 for a in outage)
    assert all(a.took < REPLY_S for a in answers if a.status == 503)
    # The burst: every request refused within 2 s, the plain routes never held.
    assert len(burst_answers) == BURST
    assert all(a.status == 503 and a.took < REPLY_S for a in burst_answers)
    assert len(plain) >= 2 and max(plain) < OTHER_ROUTE_S
    # Only a decision served while the broker was away may be unknown afterwards (served from
    # the replica's state, not logged); feedback refused on any other was accepted later.
    assert {a.status for a in answers} <= {202, 404, 503}
    assert all(a.decided > t.stopping for a in answers if a.status == 404)
    refused = {a.event_id for a in answers if a.status == 503}
    assert refused & {a.event_id for a in answers if a.status == 202}

    with replica.client(timeout=30) as http:
        for body in pending:  # the burst's feedback, sent again now
            wait_for(partial(accepted, http, body), 30)
        want = {
            c.user: len({a.event_id for a in c.answers if a.status == 202})
            + sum(body["user_id"] == c.user for body in pending)
            for c in clients
        }

        def counted() -> dict[str, int]:
            return {u: evidence(http, u) for u in users}

        with contextlib.suppress(AssertionError):  # the assert below shows the difference
            wait_for(lambda: counted() == want, 60)
        time.sleep(2.0)  # a late duplicate would show now
        assert counted() == want


def test_a_commit_the_broker_stop_cuts_is_finished_after_the_restart(
    broker_dir: Path, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker stops while a worker commits; kafka-python's own wait for that commit
    never ends after the restart. The worker gives up on it, takes a new producer and
    applies every event once: its changelog equals a crash-free run's."""
    config = KafkaConfig(kafka_bootstrap, prefix=f"cut{uuid.uuid4().hex[:8]}", partitions=1)
    events = list(synthetic_events(400, n_users=10, random_state=1))
    bus = KafkaBus(config)
    bus.publish(events[:200])
    worker = KafkaWorker(
        make_processor, config, worker_id="cut0", static_membership=False, session_timeout_ms=6000
    )
    stop = threading.Event()
    runner = threading.Thread(target=worker.run, kwargs={"stop": stop}, daemon=True)
    cut = threading.Thread(target=start_broker, args=(broker_dir,))  # started once stopped
    end = worker_module.end_transaction
    runner.start()
    try:
        wait_for(lambda: worker.stats.events == 200, 60)

        def end_after_a_stop(producer: Any, *, commit: bool, timeout_s: float) -> None:
            if commit and not cut.ident:
                stop_broker(broker_dir)  # the batch is sent; its commit is not
                cut.start()
            end(producer, commit=commit, timeout_s=timeout_s)

        monkeypatch.setattr(worker_module, "end_transaction", end_after_a_stop)
        bus.publish(events[200:])
        wait_for(lambda: worker.stats.events >= 400, 180)
    finally:
        stop.set()
        runner.join(60)
        if cut.ident:
            cut.join(300)
        bus.close()
    assert cut.ident is not None and worker.stats.aborts >= 1  # the commit was cut
    assert not runner.is_alive()
    assert_same_state(changelog_state(config), reference_state(config))
