"""Service settings: read once, from defaults, a TOML file, ``ATTUNE_*`` variables and flags.

Later sources win: defaults < settings file < environment < command-line flags. A settings
file looks like::

    [server]
    host = "127.0.0.1"
    port = 8000
    data_dir = "attune-data"
    bus = "kafka://127.0.0.1:9092"   # optional; the embedded store in data_dir otherwise
    catalog = "my-catalog.toml"      # optional; the shipped catalog otherwise
    max_body_bytes = 65536
    secret = "..."                   # signs profile links; the same on every Kafka replica
    public_url = "https://chat.example.com/attune"  # optional: profile links' base URL
    profile_link_ttl_s = 900         # how long a profile link works

    [engine]
    policy = "lints"                 # lints, linucb, egreedy, softmax, squarecb, uniform
    policy_params = {}
    floor = 0.05
    forgetting = 0.998

    [context]                        # what the product declares (bandit/context.py)
    overflow = 8                     # columns for undeclared keys (hashed)
    strict = false                   # true: an undeclared key is a 422
    [[context.features]]
    name = "role"
    kind = "categorical"             # numeric (range or scale), boolean, categorical, tags
    scope = "user"                   # user: remembered per user; request: this turn only
    levels = ["engineer", "pm", "researcher"]

    [feedback]
    wait_window_s = 600              # no feedback this long -> the default reward
    default_reward = 0.5

    [models]                         # collaborative-filtering models (attune train)
    adapter_template = "cluster-{k}" # directives.adapter per user group; off by default
    poll_interval_s = 5.0            # how often the models folder or topic is checked

    [rewards]                        # the reward composer, see streaming/composer.py
    thumbs_down = 0.0
    signals = { regenerated = -0.5 }

    [retention]                      # how long the log keeps records; 0 keeps forever
    decisions_s = 2592000            # settled decisions (at least the wait window)
    feedback_s = 2592000
    dead_letters_s = 604800          # quarantined rows, the Kafka dead-letter topic
    interval_s = 60                  # how often the embedded store is compacted
    erasure_s = 86400                # Kafka: erased users' records leave compacted topics

    [memory]
    max_resident_users = 100000      # users held in memory; the least recently seen leave
    idle_evict_s = 3600              # users idle this long leave memory (they come back)

    [metrics]
    public = false                   # true: /metrics without a key (never names tenants)

    [operators]
    keys = ["an-operator-key-of-24-chars-or-more"]   # for /metrics

    [tenants.acme]
    keys = ["a-random-key-of-at-least-24-characters"]
    catalog = "acme-catalog.toml"    # optional: this tenant's own strategies (``for_tenant``)

Environment variables: ``ATTUNE_SETTINGS`` (the file), ``ATTUNE_HOST``, ``ATTUNE_PORT``,
``ATTUNE_DATA_DIR``, ``ATTUNE_BUS``, ``ATTUNE_CATALOG``, ``ATTUNE_POLICY``,
``ATTUNE_WAIT_WINDOW_S``, ``ATTUNE_DEFAULT_REWARD``, ``ATTUNE_ADAPTER_TEMPLATE``,
``ATTUNE_API_KEYS`` (``"tenant-a:key-a,tenant-b:key-b"``), ``ATTUNE_SECRET``,
``ATTUNE_OPERATOR_KEYS`` (``"key-1,key-2"``), ``ATTUNE_METRICS_PUBLIC`` (``true``/``false``),
``ATTUNE_RETENTION_DECISIONS_S``, ``ATTUNE_RETENTION_FEEDBACK_S``,
``ATTUNE_RETENTION_DEAD_LETTERS_S``, ``ATTUNE_MAX_RESIDENT_USERS``, ``ATTUNE_IDLE_EVICT_S``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from api.keys import MIN_KEY_LENGTH
from bandit import Catalog, EngineConfig
from bandit.config import FIELDS as ENGINE_FIELDS
from streaming.bus import ServingOptions, bus_scheme, sqlite_path
from streaming.composer import RewardComposer
from streaming.retention import RetentionPolicy

_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
_RETENTION = ("decisions_s", "feedback_s", "dead_letters_s", "interval_s", "erasure_s")
_SECTIONS = {
    "server": (
        *("host", "port", "data_dir", "bus", "catalog", "max_body_bytes"),
        *("secret", "public_url", "profile_link_ttl_s"),
    ),
    "engine": (*ENGINE_FIELDS, "random_state"),
    "feedback": ("wait_window_s", "default_reward", "checkpoint_interval_s"),
    "models": ("adapter_template", "poll_interval_s"),
    "retention": _RETENTION,
    "memory": ("max_resident_users", "idle_evict_s"),
    "metrics": ("public",),
}
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ATTUNE_HOST": ("host", str),
    "ATTUNE_PORT": ("port", int),
    "ATTUNE_DATA_DIR": ("data_dir", Path),
    "ATTUNE_BUS": ("bus", str),
    "ATTUNE_CATALOG": ("catalog", Path),
    "ATTUNE_POLICY": ("engine.policy", str),
    "ATTUNE_WAIT_WINDOW_S": ("wait_window_s", float),
    "ATTUNE_DEFAULT_REWARD": ("default_reward", float),
    "ATTUNE_ADAPTER_TEMPLATE": ("adapter_template", str),
    "ATTUNE_SECRET": ("secret", str),
    "ATTUNE_RETENTION_DECISIONS_S": ("retention.decisions_s", float),
    "ATTUNE_RETENTION_FEEDBACK_S": ("retention.feedback_s", float),
    "ATTUNE_RETENTION_DEAD_LETTERS_S": ("retention.dead_letters_s", float),
    "ATTUNE_MAX_RESIDENT_USERS": ("max_resident_users", int),
    "ATTUNE_IDLE_EVICT_S": ("idle_evict_s", float),
    "ATTUNE_METRICS_PUBLIC": ("metrics_public", lambda v: _boolean("ATTUNE_METRICS_PUBLIC", v)),
}


class SettingsError(ValueError):
    """A setting is malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything ``attune serve`` is configured with. Validated on construction."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("attune-data")
    bus: str = ""  # see streaming.bus; empty: the embedded store in data_dir
    catalog: Path | None = None
    max_body_bytes: int = 64 * 1024
    engine: EngineConfig = field(default_factory=EngineConfig)
    random_state: int | None = None
    wait_window_s: float = 600.0
    default_reward: float | None = None
    checkpoint_interval_s: float = 1.0
    rewards: RewardComposer = field(default_factory=RewardComposer)
    api_keys: Mapping[str, str] = field(default_factory=dict)  # key -> tenant
    adapter_template: str | None = None
    poll_interval_s: float = 5.0
    warm: bool = True
    secret: str | None = None  # profile links; embedded mode makes one in data_dir if unset
    public_url: str | None = None
    profile_link_ttl_s: float = 900.0
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    max_resident_users: int = 100_000
    idle_evict_s: float = 3600.0
    metrics_public: bool = False
    operator_keys: tuple[str, ...] = ()
    tenant_catalogs: Mapping[str, Path] = field(default_factory=dict)  # tenant -> catalog file

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be in 1..65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if not self.wait_window_s > 0:
            raise SettingsError(f"wait_window_s must be > 0, got {self.wait_window_s}")
        if self.default_reward is not None and not 0 <= self.default_reward <= 1:
            raise SettingsError(f"default_reward must be in [0, 1], got {self.default_reward}")
        if not self.checkpoint_interval_s > 0:
            raise SettingsError("checkpoint_interval_s must be > 0")
        if not self.poll_interval_s > 0:
            raise SettingsError(f"poll_interval_s must be > 0, got {self.poll_interval_s}")
        if self.adapter_template is not None:
            _check_template(self.adapter_template)
        if self.secret is not None and len(self.secret) < 16:
            raise SettingsError("secret must have >= 16 characters")
        if not 0 < self.profile_link_ttl_s <= 7 * 86400:
            raise SettingsError(
                f"profile_link_ttl_s must be in (0, 604800], got {self.profile_link_ttl_s}"
            )
        for key, tenant in self.api_keys.items():
            if not _TENANT.match(tenant):
                raise SettingsError(f"tenant {tenant!r}: names must match {_TENANT.pattern}")
            if len(key) < MIN_KEY_LENGTH:
                raise SettingsError(
                    f"tenant {tenant!r}: API keys must have >= {MIN_KEY_LENGTH} characters"
                )
        for key in self.operator_keys:
            if len(key) < MIN_KEY_LENGTH:
                raise SettingsError(f"operator keys must have >= {MIN_KEY_LENGTH} characters")
        if self.max_resident_users < 1:
            raise SettingsError(f"max_resident_users must be >= 1, got {self.max_resident_users}")
        if not self.idle_evict_s > 0:
            raise SettingsError(f"idle_evict_s must be > 0, got {self.idle_evict_s}")
        object.__setattr__(self, "operator_keys", tuple(self.operator_keys))
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.bus:
            try:
                bus_scheme(self.bus)
                if self.bus.startswith("sqlite://"):
                    sqlite_path(self.bus)
            except ValueError as exc:
                raise SettingsError(f"bus: {exc}") from None
        if self.catalog is not None:
            object.__setattr__(self, "catalog", Path(self.catalog))
        for tenant, path in self.tenant_catalogs.items():
            if not Path(path).is_file():
                raise SettingsError(f"tenants.{tenant}.catalog: no such file {path}")

    @property
    def store_path(self) -> Path | None:
        """The embedded store's file (None on Kafka)."""
        if not self.bus:
            return self.data_dir / "attune.sqlite"
        return sqlite_path(self.bus) if bus_scheme(self.bus) == "sqlite" else None

    @property
    def models_dir(self) -> Path:
        """Where ``attune train`` publishes models in the embedded mode."""
        return self.data_dir / "models"

    def load_catalog(self) -> Catalog:
        """The catalog file the settings name, or the shipped one."""
        return Catalog.from_toml(self.catalog) if self.catalog else Catalog.default()

    def for_tenant(self, tenant: str | None) -> Settings:
        """The settings that serve ``tenant``: these, unless the tenant names its own catalog.

        Such a tenant is served by a lane of its own catalog (shared with every tenant naming a
        catalog of the same name): its store and models under ``<data_dir>/catalogs/<name>/``
        on the embedded store, topics prefixed ``<prefix>-<name>`` on Kafka. Decisions,
        ``attune train``, ``worker``, ``simulate``, ``evaluate`` and ``export-log`` all take
        their tenant's settings from here, so a model is trained and installed per catalog.
        """
        path = self.tenant_catalogs.get(tenant) if tenant is not None else None
        if path is None:
            return self
        catalog, default = Catalog.from_toml(path), self.load_catalog()
        if catalog.name == default.name:
            if catalog.identity() == default.identity():
                return self  # the server's own catalog: no lane of its own
            raise SettingsError(
                f"tenants.{tenant}.catalog: {path} is named {catalog.name!r} like the server's "
                "catalog but differs from it; give it a name of its own"
            )
        return replace(
            self,
            catalog=path,
            data_dir=self.data_dir / "catalogs" / catalog.name,
            bus=lane_bus(self.bus, catalog.name),
            tenant_catalogs={},
        )

    def serving_options(self, catalog: Catalog) -> ServingOptions:
        """What the bus's backend needs of these settings."""
        return ServingOptions(
            catalog=catalog,
            engine_config=self.engine,
            random_state=self.random_state,
            rewards=self.rewards,
            wait_window_s=self.wait_window_s,
            default_reward=self.default_reward,
            checkpoint_interval_s=self.checkpoint_interval_s,
            data_dir=self.data_dir,
            poll_interval_s=self.poll_interval_s,
            retention=self.retention,
            max_resident_users=self.max_resident_users,
            idle_evict_s=self.idle_evict_s,
        )


def lane_bus(url: str, name: str) -> str:
    """The bus URL of catalog ``name``'s lane: a sibling store file, or its own topic prefix.

    >>> lane_bus("", "support")
    ''
    >>> lane_bus("sqlite:///srv/attune.sqlite", "support")
    'sqlite:///srv/catalogs/support/attune.sqlite'
    >>> lane_bus("kafka://k1:9092?prefix=prod&partitions=4", "support")
    'kafka://k1:9092?prefix=prod-support&partitions=4'
    """
    if not url:
        return url  # the embedded store in the lane's data_dir
    if bus_scheme(url) == "sqlite":
        path = sqlite_path(url)
        return f"sqlite://{path.parent / 'catalogs' / name / path.name}"
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["prefix"] = f"{query.get('prefix', 'attune')}-{name}"
    return urlunsplit(parts._replace(query=urlencode(query)))


def _check_template(template: str) -> None:
    """An adapter template must name the cluster as ``{k}`` and nothing else."""
    try:
        one, two = template.format(k=1), template.format(k=2)
    except (KeyError, IndexError, ValueError) as exc:
        raise SettingsError(
            f"adapter_template: expected text with a {{k}} field, got {template!r} ({exc})"
        ) from None
    if one == two:
        raise SettingsError(f"adapter_template: {template!r} must contain {{k}}")


def _boolean(name: str, text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}: expected true or false, got {text!r}")


def parse_api_keys(text: str) -> dict[str, str]:
    """``"tenant-a:key-a,tenant-b:key-b"`` -> ``{key: tenant}``."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        tenant, sep, key = item.partition(":")
        if not sep or not tenant or not key:
            raise SettingsError(f"ATTUNE_API_KEYS: expected 'tenant:key' items, got {item!r}")
        out[key] = tenant
    return out


def load_settings(
    path: str | Path | None = None, env: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Settings from the file (``path`` or ``$ATTUNE_SETTINGS``), the environment and
    ``overrides`` (flags; None values are ignored), later sources winning."""
    env = dict(env or {})
    path = path or env.get("ATTUNE_SETTINGS") or None
    values: dict[str, Any] = _from_file(Path(path)) if path else {}
    engine = values.pop("engine", {})
    retention = values.pop("retention", {})
    for var, (name, kind) in _ENV.items():
        if env.get(var, "").strip():
            try:
                value = kind(env[var].strip())
            except ValueError:
                what = getattr(kind, "__name__", "a value")
                raise SettingsError(f"{var}: expected {what}, got {env[var]!r}") from None
            if name.startswith("engine."):
                engine[name.removeprefix("engine.")] = value
            elif name.startswith("retention."):
                retention[name.removeprefix("retention.")] = value
            else:
                values[name] = value
    if env.get("ATTUNE_API_KEYS", "").strip():
        from_env = parse_api_keys(env["ATTUNE_API_KEYS"])
        values["api_keys"] = {**values.get("api_keys", {}), **from_env}
    if env.get("ATTUNE_OPERATOR_KEYS", "").strip():
        keys = [k.strip() for k in env["ATTUNE_OPERATOR_KEYS"].split(",") if k.strip()]
        values["operator_keys"] = (*values.get("operator_keys", ()), *keys)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        values["retention"] = RetentionPolicy(**retention)
    except (TypeError, ValueError) as exc:
        raise SettingsError(str(exc)) from None
    try:
        values["engine"] = EngineConfig.from_dict(engine)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"engine: {exc}") from None
    try:
        return Settings(**values)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: no such settings file") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    allowed = {*_SECTIONS, "context", "rewards", "tenants", "operators"}
    for section, table in data.items():
        if section not in allowed:
            raise SettingsError(
                f"{path}: unknown section [{section}]; allowed: {', '.join(sorted(allowed))}"
            )
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: [{section}] must be a table")
        if section in _SECTIONS:
            bad = sorted(set(table) - set(_SECTIONS[section]))
            if bad:
                raise SettingsError(
                    f"{path}: {section}.{bad[0]} is unknown; allowed: "
                    f"{', '.join(_SECTIONS[section])}"
                )
            if section == "engine":
                if "random_state" in table:
                    values["random_state"] = table.pop("random_state")
                values.setdefault("engine", {}).update(table)
            elif section == "retention":
                values["retention"] = dict(table)
            elif section == "metrics":
                values.update({f"metrics_{k}": v for k, v in table.items()})
            else:
                values.update(table)
    if "context" in data:
        values.setdefault("engine", {})["context"] = data["context"]
    if "catalog" in values:
        values["catalog"] = (path.parent / values["catalog"]).resolve()
    try:
        values["rewards"] = RewardComposer.from_dict(data.get("rewards"))
    except ValueError as exc:
        raise SettingsError(f"{path}: rewards: {exc}") from None
    keys: dict[str, str] = {}
    catalogs: dict[str, Path] = {}
    for tenant, table in data.get("tenants", {}).items():
        if not isinstance(table, dict) or set(table) - {"keys", "catalog"}:
            raise SettingsError(f"{path}: [tenants.{tenant}] allows keys and catalog")
        tkeys = table.get("keys", [])
        if not isinstance(tkeys, list) or not all(isinstance(k, str) for k in tkeys):
            raise SettingsError(f"{path}: tenants.{tenant}.keys must be a list of strings")
        keys.update(dict.fromkeys(tkeys, tenant))
        if "catalog" in table:
            catalogs[tenant] = (path.parent / str(table["catalog"])).resolve()
    values["api_keys"] = keys
    values["tenant_catalogs"] = catalogs
    operators = data.get("operators", {})
    okeys = operators.get("keys", []) if isinstance(operators, dict) else None
    if not isinstance(okeys, list) or not all(isinstance(k, str) for k in okeys):
        raise SettingsError(f"{path}: operators.keys must be a list of strings")
    values["operator_keys"] = tuple(okeys)
    return values


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy with some settings changed (tests use this)."""
    known = {f.name for f in fields(Settings)}
    bad = sorted(set(changes) - known)
    if bad:
        raise SettingsError(f"unknown setting {bad[0]!r}")
    return replace(settings, **changes)
