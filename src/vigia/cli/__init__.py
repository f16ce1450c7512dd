"""The `vigia` command.

    running    demo, serve, worker, submit
    jobs       status, jobs list, pipelines
    oversight  reviews, dlq, audit, monitor, scale
    documents  docs: add, list, show, search, delete, reindex
    coding     coding: report, show
    admin      db, keys, deploy

Each command works on a server (`--url`) or on the local store, and gets the API's JSON
shapes back either way (`support.either`), which `render` shows.
"""

from __future__ import annotations

import logging
import sys

import typer

from vigia.cli import admin, coding, documents, jobs, oversight, running
from vigia.cli.support import errors
from vigia.config import Settings
from vigia.exceptions import VigiaError

app = typer.Typer(
    name="vigia",
    help="Run long clinical and document AI pipelines in the background.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
running.register(app)
jobs.register(app)
oversight.register(app)
documents.register(app)
coding.register(app)
admin.register(app)


def main() -> None:
    try:
        level = Settings.from_env().log_level.upper()
    except VigiaError as error:
        errors.print(f"[red]error:[/] {error.message}")
        raise SystemExit(2) from None
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app()


if __name__ == "__main__":
    main()
