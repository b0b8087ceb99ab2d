"""A chat product's loop around attune, end to end, with a stand-in LLM (no network).

    python examples/chat_loop.py                              # starts its own attune serve
    python examples/chat_loop.py --url http://127.0.0.1:8000 --key KEY   # or uses yours

Three users with different tastes talk to a product. Every turn the product asks attune for a
strategy (``Client.decide``), hands the directives and the conversation to its LLM (here
``StandInLLM``, which follows the directives the way an instruction-tuned model would),
shows the reply, and reports what the user did: a thumbs up or down, implicit signals
(copied, asked for something simpler or deeper, regenerated), and every fifth turn a choice
between two answers (pairwise). It prints how each user's strategy converges to the one they
want and what attune's profile of them says.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.client import Client, Decision, Retry

PRODUCT_PROMPT = "You are the assistant of Acme's learning app."
DIMENSIONS = ("depth", "tone", "format", "length")
DEPTHS = ("basics", "intermediate", "expert", "research")


@dataclass
class Persona:
    """A user and the strategy they want (hidden from attune: it learns it from feedback)."""

    name: str
    wants: dict[str, str]
    questions: list[str]
    history: list[dict[str, str]] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)  # strategy id per turn
    feedback: int = 0  # feedback events sent

    @property
    def wanted_id(self) -> str:
        return ".".join(self.wants[d] for d in DIMENSIONS)


def personas() -> list[Persona]:
    return [
        Persona(
            "mei",
            {"depth": "basics", "tone": "warm", "format": "steps", "length": "standard"},
            ["What is a variable?", "How do I start learning to code?", "What does a loop do?"],
        ),
        Persona(
            "raj",
            {"depth": "expert", "tone": "direct", "format": "code-first", "length": "brief"},
            ["How do I reverse a list in Python?", "Dedupe a Vec in Rust?", "Go context cancel?"],
        ),
        Persona(
            "lena",
            {"depth": "research", "tone": "neutral", "format": "prose", "length": "thorough"},
            ["Why does SGD converge?", "Bias of importance sampling?", "What is a kernel?"],
        ),
    ]


# ---------------------------------------------------------------------- the stand-in LLM
# Phrases of the shipped catalog's directives (English) and the style each asks for.
CUES: dict[str, dict[str, str]] = {
    "depth": {
        "no background": "basics",
        "working familiarity": "intermediate",
        "practitioner": "expert",
        "research level": "research",
    },
    "tone": {"warm": "warm", "neutral": "neutral", "be direct": "direct"},
    "format": {
        "bulleted": "bullets",
        "numbered steps": "steps",
        "code sample": "code-first",
        "paragraphs": "prose",
    },
}
OPENING = {
    "basics": "In everyday terms",
    "intermediate": "In short",
    "expert": "Precisely",
    "research": "Formally",
}
GREETING = {"warm": "Great question!", "neutral": "Here is an answer."}


class StandInLLM:
    """Answers an OpenAI-style request by following its system prompt, as a model would:
    the depth, tone and format it asks for, and as many sentences as max_tokens allows."""

    def complete(self, request: dict[str, Any]) -> str:
        system = request["messages"][0]["content"].lower()
        style = {
            dim: next((level for cue, level in cues.items() if cue in system), "")
            for dim, cues in CUES.items()
        }
        topic = request["messages"][-1]["content"].rstrip("?")
        n = max(1, int(request.get("max_tokens", 800)) // 150)  # sentences that fit
        opening = OPENING.get(style["depth"], "In short")
        sentences = [f"{opening}, point {i + 1} about {topic}." for i in range(n)]
        lines = [GREETING[style["tone"]]] if style["tone"] in GREETING else []
        if style["format"] == "bullets":
            lines += [f"- {s}" for s in sentences]
        elif style["format"] == "steps":
            lines += [f"{i + 1}. {s}" for i, s in enumerate(sentences)]
        else:
            lines += ["```", "example()", "```"] if style["format"] == "code-first" else []
            lines.append(" ".join(sentences))
        return "\n".join(lines)


def perceive(reply: str) -> dict[str, str]:
    """What a reader notices about a reply: its depth, tone, format and length."""
    lines = reply.split("\n")
    tones = {text: tone for tone, text in GREETING.items()}
    openings = OPENING.items()
    return {
        "depth": next(depth for depth, text in openings if f"{text}, point" in reply),
        "tone": tones.get(lines[0], "direct"),
        "format": "code-first"
        if "```" in lines
        else "bullets"
        if any(line.startswith("- ") for line in lines)
        else "steps"
        if any(line.startswith("1. ") for line in lines)
        else "prose",
        "length": {1: "brief", 2: "brief", 5: "standard"}.get(reply.count(", point "), "thorough"),
    }


# ---------------------------------------------------------------------- the product's loop
def turn(attune: Client, llm: StandInLLM, user: Persona, t: int, run: str) -> str:
    """One turn: a strategy from attune, the LLM's reply, the user's reaction. Every fifth
    turn the product shows two answers and the user picks one (pairwise feedback)."""
    question = user.questions[t % len(user.questions)]
    shown = 2 if t % 5 == 4 else 1
    options = [
        attune.decide(user.name, question, request_id=f"{run}-{t}-{i}") for i in range(shown)
    ]
    requests = [d.directives.request(user.history, system=PRODUCT_PROMPT) for d in options]
    replies = [llm.complete(r) for r in requests]
    best = max(range(shown), key=lambda i: matches(user, replies[i]))  # the first on a tie
    d, reply = options[best], replies[best]
    if shown == 2:
        other = options[1 - best].decision_id
        attune.feedback(user.name, d.decision_id, "pairwise", other_decision_id=other)
        user.feedback += 1
    did = react(attune, user, d, reply)
    exchange = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    user.history = [*user.history, *exchange][-4:]  # the product keeps the last two exchanges
    user.chosen.append(d.strategy.id)
    sent = requests[best]
    params = ", ".join(f"{k} {v}" for k, v in sent.items() if k != "messages")
    return (
        f"{user.name} asks {question!r}\n"
        f"  attune: {d.strategy.id} (propensity {d.propensity:.3f}, seed {d.seed})\n"
        f"  LLM: {len(sent['messages'])} messages, {params} -> "
        f"{' / '.join(reply.splitlines())[:36]!r}...\n"
        f"  {user.name}: {matches(user, reply)} of 4 as wanted -> {did}"
    )


def matches(user: Persona, reply: str) -> int:
    seen = perceive(reply)
    return sum(seen[d] == user.wants[d] for d in DIMENSIONS)


def react(attune: Client, user: Persona, d: Decision, reply: str) -> str:
    """What the user did, as the product sees it: how long they read and whether they copied
    the answer, asked for something simpler or deeper, or regenerated it (implicit signals);
    and a thumbs up or down when they feel strongly."""
    seen, n = perceive(reply), matches(user, reply)
    depth = DEPTHS.index(seen["depth"]) - DEPTHS.index(user.wants["depth"])
    signals = ["asked_simpler"] * (depth > 0) + ["asked_deeper"] * (depth < 0)
    signals += ["copied"] * (n >= 3) + ["regenerated"] * (n <= 1)
    attune.feedback(user.name, d.decision_id, "implicit", signals=signals, dwell_ms=n * 7500)
    user.feedback += 1
    did = f"implicit {signals}, read {n * 7.5:g} s"
    if n == 4 or n <= 1:
        thumbs = "up" if n == 4 else "down"
        attune.feedback(user.name, d.decision_id, "thumbs", thumbs)
        user.feedback += 1
        did += f", thumbs {thumbs}"
    return did


def wait_learned(attune: Client, user: Persona, timeout_s: float = 10.0) -> None:
    """Until attune has learned from every feedback sent (so the run is reproducible)."""
    deadline = time.monotonic() + timeout_s
    while attune.profile(user.name).evidence.feedback_events < user.feedback:
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)


# ---------------------------------------------------------------------- the report
def converged_at(user: Persona, share: float = 0.75) -> int | None:
    """The first turn from which at least ``share`` of the strategies were the wanted one
    (attune keeps exploring a little, so not all of them)."""
    for start in range(len(user.chosen)):
        rest = user.chosen[start:]
        if rest[0] == user.wanted_id and rest.count(user.wanted_id) >= share * len(rest):
            return start + 1
    return None


def report(attune: Client, users: list[Persona], turns: int) -> None:
    print(f"\ndimensions as wanted, mean of each 5 turns ({', '.join(DIMENSIONS)}):")
    print("turns   " + "".join(f"{u.name:>8s}" for u in users))
    for end in range(5, turns + 1, 5):
        row = [
            sum(
                sum(a == b for a, b in zip(s.split("."), u.wanted_id.split("."), strict=True))
                for s in u.chosen[end - 5 : end]
            )
            / 5
            for u in users
        ]
        print(f"{end - 4:>3d}-{end:<3d} " + "".join(f"{x:>8.1f}" for x in row))
    for u in users:
        at = converged_at(u)
        last = u.chosen[-20:]
        print(f"\n{u.name} wants {u.wanted_id}")
        print(f"  chosen in {last.count(u.wanted_id)} of the last {len(last)} turns", end="")
        if at is None:
            print("; not converged yet")
        else:
            rest = u.chosen[at - 1 :]
            print(f"; converged at turn {at} ({rest.count(u.wanted_id)} of {len(rest)} since)")
        p = attune.profile(u.name)
        prefs = " · ".join(
            f"{dim} {pref.preferred} ({pref.confidence:.2f})" for dim, pref in p.preferences.items()
        )
        print(f"  profile: {prefs}")
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(p.evidence.by_kind.items()))
        print(f"  evidence: {p.evidence.decisions} decisions, {kinds}")


# ---------------------------------------------------------------------- running it
def serve_locally(folder: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``attune serve`` on a free port with a temporary data folder and a fixed seed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "example-" + secrets.token_hex(12)
    settings = folder / "settings.toml"
    settings.write_text("[engine]\nrandom_state = 0\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTUNE_")}
    env["ATTUNE_API_KEYS"] = f"example:{key}"
    argv = ["serve", "--port", str(port), "--data-dir", str(folder / "data")]
    with (folder / "serve.log").open("wb") as log:  # the child keeps its own copy open
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", *argv, "--settings", str(settings)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"http://127.0.0.1:{port}", key


def run(attune: Client, turns: int, where: str) -> None:
    catalog = attune.catalog()
    users, llm, run_id = personas(), StandInLLM(), uuid.uuid4().hex[:8]
    print(f"attune chat loop: {len(users)} users x {turns} turns against {where}")
    print(f"catalog {catalog.name} v{catalog.version}: {catalog.n_arms} strategies")
    for t in range(turns):
        for user in users:
            said = turn(attune, llm, user, t, f"{run_id}-{user.name}")
            if t == 0:  # what one turn looks like
                print(f"\nturn 1, {said}")
            wait_learned(attune, user)
    report(attune, users, turns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running attune serve (default: start one)")
    parser.add_argument("--key", help="its API key (with --url)")
    parser.add_argument("--turns", type=int, default=100, help="turns per user (default 100)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="attune-example-") as tmp:
        proc = None
        url, key = args.url, args.key or ""
        if url is None:
            proc, url, key = serve_locally(Path(tmp))
        try:
            with Client(url, key, retry=Retry(attempts=5)) as attune:
                deadline = time.monotonic() + 120
                while not attune.ready():
                    if (proc and proc.poll() is not None) or time.monotonic() > deadline:
                        print((Path(tmp) / "serve.log").read_text(), file=sys.stderr)
                        raise SystemExit("attune serve did not start")
                    time.sleep(0.2)
                run(attune, args.turns, "a temporary attune serve" if proc else url)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
