"""The embedded backend: one SQLite file and a learner thread inside the serving process.

Decisions are served from the *serving* engine; every event goes to the store's log first; the
learner applies the log to its own engine and copies changed users into the serving engine.
CF models published to ``<data_dir>/models`` are installed without a restart.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collab import CatalogMismatch, CFModel, check_catalog
from collab.watch import ModelWatcher
from streaming.bus import ServingOptions, Unavailable, sqlite_path
from streaming.composer import RewardComposer
from streaming.erasure import scrub_files
from streaming.events import Event
from streaming.join import replay_frame
from streaming.memory import UserMemory
from streaming.models import ModelHost, ModelProcessor
from streaming.payloads import DecisionPayload
from streaming.sqlite.learner import Learner
from streaming.sqlite.recent import RecentDecisions
from streaming.sqlite.residency import Residency
from streaming.sqlite.retention import Compactor
from streaming.sqlite.store import Store

log = logging.getLogger(__name__)
DELETE_TIMEOUT_S = 10.0
APPLY_TIMEOUT_S = 10.0


class EmbeddedBackend:
    """The ``sqlite://`` backend (see ``streaming.bus.Backend``).

    Parameters
    ----------
    url : str
        ``sqlite:///path/to/store.sqlite``, or empty for ``<data_dir>/attune.sqlite``.
    options : ServingOptions
    """

    def __init__(self, url: str, options: ServingOptions) -> None:
        data_dir = self.data_dir = Path(options.data_dir)
        self.store_path = sqlite_path(url) if url else data_dir / "attune.sqlite"
        self.erases_unknown = False
        self.store = Store(self.store_path)
        self.engine = options.engine(options.random_state)
        self.processor = ModelProcessor(
            options.engine(0), options.rewards, **options.processor_params()
        )
        self.residency = Residency(options.max_resident_users, options.idle_evict_s)
        self.recent = RecentDecisions()
        self.learner = Learner(
            self.store,
            self.processor,
            serving=self.engine,
            residency=self.residency,
            checkpoint_interval_s=options.checkpoint_interval_s,
            # Decisions run on the event loop, the learner on its own thread: applying its
            # batches a few events at a time with a sleep longer than a slice between them
            # bounds how long a request waits for the GIL, and leaves requests most of it
            # while the learner catches up (benchmarks/bench_http.py measures the effect).
            slice_size=8,
            slice_pause_s=0.001,
        )
        self.compactor = Compactor(
            self.store, options.retention, wait_window_s=options.wait_window_s
        )
        self.models = FolderModels(
            self.engine,
            data_dir / "models",
            options.poll_interval_s,
            learner=self.learner,
            processor=self.processor,
            composer=options.rewards,
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Recover the last checkpoint and replay the log after it, install the newest CF
        model, then start learning."""
        self.learner.recover()
        self.models.start()
        self.learner.start()
        self.compactor.start()

    def stop(self) -> None:
        self.models.stop()
        self.compactor.stop()
        self.learner.stop()
        self.store.close()

    # ------------------------------------------------------------------ the log
    def log_decisions(self, events: list[Event]) -> None:
        # Group commit without fsync (see streaming/sqlite/store.py). No learner wake-up: a
        # decision changes nothing until its feedback arrives, and the learner's next poll
        # picks it up without costing this request a wake-up.
        self.store.append_later(events)
        self.recent.add((e.key, e.event_id) for e in events)

    def log(self, event: Event) -> bool:
        try:
            [offset] = self.store.append([event], durable=True)
        except sqlite3.Error as exc:  # rolled back: nothing was acknowledged
            raise Unavailable(f"the store cannot write now: {exc}") from None
        self.learner.notify()
        return offset is not None

    def log_applied(self, event: Event) -> None:
        [offset] = self.store.append([event], durable=True)
        self.learner.notify()
        if offset is not None and not self.learner.wait_for(offset, timeout=APPLY_TIMEOUT_S):
            raise TimeoutError("the learner did not apply the change in time")

    def memory(self, key: str) -> UserMemory | None:
        return self.processor.memory.get(key)

    def resident(self, keys: Sequence[str]) -> None:
        """Bring users who left memory back into the serving engine (see
        ``streaming.sqlite.residency``); new users need nothing."""
        self.residency.touch(keys)
        serving, processor = self.engine, self.processor
        missing = [k for k in keys if k not in serving.users]
        if not missing:
            return
        # One read of the store per user the learner does not hold (none for a new user, who
        # has no record); membership tests, not a set of every held user, which would cost a
        # new user's first request time in proportion to all resident users.
        self.learner.load(missing)
        books, users = processor.books, processor.engine.users.ids
        wanted = [k for k in missing if k in books or k in users]
        if wanted:
            self.learner.copy_to_serving(wanted)

    def has_decision(self, tenant: str, user_id: str, decision_id: str) -> bool:
        # In memory first (see ``streaming.sqlite.recent``): the decisions logged lately, then
        # the learner's books, which hold every decision it applied until it is settled. A
        # decision in neither may still be logged: the store decides.
        key = f"{tenant}/{user_id}"
        if self.recent.has(key, decision_id) or self.processor.holds_decision(key, decision_id):
            return True
        event = self.store.get_event(tenant, decision_id, kind="decision", user_id=user_id)
        return event is not None

    def find_decision(self, tenant: str, user_id: str, decision_id: str) -> DecisionPayload | None:
        # The learner's books, not the store: a lookup in memory, where a query would cost a
        # request several page reads (each commit empties a reader's page cache). They hold
        # every decision the learner applied until it is settled and past the horizon, and
        # survive a restart (checkpoint and replay).
        return self.processor.pending_decision(f"{tenant}/{user_id}", decision_id)

    def knows(self, tenant: str, user_id: str) -> bool:
        key = f"{tenant}/{user_id}"
        return (
            key in self.engine.users
            or key in self.engine.pins
            or self.learner.checkpoints.has(key)
            or next(self.store.iter_events(tenant=tenant, user_id=user_id), None) is not None
        )

    def erase(self, tombstone: Event) -> None:
        """Erase the user's rows in the log and their state; returns once the learner applied
        and checkpointed the erasure."""
        self.recent.forget(tombstone.key)
        try:
            self.store.delete_user(tombstone.tenant, tombstone.user_id)
            [offset] = self.store.append([tombstone], durable=True)
        except sqlite3.Error as exc:
            raise Unavailable(f"the store cannot write now: {exc}") from None
        self.engine.forget(tombstone.key)
        self.learner.notify()
        if offset is not None and not self.learner.wait_for(
            offset, timeout=DELETE_TIMEOUT_S, checkpointed=True
        ):
            raise TimeoutError("the learner did not apply the erasure in time")
        self.engine.forget(tombstone.key)  # in case a decision raced the erasure
        self.recent.forget(tombstone.key)
        self.residency.forget(tombstone.key)
        # The files next to the log, then the log's own traces: deleted rows are zeroed in
        # place (secure_delete), and the WAL, which still holds their earlier page images,
        # is emptied. The file is rebuilt (VACUUM) in the background, once per batch.
        scrub_files(self.data_dir, [tombstone.key])
        try:
            self.store.execute_outside_transaction("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            raise Unavailable(f"the store cannot write now: {exc}") from None
        self.compactor.erased()

    # ------------------------------------------------------------------ reading
    def counters(self, key: str) -> dict[str, Any]:
        with self.learner.lock:
            return self.processor.counters(key)

    def export_user(self, key: str) -> bytes | None:
        with self.learner.lock:
            return self.processor.export_user(key)

    def user_events(self, tenant: str, user_id: str) -> list[dict[str, Any]]:
        return [
            json.loads(e.to_bytes()) for e in self.store.iter_events(tenant=tenant, user_id=user_id)
        ]

    # ------------------------------------------------------------------ health
    @property
    def alive(self) -> bool:
        return self.learner.alive and self.store.flusher_alive and self.compactor.alive

    @property
    def error(self) -> BaseException | None:
        return self.learner.error

    @property
    def writable(self) -> bool:
        return self.store.writable and self.learner.store_error is None

    def lag(self) -> float:
        return self.learner.lag()

    def applied(self) -> int:
        return self.learner.applied_events

    def rejected(self) -> int:
        return self.processor.n_rejected


class FolderModels(ModelHost):
    """Hot reload for the embedded backend: a ``ModelWatcher`` on the models folder.

    A new version warm-starts the learner's engine (reset + replay of the logged feedback
    after the model's cutoff, under the learner's lock, so no event is applied twice or
    missed), then the serving engine gets the same arm embeddings, cold-start prior and users.
    """

    def __init__(
        self,
        engine: Any,
        folder: Path,
        poll_interval_s: float,
        *,
        learner: Learner,
        processor: ModelProcessor,
        composer: RewardComposer,
    ) -> None:
        super().__init__(engine, forgotten=processor.is_forgotten)
        self.learner, self.processor, self.composer = learner, processor, composer
        self.watcher = ModelWatcher(
            folder,
            self.install,
            interval_s=poll_interval_s,
            on_error=lambda exc: log.error("loading a model failed: %s", exc),
        )

    def start(self) -> None:
        """Install the newest published model now, then watch for newer ones."""
        self.watcher.poll()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def install(self, model: CFModel) -> None:
        try:
            check_catalog(model, self.engine.catalog)
        except CatalogMismatch as exc:
            # Returning (not raising) marks the version seen: the watcher does not retry it.
            log.error("refused a CF model: %s", exc)
            return
        serving, learner = self.engine, self.learner
        with learner.lock:
            # Every stored user is re-primed, so those who left memory come back for it; they
            # leave again once saved (save_later) and idle.
            learner.load_all()
            events = learner.store.iter_events(upto=learner.offset)
            replay = replay_frame(events, model.cutoff_ts, self.composer)
            keys = self.processor.install(model, users="all", replay=replay)
            installed = self.processor.installed
            assert installed is not None
            with serving.lock:
                serving.set_arm_embeddings(installed.pmap.embeddings)
                serving.set_cold_start(installed.cold)
                learner.sync(keys, shared=True)
                learner.copy_to_serving(keys)
                self.installed = installed
            learner.save_later(keys)
            if learner.residency is not None:
                learner.residency.touch(keys)
        log.info("installed CF model v%d (%d users)", model.version, len(keys))
