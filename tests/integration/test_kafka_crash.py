"""Crash safety: workers SIGKILLed at random points while 10,000 events flow lose nothing and
count nothing twice: the final changelog equals a crash-free run over the same events."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import pytest

from streaming.kafka.bus import KafkaBus, KafkaConfig
from tests.integration.kafka_harness import (
    WorkerProcess,
    assert_same_state,
    changelog_state,
    reference_state,
    wait_drained,
)
from tests.loadgen import synthetic_events

pytestmark = pytest.mark.kafka

N_EVENTS = 10_000
MIN_KILLS = 10


def _produce(bus: KafkaBus, done: threading.Event) -> None:
    events = list(synthetic_events(N_EVENTS, n_users=300, random_state=7))
    for start in range(0, N_EVENTS, 100):  # paced, so the kills land mid-stream
        bus.publish(events[start : start + 100])
        time.sleep(0.06)
    done.set()


def test_sigkilled_workers_lose_and_double_count_nothing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    config = KafkaConfig(kafka_bootstrap, prefix=f"crash{uuid.uuid4().hex[:8]}", partitions=4)
    url = f"kafka://{kafka_bootstrap}?prefix={config.prefix}&partitions=4"
    bus = KafkaBus(config)
    workers = [WorkerProcess(url, f"w{i}", tmp_path, "--max-batch", "400") for i in range(2)]
    for w in workers:
        w.start()
    produced = threading.Event()
    producer = threading.Thread(target=_produce, args=(bus, produced), daemon=True)
    rng = random.Random(11)
    kills = 0
    try:
        time.sleep(3.0)  # let the first workers join before events flow
        producer.start()
        while kills < MIN_KILLS or not produced.is_set():
            time.sleep(rng.uniform(0.3, 1.2))
            victim = rng.choice(workers)
            victim.kill()
            kills += 1
            victim.start()
        producer.join()
        wait_drained(config, f"{config.prefix}.workers", timeout_s=150)
    finally:
        for w in workers:
            w.stop()
        bus.close()
    assert kills >= MIN_KILLS
    got, want = changelog_state(config), reference_state(config)
    n_users = sum(len(users) for users, _ in want.values())
    assert n_users > 200
    worst = assert_same_state(got, want)
    print(f"{kills} kills, {n_users} users equal to the crash-free run (max |diff| {worst:g})")
