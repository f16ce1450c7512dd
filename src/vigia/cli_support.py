"""What every `vigia` command shares: consoles, common options, settings, errors as one
line, and the choice between a server (`--url`) and the local store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console

from vigia.client import Client
from vigia.config import Settings
from vigia.exceptions import VigiaError

T = TypeVar("T")

console = Console()
# soft_wrap: an error is one line however narrow the terminal (or none at all).
errors = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded store lives (default: VIGIA_DATA_DIR or ./.vigia)."),
]
Url = Annotated[
    str | None,
    typer.Option("--url", help="A running server (or VIGIA_URL); without it, work on the local job store."),
]
ApiKeyOption = Annotated[
    str | None, typer.Option("--api-key", help="Key for --url (or VIGIA_API_KEY; default: the local admin key).")
]


def settings_of(data_dir: Path | None = None, **overrides: Any) -> Settings:
    return Settings.from_env(data_dir=data_dir, **overrides)


def fail(message: str, status: int = 1) -> typer.Exit:
    errors.print(f"[red]error:[/] {message}")
    return typer.Exit(status)


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command's coroutine, turning Vigía's errors into one line and exit status 1."""
    try:
        return asyncio.run(main())
    except VigiaError as error:
        raise fail(error.message) from None
    except KeyboardInterrupt:
        errors.print("interrupted")
        raise typer.Exit(130) from None


def client_of(settings: Settings) -> Client | None:
    """A client for the server the user named, or None to work on the local store."""
    if not settings.url:
        return None
    key = settings.api_key
    if key is None and settings.local_key_file.exists() and _is_loopback(settings.url):
        # The local admin key goes only to this machine's server, never to a remote URL.
        key = settings.local_key_file.read_text().strip()
    return Client(settings.url, key)


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
