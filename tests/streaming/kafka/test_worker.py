"""apply_in_order: the worker's state after an offset must not depend on batch boundaries
(what makes a restored partition replay to exactly the crash-free state). No broker needed."""

from __future__ import annotations

import itertools

import numpy as np

from bandit import Engine
from streaming.composer import RewardComposer
from streaming.kafka.worker import apply_in_order
from streaming.processor import Processor
from tests.loadgen import synthetic_events


def _processor() -> Processor:
    # A short wait window, so default rewards expire in the middle of the stream.
    return Processor(Engine(random_state=0), RewardComposer(), wait_window_s=2.0)


def _run(events: list, cuts: list[int], restore_at_cuts: bool) -> dict:
    processor, watermark = _processor(), 0.0
    changed: set[str] = set()
    bounds = [0, *cuts, len(events)]
    for lo, hi in itertools.pairwise(bounds):
        if restore_at_cuts and lo:
            # A new worker takes over: fresh processor, state from the "changelog".
            fresh = _processor()
            fresh.import_shared(0, processor.export_shared(0))
            for key in changed:
                data = processor.export_user(key)
                if data is not None:
                    fresh.import_user(key, data, partition=0)
            processor = fresh
        step, watermark = apply_in_order(processor, events[lo:hi], 0, watermark)
        changed |= step
    return {key: processor.export_user(key) for key in sorted(changed)}


def test_batch_boundaries_and_restores_do_not_change_the_result() -> None:
    events = list(synthetic_events(1500, n_users=20, step_s=0.05, random_state=4))
    whole = _run(events, [], restore_at_cuts=False)
    rng = np.random.default_rng(0)
    cuts = sorted(rng.choice(np.arange(1, len(events)), size=12, replace=False).tolist())
    assert _run(events, cuts, restore_at_cuts=False) == whole
    assert _run(events, cuts, restore_at_cuts=True) == whole


def test_pending_decisions_expire_by_event_time() -> None:
    events = list(synthetic_events(1500, n_users=20, step_s=0.05, random_state=4))
    processor = _processor()
    apply_in_order(processor, events, 0, 0.0)
    defaults = sum(processor.counters(k)["default_rewards"] for k in processor.books)
    assert defaults > 0
