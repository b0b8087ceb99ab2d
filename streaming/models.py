"""CF models inside the processes that learn: install a version, keep it across restores.

``ModelProcessor`` is a ``Processor`` holding an installed ``collab.CFModel``. ``install``
warm-starts its engine (arm embeddings, the cold-start cluster prior, known users' priors;
collab.warm explains why no feedback is counted twice); applying events re-picks a new user's
cluster prior after each of their first feedbacks, from their rewards and every request they
made, with the evidence kept in the user's book so a restored worker re-picks exactly as an
uninterrupted one. The partition record carries the installed version, so a Kafka worker
records it in the same transaction as the state it shaped. A deleted user is never warm-started
from a model trained before their delete, nor given a group from one: a one-way marker of their
key (an HMAC keyed by a random salt per partition, kept in the partition record) is kept until a
model trained after it is installed. README.md ("Collaborative-filtering warm start") tells the
story.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import polars as pl

from bandit import Engine
from collab import (
    CatalogMismatch,
    CFModel,
    ClusterPrior,
    PriorMap,
    Priors,
    check_catalog,
    refine_cluster_priors,
    warm_start,
)
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor
from streaming.user_record import pack_array, unpack_array

log = logging.getLogger(__name__)

REFINE_MAX_FEEDBACK = 20  # refine_cluster_priors' default max_feedback


class ModelSource(Protocol):
    """Where a worker finds model versions (``streaming.kafka.model_feed.ModelFeed`` is one)."""

    def latest(self) -> CFModel | None: ...

    def get(self, version: int) -> CFModel | None: ...


@dataclass(frozen=True)
class Installed:
    """A model as an engine holds it: the prior map and cold-start prior built from it.

    ``baseline`` is the shared model's per-attribute baseline when the model went in (the
    prior means are relative to it); ``offset`` is the events offset of the batch it went in at
    (-1: not on a stream).
    """

    model: CFModel
    pmap: PriorMap
    cold: ClusterPrior
    baseline: np.ndarray
    offset: int

    @property
    def version(self) -> int:
        return self.model.version

    def record(self) -> dict[str, Any]:
        """What the partition record carries (see the module docstring)."""
        return {
            "version": self.version,
            "offset": self.offset,
            "baseline": pack_array(np.ascontiguousarray(self.baseline, dtype=np.float64)),
        }

    def cluster_of(self, engine: Engine, key: str, *, forgotten: bool = False) -> int | None:
        """A user's group: the model's cluster for a known user, unless their first
        feedbacks moved them to another cluster's prior (``refine_cluster_priors``); for a new
        one (or one erased since the model was trained: ``forgotten``), the cluster whose prior
        mean is nearest the user's prior mean (the cold-start or refined choice); None for a
        new user the engine does not hold."""
        known = None if forgotten else self.model.cluster_of(key)
        means = self.cold.cluster_means
        with engine.lock:
            row = engine.users.ids.get(key)
            if row is None:
                return known
            mean = engine.users.prior_mean[row, : means.shape[1]].astype(np.float64)
        nearest = int(np.argmin(((means - mean) ** 2).sum(axis=1)))
        if known is None:
            return nearest
        moved = np.allclose(means[nearest], mean, rtol=1e-5, atol=1e-6)  # a swap copies it
        return nearest if moved else known


class ModelProcessor(Processor):
    """A ``Processor`` with an installed CF model (see the module docstring).

    Parameters
    ----------
    engine, composer, **params
        As ``Processor``.
    priors : collab.Priors, optional
    source : ModelSource, optional
        Where ``import_shared`` finds the version a partition record names (Kafka workers).
    """

    def __init__(
        self,
        engine: Engine,
        composer: RewardComposer,
        *,
        priors: Priors | None = None,
        source: ModelSource | None = None,
        **params: Any,
    ) -> None:
        super().__init__(engine, composer, **params)
        self.priors = priors or Priors()
        self.source = source
        self.installed: Installed | None = None
        self.refused: set[int] = set()  # versions trained on another catalog, refused once
        # partition -> {marker of a deleted user's key: event time of the delete}
        self.forgotten: dict[int, dict[str, float]] = {}
        self.salts: dict[int, str] = {}  # partition -> the salt of its markers

    # ------------------------------------------------------------------ models
    def install(
        self,
        model: CFModel,
        *,
        users: str = "present",
        replay: pl.DataFrame | None = None,
        offset: int = -1,
    ) -> set[str]:
        """Warm-start the engine with ``model``; returns the keys of the users it reset.

        Raises ``collab.CatalogMismatch`` for a model trained on another catalog."""
        engine = self.engine
        check_catalog(model, engine.catalog)
        self._flush()  # warm_start resets rows the queued feedback would then update
        with engine.lock:
            baseline = engine.shared.bias_column()
            present = engine.users.user_ids()
            if replay is not None and replay.is_empty():
                replay = None  # collab.warm_start cannot replay an empty frame yet
            self._drop_forgotten_before(model.cutoff_ts)
            chosen: str | list[str] = users
            if users == "all" and self._forgotten_any():
                chosen = [u for u in model.user_ids.tolist() if not self.is_forgotten(u)]
            warm_start(engine, model, users=chosen, priors=self.priors, replay=replay)
            self._attach(model, baseline, offset)
            if users == "all":
                return set(engine.users.user_ids())
            reset = [k for k, r in zip(present, model.rows(present), strict=True) if r >= 0]
            return set(reset) | (set() if replay is None else set(replay["user_id"].to_list()))

    def _attach(self, model: CFModel, baseline: np.ndarray, offset: int) -> None:
        """Arm embeddings and cold-start prior of ``model`` built against the shared model's
        ``baseline``; users are left alone."""
        engine = self.engine
        with engine.lock:
            pmap = PriorMap(engine, model, self.priors, baseline=baseline)
            cold = ClusterPrior(
                pmap,
                model,
                self.priors.cold,
                priors=self.priors,
                base_precision=engine.users.prior_precision,
            )
            engine.set_arm_embeddings(pmap.embeddings)
            engine.set_cold_start(cold)
            self.installed = Installed(model, pmap, cold, baseline.copy(), offset)

    # ------------------------------------------------------------------ applying
    # The hooks ``apply``, ``apply_log`` and ``expire`` run per event, so what the model adds
    # happens at the same point of the stream however it was cut into batches.
    def _apply_one(self, event: Event, partition: int, changed: set[str]) -> None:
        key = event.key
        if event.is_delete:
            self.forgotten.setdefault(partition, {})[self._marker(partition, key)] = event.ts
        installed = self.installed
        if installed is None:
            super()._apply_one(event, partition, changed)
            return
        try:
            if event.kind in ("decision", "profile") and key not in self.engine.users:
                self._prime(installed, key)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.reject(event, f"model prior: {exc}")
        super()._apply_one(event, partition, changed)
        # The model's hooks read the payload again: one it cannot use is rejected like any
        # other, never raised out of the batch (a raise would fail the batch for good).
        try:
            if event.kind == "decision" and self._refinable(installed, key, first=True):
                self._observe(installed, key, event)
            elif event.kind == "feedback" and self._refinable(installed, key):
                self._refine(installed, [key])
        except (ValueError, KeyError, TypeError, IndexError, FloatingPointError) as exc:
            self.reject(event, f"model hook: {exc}")

    def _expire(self, now: float, partition: int, changed: set[str]) -> None:
        installed = self.installed
        if installed is None:
            super()._expire(now, partition, changed)
            return
        expired: set[str] = set()
        super()._expire(now, partition, expired)
        changed |= expired
        # A default reward is feedback too.
        self._refine(installed, sorted(k for k in expired if self._refinable(installed, k)))

    def _refinable(self, installed: Installed, key: str, *, first: bool = False) -> bool:
        """A user still in their first feedbacks (a cheap test before a flush); ``first``:
        before their first one too. Known users too: their own CF prior is a candidate."""
        book = self.books.get(key)
        if book is None:
            return False
        feedbacks = book.counters["feedback_events"] + book.counters["default_rewards"]
        return (first or feedbacks > 0) and feedbacks <= REFINE_MAX_FEEDBACK

    def _observe(self, installed: Installed, key: str, event: Event) -> None:
        """Add a new user's request to their cluster evidence (in their book)."""
        try:
            context = event.decision.context
        except ValueError:
            return  # the decision was rejected; nothing to learn about the user
        if len(context) != self.engine.n_context:
            return
        book = self.books[key]
        cold = installed.cold
        cold.set_request_evidence(key, book.extra.get("cluster_evidence"))
        cold.observe_requests([key], np.asarray([context], dtype=np.float64))
        evidence = cold.request_evidence(key)
        cold.forget(key)  # the book holds it; the prior keeps no per-user memory here
        if evidence is not None:
            book.extra["cluster_evidence"] = evidence.tolist()

    def _refine(self, installed: Installed, keys: list[str]) -> None:
        if not keys:
            return
        self._flush()  # the refine reads the evidence the queued rows add
        cold = installed.cold
        for key in keys:
            cold.set_request_evidence(key, self.books[key].extra.get("cluster_evidence"))
        refine_cluster_priors(self.engine, cold, keys, own=partial(self._own_prior, cold))
        for key in keys:
            cold.forget(key)

    def _own_prior(self, cold: ClusterPrior, key: str) -> tuple[int, np.ndarray, float] | None:
        """A model user's own CF prior, unless they were erased since the model was trained."""
        return None if self.is_forgotten(key) else cold.own_prior(key)

    def _prime(self, installed: Installed, key: str) -> None:
        """Give a model user the engine meets for the first time their own CF prior (the
        prior ``warm_start`` gives known users)."""
        own = self._own_prior(installed.cold, key)
        if own is None:
            return
        _, mean, precision = own
        self._flush()  # as for a cold-start prior: a new row, set before anything reads it
        self.engine.set_prior([key], mean[None, :], precision, reset=True)

    # ------------------------------------------------------------------ state transfer
    def _shared_document(self, partition: int) -> dict[str, Any]:
        doc = super()._shared_document(partition)
        if self.installed is not None:
            doc["model"] = self.installed.record()
        forgotten = self.forgotten.get(partition)
        if forgotten:
            doc["forgotten"] = sorted(forgotten.items())
            doc["salt"] = self.salts[partition]
        return doc

    def _load_shared_document(self, partition: int, doc: dict[str, Any]) -> None:
        super()._load_shared_document(partition, doc)
        self.forgotten[partition] = {str(h): float(ts) for h, ts in doc.get("forgotten", [])}
        if "salt" in doc:
            self.salts[partition] = str(doc["salt"])
        elif self.forgotten[partition]:
            self.salts[partition] = ""  # a record from before salts: plain SHA-256 markers
        info = doc.get("model")
        if info is None or self.source is None:
            return
        model = self.source.get(int(info["version"]))
        if model is None:  # compacted away: the next batch installs the latest one
            log.warning(
                "partition %d: model version %s is no longer on the models topic",
                partition,
                info["version"],
            )
            return
        try:
            check_catalog(model, self.engine.catalog)  # the worker's catalog may have changed
        except CatalogMismatch as exc:
            log.error("partition %d: %s", partition, exc)
            return
        self._attach(model, unpack_array(info["baseline"]), int(info["offset"]))

    # ------------------------------------------------------------------ deleted users
    def is_forgotten(self, key: str) -> bool:
        """Whether the user was erased after the installed model was trained."""
        return any(self._marker(p, key) in book for p, book in self.forgotten.items() if book)

    def _marker(self, partition: int, key: str) -> str:
        salt = self.salts.get(partition)
        if salt is None:
            salt = self.salts[partition] = secrets.token_hex(16)
        return forgotten_marker(key, salt)

    def _forgotten_any(self) -> bool:
        return any(self.forgotten.values())

    def _drop_forgotten_before(self, cutoff_ts: float) -> None:
        for book in self.forgotten.values():
            for digest in [h for h, ts in book.items() if ts < cutoff_ts]:
                del book[digest]


def forgotten_marker(key: str, salt: str = "") -> str:
    """The one-way marker a deleted user's key leaves behind: HMAC-SHA256 keyed by the
    partition's random salt (hex); without a salt, the plain SHA-256 of older records.

    >>> forgotten_marker("acme/ana", "s1") != forgotten_marker("acme/ana", "s2")
    True
    """
    if not salt:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()
    return hmac.new(salt.encode("ascii"), key.encode("utf-8"), hashlib.sha256).hexdigest()


def install_pending_model(processor: Any, partition: int, offset: int) -> set[str]:
    """At a batch boundary of a Kafka worker: install the source's newest model if it is newer
    than the partition's; returns the users it reset (their records go in this batch)."""
    if not isinstance(processor, ModelProcessor) or processor.source is None:
        return set()
    model = processor.source.latest()
    current = processor.installed
    if model is None or (current is not None and current.version >= model.version):
        return set()
    if model.version in processor.refused:
        return set()
    log.info("partition %d: installing model v%d at offset %d", partition, model.version, offset)
    try:
        return processor.install(model, users="present", offset=offset)
    except CatalogMismatch as exc:
        processor.refused.add(model.version)
        log.error("partition %d: %s", partition, exc)
        return set()


class ModelHost:
    """The CF model a serving process holds: its version and each user's group. Backends
    subclass it to follow where models are published (a folder, a Kafka topic)."""

    def __init__(self, engine: Engine, forgotten: Callable[[str], bool] | None = None) -> None:
        self.engine = engine
        self.installed: Installed | None = None
        self.forgotten = forgotten  # whether a user was erased after the model was trained

    @property
    def version(self) -> int:
        """The installed model's version, 0 without one."""
        return 0 if self.installed is None else self.installed.version

    def cluster(self, key: str) -> int | None:
        """The user's group, None without a model (see ``Installed.cluster_of``)."""
        installed = self.installed
        if installed is None:
            return None
        gone = self.forgotten is not None and self.forgotten(key)
        return installed.cluster_of(self.engine, key, forgotten=gone)

    def start(self) -> None:
        """Install the newest published model and follow new ones."""

    def stop(self) -> None: ...
