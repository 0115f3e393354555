"""Wire models shared by the server, the SDK and the CLI.

Every model forbids unknown fields, so a typo in a request is a 422 that names the field
rather than a silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from lepton.enums import JobState, Outcome, Role

__all__ = [
    "API_VERSION",
    "API_VERSION_HEADER",
    "SCOPE_PATTERN",
    "WORKSPACE_NAME_PATTERN",
    "AuditEvent",
    "Blob",
    "ErrorBody",
    "ErrorDetail",
    "Health",
    "JobState",
    "Outcome",
    "Role",
    "Status",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "Workspace",
    "WorkspaceCreate",
    "WorkspaceCreated",
]

API_VERSION = 1
"""Integer version of the HTTP API; bumped on any incompatible change."""

API_VERSION_HEADER = "X-Lepton-API-Version"

WORKSPACE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
SCOPE_PATTERN = r"^(job|deployment):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    code: str = Field(description="Stable machine-readable error code, e.g. `not_found`.")
    message: str = Field(description="What was wrong.")
    fix: str = Field(description="How to fix it; may be empty.")


class ErrorBody(_Model):
    error: ErrorDetail = Field(description="The error.")


class Health(_Model):
    status: str = Field(description="`ok` when the server answers.")
    api_version: int = Field(description="The API version the server speaks.")


class WorkspaceCreate(_Model):
    name: Annotated[str, Field(pattern=WORKSPACE_NAME_PATTERN)] = Field(
        description="Lower-case letters, digits and dashes; starts with a letter or digit."
    )


class Workspace(_Model):
    name: str = Field(description="The workspace's unique name.")
    created_at: datetime = Field(description="When it was created (UTC).")


class TokenCreate(_Model):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")] = Field(
        description="A label for people reading token lists and the audit log."
    )
    role: Role | None = Field(
        default=None, description="Workspace role. Give a role or a scope; a role by default."
    )
    scope: Annotated[str, Field(pattern=SCOPE_PATTERN)] | None = Field(
        default=None,
        description="Narrow scope instead of a role: `job:<id>` or `deployment:<id>`.",
    )
    expires_in: Annotated[int, Field(gt=0, le=10 * 365 * 86400)] | None = Field(
        default=None, description="Seconds until the token expires; never when absent."
    )


class Token(_Model):
    id: str = Field(description="Public identifier; safe to show and log.")
    name: str = Field(description="The token's label.")
    role: Role | None = Field(description="Workspace role, or null for a scoped token.")
    scope: str | None = Field(description="Narrow scope, or null for a role token.")
    workspace: str = Field(description="The workspace the token belongs to.")
    created_at: datetime = Field(description="When it was created (UTC).")
    expires_at: datetime | None = Field(description="When it expires (UTC), or null.")
    revoked_at: datetime | None = Field(description="When it was revoked (UTC), or null.")
    created_by: str | None = Field(description="Id of the token that created it.")


class TokenCreated(Token):
    token: str = Field(description="The bearer secret. Shown only once; store it now.")


class WorkspaceCreated(_Model):
    workspace: Workspace = Field(description="The new workspace.")
    admin_token: TokenCreated = Field(description="Its first admin token, shown only once.")


class AuditEvent(_Model):
    id: int = Field(description="Increasing event number.")
    time: datetime = Field(description="When the request was answered (UTC).")
    actor_token_id: str | None = Field(description="Token id of the caller; null if unknown.")
    actor_name: str | None = Field(description="Token name of the caller; null if unknown.")
    action: str = Field(description="What was attempted, e.g. `token.create`.")
    method: str = Field(description="HTTP method.")
    resource: str = Field(description="What it was attempted on, e.g. `token/4f2a...`.")
    outcome: Outcome = Field(description="success, denied (401/403), rejected (4xx), failed.")
    status_code: int = Field(description="HTTP status of the answer.")


class Blob(_Model):
    digest: str = Field(description="sha256 of the content, lower-case hex.")
    size: int = Field(description="Size in bytes.")
    created_at: datetime = Field(description="When it was first stored in this workspace.")


class Status(_Model):
    version: str = Field(description="Server package version.")
    api_version: int = Field(description="The API version the server speaks.")
    workspace: str = Field(description="The caller's workspace.")
    token: Token = Field(description="The caller's token.")
    database: str = Field(description="Metadata store backend, e.g. `sqlite` or `postgresql`.")
    storage: str = Field(description="Blob store location, without credentials.")
    encrypted: bool = Field(description="Whether blobs are encrypted at rest.")
    uptime_s: float = Field(description="Seconds since the control plane started.")


# --- Datasets -------------------------------------------------------------------------------

DATASET_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class ColumnKind(StrEnum):
    """What a column holds, as far as training and profiling care."""

    numeric = "numeric"
    categorical = "categorical"
    boolean = "boolean"
    text = "text"
    datetime = "datetime"
    image = "image"


class Column(_Model):
    name: str = Field(description="Column name.")
    kind: ColumnKind = Field(description="Inferred kind.")
    dtype: str = Field(description="Storage type (Arrow), e.g. `int64`, `string`, `binary`.")
    nulls: int = Field(description="Number of missing values.")


class Histogram(_Model):
    edges: list[float] = Field(description="Bin edges, one more than counts.")
    counts: list[int] = Field(description="Values per bin.")


class ValueCount(_Model):
    value: str = Field(description="A value, as text.")
    count: int = Field(description="How many rows hold it.")


class ImageStats(_Model):
    width_min: int = Field(description="Narrowest image, pixels.")
    width_max: int = Field(description="Widest image, pixels.")
    height_min: int = Field(description="Lowest image, pixels.")
    height_max: int = Field(description="Tallest image, pixels.")
    modes: list[ValueCount] = Field(description="Pixel modes (`L`, `RGB`, ...) and counts.")


class ColumnProfile(_Model):
    name: str = Field(description="Column name.")
    kind: ColumnKind = Field(description="Inferred kind.")
    nulls: int = Field(description="Missing values.")
    null_fraction: float = Field(description="Missing values / rows.")
    distinct: int = Field(description="Distinct non-missing values.")
    min: float | str | None = Field(default=None, description="Smallest value (numeric, datetime).")
    max: float | str | None = Field(default=None, description="Largest value (numeric, datetime).")
    mean: float | None = Field(default=None, description="Mean (numeric, boolean).")
    std: float | None = Field(default=None, description="Standard deviation (numeric).")
    quantiles: dict[str, float] | None = Field(
        default=None, description="Quartiles `p25`, `p50`, `p75` (numeric)."
    )
    histogram: Histogram | None = Field(default=None, description="Histogram (numeric).")
    top_values: list[ValueCount] = Field(
        default_factory=list, description="Most frequent values (categorical, boolean, text)."
    )
    mean_length: float | None = Field(default=None, description="Mean characters (text).")
    image: ImageStats | None = Field(default=None, description="Image sizes and modes (image).")


class Profile(_Model):
    rows: int = Field(description="Number of rows.")
    columns: int = Field(description="Number of columns.")
    duplicate_rows: int = Field(description="Rows identical to an earlier row.")
    target: str | None = Field(description="Target column: chosen by the user, or guessed.")
    target_guessed: bool = Field(description="Whether the target was guessed.")
    class_balance: list[ValueCount] | None = Field(
        description="Rows per class of a categorical target; null otherwise."
    )
    column_profiles: list[ColumnProfile] = Field(description="Per-column statistics.")


class PIIKind(StrEnum):
    """Kinds of personal data the scan looks for."""

    email = "email"
    phone = "phone"
    payment_card = "payment_card"
    ip_address = "ip_address"
    national_id = "national_id"
    person_name = "person_name"


class PIIFinding(_Model):
    column: str = Field(description="Column where it was found.")
    kind: PIIKind = Field(description="What was found.")
    count: int = Field(
        description="Values that match; for a name column found by its header, its non-missing values."
    )
    fraction: float = Field(description="Matching values / non-missing values.")
    examples: list[str] = Field(description="Up to three masked examples.")
    reason: str = Field(description="Why it was flagged: a pattern, a checksum, or the header.")


class PIIReport(_Model):
    rows_scanned: int = Field(description="Rows examined.")
    columns_scanned: list[str] = Field(description="Columns examined (text-like ones).")
    findings: list[PIIFinding] = Field(description="One entry per column and kind found.")


class SelectStep(_Model):
    op: Literal["select"] = Field(description="Keep only these columns, in this order.")
    columns: list[str] = Field(min_length=1, description="Columns to keep.")


class DropStep(_Model):
    op: Literal["drop"] = Field(description="Remove columns.")
    columns: list[str] = Field(min_length=1, description="Columns to remove.")


class RenameStep(_Model):
    op: Literal["rename"] = Field(description="Rename columns.")
    mapping: dict[str, str] = Field(min_length=1, description="Old name to new name.")


CastType = Literal["int", "float", "string", "bool", "datetime", "category"]


class CastStep(_Model):
    op: Literal["cast"] = Field(description="Change column types.")
    types: dict[str, CastType] = Field(min_length=1, description="Column to new type.")


class DropNullsStep(_Model):
    op: Literal["drop_nulls"] = Field(description="Remove rows with a missing value.")
    columns: list[str] | None = Field(default=None, description="Only look here; all if null.")


class DeduplicateStep(_Model):
    op: Literal["deduplicate"] = Field(description="Keep the first of identical rows.")


class AnonymizeStep(_Model):
    op: Literal["anonymize"] = Field(description="Hide personal data in columns.")
    columns: list[str] = Field(min_length=1, description="Columns to anonymise.")
    method: Literal["hash", "mask", "drop"] = Field(
        default="hash", description="Salted SHA-256, masking all but a hint, or dropping."
    )
    salt: str | None = Field(
        default=None,
        description="Salt for `hash`; a random one, never stored, when absent (joins across "
        "versions then need the same explicit salt).",
    )


class ResizeImagesStep(_Model):
    op: Literal["resize_images"] = Field(description="Resize every image.")
    width: Annotated[int, Field(ge=1, le=8192)] = Field(description="Width in pixels.")
    height: Annotated[int, Field(ge=1, le=8192)] = Field(description="Height in pixels.")


TransformStep = Annotated[
    SelectStep
    | DropStep
    | RenameStep
    | CastStep
    | DropNullsStep
    | DeduplicateStep
    | AnonymizeStep
    | ResizeImagesStep,
    Field(discriminator="op"),
]


class TransformSpec(_Model):
    steps: list[TransformStep] = Field(min_length=1, description="Applied in order.")


class SplitSpec(_Model):
    strategy: Literal["auto", "random", "stratified", "time"] = Field(
        default="auto",
        description="`auto`: stratified for a categorical target, by time when the data has a "
        "datetime column and no categorical target, random otherwise.",
    )
    train: Annotated[float, Field(gt=0, lt=1)] = Field(default=0.8, description="Train share.")
    validation: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.1, description="Validation share."
    )
    test: Annotated[float, Field(gt=0, lt=1)] = Field(default=0.1, description="Test share.")
    seed: int = Field(default=0, description="Seed of the shuffle.")
    target: str | None = Field(default=None, description="Stratify on this column.")


class Split(_Model):
    spec: SplitSpec = Field(description="What was asked.")
    strategy: Literal["random", "stratified", "time"] = Field(description="What was done.")
    counts: dict[str, int] = Field(description="Rows in `train`, `validation`, `test`.")
    digest: str = Field(
        description="Blob of the per-row assignment (uint8: 0 train, 1 val, 2 test)."
    )


class DatasetVersion(_Model):
    dataset: str = Field(description="Dataset name.")
    version: int = Field(description="Version number, from 1.")
    ref: str = Field(description="`name@vN`.")
    format: str = Field(description="Format it was read from, e.g. `csv`, `image-folder`.")
    source_name: str = Field(description="File name it was pushed from.")
    source_digest: str = Field(description="Blob of the exact bytes pushed (pull returns them).")
    source_size: int = Field(description="Bytes pushed.")
    data_digest: str = Field(description="Blob of the canonical table (Parquet).")
    rows: int = Field(description="Rows (or images).")
    schema_: list[Column] = Field(alias="schema", description="Columns and their kinds.")
    target: str | None = Field(description="Target column, chosen or guessed.")
    parent: str | None = Field(description="`name@vN` it was derived from, if any.")
    transform: TransformSpec | None = Field(description="The transform that made it, if any.")
    created_at: datetime = Field(description="When it was made (UTC).")
    created: bool = Field(
        default=True, description="False when the push matched an existing version's content."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetVersionDetail(DatasetVersion):
    profile: Profile = Field(description="Statistics of the data.")
    pii: PIIReport = Field(description="Personal data found.")


class Dataset(_Model):
    name: str = Field(description="Dataset name.")
    created_at: datetime = Field(description="When it was made (UTC).")
    versions: int = Field(description="Number of versions.")
    latest: DatasetVersion | None = Field(description="The newest version.")


class TransformRequest(_Model):
    steps: list[TransformStep] = Field(min_length=1, description="Applied in order.")


# --- Jobs -----------------------------------------------------------------------------------


TERMINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled})


class TrainSpec(_Model):
    kind: Literal["train"] = Field(default="train", description="A built-in training job.")
    dataset: str = Field(description="Dataset reference, `name` or `name@vN`.")
    target: str | None = Field(default=None, description="Target column; the dataset's if absent.")
    algorithm: str = Field(default="auto", description="An algorithm name, or `auto` for AutoML.")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Hyperparameters of the algorithm."
    )
    time_budget_s: Annotated[float, Field(gt=0, le=7 * 86400)] = Field(
        default=300, description="Wall-clock budget of the training, seconds."
    )
    gpus: Annotated[int, Field(ge=0, le=16)] = Field(default=0, description="GPUs to use.")
    seed: int = Field(default=0, description="Seed of the split and of the training.")
    split: SplitSpec = Field(default_factory=SplitSpec, description="How rows are split.")
    model: str | None = Field(
        default=None, description="Name to register the model under; the dataset's by default."
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="Retries after the job's process dies."
    )


ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


def _user_env(env: dict[str, str]) -> dict[str, str]:
    taken = sorted(k for k in env if k.startswith("LEPTON_"))
    if taken:
        raise ValueError(
            f"env may not set {', '.join(taken)}: LEPTON_* variables are the platform's own "
            "(the job gets its URL and token from Lepton); pick other names"
        )
    with_nul = sorted(k for k, v in env.items() if "\x00" in v)
    if with_nul:  # the kernel cannot pass one: the process would never start
        raise ValueError(f"env values may not hold a NUL byte: {', '.join(with_nul)}")
    return env


UserEnv = Annotated[
    dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], Annotated[str, Field(max_length=32768)]],
    Field(max_length=256),
    AfterValidator(_user_env),
]
"""Variables a user sets for their code: any name but the platform's own ``LEPTON_*``."""

SECRET_REF_PATTERN = r"^(?:[A-Za-z_][A-Za-z0-9_]{0,127}=)?[A-Za-z_][A-Za-z0-9_]{0,127}$"
SECRET_VALUE_MAX = 32768
"""Longest secret value, in characters: a log reader holds back at most this much less one."""


def secret_ref(ref: str) -> tuple[str, str]:
    """``(variable, secret name)`` of a reference: ``NAME`` sets ``NAME``, ``ENV=NAME`` sets
    ``ENV`` from secret ``NAME``."""
    variable, _, name = ref.rpartition("=")
    return variable or name, name


def _user_secrets(refs: list[str]) -> list[str]:
    first: dict[str, str] = {}
    for ref in refs:
        variable, name = secret_ref(ref)
        if variable.startswith("LEPTON_") or name.startswith("LEPTON_"):
            raise ValueError(
                f"secret {ref!r} names a LEPTON_* variable or secret: those are the platform's "
                "own; give the variable another name (ENV=NAME)"
            )
        if variable in first:
            raise ValueError(
                f"secrets {first[variable]!r} and {ref!r} both set {variable}; give each "
                "variable one secret"
            )
        first[variable] = ref
    return refs


UserSecrets = Annotated[
    list[Annotated[str, Field(pattern=SECRET_REF_PATTERN)]],
    Field(max_length=64),
    AfterValidator(_user_secrets),
]
"""Workspace secrets given to user code, by name: ``NAME`` (the variable is named like the
secret) or ``ENV=NAME``. Only names are stored with a job or deployment, never values."""


def env_and_secrets_overlap(env: dict[str, str], secrets: list[str]) -> list[str]:
    """Variables that both ``env`` and ``secrets`` would set."""
    return sorted(set(env) & {secret_ref(ref)[0] for ref in secrets})


def _one_source_per_variable(env: dict[str, str], secrets: list[str]) -> None:
    both = env_and_secrets_overlap(env, secrets)
    if both:
        raise ValueError(f"{', '.join(both)} set by both env and secrets; drop one of the two")


class SecretPut(_Model):
    value: str = Field(
        min_length=1,
        max_length=SECRET_VALUE_MAX,
        description="The secret's value. Stored encrypted; no API answers it again.",
    )

    @field_validator("value")
    @classmethod
    def _no_nul(cls, value: str) -> str:
        if "\x00" in value:  # it becomes an environment variable, which cannot hold one
            raise ValueError("a secret value may not hold a NUL byte")
        return value


class Secret(_Model):
    name: str = Field(description="The secret's name; jobs and deployments refer to it by it.")
    created_at: datetime = Field(description="When it was created (UTC).")
    updated_at: datetime = Field(description="When its value was last set (UTC).")
    created_by: str | None = Field(description="Id of the token that created it.")


class ScriptSpec(_Model):
    kind: Literal["script"] = Field(default="script", description="The user's own script.")
    script_name: str = Field(max_length=256, description="File name of the script.")
    script_digest: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="Blob of the script (upload it first)."
    )
    dataset: str | None = Field(default=None, description="Dataset the script may read.")
    split: SplitSpec = Field(
        default_factory=SplitSpec,
        description="How `lepton.load_dataset(split=...)` divides the dataset's rows.",
    )
    args: list[str] = Field(default_factory=list, description="Command-line arguments.")
    env: UserEnv = Field(
        default_factory=dict,
        description="Environment variables the script gets (names other than `LEPTON_*`); not "
        "secrets: they are shown with the job.",
    )
    secrets: UserSecrets = Field(
        default_factory=list,
        description="Workspace secrets the script gets as variables: `NAME`, or `ENV=NAME` to "
        "name the variable; only names are stored, and the values are masked in the job's log.",
    )
    gpus: Annotated[int, Field(ge=0, le=16)] = Field(default=0, description="GPUs to use.")
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=0, description="Retries after the job's process dies."
    )

    @model_validator(mode="after")
    def _one_source(self) -> ScriptSpec:
        _one_source_per_variable(self.env, self.secrets)
        return self


class EvaluateSpec(_Model):
    kind: Literal["evaluate"] = Field(default="evaluate", description="Evaluate a model version.")
    model: str = Field(
        max_length=140, description="Model reference: `name@N`, `@latest`, `@alias`."
    )
    dataset: str = Field(description="Dataset reference to evaluate on, `name@vN`.")
    target: str | None = Field(default=None, description="Target column; the model's if absent.")
    slices: list[str] = Field(
        default_factory=list, max_length=20, description="Columns to report metrics per value of."
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=1, description="Retries after the job's process dies."
    )


JobSpec = Annotated[TrainSpec | ScriptSpec | EvaluateSpec, Field(discriminator="kind")]


class JobCreate(_Model):
    spec: JobSpec = Field(description="What to run.")


class JobError(_Model):
    message: str = Field(description="What went wrong.")
    fix: str = Field(default="", description="How to fix it.")


class Job(_Model):
    id: str = Field(description="Job id.")
    kind: str = Field(description="`train` or `script`.")
    state: JobState = Field(description="Where the job is.")
    spec: JobSpec = Field(description="What was asked.")
    dataset_version: str | None = Field(description="`name@vN` the job reads, resolved at submit.")
    attempts: int = Field(description="Attempts started so far.")
    created_at: datetime = Field(description="Submitted (UTC).")
    started_at: datetime | None = Field(description="Last attempt started (UTC).")
    finished_at: datetime | None = Field(description="Finished (UTC).")
    error: JobError | None = Field(description="Why it failed, if it did.")
    result: dict[str, Any] | None = Field(description="Model version and test metrics.")
    environment: dict[str, str] | None = Field(description="Package versions the job ran with.")
    cancel_requested: bool = Field(description="A cancel was asked for.")


class MetricPoint(_Model):
    step: int = Field(description="Step (epoch, trial, ...).")
    name: str = Field(max_length=64, description="Metric name.")
    value: float = Field(description="Value.")


class MetricBatch(_Model):
    points: list[MetricPoint] = Field(max_length=10_000, description="Points to record.")


class LogChunk(_Model):
    text: str = Field(description="Log text from `offset`.")
    offset: int = Field(description="Byte offset to ask from next time.")
    complete: bool = Field(description="True when the job ended and the log is whole.")


class JobStarted(_Model):
    environment: dict[str, str] = Field(description="Package versions.")


class JobFinish(_Model):
    state: Literal["succeeded", "failed"] = Field(description="How it ended.")
    error: JobError | None = Field(default=None, description="Why, when failed.")
    result: dict[str, Any] | None = Field(default=None, description="Outputs.")


# --- Deployments and photons --------------------------------------------------------------

DEPLOYMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
"""Lower-case letters, digits and dashes: fits a host name and a URL path."""


class ReplicaState(StrEnum):
    starting = "starting"
    ready = "ready"
    draining = "draining"
    crashed = "crashed"


class DeploymentState(StrEnum):
    starting = "starting"
    ready = "ready"
    updating = "updating"
    degraded = "degraded"
    failing = "failing"
    deleting = "deleting"


class DeploymentCreate(_Model):
    name: Annotated[str, Field(pattern=DEPLOYMENT_NAME_PATTERN)] | None = Field(
        default=None, description="Deployment name; the model's or photon's name by default."
    )
    model: str | None = Field(
        default=None,
        max_length=140,
        description="Model reference: `heart`, `heart@3`, `heart@production`.",
    )
    photon: str | None = Field(
        default=None,
        max_length=140,
        description="Photon reference: `name`, `name@2`, or its sha256.",
    )
    replicas: Annotated[int, Field(ge=1, le=32)] = Field(
        default=1, description="Replica processes."
    )
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=64, description="Most requests one model call takes at once."
    )
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = Field(
        default=0, description="How long a batch may wait to fill; 0: never wait."
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30, description="Longest a request may run once taken."
    )
    public: bool = Field(
        default=False, description="Serve without a token. Off by default: a token is minted."
    )
    env: UserEnv = Field(
        default_factory=dict,
        description="Environment variables the replicas get (not `LEPTON_*`); shown with the "
        "deployment, so not for secrets.",
    )
    secrets: UserSecrets = Field(
        default_factory=list,
        description="Workspace secrets the replicas get as variables: `NAME` or `ENV=NAME`.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> DeploymentCreate:
        _one_source_per_variable(self.env, self.secrets)
        return self


class DeploymentUpdate(_Model):
    replicas: Annotated[int, Field(ge=1, le=32)] | None = Field(
        default=None, description="Scale to this many replicas (no restart)."
    )
    model: str | None = Field(
        default=None, max_length=140, description="Serve this model version instead (rolls)."
    )
    photon: str | None = Field(
        default=None, max_length=140, description="Serve this photon instead (rolls)."
    )
    max_batch_size: Annotated[int, Field(ge=1, le=4096)] | None = Field(
        default=None, description="New batch size (rolls)."
    )
    max_wait_ms: Annotated[float, Field(ge=0, le=1000)] | None = Field(
        default=None, description="New batch wait (rolls)."
    )
    timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = Field(
        default=None, description="New request timeout (rolls)."
    )
    env: UserEnv | None = Field(
        default=None, description="Replace the replicas' variables (rolls when they change)."
    )
    secrets: UserSecrets | None = Field(
        default=None, description="Replace the replicas' secrets, by name (rolls when they change)."
    )


class DeploymentRevision(_Model):
    generation: int = Field(description="The generation this revision began.")
    current: bool = Field(description="True for the generation the deployment runs now.")
    reason: str = Field(
        description="Why it began: `created`, `updated model`, `rolled back to generation 2`."
    )
    model: str | None = Field(description="Model version served, `name@N`.")
    photon: str | None = Field(description="Photon served, `name@N`; None once deleted.")
    requested: str = Field(description="The reference as given (`heart@production`).")
    available: bool = Field(
        description="False once what it served has been deleted: it cannot be rolled back to."
    )
    max_batch_size: int = Field(description="Most requests per model call.")
    max_wait_ms: float = Field(description="Batch wait.")
    timeout_s: float = Field(description="Request timeout.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables the replicas got.")
    secrets: list[str] = Field(
        default_factory=list, description="Secrets the replicas got, by name; never their values."
    )
    created_at: datetime = Field(description="When it began (UTC).")
    created_by: str | None = Field(description="Id of the token that began it.")


class DeploymentRollback(_Model):
    generation: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None,
        description="Roll back to this generation's revision; by default the one before the "
        "current generation.",
    )


class Replica(_Model):
    id: str = Field(description="Replica id; its output is tagged with it in the logs.")
    generation: int = Field(description="Deployment generation it serves.")
    state: ReplicaState = Field(description="starting, ready, draining or crashed.")
    pid: int | None = Field(description="Process id while it runs.")
    restarts: int = Field(description="Times it was started again after a crash.")
    last_error: str | None = Field(description="How it last ended, with its last output.")
    restart_at: datetime | None = Field(description="When a crashed replica starts again (UTC).")
    started_at: datetime | None = Field(description="Last started (UTC).")
    ready_at: datetime | None = Field(description="Last became ready (UTC).")


class Deployment(_Model):
    name: str = Field(description="Deployment name.")
    id: str = Field(description="Deployment id; its inference token is scoped to it.")
    url: str = Field(description="Where the replicas answer: POST {url}/predict.")
    public: bool = Field(description="True when anyone may call it without a token.")
    state: DeploymentState = Field(description="Summary of the replicas against the desired state.")
    source: Literal["model", "photon"] = Field(description="What it serves.")
    model: str | None = Field(description="Model version served, `name@N`.")
    photon: str | None = Field(description="Photon served, `name@N`.")
    requested: str = Field(description="The reference as given (`heart@production`).")
    replicas: int = Field(description="Desired replicas.")
    ready_replicas: int = Field(description="Replicas of the current generation that are ready.")
    generation: int = Field(description="Bumped by each update that restarts replicas.")
    max_batch_size: int = Field(description="Most requests per model call.")
    max_wait_ms: float = Field(description="Batch wait.")
    timeout_s: float = Field(description="Request timeout.")
    env: dict[str, str] = Field(default_factory=dict, description="Variables the replicas get.")
    secrets: list[str] = Field(
        default_factory=list, description="Secrets the replicas get, by name; never their values."
    )
    token_id: str | None = Field(description="Id of the inference token; None when public.")
    error: str | None = Field(description="Why it cannot serve, when it cannot.")
    replica_states: list[Replica] = Field(description="Each replica, as last observed.")
    created_at: datetime = Field(description="Created (UTC).")
    updated_at: datetime = Field(description="Last changed (UTC).")


class DeploymentCreated(Deployment):
    token: str | None = Field(
        description="The inference token, shown only in this answer; None when public."
    )


class TrafficPoint(_Model):
    start: datetime = Field(description="Start of the window (UTC).")
    requests: int = Field(description="Requests answered in the window, whatever their status.")
    requests_per_s: float = Field(description="`requests` over the window's length.")
    errors: int = Field(description="Answers with a 5xx status: the deployment failed them.")
    rejected: int = Field(
        description="Answers with a 4xx status: refused requests (no token, bad input, too large)."
    )
    p50_ms: float | None = Field(
        description="Median latency in ms, interpolated within its histogram bucket as "
        "Prometheus' `histogram_quantile` does; None without timed requests."
    )
    p95_ms: float | None = Field(description="95th-percentile latency in ms, likewise.")
    p99_ms: float | None = Field(description="99th-percentile latency in ms, likewise.")


class TrafficTotals(TrafficPoint):
    start: datetime = Field(description="Start of the span's first window (UTC).")
    requests_per_s: float = Field(description="`requests` over `seconds`.")
    seconds: float = Field(description="Seconds from `start` to now.")
    codes: dict[str, int] = Field(
        default_factory=dict,
        description="Error answers by error code (`invalid_input`, `unauthenticated`, "
        "`timeout`, ...), 4xx and 5xx alike.",
    )


class DeploymentTraffic(_Model):
    deployment: str = Field(description="Deployment name.")
    window_s: int = Field(description="Seconds each point covers.")
    points: list[TrafficPoint] = Field(
        description="One per window, oldest first, from the span's start (or the control "
        "plane's, if later) to the window still filling now; a window without requests is zeros."
    )
    totals: TrafficTotals = Field(description="The whole span at once.")
    replicas_reporting: int = Field(
        description="Replicas whose latest report falls in the span (a replica reports only "
        "when its counters changed, so an idle one is not counted)."
    )
    note: str = Field(description="Where the numbers come from and how long they are kept.")


class Photon(_Model):
    name: str = Field(description="Photon name.")
    version: int = Field(description="Version number, from 1.")
    ref: str = Field(description="`name@N`.")
    digest: str = Field(description="sha256 of the package: its content address.")
    size: int = Field(description="Package size in bytes.")
    entry: str = Field(description="`file.py:Class` the replica serves.")
    manifest: dict[str, Any] = Field(description="The package's manifest.json.")
    created_at: datetime = Field(description="Pushed (UTC).")


# --- Models ---------------------------------------------------------------------------------


class ModelRegister(_Model):
    artifact_digest: str = Field(pattern=r"^[0-9a-f]{64}$", description="Blob of the packed model.")
    name: str | None = Field(default=None, description="Model name; the job's default if absent.")
    flavour: Literal["sklearn", "torch", "onnx", "keras", "xgboost", "lightgbm"] = Field(
        description="How the artifact is stored."
    )
    algorithm: str = Field(description="Algorithm that produced it.")
    task: str = Field(description="classification, regression, forecasting.")
    signature: dict[str, Any] = Field(description="Inputs (columns or shape, dtypes) and outputs.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Held-out metrics.")
    params: dict[str, Any] = Field(default_factory=dict, description="Training parameters.")
    leaderboard: list[dict[str, Any]] = Field(default_factory=list, description="AutoML runs.")
    description: str | None = Field(
        default=None, max_length=20_000, description="Intended use, in the author's words."
    )
    parent: str | None = Field(
        default=None, max_length=140, description="`name@N` this version was derived from."
    )
    explanations: dict[str, Any] | None = Field(
        default=None,
        description="Global explanation computed at registration (`kind`, `method`, "
        "`output_space`, `rows`, `features`/`classes`/`words`, `plot`: blob digest of its PNG), "
        "or `{not_computed: reason}`; the model card shows it.",
    )


class ModelVersion(_Model):
    model: str = Field(description="Model name.")
    version: int = Field(description="Version number, from 1.")
    ref: str = Field(description="`name@N`.")
    flavour: str = Field(description="sklearn, torch, onnx.")
    algorithm: str = Field(description="Algorithm that produced it.")
    task: str = Field(description="Task.")
    artifact_digest: str = Field(description="Blob of the packed model.")
    signature: dict[str, Any] = Field(description="Inputs and outputs.")
    metrics: dict[str, float] = Field(description="Held-out metrics.")
    params: dict[str, Any] = Field(description="Training parameters.")
    leaderboard: list[dict[str, Any]] = Field(description="AutoML leaderboard.")
    dataset_version: str | None = Field(description="Lineage: `name@vN` it was trained on.")
    job: str | None = Field(description="Lineage: the job that trained it.")
    environment: dict[str, str] | None = Field(description="Package versions at training.")
    created_at: datetime = Field(description="Registered (UTC).")
    description: str | None = Field(default=None, description="Intended use (user-supplied).")
    parent: str | None = Field(default=None, description="Lineage: `name@N` it derives from.")
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing at it.")


class Model(_Model):
    name: str = Field(description="Model name.")
    created_at: datetime = Field(description="Created (UTC).")
    versions: int = Field(description="Number of versions.")
    latest: ModelVersion | None = Field(description="The newest version.")
    aliases: dict[str, int] = Field(default_factory=dict, description="Alias → version number.")


MODEL_ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
"""Aliases start with a letter, so `3`, `v3` and version numbers never read as one."""


class ModelAliasSet(_Model):
    version: str = Field(max_length=12, description="Version number to point at (`3` or `v3`).")


class ModelVersionUpdate(_Model):
    description: str | None = Field(
        default=None, max_length=20_000, description="Intended use, in the author's words."
    )


class EvaluationRecord(_Model):
    model_version: str = Field(max_length=140, description="`name@N` evaluated.")
    split: str | None = Field(default=None, description="`test` for the held-out split.")
    result: dict[str, Any] = Field(description="Metrics, per-class, slices, plot digests.")


class Evaluation(_Model):
    id: str = Field(description="Evaluation id.")
    model_version: str = Field(description="`name@N` evaluated.")
    dataset_version: str | None = Field(description="`name@vN` it was evaluated on.")
    split: str | None = Field(description="`test` for the held-out split at training, else None.")
    job: str | None = Field(description="The job that computed it.")
    result: dict[str, Any] = Field(description="Metrics, per-class, slices, plot digests.")
    created_at: datetime = Field(description="Recorded (UTC).")


class LineageNode(_Model):
    id: str = Field(description="`kind:ref`, unique in the graph.")
    kind: str = Field(description="`dataset_version`, `job`, `model_version` or `deployment`.")
    ref: str = Field(description="Human reference (`heart@v1`, `heart@3`, a job id).")
    attributes: dict[str, Any] = Field(default_factory=dict, description="What to show.")


class LineageEdge(_Model):
    source: str = Field(description="Node id upstream.")
    target: str = Field(description="Node id downstream.")
    relation: str = Field(description="`derived`, `input`, `produced`, `parent`, `serves`.")


class Lineage(_Model):
    root: str = Field(description="The node asked about.")
    nodes: list[LineageNode] = Field(description="Every node, sorted by id.")
    edges: list[LineageEdge] = Field(description="Every edge, sorted.")
