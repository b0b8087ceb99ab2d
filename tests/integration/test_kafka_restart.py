"""A broker restart mid-stream loses nothing that was acknowledged.

It restarts the session's broker (same port, same data), so it lives in its own module; tests
that run after it just see a broker that was restarted.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from streaming.kafka.bus import KafkaBus, KafkaConfig
from streaming.kafka.worker import KafkaWorker
from tests.integration.kafka_harness import (
    assert_same_state,
    changelog_state,
    make_processor,
    read_events,
    reference_state,
    wait_drained,
)
from tests.kafka_broker import restart_broker, session_state_dir
from tests.loadgen import synthetic_events

pytestmark = pytest.mark.kafka

N_EVENTS = 4000


def test_broker_restart_loses_nothing_acknowledged(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state_dir = session_state_dir(tmp_path_factory)
    if state_dir is None:
        pytest.skip("the broker is external (ATTUNE_KAFKA_BOOTSTRAP); not ours to restart")
    config = KafkaConfig(kafka_bootstrap, prefix=f"rs{uuid.uuid4().hex[:8]}", partitions=2)
    bus = KafkaBus(config)
    events = list(synthetic_events(N_EVENTS, n_users=100, random_state=5))
    acked: list[str] = []
    failed: list[str] = []
    stop = threading.Event()
    workers = [
        KafkaWorker(
            make_processor,
            config,
            worker_id=f"rs{i}",
            max_batch=200,
            static_membership=False,
            session_timeout_ms=6000,
        )
        for i in range(2)
    ]
    threads = [threading.Thread(target=w.run, kwargs={"stop": stop}) for w in workers]
    for t in threads:
        t.start()

    def produce() -> None:
        for start in range(0, N_EVENTS, 50):
            chunk = events[start : start + 50]
            try:
                bus.publish(chunk)
                acked.extend(e.event_id for e in chunk)
            except Exception:
                failed.extend(e.event_id for e in chunk)
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        time.sleep(2.0)
        t0 = time.monotonic()
        restart_broker(state_dir)
        t1 = time.monotonic()
        producer.join(180)
        t2 = time.monotonic()
        assert len(acked) > N_EVENTS // 2
        wait_drained(config, f"{config.prefix}.workers", timeout_s=120)
        print(
            f"restart {t1 - t0:.1f}s, producer {t2 - t1:.1f}s, drain {time.monotonic() - t2:.1f}s"
        )
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        bus.close()
    in_log = {e.event_id for evs in read_events(config).values() for e in evs}
    assert set(acked) <= in_log
    want = reference_state(config)
    assert_same_state(changelog_state(config), want)
    feedback_applied = sum(
        __import__("json").loads(v)["counters"]["feedback_events"]
        for users, _ in want.values()
        for v in users.values()
        if v
    )
    assert feedback_applied > 0
    print(
        f"acked {len(acked)}, failed {len(failed)}, aborts {sum(w.stats.aborts for w in workers)}"
    )
