"""The population's part of the reward model, one Gaussian posterior per tenant.

For a request with context ``c`` the population predicts ``attributes_a . W c`` for arm ``a``;
``W`` (attribute columns x context columns) is learned from every user of a tenant, so what
users with a given context liked reaches a new user with that context on their first turn, and
one tenant's feedback never moves another tenant's decisions. Each attribute column's row of
``W`` has a Gaussian posterior (mean and covariance; the columns are kept independent, a
decoupled Kalman filter, see ``bandit._kernels.shared``). Beside it, each tenant keeps what its
own updates contributed in information form (precision and precision-weighted mean, prior
excluded): contributions of several learners (Kafka partitions) add up to one posterior
(``combine``).

Each tenant also estimates how far its users deviate from the population's prediction
(empirical Bayes): for two rewards of one user, the product of their residuals has expectation
``tau^2 x_i . x_j``, so ``tau^2 = sum e_i e_j / sum x_i . x_j`` over pairs of one user's
observations (recent pairs weigh more: ``EB_HORIZON``). A new user starts with prior
precision ``noise_sd^2 / tau^2`` (in the units of ``UserState``), so personal learning adds
only what the population does not explain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

# Pairs' ``sum x_i . x_j`` a tenant needs before its estimate replaces the configured prior.
MIN_EVIDENCE = 50.0
# The estimate forgets old pairs with this horizon (observations of the tenant): residuals
# from before the population model had learned carry its error, which is not the users'.
EB_HORIZON = 2000.0
TAU_RANGE = (0.02, 2.0)  # the estimated deviation is kept in this range (reward units)
_PER_TENANT = ("mean", "cov", "info", "info_mean", "eb", "updates")


def tenant_of(user_id: str) -> str:
    """The tenant of an engine user id ``tenant/user`` ("" for an id without a tenant)."""
    tenant, sep, _ = user_id.partition("/")
    return tenant if sep else ""


class SharedModel:
    """Per-tenant posteriors of the shared weights (see the module docstring).

    Parameters
    ----------
    n_attributes, n_context : int
        Shape of ``W``: the catalog's attribute columns and the context's columns.
    prior_sd : float
        Prior standard deviation of every weight.
    noise_sd : float
        Reward noise, for the empirical user prior.
    prior_precision : float
        A new user's prior precision until the tenant's estimate has enough evidence (or
        always, with ``empirical=False``).
    empirical : bool

    Examples
    --------
    >>> shared = SharedModel(3, 2, prior_sd=0.5, noise_sd=0.5, prior_precision=1.0)
    >>> t = shared.index("acme")
    >>> shared.mean[t].shape, float(shared.cov[t][0, 0, 0])
    ((3, 2), 0.25)
    >>> shared.user_prior("acme/ana")
    (0, 1.0)
    """

    def __init__(
        self,
        n_attributes: int,
        n_context: int,
        *,
        prior_sd: float,
        noise_sd: float,
        prior_precision: float,
        empirical: bool = True,
    ) -> None:
        self.p, self.q = n_attributes, n_context
        self.prior_sd, self.noise_sd = float(prior_sd), float(noise_sd)
        self.prior_precision, self.empirical = float(prior_precision), empirical
        self.tenants: dict[str, int] = {}
        self._alloc(1)

    # ------------------------------------------------------------------ tenants
    def index(self, tenant: str) -> int:
        """The tenant's row in the arrays, created at the prior on first use."""
        t = self.tenants.get(tenant)
        if t is None:
            t = len(self.tenants)
            if t >= len(self.mean):
                self._alloc(2 * len(self.mean))
            self.tenants[tenant] = t
        return t

    def user_prior(self, user_id: str) -> tuple[int, float]:
        """A new user's tenant row and prior precision."""
        t = self.index(tenant_of(user_id))
        return t, self.precision(t)

    def precision(self, t: int) -> float:
        """The prior precision a new user of tenant row ``t`` starts with."""
        num, den = self.eb[t]
        if not self.empirical or den < MIN_EVIDENCE:
            return self.prior_precision
        tau2 = float(np.clip(num / den, TAU_RANGE[0] ** 2, TAU_RANGE[1] ** 2))
        return self.noise_sd**2 / tau2

    def deviation_sd(self, tenant: str) -> float | None:
        """The estimated sd of users' deviations from the population (None: not enough data)."""
        t = self.tenants.get(tenant)
        if t is None or self.eb[t, 1] < MIN_EVIDENCE:
            return None
        return float(np.sqrt(self.noise_sd**2 / self.precision(t)))

    def bias_column(self) -> np.ndarray:
        """The population's per-attribute baseline (``W``'s context-bias column), averaged over
        tenants with data, shape (n_attributes,)."""
        live = [t for t in self.tenants.values() if self.updates[t] > 0]
        if not live:
            return np.zeros(self.p)
        return self.mean[live, :, 0].mean(axis=0)

    # ------------------------------------------------------------------ moving state
    def export(self, tenant: str) -> dict[str, np.ndarray]:
        """One tenant's arrays (copies)."""
        t = self.index(tenant)
        return {name: np.array(getattr(self, name)[t]) for name in _PER_TENANT}

    def load(self, tenant: str, arrays: Mapping[str, Any]) -> None:
        """Replace one tenant's arrays with an export of them."""
        t = self.index(tenant)
        for name in _PER_TENANT:
            target = getattr(self, name)
            value = np.asarray(arrays[name], dtype=target.dtype)
            if value.shape != target.shape[1:]:
                raise ValueError(
                    f"shared.{name}: expected shape {target.shape[1:]}, got {value.shape}"
                )
            target[t] = value

    def combine(self, parts: list[Mapping[str, Mapping[str, Any]]]) -> None:
        """Set every tenant to the posterior of all contributions: the prior plus the sum of
        each part's ``info`` and ``info_mean`` (one part per learner, e.g. Kafka partition)."""
        tenants = {name for part in parts for name in part}
        prior = np.eye(self.q) / self.prior_sd**2
        for name in sorted(tenants):
            t = self.index(name)
            mine = [part[name] for part in parts if name in part]
            info = sum(np.asarray(m["info"], dtype=np.float64) for m in mine)
            info_mean = sum(np.asarray(m["info_mean"], dtype=np.float64) for m in mine)
            cov = np.linalg.inv(prior[None] + info)
            self.cov[t] = cov
            self.mean[t] = np.einsum("sij,sj->si", cov, info_mean)
            self.info[t], self.info_mean[t] = info, info_mean
            self.eb[t] = sum(np.asarray(m["eb"], dtype=np.float64) for m in mine)
            self.updates[t] = sum(int(m["updates"]) for m in mine)

    def copy_from(self, other: SharedModel) -> None:
        """Give every tenant ``other`` holds the same posterior here. Tenants are matched by
        name: each engine numbers its tenants in the order it met them."""
        for name in other.tenants:
            self.load(name, other.export(name))

    def snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        """Every tenant's arrays, by name (``restore`` puts them back)."""
        return {name: self.export(name) for name in self.tenants}

    def restore(self, snap: Mapping[str, Mapping[str, Any]]) -> None:
        """Back to a snapshot; a tenant met since then goes back to the prior."""
        for name in self.tenants:
            self.load(name, snap[name] if name in snap else self._prior())

    def _prior(self) -> dict[str, np.ndarray]:
        q = self.q
        cov = np.broadcast_to(np.eye(q) * self.prior_sd**2, (self.p, q, q))
        zeros = {"mean": (self.p, q), "info": (self.p, q, q), "info_mean": (self.p, q)}
        out = {name: np.zeros(shape) for name, shape in zeros.items()}
        return {**out, "cov": cov, "eb": np.zeros(2), "updates": np.zeros((), dtype=np.int64)}

    def to_arrays(self) -> dict[str, np.ndarray]:
        n = len(self.tenants)
        out = {name: getattr(self, name)[:n] for name in _PER_TENANT}
        names = sorted(self.tenants, key=self.tenants.__getitem__)
        out["tenants"] = np.array(names, dtype=str)
        return out

    def from_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:
        names = [str(t) for t in arrays["tenants"].tolist()]
        self.tenants = {}
        for name in names:
            self.index(name)
        for name in _PER_TENANT:
            getattr(self, name)[: len(names)] = arrays[name]

    # ------------------------------------------------------------------ internals
    def _alloc(self, capacity: int) -> None:
        p, q = self.p, self.q
        old = {name: getattr(self, name) for name in _PER_TENANT if hasattr(self, name)}
        self.mean = np.zeros((capacity, p, q))
        self.cov = np.zeros((capacity, p, q, q))
        self.cov[:] = np.eye(q) * self.prior_sd**2
        self.info = np.zeros((capacity, p, q, q))
        self.info_mean = np.zeros((capacity, p, q))
        self.eb = np.zeros((capacity, 2))
        self.updates = np.zeros(capacity, dtype=np.int64)
        for name, arr in old.items():
            getattr(self, name)[: len(arr)] = arr[:capacity]
