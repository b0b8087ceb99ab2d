"""How long the log keeps what it no longer needs: one policy for both backends.

Learned state (user records, the shared model, API keys) is kept; what retention removes is
the raw log: decisions once they are settled (feedback came, or the wait window passed) and
older than ``decisions_s``, feedback older than ``feedback_s``, dead letters (the embedded
store's quarantine table, Kafka's dead-letter topic) older than ``dead_letters_s``. A value of
0 keeps that kind forever. The embedded store compacts in a background thread
(``streaming.sqlite.retention``); on Kafka the topics' ``retention.ms`` does it, and
``erasure_s`` bounds how long an erased user's superseded records (and their tombstones) may
stay in the compacted topics.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionPolicy:
    """Seconds each kind of log record is kept (0: forever), and how often compaction runs.

    Examples
    --------
    >>> RetentionPolicy(decisions_s=120).keep_s("decision", wait_window_s=600)
    600.0
    >>> RetentionPolicy(feedback_s=0).keep_s("feedback", wait_window_s=600) is None
    True
    """

    decisions_s: float = 30 * DAY_S
    feedback_s: float = 30 * DAY_S
    dead_letters_s: float = 7 * DAY_S
    interval_s: float = 60.0
    erasure_s: float = DAY_S

    def __post_init__(self) -> None:
        for name in ("decisions_s", "feedback_s", "dead_letters_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"retention.{name} must be >= 0 (0 keeps forever), got {value}")
        if not self.interval_s > 0:
            raise ValueError(f"retention.interval_s must be > 0, got {self.interval_s}")
        if not self.erasure_s > 0:
            raise ValueError(f"retention.erasure_s must be > 0, got {self.erasure_s}")

    def keep_s(self, kind: str, *, wait_window_s: float) -> float | None:
        """How long events of ``kind`` stay in the log (None: forever). A decision stays at
        least its wait window: until then it is not settled."""
        if kind == "decision":
            return float(max(self.decisions_s, wait_window_s)) if self.decisions_s else None
        if kind == "feedback":
            return float(self.feedback_s) if self.feedback_s else None
        return None  # profile events are few and say what the user chose

    @property
    def events_s(self) -> float | None:
        """What a log that cannot tell kinds apart (a Kafka topic) keeps: the longest."""
        if not self.decisions_s or not self.feedback_s:
            return None
        return float(max(self.decisions_s, self.feedback_s))
