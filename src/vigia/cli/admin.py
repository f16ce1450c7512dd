"""`vigia db`, `vigia keys` and `vigia deploy`: the job store's schema, API keys, and the
deployment files of distributed mode."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from vigia import constants, deployment, wiring
from vigia.access import Role, issue
from vigia.cli import render
from vigia.cli.support import DataDir, console, errors, fail, local_actor, settings_of
from vigia.exceptions import VigiaError
from vigia.store.api_keys import ApiKeyStore
from vigia.store.database import Database

db_app = typer.Typer(help="Job store administration.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys (on the local job store).", no_args_is_help=True)
deploy_app = typer.Typer(help="Deployment files for distributed mode.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Create or migrate the job store's schema to this version."""
    settings = settings_of(data_dir)
    try:
        database = wiring.open_database(settings, upgrade=True)
        try:
            database.check()
        finally:
            database.close()
    except VigiaError as error:
        raise fail(error.message) from None
    console.print(f"job store at {settings.database_url} is up to date")


def _key_store(data_dir: Path | None) -> tuple[Database, ApiKeyStore]:
    settings = settings_of(data_dir)
    try:
        database = wiring.open_database(settings, upgrade=False)
        database.check()
    except VigiaError as error:
        raise fail(f"{error.message} (is {settings.database_url} right? `vigia db upgrade` creates it)") from None
    return database, ApiKeyStore(database)


@keys_app.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="What the key may do.")],
    tenant: Annotated[str, typer.Option(help="Whose jobs the key sees.")] = constants.DEFAULT_TENANT,
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create an API key and print it, this once only.

    It is stored only as a hash."""
    database, keys = _key_store(data_dir)
    issued = issue()
    try:
        key = keys.create(
            issued,
            tenant=tenant,
            role=role,
            name=name or f"{role.value} key",
            now=time.time(),
            actor=local_actor(),
        )
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        database.close()
    errors.print(f"created key {key.id} ({key.role.value}, tenant {key.tenant}); keep it now, it is not shown again:")
    print(issued.plaintext)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None, data_dir: DataDir = None
) -> None:
    """List API keys (never their secrets)."""
    database, keys = _key_store(data_dir)
    try:
        found = keys.list(tenant)
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        database.close()
    console.print(render.keys_table(found))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see `vigia keys list`).")], data_dir: DataDir = None
) -> None:
    """Revoke an API key.

    Servers refuse it at once, or within 5 s if they just verified it."""
    database, keys = _key_store(data_dir)
    try:
        key = keys.revoke(key_id, time.time(), actor=local_actor())
    except VigiaError as error:
        raise fail(error.message) from None
    finally:
        database.close()
    console.print(f"revoked key {key.id} ({key.role.value}, tenant {key.tenant})")


@deploy_app.command("kubernetes")
def deploy_kubernetes(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the manifests into.")],
) -> None:
    """Kubernetes manifests: the API, a worker Deployment per queue group with its resources,
    PodDisruptionBudgets, and KEDA ScaledObjects whose listLength follows from each group's
    target wait (`vigia scale advise` measures what to plan with)."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        for name in deployment.FILES:
            (output / name).write_text(deployment.render(name))
    except OSError as error:
        raise fail(f"cannot write to {output}: {error.strerror or error}") from None
    console.print(f"wrote {', '.join(deployment.FILES)} to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.add_typer(deploy_app, name="deploy")
