"""A transactional producer's blocking calls, with a bound on the wait.

kafka-python's ``send_offsets_to_transaction``, ``commit_transaction`` and
``abort_transaction`` wait for the transaction coordinator without a timeout. A broker that
stops during a commit and comes back can leave that wait without an end: kafka-python 3.0
finds the coordinator again but does not send the pending ``EndTxn`` again, so a worker would
stop applying events for good while looking alive. These calls wait at most ``timeout_s`` and
raise ``KafkaTimeoutError``; the worker then drops the producer, and the next one, with the
same transactional id, ends the open transaction in ``init_transactions``.

They are kafka-python's own three methods with a timeout passed to the final wait (through the
producer's transaction manager, which those methods call).
"""

from __future__ import annotations

from typing import Any

from kafka.errors import KafkaTimeoutError

__all__ = ["end_transaction", "send_offsets"]


def send_offsets(producer: Any, offsets: Any, group_metadata: Any, timeout_s: float) -> None:
    """``producer.send_offsets_to_transaction`` waiting at most ``timeout_s``."""
    result = producer._transaction_manager.send_offsets_to_transaction(offsets, group_metadata)
    _wait(producer, result, "sending the consumed offsets to", timeout_s)


def end_transaction(producer: Any, *, commit: bool, timeout_s: float) -> None:
    """``producer.commit_transaction`` (or ``abort_transaction``) waiting at most
    ``timeout_s``."""
    manager = producer._transaction_manager
    result = manager.begin_commit() if commit else manager.begin_abort()
    _wait(producer, result, "committing" if commit else "aborting", timeout_s)


def _wait(producer: Any, result: Any, what: str, timeout_s: float) -> None:
    producer._sender.wakeup()
    if not result.wait(timeout_ms=int(timeout_s * 1000)):  # raises the call's own error
        raise KafkaTimeoutError(f"{what} the transaction took longer than {timeout_s:g} s")
