"""The featurizer is deterministic and reads what it claims to read."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from bandit import FEATURE_NAMES, featurize


def col(x: np.ndarray, name: str) -> float:
    return float(x[FEATURE_NAMES.index(name)])


@pytest.mark.parametrize(
    "message,feature",
    [
        ("How do I reverse a list?", "asks_how"),
        ("Why is the sky blue?", "asks_why"),
        ("What is a monad?", "asks_what"),
        ("Write a haiku about rust", "asks_task"),
        ("为什么天空是蓝色的？", "asks_why"),
        ("파이썬에서 리스트를 어떻게 정렬하나요?", "asks_how"),
        ("```python\nprint(1)\n```", "has_code"),
        ("def f(x):\n    return x", "has_code"),
        ("東京はどうやって行きますか", "script_kana"),
        ("안녕하세요", "script_hangul"),
        ("你好世界", "script_han"),
    ],
)
def test_reads_the_message(message: str, feature: str) -> None:
    assert col(featurize([message])[0], feature) > 0.5


def test_plain_prose_is_not_code_or_technical() -> None:
    x = featurize(["Tell me a story about a dragon and a princess"])[0]
    assert col(x, "has_code") == 0 and col(x, "technicality") < 0.2
    assert (
        col(featurize(["Explain gradient descent for a neural network model"])[0], "technicality")
        > 0.3
    )


def test_deterministic_across_processes() -> None:
    msg = "Explain the attention mechanism"
    here = featurize([msg])[0].tolist()
    code = f"from bandit import featurize; print(featurize([{msg!r}])[0].tolist())"
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    ).stdout
    assert eval(there) == here


def test_shapes_empty_and_extra_features() -> None:
    assert featurize([]).shape == (0, len(FEATURE_NAMES))
    empty = featurize([""])[0]
    assert empty[0] == 1 and empty[1:].sum() == 0
    plain, extra = featurize(["hi", "hi"], [None, {"channel_voice": 1.0}])
    assert not np.array_equal(plain, extra) and np.array_equal(plain[:12], extra[:12])
    with pytest.raises(ValueError, match=r"extra: expected 1 entries, got 2"):
        featurize(["hi"], [None, None])
