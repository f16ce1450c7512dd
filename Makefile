# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed-dev

.PHONY: install demo serve worker test test-unit lint format bench bench-documents clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vigia demo

# The HTTP API with embedded workers on http://127.0.0.1:8000/api/v1 (docs at /api/v1/docs).
serve: $(STAMP)
	$(BIN)/vigia serve

worker: $(STAMP)
	$(BIN)/vigia worker

test: $(STAMP)
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/distributed.py
	$(BIN)/python benchmarks/escalation.py

# OCR and retrieval quality, throughput against the bare libraries, search latency (long).
bench-documents: $(STAMP)
	$(BIN)/python benchmarks/documents.py --postgres

clean:
	rm -rf $(VENV) .vigia .pytest_cache .mypy_cache .ruff_cache
