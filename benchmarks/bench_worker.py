"""Kafka worker benchmark: events/s of one worker on one partition, feedback-to-state latency.

    python benchmarks/bench_worker.py --json [--events 20000] [--feedback 200]
        [--bootstrap host:port]

Without ``--bootstrap`` (or ``ATTUNE_KAFKA_BOOTSTRAP``) it starts a throwaway broker with
``scripts/kafka.sh`` and stops it at the end.

- ``events_per_s``: ``--events`` synthetic events (decisions with their full logged payload,
  feedback of every scalar kind, notes) are produced to a one-partition topic first; then one
  ``KafkaWorker`` drains them, transactions (changelog records, shared model, offsets)
  included. Next to it, two ceilings measured in the same run: ``reference_events_per_s``,
  the same events applied by a bare ``Processor`` with no Kafka (decode + apply + export of
  changed users), and ``consumer_ceiling_events_per_s``, a bare kafka-python consumer
  draining the same topic with no processing at all; ``consumer_ceiling_100B_per_s`` is the
  same consumer on as many 100-byte records (what kafka-python reads when records are as
  small as they can usefully be).
- ``feedback_to_state_p50_ms`` / ``_p99_ms``: an API replica (``attune serve --bus kafka://``) takes
  decisions and feedback over HTTP; an ``attune worker`` process applies them; a second
  replica's changelog view is watched. Measured from the feedback's 202 to the moment that view
  shows the incremented ``feedback_events``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from functools import partial
from pathlib import Path

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from api.app import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402
from bandit import Engine  # noqa: E402
from streaming.composer import RewardComposer  # noqa: E402
from streaming.events import Event  # noqa: E402
from streaming.kafka.bus import KafkaBus, KafkaConfig, ensure_topics  # noqa: E402
from streaming.kafka.changelog import ChangelogMaterializer  # noqa: E402
from streaming.kafka.worker import KafkaWorker, apply_in_order  # noqa: E402
from streaming.processor import Processor  # noqa: E402
from tests.loadgen import synthetic_events  # noqa: E402

KEY = "bench-key-0123456789abcdef"


def _processor(partition: int = 0) -> Processor:
    return Processor(Engine(random_state=0), RewardComposer(), wait_window_s=600)


def throughput(bootstrap: str, n_events: int) -> dict[str, float]:
    config = KafkaConfig(bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}", partitions=1)
    events = list(synthetic_events(n_events, n_users=2000, random_state=0))
    raw = [e.to_bytes() for e in events]
    # Reference: the same work without Kafka.
    _processor().apply(events[:50])  # compile kernels outside the timings
    start = time.perf_counter()
    ref = _processor()
    decoded = [Event.from_bytes(r) for r in raw]
    changed, _ = apply_in_order(ref, decoded, 0, 0.0)
    for key in changed:
        ref.export_record(key)
    reference = n_events / (time.perf_counter() - start)

    bus = KafkaBus(config)
    for i in range(0, n_events, 5000):
        bus.publish(events[i : i + 5000])
    bus.close()
    ceiling = consumer_ceiling(config, n_events)
    tiny = KafkaConfig(bootstrap, prefix=f"tiny{uuid.uuid4().hex[:8]}", partitions=1)
    ensure_topics(tiny)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1 << 20)
    for i in range(n_events):
        producer.send(tiny.events, key=b"u%d" % (i % 2000), value=b"x" * 100)
    producer.flush()
    producer.close()
    tiny_ceiling = consumer_ceiling(tiny, n_events)
    worker = KafkaWorker(_processor, config, worker_id="bench", static_membership=False)
    while not worker.processors:  # join the group and restore (empty) before timing
        worker.step()
    start = time.perf_counter()
    while worker.stats.events < n_events:
        worker.step()
    elapsed = time.perf_counter() - start
    stats = worker.stats
    worker.close()
    return {
        "events": n_events,
        "events_per_s": round(n_events / elapsed, 1),
        "transactions": stats.batches,
        "changelog_records": stats.changelog_records,
        "reference_events_per_s": round(reference, 1),
        "consumer_ceiling_events_per_s": round(ceiling, 1),
        "consumer_ceiling_100B_per_s": round(tiny_ceiling, 1),
    }


def consumer_ceiling(config: KafkaConfig, n_events: int) -> float:
    """Records/s of a bare kafka-python consumer draining the events topic, no processing:
    what any worker built on kafka-python can reach on this machine and broker."""
    consumer = KafkaConsumer(
        bootstrap_servers=config.servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        tp = TopicPartition(config.events, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        seen = 0
        start = time.perf_counter()
        while seen < n_events:
            for records in consumer.poll(timeout_ms=200, max_records=10_000).values():
                seen += len(records)
        return n_events / (time.perf_counter() - start)
    finally:
        consumer.close()


def _has_decision(processor: Processor, key: str, decision_id: str) -> bool:
    return decision_id in processor.pending(key)


def _has_feedback(processor: Processor, key: str, before: int) -> bool:
    return int(processor.counters(key)["feedback_events"]) > before


def latency(bootstrap: str, n_feedback: int, tmp: Path) -> dict[str, float]:
    from fastapi.testclient import TestClient

    prefix = f"lat{uuid.uuid4().hex[:8]}"
    url = f"kafka://{bootstrap}?prefix={prefix}&partitions=2"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "api.cli",
            "worker",
            "--bus",
            url,
            "--worker-id",
            "lat",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")},
        stdout=subprocess.DEVNULL,  # stdout is for the results
    )
    seen: dict[str, float] = {}
    cond = threading.Condition()
    view_processor = _processor()

    def on_apply(keys: set[str]) -> None:
        now = time.perf_counter()
        with cond:
            for key in keys:
                seen[key] = now
            cond.notify_all()

    view = ChangelogMaterializer(KafkaConfig.from_url(url), view_processor, on_apply=on_apply)
    settings = Settings(api_keys={KEY: "bench"}, data_dir=tmp, warm=True, bus=url)
    auth = {"Authorization": f"Bearer {KEY}"}
    out: list[float] = []
    try:
        with TestClient(create_app(settings)) as api:
            view.start()
            view.wait_caught_up(60)
            for i in range(n_feedback + 5):
                user = f"user{i % 50}"
                key = f"bench/{user}"
                d = api.post(
                    "/v1/decisions", json={"user_id": user, "message": "hi"}, headers=auth
                ).json()["decision_id"]
                with cond:  # measure feedback alone: the decision is applied first
                    cond.wait_for(partial(_has_decision, view_processor, key, d), 60)
                    before = view_processor.counters(key)["feedback_events"]
                r = api.post(
                    "/v1/feedback",
                    json={"user_id": user, "decision_id": d, "kind": "rating", "value": 4},
                    headers=auth,
                )
                t0 = time.perf_counter()
                assert r.status_code == 202, r.text
                with cond:
                    ok = cond.wait_for(partial(_has_feedback, view_processor, key, before), 60)
                    assert ok, "feedback never reached the view"
                    if i >= 5:  # the first few include connection set-up
                        out.append((seen[key] - t0) * 1000)
    finally:
        view.close()
        worker.terminate()
        worker.wait(30)
    arr = np.array(out)
    return {
        "feedback": len(out),
        "feedback_to_state_p50_ms": round(float(np.percentile(arr, 50)), 2),
        "feedback_to_state_p99_ms": round(float(np.percentile(arr, 99)), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--feedback", type=int, default=200)
    parser.add_argument("--bootstrap", default=os.environ.get("ATTUNE_KAFKA_BOOTSTRAP"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "kafka"
        bootstrap = args.bootstrap
        if not bootstrap:
            env = dict(os.environ, KAFKA_STATE_DIR=str(state))
            bootstrap = (
                subprocess.run(
                    ["bash", str(REPO / "scripts" / "kafka.sh"), "start"],
                    env=env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
        try:
            result = {
                **throughput(bootstrap, args.events),
                **latency(bootstrap, args.feedback, Path(tmp)),
            }
        finally:
            if not args.bootstrap:
                subprocess.run(
                    ["bash", str(REPO / "scripts" / "kafka.sh"), "stop"],
                    env=dict(os.environ, KAFKA_STATE_DIR=str(state)),
                    check=False,
                    capture_output=True,
                )
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
