"""The retention policy on Kafka: the topics' ``retention.ms``, set when a worker starts.

The events topic cannot tell settled decisions from feedback, so it keeps everything as long
as the longer of the two (``RetentionPolicy.events_s``); the dead-letter topic keeps
``dead_letters_s``. The changelog and models topics are compacted and keep the current record
per key (learned state is kept).
"""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streaming.kafka.bus import KafkaConfig
from streaming.retention import RetentionPolicy

log = logging.getLogger(__name__)


def retention_ms(policy: RetentionPolicy) -> dict[str, str]:
    """``retention.ms`` per topic suffix (``-1``: forever).

    >>> retention_ms(RetentionPolicy(decisions_s=60, feedback_s=120, dead_letters_s=0))
    {'events': '120000', 'deadletters': '-1'}
    """

    def ms(seconds: float | None) -> str:
        return "-1" if not seconds else str(int(seconds * 1000))

    return {"events": ms(policy.events_s), "deadletters": ms(policy.dead_letters_s)}


def apply_retention(config: KafkaConfig, policy: RetentionPolicy, *, timeout_s: float = 30) -> None:
    """Set the events and dead-letter topics' ``retention.ms`` to the policy's."""
    wanted = retention_ms(policy)
    admin = KafkaAdminClient(
        bootstrap_servers=config.servers,
        client_id="attune-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        topics = {"events": config.events, "deadletters": config.deadletters}
        admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, topics[name], {"retention.ms": value})
                for name, value in wanted.items()
            ]
        )
        log.info("retention.ms: %s", {topics[k]: v for k, v in wanted.items()})
    finally:
        admin.close()
