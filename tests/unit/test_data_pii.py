"""The PII scan on small Parquet files: what it finds, what it must not, and that it masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lepton.data.pii import is_name_header, scan
from lepton.data.profile import profile
from lepton.data.schema import guess_target, infer_schema
from lepton.schemas import PIIKind, PIIReport

MIXED = [
    "write to john.doe@example.com",  # email
    "ops@corp.example.org",  # email
    "call (555) 123-4567 today",  # phone
    "555-867-5309",  # phone
    "+44 20 7946 0958",  # phone
    "card 4242 4242 4242 4242",  # card
    "4111-1111-1111-1111",  # card
    "from 192.168.1.20",  # ip
    "2001:db8::8a2e:370:7334",  # ip
    "ssn 123-45-6789",  # national id
    "AB 12 34 56 C",  # national id (UK NI)
    "nothing here",
    None,
]


def write(tmp_path: Path, columns: dict[str, Any]) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table(columns), path)
    return path


def run(tmp_path: Path, columns: dict[str, Any]) -> PIIReport:
    path = write(tmp_path, columns)
    return scan(path, infer_schema(path))


def counts(report: PIIReport, column: str) -> dict[PIIKind, int]:
    return {f.kind: f.count for f in report.findings if f.column == column}


def test_each_kind_is_counted_in_a_mixed_column(tmp_path: Path) -> None:
    report = run(tmp_path, {"notes": MIXED})
    assert report.rows_scanned == len(MIXED) and report.columns_scanned == ["notes"]
    assert counts(report, "notes") == {
        PIIKind.email: 2,
        PIIKind.phone: 3,
        PIIKind.payment_card: 2,
        PIIKind.ip_address: 2,
        PIIKind.national_id: 2,
    }
    email = next(f for f in report.findings if f.kind is PIIKind.email)
    assert email.fraction == pytest.approx(2 / 12)  # of the 12 non-missing values
    assert "e-mail" in email.reason


def test_no_raw_value_appears_in_the_report(tmp_path: Path) -> None:
    report = run(tmp_path, {"notes": MIXED, "full_name": ["John Doe", "Ann Lee"] * 6 + [None]})
    text = report.model_dump_json()
    raw = [
        "john.doe",
        "example.com",
        "123-4567",
        "867-5309",
        "7946 0958",
        "4242 4242 4242 4242",
        "4111-1111-1111-1111",
        "192.168.1.20",
        "8a2e",
        "123-45-6789",
        "John",
        "Doe",
    ]
    assert [r for r in raw if r in text] == []
    examples = {f.kind: f.examples for f in report.findings}
    assert "j***@e***.com" in examples[PIIKind.email]
    assert "**** **** **** 4242" in examples[PIIKind.payment_card]
    assert "192.168.*.*" in examples[PIIKind.ip_address]
    assert "***-**-6789" in examples[PIIKind.national_id]
    assert "(***) ***-4567" in examples[PIIKind.phone]
    assert examples[PIIKind.person_name] == ["J*** D**", "A** L**"]
    assert all(len(e) <= 3 for e in examples.values())


def test_luhn_decides_what_is_a_card(tmp_path: Path) -> None:
    values = [
        "4242 4242 4242 4242",
        "4111-1111-1111-1111",
        "4242424242424242",
        "4242 4242 4242 4241",  # bad checksum
        "1234567812345678",  # bad checksum
        "9999 9999 9999 9995",  # Luhn-valid, but no card starts with 9
        "42424242424242424242424",  # 23 digits: too long for a card
    ]
    assert counts(run(tmp_path, {"c": values}), "c") == {PIIKind.payment_card: 3}


def test_ipv4_octets_must_be_valid(tmp_path: Path) -> None:
    values = ["10.0.0.1", "255.255.255.255", "999.1.1.1", "256.1.1.1", "1.2.3", "1.2.3.4.5", "x"]
    assert counts(run(tmp_path, {"ip": values}), "ip") == {PIIKind.ip_address: 2}


def test_ssn_exclusions(tmp_path: Path) -> None:
    values = [
        "123-45-6789",
        "078-05-1121",
        "000-12-3456",  # area 000
        "666-12-3456",  # area 666
        "912-34-5678",  # area 9xx
        "123-00-4567",  # group 00
        "123-45-0000",  # serial 0000
        "123456789",  # no dashes: not the pattern
    ]
    assert counts(run(tmp_path, {"ssn": values}), "ssn") == {PIIKind.national_id: 2}


def test_uk_national_insurance_numbers(tmp_path: Path) -> None:
    values = ["QQ123456C", "AB123456C", "JG 10 37 26 A", "GB123456A", "AB123456E", "hello"]
    # QQ (Q never first), GB (never allocated) and suffix E are no NI numbers.
    assert counts(run(tmp_path, {"ni": values}), "ni") == {PIIKind.national_id: 2}


def test_numbers_that_are_not_phones(tmp_path: Path) -> None:
    values = [
        "20231125",
        "3.14159",
        "2023-11-25",
        "1,234,567",
        "12:30:45",
        "5551234567",
        "-122.4194",
        "ticket 046-454-28",
        "order 100200300400",
    ]
    report = run(tmp_path, {"v": values})
    assert PIIKind.phone not in counts(report, "v")
    phones = ["(555) 123-4567", "555.123.4567", "1-800-555-0199", "+14155552671", "020 7946 0958"]
    assert counts(run(tmp_path, {"p": phones}), "p") == {PIIKind.phone: 5}


def test_name_columns_by_header(tmp_path: Path) -> None:
    names = ["Ann Lee", "Bo Chan", None, "Ann Lee"]
    report = run(
        tmp_path,
        {
            "First Name": names,
            "PATIENT_NAME": names,
            "file_name": names,
            "product name": names,
        },
    )
    found = {f.column: f for f in report.findings if f.kind is PIIKind.person_name}
    assert sorted(found) == ["First Name", "PATIENT_NAME"]
    assert found["First Name"].count == 3 and found["First Name"].reason == "header"
    for header in ("first_name", "LastName", "full name", "surname", "given-name", "customer_name"):
        assert is_name_header(header), header
    for header in ("hostname", "username_hash", "filename", "company_name", "name_length"):
        assert not is_name_header(header), header


def test_categorical_values_are_weighted_by_their_counts(tmp_path: Path) -> None:
    values = ["help@example.com"] * 600 + ["sales@example.com"] * 300 + ["none"] * 100
    report = run(tmp_path, {"contact": values})
    assert infer_schema(write(tmp_path, {"contact": values}))[0].kind.value == "categorical"
    finding = next(f for f in report.findings if f.kind is PIIKind.email)
    assert finding.count == 900 and finding.fraction == pytest.approx(0.9)


def test_only_text_columns_are_scanned(tmp_path: Path) -> None:
    report = run(
        tmp_path,
        {
            "card_as_int": pa.array([4242424242424242] * 3, pa.int64()),
            "card_as_text": ["4242424242424242"] * 3,
            "when": ["2024-01-01", "2024-01-02", "2024-01-03"],
        },
    )
    assert report.columns_scanned == ["card_as_text"]
    assert counts(report, "card_as_text") == {PIIKind.payment_card: 3}


def test_200k_rows_profile_and_scan_complete(tmp_path: Path) -> None:
    n = 200_000
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 10**7, n)
    path = write(
        tmp_path,
        {
            "x": rng.normal(size=n),
            "k": rng.integers(0, 100, n),
            "flag": rng.random(n) < 0.5,
            "city": pa.array(np.array(["Oslo", "Lima", "Pune", "Kyiv"])[rng.integers(0, 4, n)]),
            "email": pa.array(np.char.add(np.char.add("u", ids.astype(str)), "@example.com")),
            "note": pa.array(np.char.add("visit ", ids.astype(str))),
            "label": rng.integers(0, 2, n),
        },
    )
    cols = infer_schema(path)
    target = guess_target(cols, path)
    result = profile(path, cols, target, target_guessed=True)
    report = scan(path, cols)
    assert result.rows == report.rows_scanned == n
    assert target == "label" and result.class_balance is not None
    assert sum(c.count for c in result.class_balance) == n
    assert counts(report, "email") == {PIIKind.email: n}
