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
    chain_key,
    check_details,
    export_lines,
    load_or_create_key,
    verify,
)

KEY = chain_key(b"k" * 32)


def drafts(count: int) -> list[AuditDraft]:
    return [
        AuditDraft(f"job.step{n}", "system", 1_795_000_000.0 + n / 3, "acme", f"{n:032x}", "p_x", {"n": n, "ok": True})
        for n in range(count)
    ]


def test_a_chain_verifies_and_continues_across_appends() -> None:
    first = chain(GENESIS_HASH, 0, drafts(3), KEY)
    more = chain(first[-1].hash, first[-1].seq, drafts(2), KEY)

    assert [entry.seq for entry in first + more] == [1, 2, 3, 4, 5]
    result = verify(first + more, key=KEY)
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
    entries = chain(GENESIS_HASH, 0, drafts(5), KEY)
    entries[2] = dataclasses.replace(entries[2], **change)  # type: ignore[arg-type]

    result = verify(entries, key=KEY)

    assert (result.first_broken, result.checked) == (3, 2)
    assert problem in (result.problem or "")


def test_a_removed_or_reordered_entry_is_named() -> None:
    entries = chain(GENESIS_HASH, 0, drafts(5), KEY)
    assert verify([*entries[:2], *entries[3:]], key=KEY).first_broken == 4
    assert verify([entries[0], entries[2], entries[1]], key=KEY).first_broken == 3
    # After retention removed the first two, the rest verifies from its anchor.
    assert verify(entries[2:], first_prev_hash=entries[1].hash, first_seq=3, key=KEY).ok
    assert not verify(entries[2:], key=KEY).ok


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
    lines = list(export_lines(chain(GENESIS_HASH, 0, drafts(2), KEY)))
    assert len(lines) == 2 and all(line.startswith('{"seq":') and "\n" not in line for line in lines)


def test_the_key_file_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "audit.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and load_or_create_key(path) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_without_the_key_a_changed_entry_cannot_be_rechained() -> None:
    """The attack that passed before: change an entry and recompute every later hash. With
    plain SHA-256 it verified; the chain is keyed now, and a forger without the key cannot."""
    entries = chain(GENESIS_HASH, 0, drafts(6), KEY)
    changed = [
        dataclasses.replace(draft, actor="someone-else") if n == 2 else draft for n, draft in enumerate(drafts(6))
    ]
    forged = [*entries[:2], *chain(entries[1].hash, 2, changed[2:], None)]
    result = verify(forged, key=KEY)
    assert result.first_broken == 3 and "changed after writing" in (result.problem or "")
    wrong_key = chain(entries[1].hash, 2, changed[2:], chain_key(b"x" * 32))
    assert verify([*entries[:2], *wrong_key], key=KEY).first_broken == 3
    # Entries of an older version, hashed without a key, still verify up to `keyed_from`.
    old = chain(GENESIS_HASH, 0, drafts(3), None)
    new = chain(old[-1].hash, 3, drafts(2), KEY)
    assert verify([*old, *new], key=KEY, keyed_from=4).ok
    assert not verify([*old, *new], key=KEY, keyed_from=1).ok
    assert "no audit key" in (verify(new, first_prev_hash=old[-1].hash, first_seq=4, keyed_from=4).problem or "")
