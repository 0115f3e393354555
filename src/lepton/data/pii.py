"""PII scan: which text columns hold e-mail addresses, phone and card numbers, IPs, IDs or names.

Every pattern runs as one vectorised RE2 pass over a column (pyarrow's `match_substring_regex`),
checksums and exclusions run vectorised on the matches, and only the three examples per finding
touch Python strings. A categorical column is scanned through its distinct values, weighted by
their counts. Examples are masked before they enter the report; no raw value ever does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from lepton.data.schema import ParquetSource, is_string_type
from lepton.schemas import Column, ColumnKind, PIIFinding, PIIKind, PIIReport

__all__ = ["NAME_HEADERS", "scan"]

_Mask = npt.NDArray[np.bool_]

# Column headers that hold a person's name, compared without case, spaces or punctuation
# (`First Name`, `first_name` and `FIRSTNAME` are one header). A header that is a person role
# followed by "name" (`patient_name`, `cardholder name`) counts too; `file_name`, `host_name` or
# `product_name` do not.
NAME_HEADERS = frozenset(
    {"name", "firstname", "lastname", "fullname", "surname", "givenname", "familyname",
     "middlename", "maidenname", "forename", "forenames", "personname", "nameofperson"}
)  # fmt: skip
_NAME_ROLES = (
    "patient|customer|client|employee|contact|person|student|member|owner|holder|cardholder|"
    "applicant|guest|driver|passenger|doctor|physician|tenant|buyer|seller|recipient|sender|"
    "mother|father|parent|spouse|child"
)  # not "user": a user name is a login, not a person's name
_ROLE_NAME = re.compile(rf"^(?:{_NAME_ROLES})(?:first|last|full|given|family|middle)?name$")

# RE2 building blocks. Every pattern names the value itself `v` and fences it with a character
# that cannot continue it, so `1234567890123456789012` is no card and `999.1.1.1` no IP.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    [
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        *(rf"(?:{_H}:){{1,{6 - k}}}(?::{_H}){{1,{k + 1}}}" for k in range(1, 6)),
        rf":(?::{_H}){{1,7}}",
    ]
)


def _digits(values: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(values, r"[^0-9]", "")


def _digit_counts(values: pa.Array) -> npt.NDArray[np.int64]:
    """ASCII digits in each value, counted on the UTF-8 bytes: 20 ms per 1,000,000 phone
    numbers, against 300 ms to strip the rest with a regex and measure what is left."""
    values = values.cast(pa.large_string())
    counts = np.zeros(len(values), dtype=np.int64)
    data = values.buffers()[2]
    if data is None or len(values) == 0:
        return counts
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64)
    offsets = offsets[values.offset : values.offset + len(values) + 1]
    raw = np.frombuffer(data, dtype=np.uint8)
    # 65,536 values at a time: reduceat widens its input to int64, 8 bytes per byte of text.
    for lo in range(0, len(values), 65_536):
        bounds = offsets[lo : lo + 65_537]
        text = raw[bounds[0] : bounds[-1]]
        digits = (text >= ord("0")) & (text <= ord("9"))
        # reduceat sums [start_i, start_i+1): an empty value would get its neighbour's digits.
        filled = bounds[1:] > bounds[:-1]
        if filled.any():
            out = counts[lo : lo + len(filled)]
            out[filled] = np.add.reduceat(digits, bounds[:-1][filled] - bounds[0], dtype=np.int64)
    return counts


def _luhn(values: pa.Array) -> _Mask:
    """The Luhn checksum of each value's digits (at most 19), vectorised over a digit matrix."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    # Left zero-padding leaves the checksum unchanged: it is weighted from the right.
    digits = pc.utf8_slice_codeunits(_digits(values), start=-19)  # the regexes allow 19 at most
    padded = pc.utf8_lpad(digits, width=19, padding="0").cast(pa.string())
    start = np.frombuffer(padded.buffers()[1], dtype=np.int32)[padded.offset]
    raw = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[start : start + 19 * len(padded)]
    d = raw.reshape(-1, 19).astype(np.int64) - ord("0")
    doubled = d[:, 1::2] * 2  # every second digit from the right (index 18 is the last)
    total = d[:, 0::2].sum(axis=1) + (doubled - 9 * (doubled > 9)).sum(axis=1)
    return np.asarray(total % 10 == 0)


def _matches(values: pa.Array, pattern: str) -> _Mask:
    return np.asarray(pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False))


def _contains(values: pa.Array, text: str) -> _Mask:
    return np.asarray(pc.match_substring(values, text).to_numpy(zero_copy_only=False))


def _phone_check(v: pa.Array) -> _Mask:
    # E.164 allows 15 digits at most, and the shortest plans (+CC and 6 digits) make 8; national
    # forms are 10 or 11 digits (US 555-123-4567, 1-555-..., UK 020 7946 0958), so that
    # 046-454-286 or 01-2345-678 stay unflagged.
    n = _digit_counts(v)
    plus = np.asarray(pc.starts_with(v, "+").to_numpy(zero_copy_only=False))
    return np.where(plus, (n >= 8) & (n <= 15), (n >= 10) & (n <= 11))


def _card_check(v: pa.Array) -> _Mask:
    # Card numbers start with 2-6 (Mastercard 2-series and 5, Amex 3, Visa 4, Discover 6); with
    # Luhn this keeps 1 in 20 random 16-digit ids instead of 1 in 10.
    return _matches(_digits(v), r"^[2-6]") & _luhn(v)


def _ssn_check(v: pa.Array) -> _Mask:
    # Never issued: area 000, 666 or 900-999, group 00, serial 0000.
    return ~_matches(v, r"^(?:000|666|9\d\d)|^\d{3}-00-|-0000$")


def _nino_check(v: pa.Array) -> _Mask:
    return ~_matches(v, r"^(?:BG|GB|KN|NK|NT|TN|ZZ)")  # prefixes HMRC never allocates


def _has_digit(v: pa.Array) -> _Mask:
    return _matches(v, r"\d")


@dataclass(frozen=True)
class _Pattern:
    kind: PIIKind
    reason: str
    regex: str
    check: Callable[[pa.Array], _Mask] | None = None
    # The value group alone, anchored: a value that is nothing but the match needs no
    # extraction (RE2 submatches cost ~1 s per 1,000,000 values; a match ~0.1 s).
    whole: str | None = None


_EMAIL = _Pattern(
    PIIKind.email,
    "e-mail address pattern",
    r"(?P<v>[A-Za-z0-9._%+\-]+@(?:[A-Za-z0-9\-]+\.)+[A-Za-z]{2,24})",
)
# Everything but e-mail needs digits in a telling shape; their union is a cheap first pass.
_NUMBERED = (
    _Pattern(
        PIIKind.phone,
        "phone number: +country code and 8-15 digits, or (nnn) nnn-nnnn, nnn-nnn-nnnn, "
        "0nn nnnn nnnn with 10-11 digits",
        r"(?:^|[^\w+])(?P<v>\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6})(?:$|[^\w])"
        r"|(?:^|[^\w.+\-])(?P<v2>(?:1[ .\-])?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .\-]?\d{3}[ .\-]\d{4})(?:$|[^\w.\-])"
        r"|(?:^|[^\w.+\-])(?P<v3>\(?0\d{1,4}\)?[ \-]\d{3,4}[ \-]?\d{3,4})(?:$|[^\w.\-])",
        _phone_check,
        r"^(?:\+[1-9]\d{0,2}(?:[ .\-]?\(?\d{1,4}\)?){2,6}"
        r"|(?:1[ .\-])?(?:\([2-9]\d{2}\)|[2-9]\d{2})[ .\-]?\d{3}[ .\-]\d{4}"
        r"|\(?0\d{1,4}\)?[ \-]\d{3,4}[ \-]?\d{3,4})$",
    ),
    _Pattern(
        PIIKind.payment_card,
        "13-19 digit card number passing the Luhn checksum",
        r"(?:^|[^\w\-])(?P<v>\d(?:[ \-]?\d){12,18})(?:$|[^\w\-])",
        _card_check,
    ),
    _Pattern(
        PIIKind.ip_address,
        "IPv4 address with valid octets, or IPv6 address",
        rf"(?:^|[^\w.])(?P<v>{_OCTET}(?:\.{_OCTET}){{3}})(?:$|[^\w.]|\.(?:$|\W))"
        rf"|(?:^|[^\w:])(?P<v6>{_IPV6})(?:$|[^\w:])",
    ),
    _Pattern(
        PIIKind.national_id,
        "US SSN ddd-dd-dddd (area not 000/666/9xx)",
        r"(?:^|[^\w\-])(?P<v>\d{3}-\d{2}-\d{4})(?:$|[^\w\-])",
        _ssn_check,
    ),
    _Pattern(
        PIIKind.national_id,
        "UK National Insurance number",
        r"(?:^|\W)(?P<v>[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D])(?:$|\W)",
        _nino_check,
    ),
    _Pattern(
        PIIKind.national_id,
        "Canadian SIN ddd-ddd-ddd passing the Luhn checksum",
        r"(?:^|[^\w\-])(?P<v>\d{3}[ \-]\d{3}[ \-]\d{3})(?:$|[^\w\-])",
        _luhn,
    ),
    _Pattern(
        PIIKind.national_id,
        "ID number after a label (passport, SSN, national ID, tax ID, licence)",
        r"(?i:(?:^|[^a-z])(?:passport|ssn|social security|national id|national insurance|"
        r"tax id|nino|id card|identity card|driver'?s? licen[cs]e)(?:\s*(?:no\.?|number|#))?"
        r"\s*[:#=]?\s*(?P<v>[a-z0-9][a-z0-9\-]{4,19})(?:$|[^a-z0-9\-]))",
        _has_digit,
    ),
)
_GROUP = re.compile(r"\(\?P<\w+>")
_ANY_NUMBERED = "|".join("(?:" + _GROUP.sub("(?:", p.regex) + ")" for p in _NUMBERED)
# Values that can hold none of the patterns: no '@', no digit, no hex:hex or '::' (IPv6).
_PREFILTER = r"[@0-9]|[0-9A-Fa-f]:[0-9A-Fa-f:]|::"
_KINDS = list(PIIKind)
# Examples come from the first 64 matches: enough to find three distinct ones.
_EXAMPLE_POOL = 64


def scan(path: Path, columns: list[Column], skip: Sequence[str] = ()) -> PIIReport:
    """Personal data in the text and categorical columns of a Parquet file, but for `skip`."""
    src = ParquetSource(path)
    skipped = [c.name for c in columns if c.name in skip]
    scanned = [
        c
        for c in columns
        if c.kind in (ColumnKind.text, ColumnKind.categorical)
        and is_string_type(src.schema.field(c.name).type)
        and c.name not in skip
    ]
    # Columns are scanned on up to 4 threads: RE2 and Parquet decoding release the GIL, and a
    # thread holds one column, so memory stays at a few columns.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as executor:
        per_column = list(executor.map(lambda c: _scan_one(src, c), scanned))
    findings = [f for found in per_column for f in found]
    return PIIReport(
        rows_scanned=src.rows,
        columns_scanned=[c.name for c in scanned],
        findings=findings,
        columns_hashed=skipped,
    )


def _scan_one(src: ParquetSource, col: Column) -> list[PIIFinding]:
    if col.kind is ColumnKind.categorical:
        # Few distinct values: scan each once and weigh it by how often it occurs.
        values, codes = src.read_codes(col.name)
        weights = np.bincount(codes[codes >= 0], minlength=len(values))
        values, weights = values.filter(pa.array(weights > 0)), weights[weights > 0]
    else:
        values = src.column(col.name).drop_null().combine_chunks()
        weights = None
    non_null = len(values) if weights is None else int(weights.sum())
    if non_null == 0:
        return []
    found = [_name_finding(col.name, values, non_null)] if is_name_header(col.name) else []
    return found + _scan_column(col.name, values, weights, non_null)


def is_name_header(name: str) -> bool:
    """Whether a column header names a person's name (`first_name`, `Patient Name`, ...)."""
    key = re.sub(r"[^0-9a-z]+", "", name.lower())
    return key in NAME_HEADERS or bool(_ROLE_NAME.match(key))


def _name_finding(name: str, values: pa.Array, non_null: int) -> PIIFinding:
    return PIIFinding(
        column=name,
        kind=PIIKind.person_name,
        count=non_null,
        fraction=1.0,
        examples=[_mask_name(v) for v in pc.unique(values.slice(0, 1000)).to_pylist()[:3]],
        reason="header",
    )


def _scan_column(
    name: str, values: pa.Array, weights: npt.NDArray[np.int64] | None, non_null: int
) -> list[PIIFinding]:
    # Each RE2 pass costs ~50 ms per 1,000,000 values however simple the pattern, so passes are
    # what to save: a light pass drops values that cannot hold anything (no '@', digit or
    # hex:hex), two more split the rest into e-mail and number candidates, and only those meet
    # the detailed patterns.
    everything = np.arange(len(values))
    maybe = _narrow(values, everything, lambda v: _matches(v, _PREFILTER))
    if len(maybe) == 0:
        return []
    at = _narrow(values, maybe, lambda v: _contains(v, "@"))
    numbered = _narrow(values, maybe, lambda v: _matches(v, _ANY_NUMBERED))
    jobs = [(p, at if p is _EMAIL else numbered) for p in (_EMAIL, *_NUMBERED)]
    results = [_run(values, *job) for job in jobs]
    hits: dict[PIIKind, _Mask] = {}
    reasons: dict[PIIKind, list[str]] = {}
    examples: dict[PIIKind, list[str]] = {}
    for (pattern, _), (idx, found) in zip(jobs, results, strict=True):
        if len(idx) == 0:
            continue
        hits.setdefault(pattern.kind, np.zeros(len(values), dtype=bool))[idx] = True
        reasons.setdefault(pattern.kind, []).append(pattern.reason)
        shown = examples.setdefault(pattern.kind, [])
        for v in found:
            masked = _mask(pattern.kind, v)
            if len(shown) < 3 and masked not in shown:
                shown.append(masked)
    findings = []
    for kind, mask in sorted(hits.items(), key=lambda kv: _KINDS.index(kv[0])):
        count = int(weights[mask].sum() if weights is not None else mask.sum())
        findings.append(
            PIIFinding(
                column=name,
                kind=kind,
                count=count,
                fraction=count / non_null,
                examples=examples[kind],
                reason="; ".join(reasons[kind]),
            )
        )
    return findings


def _narrow(
    values: pa.Array, candidates: npt.NDArray[np.intp], test: Callable[[pa.Array], _Mask]
) -> npt.NDArray[np.intp]:
    """The candidates that pass `test`; a filter that would keep most of them is skipped.

    The first 1,000 candidates decide: when over half pass, the filter would save the patterns
    after it less than the pass itself costs (a column of e-mails or IPs), so all are kept.
    """
    head = candidates[:1000]
    if len(candidates) > 2 * len(head) and test(values.take(head)).mean() > 0.5:
        return candidates
    return candidates[test(_take(values, candidates))]


def _take(values: pa.Array, idx: npt.NDArray[np.intp]) -> pa.Array:
    # Candidates are sorted and unique: as many as the values means all of them, uncopied.
    return values if len(idx) == len(values) else values.take(idx)


def _run(
    values: pa.Array, pattern: _Pattern, candidates: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Positions of the values that hold `pattern`, and the first matched values (for examples)."""
    if len(candidates) == 0:
        return candidates, []
    idx = candidates[_matches(_take(values, candidates), pattern.regex)]
    if len(idx) == 0:
        return idx, []
    if pattern.check is None:
        return idx, _extract(values.take(idx[:_EXAMPLE_POOL]), pattern).to_pylist()
    matched = _take(values, idx)
    whole = (
        _matches(matched, pattern.whole)
        if pattern.whole is not None
        else np.zeros(len(idx), dtype=bool)
    )
    kept: list[npt.NDArray[np.intp]] = []
    shown: list[tuple[npt.NDArray[np.intp], pa.Array]] = []  # each part's first matches
    for part in (whole, ~whole):
        if not part.any():
            continue
        some = matched if part.all() else matched.filter(pa.array(part))
        # Checksums need every match: the whole value where it is one, else RE2's extraction.
        value = some if part is whole else _extract(some, pattern)
        ok = pattern.check(value)
        kept.append(idx[part][ok])
        shown.append((kept[-1][:_EXAMPLE_POOL], value.filter(pa.array(ok))[:_EXAMPLE_POOL]))
    hits = np.sort(np.concatenate(kept))
    at = np.argsort(np.concatenate([i for i, _ in shown]))[:_EXAMPLE_POOL]
    first = pa.concat_arrays([v for _, v in shown]).take(pa.array(at))
    return hits, first.to_pylist()


def _extract(values: pa.Array, pattern: _Pattern) -> pa.Array:
    """The matched value of each (matching) input: the first group `v...` that took part."""
    groups = pc.extract_regex(values, pattern.regex)
    # A group that took no part comes back as "", not null.
    parts = [pc.struct_field(groups, [i]) for i in range(groups.type.num_fields)]
    found = parts[0]
    for part in parts[1:]:
        found = pc.if_else(pc.equal(found, ""), part, found)
    return found


def _mask(kind: PIIKind, value: Any) -> str:
    s = str(value).strip()
    masked = _hide(kind, s)
    return masked if s not in masked else "***"  # belt and braces: never the raw value


def _hide(kind: PIIKind, s: str) -> str:
    if kind is PIIKind.email:
        local, _, domain = s.partition("@")
        host, _, tld = domain.rpartition(".")
        return f"{local[:1]}***@{host[:1]}***.{tld}"
    if kind is PIIKind.ip_address:
        if "." in s:
            return ".".join(s.split(".")[:2]) + ".*.*"
        return ":".join(s.split(":")[:2]) + ":*:*"
    # Phones, cards and IDs keep their last four digits or letters (the part printed on
    # receipts), and their separators; shorter values are hidden whole.
    alnum = sum(c.isalnum() for c in s)
    keep = 4 if alnum >= 8 else 0
    out, seen = [], 0
    for c in s:
        if c.isalnum():
            seen += 1
            out.append(c if seen > alnum - keep else "*")
        else:
            out.append(c)
    return "".join(out)


def _mask_name(value: Any) -> str:
    # "John Doe" -> "J*** D**": initials only, at least two stars so no short name shows whole.
    return " ".join(w[:1] + "*" * max(2, len(w) - 1) for w in str(value).split())
