"""The audit chain against someone who can write the store but holds neither the audit key
nor the anchor file: the three rewrites that once passed `vigia audit verify` are caught,
and a real retention prune is told from a deletion. SQLite files copied per attack, the
real command on each."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.harness import harness
from tests.integration.test_failure_handling import AUDIT_KEY, CHAIN_KEY, oversight_settings
from tests.receivers import webhook_receiver
from vigia import Settings, Vigia
from vigia.audit import AuditDraft, AuditEntry, chain
from vigia.cli import app
from vigia.store.database import Database
from vigia.store.oversight import OversightStore

pytestmark = pytest.mark.timeout(180)


def copy_of(source: Path, target: Path) -> str:
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    return f"sqlite:///{target}"


def entries_of(url: str) -> list[AuditEntry]:
    database = Database(url)
    try:
        return list(OversightStore(database).audit_entries())
    finally:
        database.close()


def verify_command(url: str, data_dir: Path) -> tuple[int, str]:
    env = {"VIGIA_DATABASE_URL": url, "VIGIA_DATA_DIR": str(data_dir), "VIGIA_AUDIT_KEY": AUDIT_KEY}
    result = CliRunner().invoke(app, ["audit", "verify"], env=env)
    return result.exit_code, result.output


def rows(entries: list[AuditEntry]) -> list[dict[str, object]]:
    return [{**entry.to_dict(), "details": json.dumps(entry.to_dict()["details"])} for entry in entries]


INSERT = (
    "INSERT INTO vigia_audit (seq, at, actor, action, tenant, job_id, subject, details, prev_hash, hash) "
    "VALUES (:seq, :at, :actor, :action, :tenant, :job_id, :subject, :details, :prev_hash, :hash)"
)


def test_truncation_deletion_and_rechaining_are_caught_and_a_prune_is_not(tmp_path: Path) -> None:
    source = tmp_path / "vigia.db"
    url = f"sqlite:///{source}"
    data_dir = tmp_path / "data"
    with webhook_receiver("s") as receiver, harness(url, tmp_path, **oversight_settings(receiver)) as api:
        for number in range(3):
            api.wait(api.submit("t_confidence", {"patient_code": f"PT-{number}", "confidence": 0.3})["id"])
        api.vigia.watch.check()  # a signed checkpoint of the head, as the server's watch makes
        for number in range(3, 5):
            api.wait(api.submit("t_confidence", {"patient_code": f"PT-{number}", "confidence": 0.3})["id"])
        api.vigia.watch.check()
    entries = entries_of(url)
    anchors = (data_dir / "audit-anchors.jsonl").read_text().splitlines()
    # (The watch of the running harness may have made one more at its start; notifications
    # may have written entries after the last check.)
    last = json.loads(anchors[-1])["seq"]
    assert len(anchors) >= 2 and 20 <= last <= entries[-1].seq, (last, entries[-1].seq)
    code, output = verify_command(url, data_dir)
    assert code == 0 and f"{len(entries)} entries" in output, output
    assert f"{len(anchors)} signed checkpoint(s)" in output, output

    # 1. The newest entries deleted and the head moved back to the last one left.
    cut = copy_of(source, tmp_path / "cut.db")
    keep = entries[last - 6]
    with sa.create_engine(cut).begin() as connection:
        connection.execute(sa.text("DELETE FROM vigia_audit WHERE seq > :seq"), {"seq": keep.seq})
        connection.execute(sa.text("UPDATE vigia_audit_head SET last_seq = :seq, last_hash = :hash"), keep.to_dict())
    code, output = verify_command(cut, data_dir)
    assert code == 1 and f"entries {keep.seq + 1}–{last} were removed from the end" in output, output

    # 2. The oldest entries deleted and the start moved, as a retention prune would.
    head_cut = copy_of(source, tmp_path / "head.db")
    gone = entries[9]
    with sa.create_engine(head_cut).begin() as connection:
        connection.execute(sa.text("DELETE FROM vigia_audit WHERE seq <= :seq"), {"seq": gone.seq})
        connection.execute(
            sa.text("UPDATE vigia_audit_head SET first_seq = :next, first_prev_hash = :hash"),
            {"next": gone.seq + 1, "hash": gone.hash},
        )
    code, output = verify_command(head_cut, data_dir)
    assert code == 1 and f"entries 1–{gone.seq} are gone without a signed retention checkpoint" in output, output

    # 3. One entry changed and every later hash recomputed (SHA-256: the key is not in the store).
    rechained = copy_of(source, tmp_path / "rechained.db")
    victim = entries[7]
    drafts = [
        AuditDraft(entry.action, "someone-else" if entry.seq == victim.seq else entry.actor, entry.at,
                   entry.tenant, entry.job_id, entry.subject, entry.details)
        for entry in entries[victim.seq - 1 :]
    ]  # fmt: skip
    forged = chain(entries[victim.seq - 2].hash, victim.seq - 1, drafts, None)
    with sa.create_engine(rechained).begin() as connection:
        connection.execute(sa.text("DELETE FROM vigia_audit WHERE seq >= :seq"), {"seq": victim.seq})
        connection.execute(sa.text(INSERT), rows(forged))
        connection.execute(
            sa.text("UPDATE vigia_audit_head SET last_hash = :hash"), {"hash": forged[-1].hash}
        )  # fmt: skip
    code, output = verify_command(rechained, data_dir)
    assert code == 1 and f"entry {victim.seq}: its content does not match its hash" in output, output
    assert f"entry {last} is not the one checkpointed" in output, output

    # A real prune: it leaves a signed retention checkpoint, and the log still verifies.
    pruned_url = copy_of(source, tmp_path / "pruned.db")
    settings = Settings(database_url=pruned_url, data_dir=data_dir, audit_key=AUDIT_KEY)
    vigia = Vigia.from_settings(settings)
    try:
        removed = vigia.watch.prune_audit(entries[9].at + 1e-6)
    finally:
        vigia.close()
    assert removed == 10
    code, output = verify_command(pruned_url, data_dir)
    assert code == 0 and f"{len(anchors) + 1} signed checkpoint(s)" in output, output
    assert verify_command(url, data_dir)[0] == 0  # the untouched store too

    # A checkpoint changed in the file is a forgery, named by its line.
    lines = (data_dir / "audit-anchors.jsonl").read_text().splitlines()
    altered = json.loads(lines[0])
    altered["seq"] -= 1
    (data_dir / "audit-anchors.jsonl").write_text("\n".join([json.dumps(altered), *lines[1:]]) + "\n")
    code, output = verify_command(url, data_dir)
    assert code == 1 and "anchor line 1" in output and "bad signature" in output, output
    with sqlite3.connect(source) as connection:
        dump = "\n".join(connection.iterdump())
    assert CHAIN_KEY.hex() not in dump and AUDIT_KEY not in dump
