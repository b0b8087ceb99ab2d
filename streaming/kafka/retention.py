"""The retention policy on Kafka: the topics' ``retention.ms``, set when a worker starts.

The events topic cannot tell settled decisions from feedback, so it keeps everything as long
as the longer of the two (``RetentionPolicy.events_s``); the dead-letter topic keeps
``dead_letters_s``. Segments roll at least daily (or at the retention, if shorter), so whole
segments can expire. The changelog, keys and models topics are compacted and keep the current
record per key (learned state and the users' keys are kept); ``erasure_s`` is their
``max.compaction.lag.ms`` and ``delete.retention.ms``: an erased user's older records (their
keys among them) are compacted away, and then their tombstones too, within about that long.
Kafka compacts closed segments only, and closes one when a record arrives after that time: a
changelog or keys partition that sees no more writes keeps them until it does. The models
topic does not wait: an erasure's republish deletes every older record (``publish_model``'s
``drop_older``).
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streaming.kafka.bus import MODELS_CLEANUP, KafkaConfig
from streaming.retention import RetentionPolicy

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


def topic_configs(policy: RetentionPolicy) -> dict[str, dict[str, str]]:
    """The configs per topic suffix (``retention.ms`` -1: forever).

    >>> topic_configs(RetentionPolicy(decisions_s=60, feedback_s=120, dead_letters_s=0))["events"]
    {'retention.ms': '120000', 'segment.ms': '120000'}
    """

    def kept(seconds: float | None) -> dict[str, str]:
        if not seconds:
            return {"retention.ms": "-1", "segment.ms": str(DAY_MS)}
        ms = int(seconds * 1000)
        return {"retention.ms": str(ms), "segment.ms": str(min(ms, DAY_MS))}

    erasure = str(int(policy.erasure_s * 1000))
    compacted = {"max.compaction.lag.ms": erasure, "delete.retention.ms": erasure}
    return {
        "events": kept(policy.events_s),
        "deadletters": kept(policy.dead_letters_s),
        "changelog": compacted,
        "keys": compacted,
        "models": {**compacted, **MODELS_CLEANUP},
    }


def apply_retention(config: KafkaConfig, policy: RetentionPolicy, *, timeout_s: float = 30) -> None:
    """Set the topics' retention and compaction configs to the policy's."""
    wanted = topic_configs(policy)
    admin = KafkaAdminClient(
        bootstrap_servers=config.servers,
        client_id="attune-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        topics = {
            "events": config.events,
            "deadletters": config.deadletters,
            "changelog": config.changelog,
            "keys": config.keys,
            "models": config.models,
        }
        admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topics[name], configs)
                for name, configs in wanted.items()
            ]
        )
        log.info("topic configs: %s", {topics[k]: v for k, v in wanted.items()})
    finally:
        admin.close()
