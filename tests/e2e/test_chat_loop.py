"""``examples/chat_loop.py``, run as the README says: it starts its own ``attune serve``, and
its users converge to the strategies they want; it also runs against a server given by URL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.attune_serve import KEY, REPO, ServeProcess

WANTS = {
    "mei": "basics.warm.steps.standard",
    "raj": "expert.direct.code-first.brief",
    "lena": "research.neutral.prose.thorough",
}


def _run(*args: str, timeout: float = 600) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "examples/chat_loop.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_the_example_converges_as_the_readme_shows() -> None:
    out = _run()
    assert out.startswith("attune chat loop: 3 users x 100 turns against a temporary attune")
    for user, wanted in WANTS.items():
        summary = re.search(
            rf"^{user} wants {re.escape(wanted)}\n"
            r"  chosen in (\d+) of the last 20 turns; converged at turn (\d+) .*\n"
            r"  profile: (.*)\n"
            r"  evidence: 120 decisions, implicit (\d+), pairwise (\d+), thumbs (\d+)$",
            out,
            re.M,
        )
        assert summary is not None, f"{user}'s summary is missing or unconverged:\n{out}"
        chosen, at = int(summary[1]), int(summary[2])
        assert chosen >= 12 and at <= 80, summary[0]
        preferred = re.findall(r"(\w+) ([\w-]+) \(\d\.\d\d\)", summary[3])
        assert ".".join(level for _, level in preferred) == wanted  # the profile says it too
        assert int(summary[4]) == 100 and int(summary[5]) == 20 and int(summary[6]) > 0
    last = re.search(r"^ 96-100 +([\d.]+) +([\d.]+) +([\d.]+)$", out, re.M)
    assert last is not None and all(float(x) >= 3.0 for x in last.groups())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "python examples/chat_loop.py" in readme
    assert "attune chat loop: 3 users x 100 turns against a temporary attune serve" in readme


def test_the_example_runs_against_a_given_server(tmp_path: Path) -> None:
    server = ServeProcess(tmp_path / "data").start()
    try:
        out = _run("--url", server.url, "--key", KEY, "--turns", "5")
    finally:
        server.stop()
    assert f"against {server.url}" in out and "turn 1, mei asks" in out
    assert re.search(r"^  1-5 +[\d.]+ +[\d.]+ +[\d.]+$", out, re.M)
