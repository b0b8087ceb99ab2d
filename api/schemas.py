"""Request and response bodies of the HTTP API (``XCreate`` in, ``XPublic`` out)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from api.fields import MAX_AUDIT_KEYS, AuditKey, AuditValue, Id, UserId, check_number
from api.fields import MAX_USER_ID as MAX_USER_ID  # re-exported: routes import it from here
from api.fields import encodable as _encodable

MAX_FEATURES = 64


Text = Annotated[str, AfterValidator(_encodable)]
Label = Annotated[Text, Field(max_length=64)]


def _feature_value(value: Any) -> Any:
    # One error per bad value, naming the feature (a union type would report one per member);
    # what a declared feature allows is checked by its declaration (bandit/context.py).
    if isinstance(value, bool | str) or value is None:
        if isinstance(value, str) and (len(value) > 64 or _encodable(value) is None):
            raise ValueError("a string feature value has at most 64 characters")
        return value
    if isinstance(value, int | float):
        return check_number(value)
    if isinstance(value, list) and len(value) <= 64 and all(isinstance(v, str) for v in value):
        return [_encodable(v) for v in value]
    raise ValueError("must be a number, a boolean, a string or a list of strings")


# A product feature's value: a number, a boolean, a category or a list of tags (or null).
FeatureValue = Annotated[Any, AfterValidator(_feature_value)]
Signal = Literal["copied", "regenerated", "asked_simpler", "asked_deeper", "abandoned"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------------- decisions
class DecisionCreate(_Body):
    user_id: UserId = Field(description="The product's id for the user (scoped by tenant).")
    message: Annotated[Text, Field(max_length=32_000)] = Field(
        "", description="The user's message this turn; featurized, never stored."
    )
    locale: Annotated[Text, Field(max_length=35)] = Field(
        "en", description="BCP-47 tag; directives render in it."
    )
    features: dict[Annotated[Text, Field(max_length=64)], FeatureValue] = Field(
        default_factory=dict,
        max_length=MAX_FEATURES,
        description="Product features: declared ones (settings [context]) by name, e.g. "
        '{"plan": "pro", "voice": true}; user-scope ones are remembered. Undeclared keys go '
        "to the overflow block, or 422 in strict mode.",
    )
    constraints: dict[
        Annotated[Text, Field(max_length=64)],
        Annotated[Text, Field(max_length=64)]
        | Annotated[
            list[Annotated[Text, Field(max_length=64)]], Field(min_length=1, max_length=32)
        ],
    ] = Field(
        default_factory=dict,
        max_length=16,
        description="Allowed levels per dimension for this turn.",
    )
    session_id: Id | None = None
    audit: dict[AuditKey, AuditValue] = Field(
        default_factory=dict,
        max_length=MAX_AUDIT_KEYS,
        description="Group attributes stored for audits; never used as features: strings of "
        "at most 256 characters, booleans or finite numbers within ±2^53.",
    )


class StrategyPublic(BaseModel):
    id: str
    levels: dict[str, str]


class DirectivesPublic(BaseModel):
    system_prompt: str
    messages: list[dict[str, str]]
    params: dict[str, float | int]
    locale: str
    adapter: str | None = Field(
        None, description="the user's group adapter id, when adapter_template is set"
    )


class ReasonPublic(BaseModel):
    kind: str
    text: str
    weight: float
    dimension: str | None = None
    level: str | None = None
    feature: str | None = None


class PolicyPublic(BaseModel):
    name: str
    version: str


class DecisionPublic(BaseModel):
    decision_id: str
    strategy: StrategyPublic
    directives: DirectivesPublic
    propensity: float
    explanation: list[ReasonPublic]
    policy: PolicyPublic


# ---------------------------------------------------------------------- feedback
class _FeedbackBase(_Body):
    user_id: UserId
    decision_id: Id
    event_id: Id | None = Field(None, description="Makes the feedback idempotent.")


class ThumbsFeedback(_FeedbackBase):
    kind: Literal["thumbs"]
    value: Literal["up", "down"]


class RatingFeedback(_FeedbackBase):
    kind: Literal["rating"]
    value: int = Field(ge=1, le=5)


class RewardFeedback(_FeedbackBase):
    kind: Literal["reward"]
    value: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)


class ImplicitFeedback(_FeedbackBase):
    kind: Literal["implicit"]
    signals: list[Signal] = Field(default_factory=list, max_length=16)
    dwell_ms: int = Field(0, ge=0, le=86_400_000)


class PairwiseFeedback(_FeedbackBase):
    kind: Literal["pairwise"]
    other_decision_id: Id = Field(description="A response of the same user that lost.")


FeedbackCreate = Annotated[
    ThumbsFeedback | RatingFeedback | RewardFeedback | ImplicitFeedback | PairwiseFeedback,
    Field(discriminator="kind"),
]


class FeedbackPublic(BaseModel):
    event_id: str
    status: Literal["accepted", "duplicate"]


# ---------------------------------------------------------------------- profiles
class LevelScore(BaseModel):
    score: float
    sd: float


class PreferencePublic(BaseModel):
    preferred: str
    confidence: float
    levels: dict[str, LevelScore]


class EvidencePublic(BaseModel):
    feedback_events: int
    decisions: int
    default_rewards: int
    by_kind: dict[str, int]


class ProfilePublic(BaseModel):
    user_id: str
    preferences: dict[str, PreferencePublic]
    pins: dict[str, str]
    features: dict[str, Any] = Field(
        default_factory=dict, description="declared user-scope features attune remembers"
    )
    evidence: EvidencePublic
    last_seen: float | None
    cluster: int | None = Field(
        None, description="the user's group in the CF model (null without a model)"
    )


class ProfileUpdate(_Body):
    pins: dict[
        Annotated[Text, Field(max_length=64)], Annotated[Text, Field(max_length=64)] | None
    ] = Field(
        default_factory=dict, max_length=16, description="Level per dimension to pin, or null."
    )
    features: dict[Label, FeatureValue] = Field(
        default_factory=dict,
        max_length=MAX_FEATURES,
        description="Declared user-scope features to remember, or null to forget one.",
    )


class ExportPublic(BaseModel):
    user_id: str
    tenant: str
    profile: ProfilePublic
    state: dict[str, Any]
    events: list[dict[str, Any]]


class CatalogPublic(BaseModel):
    name: str
    version: int
    locales: list[str]
    dimensions: dict[str, list[str]]
    n_arms: int
    arms: list[str]
