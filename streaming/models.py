"""CF models inside the processes that learn: install a version, keep it across restores.

``ModelProcessor`` is a ``Processor`` that holds the installed ``collab.CFModel``:

- ``install`` warm-starts its engine (``collab.warm_start``): arm embeddings, the cold-start
  cluster prior and the priors of known users. The service passes ``users="all"`` and a
  ``replay`` of the feedback after the model's cutoff read from its log (reset + replay: no
  feedback counted twice, see ``collab.warm``). A Kafka worker passes ``users="present"`` and
  no replay: its state keeps no per-decision rewards to replay, so known users restart from
  the new prior and the feedback between the cutoff and the install is dropped, never counted
  twice. Model users the engine does not hold yet get their own CF prior when their first
  decision or profile command arrives, as if they had been warm-started.
- Applying events re-picks a new user's cluster prior after each of their feedbacks
  (``collab.refine_cluster_priors``), from their rewards and from every request they made: each
  decision adds the classifier's evidence of its request to a per-cluster sum kept in the
  user's book (``extra["cluster_evidence"]``), so it travels with the user's changelog record
  and a restored worker re-picks exactly as an uninterrupted one.
- The partition record (``export_shared``) also carries the installed version, the batch
  offset it went in at and the shared model it was built against, so a Kafka worker records
  the version in the same transaction as the state it shaped; ``import_shared`` re-attaches it
  (arm embeddings and cold-start prior, bit for bit) before the partition's events replay.
- **A deleted user is never warm-started from the model again.** Their events are erased, but
  a model trained before the delete still holds their factor vector. The processor keeps a
  one-way hash and the time of each delete (in the partition record, so it survives restores)
  and gives such a user the cold-start prior when they come back. An entry is dropped once a
  model trained after the delete (``cutoff_ts`` later than it) is installed: that model was
  fitted on a log without their rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl

from bandit import N_FEATURES, Engine
from collab import CFModel, ClusterPrior, PriorMap, Priors, refine_cluster_priors, warm_start
from streaming.composer import RewardComposer
from streaming.events import Event
from streaming.processor import Processor
from streaming.store import Store, hash_key
from streaming.user_record import pack_array, unpack_array

log = logging.getLogger(__name__)

REFINE_MAX_FEEDBACK = 20  # refine_cluster_priors' default max_feedback

REPLAY_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "arm": pl.Int64(),
    "reward": pl.Float64(),
    "weight": pl.Float64(),
    "ts": pl.Float64(),
    "context": pl.List(pl.Float64()),
}


class ModelSource(Protocol):
    """Where a worker finds model versions (``streaming.model_feed.ModelFeed`` is one)."""

    def latest(self) -> CFModel | None: ...

    def get(self, version: int) -> CFModel | None: ...


@dataclass(frozen=True)
class Installed:
    """A model as an engine holds it: the prior map and cold-start prior built from it.

    ``shared`` is the engine's shared model ``W`` when the model went in (the prior means
    depend on it); ``offset`` is the events offset of the batch it went in at (-1: not on a
    stream).
    """

    model: CFModel
    pmap: PriorMap
    cold: ClusterPrior
    shared: np.ndarray
    offset: int

    @property
    def version(self) -> int:
        return self.model.version

    def record(self) -> dict[str, Any]:
        """What the partition record carries (see the module docstring)."""
        return {
            "version": self.version,
            "offset": self.offset,
            "W": pack_array(np.ascontiguousarray(self.shared, dtype=np.float64)),
        }

    def cluster_of(self, engine: Engine, key: str) -> int | None:
        """A user's group: the model's cluster for a known user; for a new one, the cluster
        whose prior mean is nearest the user's prior mean (the cold-start or refined choice);
        None for a user the engine does not hold."""
        known = self.model.cluster_of(key)
        if known is not None:
            return known
        means = self.cold.cluster_means
        with engine.lock:
            row = engine.users.ids.get(key)
            if row is None:
                return None
            mean = engine.users.prior_mean[row, : means.shape[1]].astype(np.float64)
        return int(np.argmin(((means - mean) ** 2).sum(axis=1)))


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
        # partition -> {hash of a deleted user's key: event time of the delete}
        self.forgotten: dict[int, dict[str, float]] = {}

    # ------------------------------------------------------------------ models
    def install(
        self,
        model: CFModel,
        *,
        users: str = "present",
        replay: pl.DataFrame | None = None,
        offset: int = -1,
    ) -> set[str]:
        """Warm-start the engine with ``model``; returns the keys of the users it reset."""
        engine = self.engine
        self._flush()  # warm_start resets rows the queued feedback would then update
        with engine.lock:
            shared = engine.W.copy()
            present = engine.users.user_ids()
            if replay is not None and replay.is_empty():
                replay = None  # collab.warm_start cannot replay an empty frame yet
            self._drop_forgotten_before(model.cutoff_ts)
            chosen: str | list[str] = users
            if users == "all" and self._forgotten_any():
                chosen = [u for u in model.user_ids.tolist() if not self._is_forgotten(u)]
            warm_start(engine, model, users=chosen, priors=self.priors, replay=replay)
            self._attach(model, shared, offset)
            if users == "all":
                return set(engine.users.user_ids())
            reset = [k for k, r in zip(present, model.rows(present), strict=True) if r >= 0]
            return set(reset) | (set() if replay is None else set(replay["user_id"].to_list()))

    def _attach(self, model: CFModel, shared: np.ndarray, offset: int) -> None:
        """Arm embeddings and cold-start prior of ``model`` built against ``shared``; users
        are left alone."""
        engine = self.engine
        with engine.lock:
            current = engine.W.copy()
            engine.W[:] = shared
            try:
                pmap = PriorMap(engine, model, self.priors)
            finally:
                engine.W[:] = current
            cold = ClusterPrior(pmap, model, self.priors.cold)
            engine.set_arm_embeddings(pmap.embeddings)
            engine.set_cold_start(cold)
            self.installed = Installed(model, pmap, cold, shared.copy(), offset)

    # ------------------------------------------------------------------ applying
    # The hooks ``apply``, ``apply_log`` and ``expire`` run per event, so what the model adds
    # happens at the same point of the stream however it was cut into batches.
    def _apply_one(self, event: Event, partition: int, changed: set[str]) -> None:
        key = event.key
        if event.kind == "profile" and event.payload.get("op") == "delete":
            self.forgotten.setdefault(partition, {})[hash_key(key)] = event.ts
        installed = self.installed
        if installed is None:
            super()._apply_one(event, partition, changed)
            return
        if event.kind in ("decision", "profile") and key not in self.engine.users:
            self._prime(installed, key)
        super()._apply_one(event, partition, changed)
        if event.kind == "decision" and self._refinable(installed, key, first=True):
            self._observe(installed, key, event.payload.get("context"))
        elif event.kind == "feedback" and self._refinable(installed, key):
            self._refine(installed, [key])

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
        """A new user still in their first feedbacks (a cheap test before a flush);
        ``first``: before their first one too."""
        book = self.books.get(key)
        if book is None:
            return False
        feedbacks = book.counters["feedback_events"] + book.counters["default_rewards"]
        return (
            (first or feedbacks > 0)
            and feedbacks <= REFINE_MAX_FEEDBACK
            and installed.model.rows([key])[0] < 0
        )

    def _observe(self, installed: Installed, key: str, context: Any) -> None:
        """Add a new user's request to their cluster evidence (in their book)."""
        if not isinstance(context, list) or len(context) != N_FEATURES:
            return  # the decision was rejected; nothing to learn about the user
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
        refine_cluster_priors(self.engine, cold, keys)
        for key in keys:
            cold.forget(key)

    def _prime(self, installed: Installed, key: str) -> None:
        """Give a model user the engine meets for the first time their own CF prior (the
        prior ``warm_start`` gives known users)."""
        model = installed.model
        [row] = model.rows([key])
        if row < 0 or self._is_forgotten(key):
            return
        events = min(int(model.user_events[row]), self.priors.max_events)
        precision = self.engine.users.prior_precision + self.priors.per_event * events
        mean = installed.pmap.means(np.array([row]))
        self._flush()  # as for a cold-start prior: a new row, set before anything reads it
        self.engine.set_prior([key], mean, precision, reset=True)

    # ------------------------------------------------------------------ state transfer
    def _shared_document(self, partition: int) -> dict[str, Any]:
        doc = super()._shared_document(partition)
        if self.installed is not None:
            doc["model"] = self.installed.record()
        forgotten = self.forgotten.get(partition)
        if forgotten:
            doc["forgotten"] = sorted(forgotten.items())
        return doc

    def _load_shared_document(self, partition: int, doc: dict[str, Any]) -> None:
        super()._load_shared_document(partition, doc)
        self.forgotten[partition] = {str(h): float(ts) for h, ts in doc.get("forgotten", [])}
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
        self._attach(model, unpack_array(info["W"]), int(info["offset"]))

    # ------------------------------------------------------------------ deleted users
    def _is_forgotten(self, key: str) -> bool:
        digest = hash_key(key)
        return any(digest in book for book in self.forgotten.values())

    def _forgotten_any(self) -> bool:
        return any(self.forgotten.values())

    def _drop_forgotten_before(self, cutoff_ts: float) -> None:
        for book in self.forgotten.values():
            for digest in [h for h, ts in book.items() if ts < cutoff_ts]:
                del book[digest]


def install_pending_model(processor: Any, partition: int, offset: int) -> set[str]:
    """At a batch boundary of a Kafka worker: install the source's newest model if it is newer
    than the partition's; returns the users it reset (their records go in this batch)."""
    if not isinstance(processor, ModelProcessor) or processor.source is None:
        return set()
    model = processor.source.latest()
    current = processor.installed
    if model is None or (current is not None and current.version >= model.version):
        return set()
    log.info("partition %d: installing model v%d at offset %d", partition, model.version, offset)
    return processor.install(model, users="present", offset=offset)


def replay_frame(
    events: Iterable[Event], cutoff_ts: float, composer: RewardComposer
) -> pl.DataFrame:
    """The feedback a model has not seen, as ``collab.warm_start``'s ``replay``: one row per
    non-pairwise feedback on a decision made after ``cutoff_ts``, in log order."""
    decisions: dict[tuple[str, str], Event] = {}
    rows: dict[str, list[Any]] = {name: [] for name in REPLAY_SCHEMA}
    for e in events:
        if e.kind == "decision" and e.ts > cutoff_ts:
            decisions[(e.tenant, e.event_id)] = e
        elif e.kind == "feedback" and e.payload.get("kind") != "pairwise":
            d = decisions.get((e.tenant, str(e.payload.get("decision_id"))))
            if d is None:
                continue
            try:
                reward, weight = composer.compose(e.payload)
            except ValueError:
                continue  # the learner rejected it too
            rows["user_id"].append(d.key)
            rows["arm"].append(int(d.payload["arm"]))
            rows["reward"].append(float(reward))
            rows["weight"].append(float(weight))
            rows["ts"].append(float(d.ts))
            rows["context"].append([float(x) for x in d.payload["context"]])
    return pl.DataFrame(rows, schema=REPLAY_SCHEMA)


def store_events(store: Store, upto: int, *, page: int = 5000) -> Iterable[Event]:
    """The store's events up to offset ``upto`` (what a learner at that offset applied)."""
    after = 0
    while after < upto:
        rows = store.read(after, page)
        if not rows:
            return
        for offset, event in rows:
            if offset > upto:
                return
            yield event
        after = rows[-1][0]
