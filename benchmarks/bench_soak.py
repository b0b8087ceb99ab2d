"""Soak benchmark: ``attune serve`` under mixed traffic for minutes, watched for growth and loss.

The server (embedded SQLite store, decisions and feedback kept 2 minutes, users idle for 2
minutes leaving memory) runs in its own process. One asyncio process drives it open-loop at a
fixed rate over a pool of keep-alive connections (``benchmarks/bench_http.py``'s client):
request ``i`` is due at ``start + i / rate`` and its latency counts from then, so a slow
server shows as latency, not as a lower rate. The traffic (``benchmarks/soak_traffic.py``):
decisions, feedback of every kind, profile reads and 1% invalid requests that must get a 4xx,
over ``--users`` ids.

Before the timed run every user gets one decision and the learner catches up (the warm-up),
so the run measures a population the service already knows: learned state is kept by design
and grows with the number of users, not with traffic. Every few seconds the script samples the
server's RSS, the store's bytes (file and WAL: the disk it takes; the warm-up's rows leave free
pages that later rows reuse, so the pages in use are reported too) and the learner's lag, and
reads the feedback rows that reached the log since the last sample (retention deletes them
after two minutes). Growth is over the last half of the run, each end the median of the
samples in the 30 s before it. At the end the server stops, and every feedback that got a 202
must have been seen in the log.

    python benchmarks/bench_soak.py --json [--duration 600 --rate 500 --users 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_http import (
    MESSAGES,
    cpu_seconds,
    dispatch,
    free_port,
    http_request,
    roundtrip,
    start_server,
)
from benchmarks.soak_traffic import CLASSES, FOLLOW_UP, MIX, Traffic

RETENTION_S = 120
OPERATOR_KEY = "soak-operator-key-0123456789"
SERVER_ENV = {
    "ATTUNE_OPERATOR_KEYS": OPERATOR_KEY,
    "ATTUNE_RETENTION_DECISIONS_S": str(RETENTION_S),
    "ATTUNE_RETENTION_FEEDBACK_S": str(RETENTION_S),
    "ATTUNE_RETENTION_DEAD_LETTERS_S": str(RETENTION_S),
    # A decision is kept at least its wait window (it is not settled before): with the
    # default 10 minutes, retention could not remove any decision of a 10-minute run.
    "ATTUNE_WAIT_WINDOW_S": str(RETENTION_S),
    # Users idle this long leave memory (and come back from the store): with the default
    # hour, all 100,000 would stay, each one's bounded books (its last decisions, the ids it
    # applied) still filling at the end of a 10-minute run, so RSS growth could not tell a
    # leak from a cache on its way to its bound.
    "ATTUNE_IDLE_EVICT_S": str(RETENTION_S),  # --idle-evict-s changes it
}
TIMEOUT_S = 30.0
SAMPLE_S = 5.0
WINDOW_S = 30.0
TARGETS = {
    "errors_5xx": "0",
    "rss_growth_pct": "<= 10",
    "db_bytes_growth_pct": "<= 10",
    "acked_feedback_found": "all",
}


class Watch:
    """Samples of the server's RSS, the store's bytes and the learner's lag, and the feedback
    ids seen in the log."""

    def __init__(self, pid: int, port: int, store: Path) -> None:
        self.pid, self.port, self.store = pid, port, store
        # t, rss, db (file + WAL), db pages in use, learner lag (events), resident users
        self.samples: list[tuple[float, ...]] = []
        self.seen: set[str] = set()
        self._after = 0
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # a cancelled sampler's thread may still be running

    def sample(self, t: float) -> None:
        rss = _rss_bytes(self.pid)
        db = sum(os.stat(p).st_size for p in (self.store, Path(f"{self.store}-wal")) if p.exists())
        used = self.tail()
        gauges = self.gauges()
        lag, users = gauges.get("attune_learner_lag_events"), gauges.get("attune_users")
        self.samples.append(
            (t, rss, db, used, *(float("nan") if v is None else v for v in (lag, users)))
        )

    def gauges(self) -> dict[str, float]:
        """The server's unlabelled metrics (``/metrics`` with the operator key)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/metrics",
            headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        pairs = (line.split(" ") for line in text.splitlines() if line and line[0] != "#")
        return {p[0]: float(p[1]) for p in pairs if len(p) == 2 and "{" not in p[0]}

    def lag(self) -> float:
        """Events in the log the learner has not applied yet (NaN if the server did not say)."""
        return self.gauges().get("attune_learner_lag_events", float("nan"))

    def tail(self) -> float:
        """Read the feedback rows committed since the last call; the pages in use, in bytes."""
        with self._lock:
            return self._tail()

    def _tail(self) -> float:
        if self._db is None:
            self._db = sqlite3.connect(
                f"file:{self.store}?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
        rows = self._db.execute(
            "SELECT offset, event_id FROM events WHERE offset > ? AND kind='feedback'",
            (self._after,),
        ).fetchall()
        self.seen.update(event_id.removeprefix("fb:") for _, event_id in rows)
        self._after = max([self._after, *(offset for offset, _ in rows)])
        pages, free, size = (
            self._db.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("page_count", "freelist_count", "page_size")
        )
        return float((pages - free) * size)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def at(self, t: float, column: int) -> float:
        """Median of a column over the samples in the ``WINDOW_S`` before ``t``."""
        values = [s[column] for s in self.samples if t - WINDOW_S < s[0] <= t]
        return float(np.median(values)) if values else float("nan")


def _rss_bytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) * 1024
    return float("nan")


class Soak:
    """The load generator: warm-up, then the timed open-loop run (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, port: int, watch: Watch) -> None:
        self.args, self.port, self.watch = args, port, watch
        self.traffic = Traffic(args.users, args.rate, args.seed)
        n = int(args.rate * args.duration)
        rng = np.random.default_rng(args.seed + 1)
        self.slots = rng.choice(len(CLASSES), size=n, p=MIX)
        self.latency = np.full(n, np.nan)
        self.cls = np.zeros(n, dtype=np.int8)
        self.dispatch_lag = np.zeros(n)
        self.transport_errors = 0
        self.in_flight = self.max_in_flight = 0
        self.drain_s = 0.0  # from the last request's due time to the last answer
        self.start = 0.0

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def _send(self, conn: list[Any], request: bytes) -> tuple[int, bytes] | None:
        """One request; None (and a fresh connection) if it failed in transport."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                return await roundtrip(conn[0], conn[1], request)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            self.transport_errors += 1
            conn[1].close()
            conn[:] = await self._connect()
            return None

    async def warm_up(self, connections: int = 16) -> float:
        """One decision for every user, closed loop, then a wait (of at most 5 minutes) until
        the learner has applied them; returns the seconds it took."""
        t0 = time.perf_counter()
        users = iter(range(self.args.users))
        traffic = self.traffic

        async def worker() -> None:
            conn = list(await self._connect())
            for user in users:
                doc = {"user_id": f"u{user}", "message": MESSAGES[user % len(MESSAGES)]}
                out = await self._send(
                    conn, http_request("POST", "/v1/decisions", orjson.dumps(doc))
                )
                if out is not None and out[0] == 200:
                    traffic.introduce(user)
            conn[1].close()

        async def progress() -> None:
            while True:
                await asyncio.sleep(10)
                _log(f"warm-up: {len(traffic.known_ids):,} of {self.args.users:,} users")

        ticker = asyncio.create_task(progress())
        await asyncio.gather(*(worker() for _ in range(connections)))
        ticker.cancel()
        deadline = time.perf_counter() + 300
        while (lag := await asyncio.to_thread(self.watch.lag)) > 100:
            if time.perf_counter() > deadline:
                _log(f"warm-up: the learner is still {lag:,.0f} events behind; going on")
                break
            await asyncio.sleep(2)
        return time.perf_counter() - t0

    async def run(self) -> float:
        """The timed run; returns the rate at which requests were dispatched."""
        queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.args.connections)]
        await asyncio.sleep(0.2)
        self.start = start = time.perf_counter()
        sampler = asyncio.create_task(self._sample())
        n = len(self.slots)
        ended = await dispatch(queue, n, self.args.rate, start, self.dispatch_lag)
        dispatched = n / (ended - start)
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
        self.drain_s = time.perf_counter() - ended
        sampler.cancel()
        await asyncio.to_thread(self.watch.sample, time.perf_counter() - start)
        return dispatched

    async def _worker(self, queue: asyncio.Queue[tuple[int, float] | None]) -> None:
        conn = list(await self._connect())
        traffic = self.traffic
        while (item := await queue.get()) is not None:
            i, due = item
            cls, request, ctx = traffic.request(CLASSES[self.slots[i]])
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            out = await self._send(conn, request)
            self.in_flight -= 1
            self.latency[i] = time.perf_counter() - due
            self.cls[i] = CLASSES.index(cls)
            if out is not None:
                traffic.done(cls, out[0], out[1], ctx)
        conn[1].close()

    async def _sample(self) -> None:
        for k in itertools.count():
            t = time.perf_counter() - self.start
            await asyncio.to_thread(self.watch.sample, t)
            if k % 6 == 5:  # every 30 s
                self._report(t)
            await asyncio.sleep(SAMPLE_S)

    def _report(self, t: float) -> None:
        i = min(int(t * self.args.rate), len(self.slots))
        recent = slice(max(0, i - int(30 * self.args.rate)), i)
        lat, cls = self.latency[recent], self.cls[recent]
        decide = lat[(cls == 0) & ~np.isnan(lat)] * 1e3
        p99 = float(np.percentile(decide, 99)) if decide.size else float("nan")
        fives = sum(n for (_, s), n in self.traffic.statuses.items() if s >= 500)
        _, rss, db, used, lag, users = self.watch.samples[-1]
        _log(
            f"[{t:5.0f}/{self.args.duration:.0f} s] sent {i:,}  5xx {fives}  "
            f"decide p99 {p99:.1f} ms (30 s)  rss {rss / 2**20:.0f} MB  "
            f"db {db / 2**20:.0f} MB ({used / 2**20:.0f} in use)  learner lag {lag:,.0f}  "
            f"resident users {users:,.0f}  "
            f"feedback acked {len(self.traffic.acked):,}, in log {len(self.watch.seen):,}"
        )


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _ms(values: np.ndarray, q: float) -> float | None:
    values = values[~np.isnan(values)]
    return round(float(np.percentile(values, q)) * 1e3, 2) if values.size else None


def _growth(watch: Watch, column: int, duration: float, unit: float = 2**20) -> list[Any]:
    """``[mid, end, growth in %]`` of a sampled column (None where there were no samples)."""
    mid, end = watch.at(duration / 2, column), watch.at(duration + SAMPLE_S, column)
    out = [round(mid / unit, 1), round(end / unit, 1), round(100 * (end - mid) / mid, 2)]
    return [None if np.isnan(v) else v for v in out]


def summarize(soak: Soak, watch: Watch, dispatched: float, warmup_s: float, cpu: float) -> dict:
    args, traffic = soak.args, soak.traffic
    lat, cls = soak.latency, soak.cls
    statuses = traffic.statuses
    n = len(soak.slots)
    rss = _growth(watch, 1, args.duration)
    db = _growth(watch, 2, args.duration)
    used = _growth(watch, 3, args.duration)
    lag = _growth(watch, 4, args.duration, unit=1)
    resident = _growth(watch, 5, args.duration, unit=1)
    gen = resource.getrusage(resource.RUSAGE_SELF)
    found = len(traffic.acked & watch.seen)
    return {
        "duration_s": args.duration,
        "rate": args.rate,
        "users": args.users,
        "users_drawn": f"uniform over {args.users:,} ids; {FOLLOW_UP:.0%} of decisions are a "
        "follow-up turn of the user with the latest decision",
        "retention_s": RETENTION_S,
        "idle_evict_s": args.idle_evict_s,
        "warmup_s": round(warmup_s, 1),
        "sent": n,
        "achieved_rate": round(dispatched, 1),
        "dispatch_lag_p99_ms": _ms(soak.dispatch_lag, 99),
        "max_in_flight": soak.max_in_flight,
        "drain_s": round(soak.drain_s, 1),
        "requests": dict(sorted(traffic.sent.items())),
        "errors_5xx": sum(k for (_, s), k in statuses.items() if s >= 500),
        "errors_transport": soak.transport_errors,
        "invalid_4xx": sum(k for (c, s), k in statuses.items() if c == "invalid" and s < 500),
        "unexpected_status": traffic.unexpected(),
        "decide_p50_ms": _ms(lat[cls == 0], 50),
        "decide_p99_ms": _ms(lat[cls == 0], 99),
        "feedback_p99_ms": _ms(lat[cls == 1], 99),
        "profile_p99_ms": _ms(lat[cls == 2], 99),
        "rss_mb_mid": rss[0],
        "rss_mb_end": rss[1],
        "rss_growth_pct": rss[2],
        "db_mb_mid": db[0],
        "db_mb_end": db[1],
        "db_bytes_growth_pct": db[2],
        "db_in_use_mb_mid": used[0],
        "db_in_use_mb_end": used[1],
        "db_in_use_growth_pct": used[2],
        "learner_lag_mid": lag[0],
        "learner_lag_end": lag[1],
        "resident_users_mid": resident[0],
        "resident_users_end": resident[1],
        "acked_feedback": len(traffic.acked),
        "acked_feedback_found": found,
        "server_cpu_ms_per_request": round(1e3 * cpu / n, 3),
        "generator_cpu_s": round(gen.ru_utime + gen.ru_stime, 1),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "targets": TARGETS,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of timed load")
    p.add_argument("--rate", type=float, default=500.0, help="requests per second")
    p.add_argument("--users", type=int, default=100_000, help="distinct user ids")
    p.add_argument(
        "--connections",
        type=int,
        default=256,
        help="open-loop connection pool (large: a slow kind of request must not hold up others)",
    )
    p.add_argument(
        "--idle-evict-s",
        type=float,
        default=float(RETENTION_S),
        help="users idle this long leave the server's memory (attune's default is 3600)",
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the decision for every user")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=Path, help="write the samples as CSV")
    p.add_argument("--keep", action="store_true", help="keep the data folder and print its path")
    args = p.parse_args()
    data_dir = tempfile.mkdtemp(prefix="attune-soak-")
    store = Path(data_dir, "attune.sqlite")
    port = free_port()
    env = {**SERVER_ENV, "ATTUNE_IDLE_EVICT_S": str(args.idle_evict_s)}
    server = start_server(port, data_dir, env=env, log=Path(data_dir, "server.log"))
    watch = Watch(server.pid, port, store)
    try:
        soak = Soak(args, port, watch)
        warmup_s = 0.0 if args.no_warmup else asyncio.run(soak.warm_up())
        cpu0 = cpu_seconds(server.pid)
        dispatched = asyncio.run(soak.run())
        cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            _log("the server did not stop within 120 s; killed")
            server.kill()
            server.wait()
    watch.tail()  # what reached the log since the last sample
    watch.close()
    result = summarize(soak, watch, dispatched, warmup_s, cpu)
    log_text = Path(data_dir, "server.log").read_text(errors="replace")
    lines = [line for line in log_text.splitlines() if line.strip()]
    result["server_log_lines"] = len(lines)  # warnings and errors only (--keep keeps the log)
    result["server_log_errors"] = sum(x.startswith("ERROR") or "Traceback" in x for x in lines)
    if args.samples:
        rows = ["t_s,rss_bytes,db_bytes,db_in_use_bytes,learner_lag,resident_users"]
        rows += [",".join(f"{v:.1f}" for v in s) for s in watch.samples]
        args.samples.write_text("\n".join(rows) + "\n")
    if args.keep:
        _log(f"data folder kept: {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:>28}  {value}")


if __name__ == "__main__":
    main()
