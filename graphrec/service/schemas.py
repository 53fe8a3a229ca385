"""The HTTP service's request and response bodies (pydantic), so ``/openapi.json`` documents
every route and FastAPI validates what comes in and what goes out.

The response bodies are the JSON the CLI prints with ``--format json`` for the same question
(``graphrec recommend USER --format json`` and ``GET /v1/users/USER/recommendations`` give the
same object). Fields whose content depends on the model or the run that wrote them (a bot score's
signals, an anomaly's explanation) are open objects.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: A user's profile attributes: text values (None removes a key in an update).
Attributes = dict[str, str | int | float | bool | None]
#: A user's numeric profile features by column name (finite numbers).
Features = dict[str, float]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code: unauthorized, forbidden, not_found, invalid_input, conflict, "
                                  "concurrent_write, not_ready, method_not_allowed, internal.")
    message: str = Field(description="One line for people, naming the field or the user concerned.")
    details: dict[str, Any] | None = Field(default=None, description="Extra structured context (readiness checks).")


class ErrorBody(BaseModel):
    """The one error body of every route: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class Freshness(BaseModel):
    what: str
    revision: int | None
    store_revision: int
    stale: bool
    message: str


class Suggestion(BaseModel):
    user: str
    score: float
    mutual_friends: int
    reasons: list[str]


class Recommendations(BaseModel):
    """``graphrec recommend USER --format json``."""

    user: str
    recommendations: list[Suggestion]
    model: str
    filtered: dict[str, int] = Field(description="How many candidates each filter removed (self, friends, unfriended, blocked, "
                                                 "deleted, synthetic, bots).")
    bot_filter: str
    freshness: list[Freshness]


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[str] = Field(min_length=1, max_length=1000, description="External ids, at most 1,000.")
    k: int = Field(default=20, ge=1, le=1000)
    bot_threshold: str = Field(default="flagged", description="'flagged', 'off', or a number in [0, 1].")


class BatchItem(BaseModel):
    user: str
    recommendations: list[Suggestion] | None = None
    filtered: dict[str, int] | None = None
    error: str | None = None


class BatchRecommendations(BaseModel):
    model: str
    bot_filter: str
    results: list[BatchItem]


class SimilarUser(BaseModel):
    user: str
    similarity: float


class Similar(BaseModel):
    """``graphrec similar USER --format json``."""

    user: str
    model: str
    similar: list[SimilarUser]
    freshness: list[Freshness]


class UserScore(BaseModel):
    run_id: int
    run_date: str
    threshold: float | None
    model_version: str | None
    score: float | None = Field(description="None when the run did not score the user (created since).")
    flagged: bool | None
    details: dict[str, Any] | None


class UserScores(BaseModel):
    user: str
    scores: dict[str, UserScore | None] = Field(description="By scoring kind (bot, anomaly); None when the kind has no complete run.")


class TopBots(BaseModel):
    """``graphrec bots --format json``."""

    run_id: int
    run_date: str
    threshold: float | None
    bots: list[dict[str, Any]]
    freshness: list[Freshness]


class TopAnomalies(BaseModel):
    """``graphrec anomalies --format json`` (latest nightly run)."""

    source: str
    threshold: float | None
    anomalies: list[dict[str, Any]]
    freshness: list[Freshness]


class UserProfile(BaseModel):
    """``graphrec user show USER --format json``."""

    id: str
    is_synthetic: bool
    deleted: bool
    degree: int
    labels: dict[str, str]
    attributes: dict[str, Any]
    features: dict[str, float]
    feature_columns: int
    created_at: str
    updated_at: str


class Friends(BaseModel):
    user: str
    friends: list[str]
    count: int


class MutualFriends(BaseModel):
    users: list[str]
    mutual_friends: list[str]
    count: int


class StoreOverview(BaseModel):
    """``graphrec stats --format json``."""

    model_config = ConfigDict(extra="allow")

    revision: int
    users: int
    friendships: int
    models: list[Freshness]


class Refusal(BaseModel):
    kind: str
    version: str
    reason: str
    at: str


class ServedModelsStatus(BaseModel):
    """What this worker serves beside what ``LATEST`` names, and the versions it refused."""

    served: dict[str, str | None]
    latest: dict[str, str | None]
    refused: list[Refusal]
    loaded_at: str
    last_check: str | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=255, description="External id of the new user.")
    attributes: Attributes | None = None
    features: Features | None = None
    is_synthetic: bool = False


class UserPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attributes: Attributes | None = Field(default=None, description="Merged into the stored attributes; a null value removes the key.")
    features: Features | None = Field(default=None, description="Merged into the stored features.")
    is_synthetic: bool | None = Field(default=None, description="Only at creation: the flag never changes (409).")


class LabelPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=64)


class Label(BaseModel):
    user: str
    source: str
    label: str


class Deleted(BaseModel):
    user: str
    deleted: bool
    hard: bool


class PairChange(BaseModel):
    """A friendship or block written or removed: ``changed`` is False when it was already so."""

    users: list[str]
    relation: str
    changed: bool


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, Any]


class Reload(BaseModel):
    changes: list[str]
    models: ServedModelsStatus
