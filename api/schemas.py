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
    request_id: Id | None = Field(
        None,
        description="Makes the decision idempotent: a request with the same user and "
        "request_id (within the wait window) gets the first one's decision, logged once. "
        "Unique per turn, e.g. the product's message id.",
    )


class StrategyPublic(BaseModel):
    id: str
    levels: dict[str, str]


class DirectivesPublic(BaseModel):
    system_prompt: str
    messages: list[dict[str, str]] = Field(
        description="OpenAI-style messages: the system prompt, then the message if any"
    )
    params: dict[str, float | int] = Field(
        description="generation parameters, named as OpenAI Chat Completions names them"
    )
    locale: str
    adapter: str | None = Field(
        None, description="the user's group adapter id, when adapter_template is set"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="the user's memory notes retrieved for this message, already in "
        "system_prompt (the explanation names them)",
    )
    openai: dict[str, Any] = Field(
        description="the Chat Completions call: messages, max_tokens, temperature, top_p"
    )
    anthropic: dict[str, Any] = Field(
        description="the Messages call: system, messages, max_tokens, temperature or top_p"
    )


class ReasonPublic(BaseModel):
    kind: str
    text: str
    weight: float
    dimension: str | None = None
    level: str | None = None
    feature: str | None = None
    note_id: str | None = None
    group: str | None = None


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
    seed: int | None = Field(
        description="the decision's random seed (below 2**62): with the same state it "
        "reproduces the choice; report it with the decision"
    )
    request_id: str | None = Field(None, description="the request_id the decision answers")


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


# ---------------------------------------------------------------------- memory notes
MAX_NOTE_TEXT = 2000
NoteKey = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
NoteText = Annotated[Text, Field(min_length=1, max_length=MAX_NOTE_TEXT)]
Seconds = Annotated[float, Field(gt=0, le=10 * 365 * 86400, allow_inf_nan=False)]


class NoteCreate(_Body):
    text: NoteText = Field(description="What to remember, in the user's words or the product's.")
    key: NoteKey | None = Field(
        None,
        description="e.g. background, preferred_language: a newer note with the same key "
        "supersedes the older one",
    )
    source: Literal["user", "product", "inferred"] = "product"
    ttl_s: Seconds | None = Field(None, description="Forget the note this long after it is set.")
    pinned: bool = Field(False, description="Always put this note into the directives.")


class NoteUpdate(_Body):
    text: NoteText | None = None
    key: NoteKey | None = None
    source: Literal["user", "product", "inferred"] | None = None
    ttl_s: Seconds | None = None
    pinned: bool | None = None


class NoteVersion(BaseModel):
    text: str
    version: int
    valid_from: float
    valid_to: float


class NotePublic(BaseModel):
    note_id: str
    text: str
    key: str | None
    source: str
    pinned: bool
    ttl_s: float | None
    status: Literal["live", "superseded", "expired"]
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    valid_to: float | None = Field(description="when a newer note with the same key replaced it")
    superseded_by: str | None
    history: list[NoteVersion] = Field(description="earlier versions of this note (edits)")


class NotesPublic(BaseModel):
    notes: list[NotePublic]


class ProfileLinkCreate(_Body):
    locale: Annotated[Text, Field(max_length=35)] | None = Field(
        None, description="the page's language; default: the user's latest decision's"
    )


class ProfileLinkPublic(BaseModel):
    url: str
    expires_at: float


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
    personalization: Literal["active", "paused"] = "active"
    notes: list[NotePublic] = Field(
        default_factory=list, description="memory notes, current and superseded"
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
    personalization: Literal["active", "paused"] | None = Field(
        None,
        description='"paused": decide from the population model and learn nothing from this '
        'user until "active" again.',
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
