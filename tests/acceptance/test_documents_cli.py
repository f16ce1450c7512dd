"""`vigia docs` and `vigia demo --documents` as a user runs them: real subprocesses, a real
server, the sample documents shipped with the workload."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.test_serve import describe, start_server, stop, vigia_command, vigia_env
from vigia.workloads import documents

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def run(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A `vigia` command given time to load the embedding model (about 10 s) and OCR."""
    return subprocess.run(
        [*vigia_command(), *(str(arg) for arg in args)],
        cwd=cwd,
        env=vigia_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def test_the_documents_demo_ingests_the_samples_and_searches_them(tmp_path: Path) -> None:
    result = run("demo", "--documents", "--data-dir", tmp_path / "data", cwd=tmp_path, timeout=500)
    assert result.returncode == 0, describe(result)
    output = " ".join(result.stdout.split())
    for sample in documents.samples():
        assert sample.name in output, describe(result)
    assert output.count("search:") == 4
    # The meaning question about school maintenance finds the oficio first.
    first = output.split("search: mantenimiento de los locales escolares", 1)[1]
    assert re.match(r"\s*1\. oficio-born-digital\.pdf", first), describe(result)
    assert "phone-photo.jpg" in output and "ocr" in output


def test_docs_add_search_show_list_and_delete_against_a_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, tmp_path / "serve.log")
    try:
        common = ["--url", server.url, "--data-dir", data_dir]
        [oficio] = [path for path in documents.samples() if path.name.startswith("oficio")]
        added = run("docs", "add", oficio, "--follow", *common, cwd=tmp_path)
        assert added.returncode == 0, describe(added)
        assert "job " in added.stdout and "succeeded" in added.stdout, describe(added)

        listed = run("docs", "list", "--json", *common, cwd=tmp_path)
        assert listed.returncode == 0, describe(listed)
        [document] = json.loads(listed.stdout)["documents"]
        assert document["filename"] == oficio.name
        assert document["document_type"] == "oficio"

        shown = run("docs", "show", document["id"], *common, cwd=tmp_path)
        assert shown.returncode == 0, describe(shown)
        assert "text_layer" in shown.stdout and "reference" in shown.stdout

        found = run("docs", "search", "mantenimiento preventivo", "--json", *common, cwd=tmp_path)
        assert found.returncode == 0, describe(found)
        body = json.loads(found.stdout)
        assert body["vector_search"] == "ok"
        assert body["results"][0]["document_id"] == document["id"]

        refused = run("docs", "add", tmp_path / "serve.log", *common, cwd=tmp_path)
        assert refused.returncode == 1 and "error:" in refused.stderr, describe(refused)
        assert "Traceback" not in refused.stderr

        deleted = run("docs", "delete", document["id"], "--yes", *common, cwd=tmp_path)
        assert deleted.returncode == 0, describe(deleted)
        empty = run("docs", "list", "--json", *common, cwd=tmp_path)
        assert json.loads(empty.stdout)["documents"] == []
    finally:
        stop(server.process)
