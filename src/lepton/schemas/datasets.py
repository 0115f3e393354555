"""Datasets and their versions: columns, profiles, personal-data scans, transforms and splits."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from lepton.schemas.common import _Model

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
    columns_hashed: list[str] = Field(
        default_factory=list,
        description="Columns a transform replaced by salted SHA-256 digests: not scanned, as a "
        "digest holds no personal data (one of 16 hex digits can pass for a card number).",
    )


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
    """How rows are divided; ``train + validation + test`` must be 1 (to within 1e-6)."""

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
