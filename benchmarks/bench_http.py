"""HTTP benchmark: decision latency at fixed request rates, and the maximum sustained rate.

The server (``attune serve``: uvicorn, one worker, embedded SQLite store, learner thread) runs
in one process; the load generator runs in another and talks to it over loopback with raw
asyncio HTTP/1.1 keep-alive connections.

The generator is open-loop: request ``i`` is due at ``start + i / rate`` whatever happened to
earlier ones, and its latency is measured from that due time, not from when a connection
became free, so a server stall shows up in the percentiles instead of silently slowing the
generator down (no coordinated omission). ``decisions_per_s`` is the throughput of a
closed loop of ``--connections`` connections sending back to back.

The reference: the same generator, at the same top rate, against a bare ASGI app under the
same uvicorn that answers every request with a stored attune response (no validation, no
engine, no log). Its percentiles (``reference_p50_ms``, ``reference_p99_ms``) are this
machine's floor for the method at that moment; on a VM whose speed drifts between runs,
attune's numbers are only comparable side by side with them.

``--reference-spin-us N`` makes the reference spend N µs of CPU on every request before it
answers: a server as costly per request as attune, but always equally so and with no other
thread. Set N to attune's ``server_cpu_ms_per_request`` to tell a tail that the cost itself
explains (the reference's tail grows too) from one that its variation adds.

``--notes N`` gives each of the benchmark's users N memory notes before the server starts
(written to the store's log, so the server's recovery applies them), and every decision then
retrieves notes for its message.

    python benchmarks/bench_http.py --json [--notes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789abcdef"
MESSAGES = [
    "How do I reverse a linked list in Python?",
    "Explain gradient descent",
    "why is the sky blue",
    "Write a SQL query that counts orders per customer",
    "What is a monad?",
    "为什么天空是蓝色的？",
]
N_USERS = 1000


# ---------------------------------------------------------------------- load generator
def _requests(n: int, seed: int = 0, request_ids: bool = False) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        doc = {"user_id": f"user-{rng.integers(N_USERS)}", "message": MESSAGES[i % len(MESSAGES)]}
        if request_ids:  # unique: every request is a first attempt, looked up in the log
            doc["request_id"] = f"{seed}-{i}"
        out.append(http_request("POST", "/v1/decisions", json.dumps(doc).encode()))
    return out


def http_request(method: str, path: str, body: bytes | None = None, key: str = KEY) -> bytes:
    """One raw HTTP/1.1 keep-alive request, JSON body (if any) and bearer key included."""
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection; the response's status and body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


async def dispatch(
    queue: asyncio.Queue[Any], n: int, rate: float, start: float, lag: np.ndarray | None = None
) -> float:
    """Put ``(i, due)`` on ``queue`` at ``due = start + i / rate`` for ``i < n``: the open-loop
    schedule, which never waits for an answer, so a stall shows in latencies counted from
    ``due``. ``lag[i]`` (optional) gets how late each was put; returns when the last was."""
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((i, due))
        if lag is not None:
            lag[i] = time.perf_counter() - due
    return time.perf_counter()


async def _open_loop(
    port: int, rate: float, duration: float, connections: int, request_ids: bool = False
) -> dict:
    n = int(rate * duration)
    requests = _requests(n, seed=int(rate), request_ids=request_ids)
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    latencies = np.full(n, np.nan)
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while True:
            i, due = await queue.get()
            if i < 0:
                writer.close()
                return
            status, _ = await roundtrip(reader, writer, requests[i])
            latencies[i] = time.perf_counter() - due
            errors += status != 200

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    await dispatch(queue, n, rate, start)
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    ms = latencies[~np.isnan(latencies)] * 1e3
    return {
        "rate": rate,
        "sent": n,
        "errors": errors,
        "achieved_per_s": n / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
    }


async def _closed_loop(
    port: int, duration: float, connections: int, request_ids: bool = False
) -> dict:
    # With request ids, enough distinct requests that none repeats within the phase.
    requests = _requests(300_000 if request_ids else 4096, seed=1, request_ids=request_ids)
    done: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def worker(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status, _ = await roundtrip(reader, writer, requests[i % len(requests)])
            errors += status != 200
            done.append(time.perf_counter() - t0)
            i += connections
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(connections)))
    elapsed = time.perf_counter() - start
    ms = np.array(done) * 1e3
    return {
        "connections": connections,
        "decisions_per_s": len(done) / elapsed,
        "errors": errors,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def generate(args: argparse.Namespace) -> None:
    """The load-generator process: runs the phases and prints one JSON line.

    Each phase also reports the server's CPU time per request: unlike latency, it hardly
    depends on what else the machine is running.
    """
    out: dict = {"rates": []}
    ids = args.request_ids
    asyncio.run(_open_loop(args.port, 300, args.warmup, args.connections, ids))  # warm-up
    for rate in args.rates:
        cpu = cpu_seconds(args.server_pid)
        phase = asyncio.run(_open_loop(args.port, rate, args.duration, args.connections, ids))
        phase["server_cpu_ms_per_request"] = (
            1e3 * (cpu_seconds(args.server_pid) - cpu) / (phase["sent"])
        )
        out["rates"].append(phase)
    if args.saturate_connections:
        out["max"] = asyncio.run(
            _closed_loop(args.port, args.duration, args.saturate_connections, ids)
        )
    print(json.dumps(out))


# ---------------------------------------------------------------------- reference server
def serve_reference(port: int, body_file: str, spin_us: float = 0.0) -> None:
    """A bare ASGI app under attune's uvicorn settings, answering every request with the
    stored response body: the floor of what this benchmark can measure. ``spin_us`` makes it
    spend that much CPU on each request first, on the event loop as attune decides: a server
    with attune's cost per request, always the same and with no other thread."""
    import uvicorn

    body = Path(body_file).read_bytes()
    spin_s = spin_us / 1e6
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]

    async def app(scope: dict, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body", False):
            pass
        if spin_s:
            done = time.perf_counter() + spin_s
            while time.perf_counter() < done:
                pass
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        proxy_headers=False,
        server_header=False,
    )


def _one_decision(port: int) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/decisions",
        data=json.dumps({"user_id": "reference", "message": MESSAGES[0]}).encode(),
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        body: bytes = r.read()
    return body


def seed_notes(data_dir: str, per_user: int) -> None:
    """``per_user`` notes for each benchmark user, as profile events in the store's log."""
    from streaming.events import Event
    from streaming.sqlite.store import Store

    rng = np.random.default_rng(1)
    vocab = ["python", "list", "sql", "query", "gradient", "descent", "sky", "monad", "reverse"]
    vocab += ["orders", "customer", "天空", "蓝色", "梯度", "beginner", "engineer", "cats"]

    def text(rng: np.random.Generator) -> str:
        return " ".join(rng.choice(vocab, size=6).tolist())

    store = Store(Path(data_dir) / "attune.sqlite")
    try:
        for u in range(N_USERS):
            events = [
                Event(
                    "profile",
                    f"seed-{u}-{i}",
                    "bench",
                    f"user-{u}",
                    time.time(),
                    {
                        "op": "note",
                        "note_id": f"n{i}",
                        "pinned": i == 0,
                        "text": " ".join(rng.choice(vocab, size=6).tolist()),
                    },
                )
                for i in range(per_user)
            ]
            store.append(events, durable=False)
    finally:
        store.close()


# ---------------------------------------------------------------------- server process
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    port: int,
    data_dir: str,
    argv: list[str] | None = None,
    *,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.Popen:
    """``attune serve`` (or ``argv``) on ``port`` with the benchmark's key, once ``/readyz``
    answers 200. ``env`` adds variables; ``log`` takes the server's stderr (a long run would
    fill an unread pipe and block the server)."""
    env = dict(
        os.environ,
        ATTUNE_API_KEYS=f"bench:{KEY}",
        ATTUNE_DATA_DIR=data_dir,
        ATTUNE_PORT=str(port),
        **(env or {}),
    )
    stderr = open(log, "wb") if log is not None else subprocess.PIPE  # noqa: SIM115
    proc = subprocess.Popen(
        argv or [sys.executable, "-m", "api.cli", "serve"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    if log is not None:
        stderr.close()  # the child has its own copy
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = log.read_text() if log is not None else proc.stderr.read().decode()  # type: ignore[union-attr]
            raise RuntimeError(f"server exited: {why}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server never became ready")


def _generate(args: argparse.Namespace, port: int, pid: int, rates: list[float], **kw: Any) -> dict:
    """Run the load-generator process against ``port``; its JSON result."""
    flags = {
        "rates": ",".join(map(str, rates)),
        "duration": args.duration,
        "warmup": args.warmup,
        "connections": args.connections,
        "saturate-connections": args.saturate_connections,
        **kw,
    }
    argv = [sys.executable, __file__, "--generate", "--port", str(port), "--server-pid", str(pid)]
    for name, value in flags.items():
        argv += [f"--{name}", str(value)]
    if args.request_ids:
        argv.append("--request-ids")
    gen = subprocess.run(argv, capture_output=True, text=True, check=True)
    result: dict = json.loads(gen.stdout)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--rates", type=lambda s: [float(x) for x in s.split(",")], default=[250.0, 500.0, 1000.0]
    )
    p.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--connections", type=int, default=32, help="open-loop connection pool")
    p.add_argument("--saturate-connections", type=int, default=8)
    p.add_argument(
        "--no-reference", action="store_true", help="skip the bare-uvicorn reference phase"
    )
    p.add_argument("--notes", type=int, default=0, help="memory notes per user")
    p.add_argument(
        "--request-ids",
        action="store_true",
        help="give every decision request its own request_id (the idempotent path)",
    )
    p.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--reference-spin-us",
        type=float,
        default=0.0,
        help="the reference also spends this much CPU per request (µs), always the same",
    )
    p.add_argument("--serve-reference", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.generate:
        generate(args)
        return
    if args.serve_reference:
        serve_reference(args.port, args.serve_reference, args.reference_spin_us)
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="attune-bench-") as data_dir:
        if args.notes:
            seed_notes(data_dir, args.notes)
        server = start_server(port, data_dir)
        try:
            raw = _generate(args, port, server.pid, args.rates)
            sample = _one_decision(port)
        finally:
            server.terminate()
            server.wait(timeout=60)
        ref = None
        if not args.no_reference:
            body_file = Path(data_dir, "response.json")
            body_file.write_bytes(sample)
            port = free_port()
            argv = [sys.executable, __file__, "--serve-reference", str(body_file)]
            argv += ["--reference-spin-us", str(args.reference_spin_us)]
            server = start_server(port, data_dir, [*argv, "--port", str(port)])
            try:
                top = max(args.rates)
                ref = _generate(args, port, server.pid, [top], **{"saturate-connections": 0})
            finally:
                server.terminate()
                server.wait(timeout=60)
    result: dict = {
        "cores": os.cpu_count(),
        "notes_per_user": args.notes,
        "duration_s_per_rate": args.duration,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    for r in raw["rates"]:
        tag = int(r["rate"])
        result[f"decide_p50_ms@{tag}"] = round(r["p50_ms"], 3)
        result[f"decide_p99_ms@{tag}"] = round(r["p99_ms"], 3)
        result[f"achieved_per_s@{tag}"] = round(r["achieved_per_s"], 1)
        result[f"errors@{tag}"] = r["errors"]
        result[f"server_cpu_ms_per_request@{tag}"] = round(r["server_cpu_ms_per_request"], 3)
    result["decide_p50_ms"] = {int(r["rate"]): round(r["p50_ms"], 3) for r in raw["rates"]}
    result["decide_p99_ms"] = {int(r["rate"]): round(r["p99_ms"], 3) for r in raw["rates"]}
    if "max" in raw:  # absent with --saturate-connections 0
        result["decisions_per_s"] = round(raw["max"]["decisions_per_s"], 1)
        result["saturation"] = raw["max"]
    if ref is not None:
        [r] = ref["rates"]
        result["reference"] = {
            "what": "bare ASGI app, same uvicorn settings, stored attune response",
            "spin_us_per_request": args.reference_spin_us,
            "rate": r["rate"],
            "reference_p50_ms": round(r["p50_ms"], 3),
            "reference_p99_ms": round(r["p99_ms"], 3),
            "server_cpu_ms_per_request": round(r["server_cpu_ms_per_request"], 3),
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in raw["rates"]:
        print(
            f"{r['rate']:>7.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  errors {r['errors']}  "
            f"server CPU {r['server_cpu_ms_per_request']:.2f} ms/request"
        )
    if ref is not None:
        r = ref["rates"][0]
        print(
            f"{r['rate']:>7.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p90 {r['p90_ms']:6.2f} ms  "
            f"p99 {r['p99_ms']:6.2f} ms  max {r['max_ms']:7.2f} ms  (reference: bare uvicorn)  "
            f"server CPU {r['server_cpu_ms_per_request']:.2f} ms/request"
        )
    if "max" in raw:
        print(
            f"max sustained: {raw['max']['decisions_per_s']:.0f} decisions/s "
            f"({args.saturate_connections} connections, closed loop)"
        )


if __name__ == "__main__":
    main()
