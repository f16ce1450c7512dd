"""`vigia coding` and `vigia demo --coding` as a user runs them: real subprocesses, the sample
notes shipped with the workload, the local store and a real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.acceptance.test_documents_cli import run
from tests.acceptance.test_serve import describe, start_server, stop
from vigia.workloads import coding

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def sample(name: str) -> Path:
    [path] = [path for path in coding.samples() if path.name == name]
    return path


def test_the_coding_demo_codes_every_sample_and_checks_its_bill(tmp_path: Path) -> None:
    result = run("demo", "--coding", "--data-dir", tmp_path / "data", cwd=tmp_path, timeout=500)
    assert result.returncode == 0, describe(result)
    output = " ".join(result.stdout.split())
    for path in coding.samples():
        assert path.name in output, describe(result)
    assert output.count("codes the note supports") == len(coding.samples())
    assert "billed codes" in output and "unsupported" in output and "missing" in output
    assert "Traceback" not in result.stderr


def test_coding_report_follows_here_and_prints_json(tmp_path: Path) -> None:
    note = sample("es_urgencias.txt")
    result = run("coding", "report", note, "--billed", "I21.4,I71.00", "--follow", "--json",
                 "--data-dir", tmp_path / "data", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, describe(result)
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["language"] == "es"
    assert report["codes"] and report["phi"]
    text = note.read_text(encoding="utf-8")
    for span in report["phi"]:
        assert text[span["start"] : span["end"]] not in report["redacted_text"]
    assert {"billed", "unsupported", "missing", "more_specific"} <= set(report["coding_analysis"])


def test_coding_report_and_show_against_a_server_and_bad_input(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, tmp_path / "serve.log")
    try:
        common = ["--url", server.url, "--data-dir", data_dir]
        sent = run("coding", "report", sample("en_ed_note.txt"), "--billed", "I21.9", "--follow", *common,
                   cwd=tmp_path)  # fmt: skip
        assert sent.returncode == 0, describe(sent)
        assert "codes the note supports" in sent.stdout and "unsupported" in sent.stdout, describe(sent)
        job_id = sent.stdout.split("job ", 1)[1].split()[0]

        shown = run("coding", "show", job_id, "--json", *common, cwd=tmp_path)
        assert shown.returncode == 0, describe(shown)
        assert {item["code"] for item in json.loads(shown.stdout)["coding_analysis"]["unsupported"]} == {"I21.9"}

        malformed = run("coding", "report", sample("en_ed_note.txt"), "--billed", "I10,banana", *common, cwd=tmp_path)
        assert malformed.returncode != 0
        assert "banana" in malformed.stderr and "Traceback" not in malformed.stderr, describe(malformed)

        empty = tmp_path / "empty.txt"
        empty.write_text("  \n", encoding="utf-8")
        refused = run("coding", "report", empty, *common, cwd=tmp_path)
        assert refused.returncode != 0 and "empty" in refused.stderr, describe(refused)
    finally:
        stop(server.process)
