"""Helpers of the Kafka integration tests: worker processes, reference runs, state compare."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, TopicPartition

from bandit import Engine
from streaming.composer import RewardComposer
from streaming.events import Event, EventError
from streaming.kafka.bus import KafkaConfig
from streaming.kafka.changelog import decode_partition, read_partitions
from streaming.kafka.sealing import KeyRing
from streaming.kafka.worker import apply_in_order
from streaming.processor import Processor
from streaming.user_record import decode, unpack_array

REPO = Path(__file__).resolve().parents[2]

# The API key the replicas in these tests accept (tenant "acme").
KEY = "acme-test-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
WAIT_WINDOW_S = 30.0


def fresh_bus_url(bootstrap: str, prefix: str, partitions: int) -> str:
    """A Kafka bus URL on topics no other test uses (``prefix`` plus a random tail)."""
    return f"kafka://{bootstrap}?prefix={prefix}{uuid.uuid4().hex[:8]}&partitions={partitions}"


def make_processor(partition: int = 0) -> Processor:
    """What ``attune worker`` builds with default settings and ``wait_window_s`` 30."""
    return Processor(Engine(random_state=0), RewardComposer(), wait_window_s=WAIT_WINDOW_S)


class WorkerProcess:
    """``attune worker`` as a child process that can be SIGKILLed and restarted."""

    def __init__(self, url: str, worker_id: str, log_dir: Path, *extra: str) -> None:
        self.url, self.worker_id, self.log_dir, self.extra = url, worker_id, log_dir, extra
        self.settings = log_dir / "worker-settings.toml"
        self.settings.write_text(f"[feedback]\nwait_window_s = {WAIT_WINDOW_S}\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"{self.worker_id}.{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "worker",
                "--bus",
                self.url,
                "--worker-id",
                self.worker_id,
                "--settings",
                str(self.settings),
                "--session-timeout-ms",
                "6000",
                *self.extra,
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")},
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def end_offsets(config: KafkaConfig) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=config.servers)
    try:
        tps = [TopicPartition(config.events, p) for p in range(config.partitions)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def committed_offsets(config: KafkaConfig, group: str) -> dict[int, int]:
    # A consumer that only fetches offsets does not join the group.
    consumer = KafkaConsumer(
        bootstrap_servers=config.servers, group_id=group, enable_auto_commit=False
    )
    try:
        out = {}
        for p in range(config.partitions):
            offset = consumer.committed(TopicPartition(config.events, p))
            out[p] = -1 if offset is None else offset
        return out
    finally:
        consumer.close()


def wait_drained(config: KafkaConfig, group: str, timeout_s: float) -> dict[int, int]:
    """Wait until the group committed every event that is in the topic now."""
    ends = end_offsets(config)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = committed_offsets(config, group)
        if all(done.get(p, 0) >= end for p, end in ends.items()):
            return done
        time.sleep(0.5)
    raise AssertionError(f"not drained: committed {committed_offsets(config, group)}, ends {ends}")


class _KeepingRing(KeyRing):
    """Keeps the keys workers tombstoned on deletes: within a test their records are not
    compacted away yet, and a reference replays the erased users' events as the workers did."""

    def drop(self, key_ids: list[str]) -> None:
        pass


def read_events(config: KafkaConfig) -> dict[int, list[Event]]:
    """Every event of the events topic, per partition, in log order (malformed ones skipped),
    erased users' events included."""
    ring = _KeepingRing.loaded(config)
    consumer = KafkaConsumer(bootstrap_servers=config.servers, enable_auto_commit=False)
    out: dict[int, list[Event]] = {p: [] for p in range(config.partitions)}
    try:
        tps = [TopicPartition(config.events, p) for p in range(config.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, recs in consumer.poll(timeout_ms=200, max_records=50_000).items():
                for rec in recs:
                    with contextlib.suppress(EventError):
                        out[tp.partition].append(ring.open(rec.value))
    finally:
        consumer.close()
    return out


def reference_state(config: KafkaConfig) -> dict[int, tuple[dict[str, bytes | None], bytes]]:
    """A crash-free run over the same events: per partition, fresh processor, log order."""
    out = {}
    for p, events in read_events(config).items():
        processor = make_processor(p)
        changed, _ = apply_in_order(processor, events, p, 0.0)
        out[p] = ({k: processor.export_user(k) for k in changed}, processor.export_shared(p))
    return out


def changelog_state(config: KafkaConfig) -> dict[int, tuple[dict[str, bytes | None], bytes]]:
    snaps = read_partitions(config, list(range(config.partitions)))
    return {p: (s.users, s.shared or b"") for p, s in snaps.items()}


def assert_same_state(got: dict[int, Any], want: dict[int, Any]) -> float:
    """Users, their books and every engine array equal (arrays within float32 rounding);
    returns the largest absolute difference seen in an array."""
    worst = 0.0
    assert sorted(got) == sorted(want)
    for p in want:
        got_users, got_shared = got[p]
        want_users, want_shared = want[p]
        live_got = {k: v for k, v in got_users.items() if v is not None}
        live_want = {k: v for k, v in want_users.items() if v is not None}
        assert sorted(live_got) == sorted(live_want), f"partition {p}: different users"
        for key, raw in live_want.items():
            worst = max(worst, _compare_user(key, decode(live_got[key]), decode(raw)))
        t_got, t_want = json.loads(got_shared)["tenants"], json.loads(want_shared)["tenants"]
        assert sorted(t_got) == sorted(t_want), f"partition {p}: different tenants"
        for tenant, arrays in t_want.items():
            for name, packed in arrays.items():
                a, b = unpack_array(t_got[tenant][name]), unpack_array(packed)
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=f"{tenant} {name}")
                worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)))
    return worst


def _compare_user(key: str, got: dict[str, Any], want: dict[str, Any]) -> float:
    for field in ("counters", "seen", "seen_ts", "pending", "notes", "pins"):
        assert got[field] == want[field], f"{key}: {field} differs"
    worst = 0.0
    for name, b in want["engine"].items():
        a = got["engine"][name]
        if name == "last_seen":
            np.testing.assert_array_equal(a, b, err_msg=f"{key}: {name}")
            continue
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"{key}: {name}")
        worst = max(worst, float(np.max(np.abs(a.astype(float) - b), initial=0.0)))
    return worst


__all__ = [
    "WorkerProcess",
    "assert_same_state",
    "changelog_state",
    "decode_partition",
    "make_processor",
    "reference_state",
    "wait_drained",
]
