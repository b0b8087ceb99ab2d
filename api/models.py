"""CF models in the API: hot reload without a restart, and the user's group.

``EmbeddedModels`` watches ``<data-dir>/models`` (``attune train`` publishes there) for
``attune serve``; ``ReplicaModels`` follows the Kafka models topic for an API replica. Both
keep the serving engine's model (arm embeddings, cold-start prior) and tell the profile and
the decision response which group (cluster, adapter id) a user is in.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import Gauge

from collab import CFModel, ClusterPrior, PriorMap, Priors, adapter_id, warm_start
from collab.watch import ModelWatcher
from streaming.models import Installed, ModelProcessor, replay_frame, store_events

if TYPE_CHECKING:
    from api.metrics import Metrics
    from api.settings import Settings
    from bandit import Engine
    from streaming.embedded import Learner
    from streaming.kafka_bus import KafkaConfig
    from streaming.model_feed import ModelFeed
    from streaming.store import Store

log = logging.getLogger(__name__)

START_TIMEOUT_S = 60.0


class Models:
    """What both modes share: the installed model, the group lookups, the version gauge;
    ``start`` and ``stop`` follow the service's."""

    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics) -> None:
        self.engine = engine
        self.template = settings.adapter_template
        self.installed: Installed | None = None
        self.version = Gauge(
            "attune_model_version",
            "Version of the installed CF model (0: none)",
            registry=metrics.registry,
        )

    def cluster(self, key: str) -> int | None:
        """The user's group, None without a model (see ``Installed.cluster_of``)."""
        installed = self.installed
        return None if installed is None else installed.cluster_of(self.engine, key)

    def adapter(self, key: str) -> str | None:
        """The user's adapter id when ``adapter_template`` is set, else None."""
        if self.template is None:
            return None
        return adapter_id(self.cluster(key), template=self.template)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class EmbeddedModels(Models):
    """Hot reload for ``attune serve``: a ``ModelWatcher`` on the models folder.

    A new version warm-starts the learner's engine (reset + replay of the logged feedback
    after the model's cutoff, under the learner's lock, so no event is applied twice or
    missed), then the serving engine gets the same arm embeddings, cold-start prior and users.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        metrics: Metrics,
        *,
        learner: Learner,
        processor: ModelProcessor,
        store: Store,
    ) -> None:
        super().__init__(engine, settings, metrics)
        self.learner, self.processor, self.store = learner, processor, store
        self.composer = settings.rewards
        self.watcher = ModelWatcher(
            settings.models_dir,
            self.install,
            interval_s=settings.poll_interval_s,
            on_error=lambda exc: log.error("loading a model failed: %s", exc),
        )

    def start(self) -> None:
        """Install the newest published model now, then watch for newer ones."""
        self.watcher.poll()
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    def install(self, model: CFModel) -> None:
        serving = self.engine
        with self.learner.lock:
            events = store_events(self.store, self.learner.offset)
            replay = replay_frame(events, model.cutoff_ts, self.composer)
            keys = self.processor.install(model, users="all", replay=replay)
            installed = self.processor.installed
            assert installed is not None
            with serving.lock:
                serving.set_arm_embeddings(installed.pmap.embeddings)
                serving.set_cold_start(installed.cold)
                self.learner.sync(keys)
                self.installed = installed
        self.version.set(model.version)
        log.info("installed CF model v%d (%d users)", model.version, len(keys))


class ReplicaModels(Models):
    """Models for an API replica on Kafka: it follows the models topic.

    The replica's users come from the workers' changelog; a new version gives it the arm
    embeddings and the cold-start prior, and the model's users it does not hold yet get their
    CF prior (the worker gives them the same one when they first show up).
    """

    def __init__(
        self, engine: Engine, settings: Settings, metrics: Metrics, config: KafkaConfig
    ) -> None:
        super().__init__(engine, settings, metrics)
        from streaming.model_feed import ModelFeed

        self.feed: ModelFeed = ModelFeed(
            config, on_model=self.install, poll_interval_s=settings.poll_interval_s
        )

    def start(self) -> None:
        self.feed.start()
        if not self.feed.wait_caught_up(START_TIMEOUT_S):
            raise TimeoutError(f"the models topic was not read within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        self.feed.close()

    def install(self, model: CFModel) -> None:
        engine = self.engine
        with engine.lock:
            new = [u for u in model.user_ids.tolist() if u not in engine.users]
            warm_start(engine, model, users=new)
            cold = engine.cold_start
            assert isinstance(cold, ClusterPrior)
            pmap = PriorMap(engine, model, Priors())  # W is as warm_start found it
            self.installed = Installed(model, pmap, cold, engine.W.copy(), -1)
        self.version.set(model.version)
        log.info("installed CF model v%d", model.version)
