"""What every `vigia` command shares: consoles, common options, settings, errors as one line,
and where a command works: a server (`--url`) or the local store. Either way a command gets
the API's JSON shapes back (`vigia.api.schemas`), so that one renderer shows both."""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console

from vigia.app import Vigia
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
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON instead of a table.")]
Limit = Annotated[int, typer.Option(min=1, max=200, help="How many at most (newest first).")]


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


def either(settings: Settings, remote: Callable[[Client], T], local: Callable[[Vigia], Awaitable[T]]) -> T:
    """``remote`` with a client of the server the user named, else ``local`` on the store;
    either way Vigía's errors end the command with one line."""
    client = client_of(settings)
    if client is None:
        return locally(settings, local)
    with client:
        try:
            return remote(client)
        except VigiaError as error:
            raise fail(error.message) from None


def locally(settings: Settings, work: Callable[[Vigia], Awaitable[T]]) -> T:
    """Run ``work`` on the local store (the app is not started: no workers)."""

    async def main() -> T:
        vigia = Vigia.from_settings(settings)
        try:
            return await work(vigia)
        finally:
            vigia.close()

    return run(main)


def local_actor() -> str:
    """Who acts from this machine's command line, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def epoch(moment: dt.datetime | None) -> float | None:
    """A time the user gave (UTC unless it says otherwise) in epoch seconds."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).timestamp()


def iso_query(moment: float | None) -> str | None:
    """Epoch seconds as the API's query parameters take them."""
    return None if moment is None else dt.datetime.fromtimestamp(moment, dt.UTC).isoformat()
