"""Prometheus metrics of one service instance (its own registry, so test apps do not clash)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

# Decisions take a few milliseconds; the buckets resolve the range the latency target lives in.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    """The counters, histograms and gauges ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("attune_decisions", "Decisions served", ["tenant"], registry=r)
        self.feedback = Counter(
            "attune_feedback", "Feedback events accepted, by kind", ["tenant", "kind"], registry=r
        )
        self.unlogged = Counter(
            "attune_decisions_unlogged",
            "Decisions served but not logged (the store or the broker refused them)",
            registry=r,
        )
        self.duplicates = Counter(
            "attune_feedback_duplicates", "Feedback events ignored as already received", registry=r
        )
        self.decision_latency = Histogram(
            "attune_decision_latency_seconds",
            "Time to serve POST /v1/decisions",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.feedback_latency = Histogram(
            "attune_feedback_latency_seconds",
            "Time to accept POST /v1/feedback (durable)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "attune_learner_lag_events", "Events in the log not yet applied", registry=r
        )
        self.applied = Gauge(
            "attune_learner_applied_events", "Events applied by the learner since start", registry=r
        )
        self.rejected = Gauge(
            "attune_learner_rejected_events", "Events the learner could not apply", registry=r
        )
        self.users = Gauge("attune_users", "Users held by the serving engine", registry=r)
        self.model_version = Gauge(
            "attune_model_version", "Version of the installed CF model (0: none)", registry=r
        )
        self._decisions_of: dict[str, Any] = {}

    def count_decision(self, tenant: str) -> None:
        """Count one decision of ``tenant``; its labelled child is looked up once per tenant
        (``labels`` is not free, and this runs on every decision)."""
        child = self._decisions_of.get(tenant)
        if child is None:
            child = self._decisions_of[tenant] = self.decisions.labels(tenant)
        child.inc()

    def bind(
        self,
        lag: Callable[[], float],
        applied: Callable[[], float],
        rejected: Callable[[], float],
        users: Callable[[], float],
        model_version: Callable[[], float],
    ) -> None:
        """Gauges read live values when scraped."""
        self.lag.set_function(lag)
        self.applied.set_function(applied)
        self.rejected.set_function(rejected)
        self.users.set_function(users)
        self.model_version.set_function(model_version)

    def render(self, *, tenants: bool = True) -> bytes:
        """The text exposition; without ``tenants``, series labelled by tenant are summed over
        tenants (what an anonymous scraper may see)."""
        if tenants:
            return generate_latest(self.registry)
        anonymous = CollectorRegistry(auto_describe=False)
        anonymous.register(_WithoutTenants(self.registry))
        return generate_latest(anonymous)


class _WithoutTenants:
    """A collector that re-exposes a registry with the ``tenant`` label summed away."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Any:
        for family in self.registry.collect():
            if not any("tenant" in sample.labels for sample in family.samples):
                yield family
                continue
            out = Metric(family.name, family.documentation, family.type, family.unit)
            sums: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for sample in family.samples:
                labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "tenant"))
                key = (sample.name, labels)
                sums[key] = sums.get(key, 0.0) + sample.value
            for (name, labels), value in sums.items():
                out.add_sample(name, dict(labels), value)
            yield out
