"""The audit chain, pseudonyms and the free-text guard, by value."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from vigia.audit import (
    GENESIS_HASH,
    AuditDraft,
    InvalidAuditDetails,
    Pseudonymiser,
    chain,
    check_details,
    export_lines,
    load_or_create_key,
    verify,
)


def drafts(count: int) -> list[AuditDraft]:
    return [
        AuditDraft(f"job.step{n}", "system", 1_795_000_000.0 + n / 3, "acme", f"{n:032x}", "p_x", {"n": n, "ok": True})
        for n in range(count)
    ]


def test_a_chain_verifies_and_continues_across_appends() -> None:
    first = chain(GENESIS_HASH, 0, drafts(3))
    more = chain(first[-1].hash, first[-1].seq, drafts(2))

    assert [entry.seq for entry in first + more] == [1, 2, 3, 4, 5]
    result = verify(first + more)
    assert (result.ok, result.checked) == (True, 5)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"actor": "mallory"}, "changed after writing"),
        ({"details": {"n": 2, "ok": False}}, "changed after writing"),
        ({"at": 1_795_000_000.5}, "changed after writing"),
        ({"prev_hash": "f" * 64}, "previous hash"),
    ],
)
def test_any_change_is_named_at_its_entry(change: dict[str, object], problem: str) -> None:
    entries = chain(GENESIS_HASH, 0, drafts(5))
    entries[2] = dataclasses.replace(entries[2], **change)  # type: ignore[arg-type]

    result = verify(entries)

    assert (result.first_broken, result.checked) == (3, 2)
    assert problem in (result.problem or "")


def test_a_removed_or_reordered_entry_is_named() -> None:
    entries = chain(GENESIS_HASH, 0, drafts(5))
    assert verify([*entries[:2], *entries[3:]]).first_broken == 4
    assert verify([entries[0], entries[2], entries[1]]).first_broken == 3
    # After retention removed the first two, the rest verifies from its anchor.
    assert verify(entries[2:], first_prev_hash=entries[1].hash, first_seq=3).ok
    assert not verify(entries[2:]).ok


def test_pseudonyms_are_stable_keyed_and_not_the_identifier() -> None:
    key, other = b"k" * 32, b"o" * 32
    assert Pseudonymiser(key)("PT-0042") == Pseudonymiser(key)(" pt-0042 ")
    assert Pseudonymiser(key)("PT-0042") != Pseudonymiser(other)("PT-0042")
    assert "0042" not in Pseudonymiser(key)("PT-0042")
    with pytest.raises(Exception, match="16 bytes"):
        Pseudonymiser(b"short")


def test_details_refuse_free_text() -> None:
    assert check_details({"level": "urgent", "grade": 4, "score": 0.5, "flags": ["a", None]}) == {
        "level": "urgent",
        "grade": 4,
        "score": 0.5,
        "flags": ["a", None],
    }
    for bad in (
        {"note": "x" * 121},
        {"note": "first line\nsecond line"},
        {"deep": {"a": {"b": {"c": 1}}}},
        {"value": float("nan")},
        {"value": object()},
    ):
        with pytest.raises(InvalidAuditDetails):
            check_details(bad)


def test_export_is_one_json_object_per_line() -> None:
    lines = list(export_lines(chain(GENESIS_HASH, 0, drafts(2))))
    assert len(lines) == 2 and all(line.startswith('{"seq":') and "\n" not in line for line in lines)


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
