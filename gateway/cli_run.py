"""The `edigw run`, `edigw db upgrade`, `edigw partners list` and `edigw erp-sim` commands."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from canonical import redact
from canonical.errors import ConfigError

db_app = typer.Typer(help="The store: migrations.", no_args_is_help=True)
partners_app = typer.Typer(help="Trading partners in conf/partners.", no_args_is_help=True)

ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="The gateway configuration (default: conf/gateway.yaml if present, "
                           "else SQLite and folders under ./var/).")]


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"edigw: {exc}", err=True)
    return typer.Exit(2)


def run(
    config: ConfigOption = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", min=1, help="Worker processes (default: workers.count).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Take the files now in the inboxes, work the queue until idle, exit.")] = False,
) -> None:
    """Run the pipeline: inbound folders -> validate and acknowledge -> map -> route -> deliver."""
    from gateway.pipeline import runner

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    redact.install(*logging.getLogger().handlers)
    try:
        done = runner.run(str(config) if config else None, workers=workers, once=once)
    except ConfigError as exc:
        raise _fail(exc) from exc
    from gateway import settings as settings_mod

    s = settings_mod.load(str(config) if config else None)
    typer.echo(f"messages {done.messages}, delivered {done.delivered}, pending deliveries "
               f"{done.pending_deliveries}, dead letters {done.dead_letters}, acks sent "
               f"{done.acks_sent}, waiting work items {done.waiting_items}")
    for name, dest in s.destinations.items():
        where = dest.config.get("path") or dest.config.get("url") or dest.type
        typer.echo(f"destination {name}: {dest.type} {redact.redact(str(where))}")
    typer.echo(f"acknowledgments: {s.outbox_root}/<partner>/")


def upgrade(config: ConfigOption = None) -> None:
    """Bring the store up to the newest schema (safe to repeat)."""
    from gateway import settings as settings_mod
    from gateway.store import migrate

    try:
        url = settings_mod.load(str(config) if config else None).store_url
    except ConfigError as exc:
        raise _fail(exc) from exc
    migrate.upgrade(url)
    typer.echo(f"store at revision {migrate.head()}")


def list_partners(
    config: ConfigOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """List the configured partners with their ISA sender ids."""
    from gateway import partners as partners_mod
    from gateway import settings as settings_mod

    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    try:
        s = settings_mod.load(str(config) if config else None)
        found = partners_mod.load_all(s.partners_folder, mappings_root=s.mappings_root)
    except ConfigError as exc:
        raise _fail(exc) from exc
    rows = [{"id": p.id, "name": p.name,
             "isa": [{"qualifier": q, "id": i} for q, i in p.isa_ids]} for p in found]
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "name", "ISA sender (qualifier:id)")
    for r in rows:
        table.add_row(r["id"], r["name"], ", ".join(f"{i['qualifier']}:{i['id']}" for i in r["isa"]))
    Console(highlight=False).print(table)


def erp_sim(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8088,
    secret: Annotated[list[str] | None, typer.Option(
        help="Signing secret the simulator checks (repeat for rotation).")] = None,
) -> None:
    """Run the ERP simulator: applies each Idempotency-Key once; fault switches under /_sim."""
    from channels import erp_sim

    logging.basicConfig(level=logging.INFO)
    erp_sim.serve(host, port, secrets=secret or (),
                  on_ready=lambda url: typer.echo(f"ERP simulator on {url}/events", err=True))


def register(app: typer.Typer) -> None:
    """Add these commands to the edigw app."""
    app.command()(run)
    app.command("erp-sim")(erp_sim)
    db_app.command("upgrade")(upgrade)
    partners_app.command("list")(list_partners)
    app.add_typer(db_app, name="db")
    app.add_typer(partners_app, name="partners")
