"""The models topic: trained CF models by name, in chunks any broker accepts.

A model is written as chunks of at most ``MODEL_CHUNK_BYTES`` under ``<name>/<i>`` followed by
a manifest under ``<name>`` (chunk count, size, SHA-256), so a model of any size fits Kafka's
message limit (``publish_model``); ``ModelAssembler`` puts them back together and
``read_models`` reads every model the compacted topic holds. The topic's cleanup policy also
allows deleting records (with no time limit), so a model scrubbed of an erased user can remove
every older record at once (``drop_older``): compaction alone would wait for a later publish
to roll the segment.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from streaming.kafka.bus import (
    MAX_MODEL_BYTES,
    MODEL_CHUNK_BYTES,
    KafkaConfig,
    ensure_topics,
    make_producer,
)

log = logging.getLogger(__name__)


def publish_model(
    config: KafkaConfig,
    name: str,
    data: bytes,
    *,
    chunk_bytes: int = MODEL_CHUNK_BYTES,
    drop_older: bool = False,
) -> None:
    """Put a trained model (e.g. ``CFModel`` bytes) on the compacted models topic under
    ``name``: its chunks first, then the manifest that makes it current (see the module
    docstring), then tombstones for the chunks of a larger previous model that this one does
    not overwrite. Returns once the broker has all of it.

    ``drop_older`` (an erasure's republish): every record before this model's first chunk is
    deleted at once, if the topic holds no other name (whose records would go too)."""
    if not 0 < chunk_bytes <= MODEL_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be in (0, {MODEL_CHUNK_BYTES}], got {chunk_bytes}")
    if "/" in name:
        raise ValueError(f"model name {name!r}: '/' is reserved for chunk keys")
    ensure_topics(config)
    previous, names = _models_held(config, name)
    n = max(1, -(-len(data) // chunk_bytes))
    manifest = {
        "chunks": n,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    producer = make_producer(config, max_request_size=MAX_MODEL_BYTES)
    try:
        # One producer, one partition: the manifest lands after every chunk it names.
        sent = [
            producer.send(
                config.models,
                key=f"{name}/{i}".encode(),
                value=data[i * chunk_bytes : (i + 1) * chunk_bytes],
            )
            for i in range(n)
        ]
        producer.send(config.models, key=name.encode(), value=json.dumps(manifest).encode())
        for i in range(n, previous):  # compaction then drops the old model's extra chunks
            producer.send(config.models, key=f"{name}/{i}".encode(), value=None)
        producer.flush(timeout=120)
        first = sent[0].get(timeout=10).offset
    finally:
        producer.close()
    if drop_older and names <= {name}:
        _delete_before(config, first)


def _delete_before(config: KafkaConfig, offset: int, *, timeout_s: float = 30.0) -> None:
    """Delete the models topic's records before ``offset`` (readers no longer see them)."""
    admin = KafkaAdminClient(
        bootstrap_servers=config.servers,
        client_id="attune-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        admin.delete_records({TopicPartition(config.models, 0): offset})
    except KafkaError as exc:  # a topic older than its compact,delete policy: compaction will
        log.warning("models topic: older records stay until compacted: %s", exc)
    finally:
        admin.close()


def _models_held(
    config: KafkaConfig, name: str, *, timeout_s: float = 60.0
) -> tuple[int, set[str]]:
    """How many chunks of ``name`` the models topic holds (the highest index with a value,
    plus one), read from its start; and every name it holds records of."""
    held: set[int] = set()
    names: set[str] = set()
    for key, value in _records(config, timeout_s):
        base, _, index = (key or b"").decode().partition("/")
        names.add(base)
        if base == name and index.isdigit():
            (held.add if value is not None else held.discard)(int(index))
    return max(held, default=-1) + 1, names


def _records(config: KafkaConfig, timeout_s: float) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Every ``(key, value)`` of the models topic, in order, up to its end when called."""
    consumer = KafkaConsumer(
        bootstrap_servers=config.servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * MAX_MODEL_BYTES,
        fetch_max_bytes=4 * MAX_MODEL_BYTES,
    )
    try:
        tp = TopicPartition(config.models, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        deadline = time.monotonic() + timeout_s
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError("reading the models topic timed out")
            for records in consumer.poll(timeout_ms=200).values():
                for rec in records:
                    yield rec.key, rec.value
    finally:
        consumer.close()


class ModelAssembler:
    """Turns the models topic's records, read in order, back into whole models.

    ``add(key, value)`` returns ``(name, bytes)`` when a manifest completes a model, else None.
    Chunks are kept per name until a manifest claims them; a manifest whose chunks do not
    match its size or hash (a publish that died half way and was compacted over) is skipped
    with a warning.
    """

    def __init__(self) -> None:
        self._chunks: dict[str, dict[int, bytes]] = {}

    def add(self, key: bytes | None, value: bytes | None) -> tuple[str, bytes | None] | None:
        if key is None:
            return None
        name, _, index = key.decode().partition("/")
        if index:
            if value is None:
                self._chunks.get(name, {}).pop(int(index), None)
            else:
                self._chunks.setdefault(name, {})[int(index)] = value
            return None
        if value is None:
            return name, None  # the model was deleted
        try:
            manifest = json.loads(value)
            n, size, digest = manifest["chunks"], manifest["size"], manifest["sha256"]
        except (ValueError, KeyError, TypeError):
            log.warning("models topic: %r is not a model manifest; skipped", name)
            return None
        have = self._chunks.get(name, {})
        data = b"".join(have.get(i, b"") for i in range(n))
        if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            log.warning("models topic: %r has incomplete chunks; skipped", name)
            return None
        return name, data


def read_models(config: KafkaConfig, *, timeout_s: float = 60.0) -> dict[str, bytes]:
    """The current model per name from the models topic (deleted names left out)."""
    latest: dict[str, bytes | None] = {}
    assembler = ModelAssembler()
    for key, value in _records(config, timeout_s):
        done = assembler.add(key, value)
        if done is not None:
            latest[done[0]] = done[1]
    return {k: v for k, v in latest.items() if v is not None}
