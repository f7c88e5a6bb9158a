"""The `edigw run`, `edigw db upgrade`, `edigw partners list` and `edigw erp-sim` commands."""

from pathlib import Path
from typing import Annotated

import typer

from gateway import cli_common
from gateway.cli_common import ConfigOption

db_app = cli_common.group("The store: migrations.")
partners_app = cli_common.group("Trading partners in conf/partners.")
# `run --once` left work for later (a retry scheduled in the future): not an error, not done.
EXIT_DONE, EXIT_ERROR, EXIT_PENDING = 0, 2, 3
MAX_WORKERS = 64


def _settings(command: str, config: Path | None):  # type: ignore[no-untyped-def]
    from canonical.errors import ConfigError
    from gateway import settings as settings_mod

    try:
        return settings_mod.load(cli_common.config_path(config))
    except ConfigError as exc:
        raise cli_common.fail(command, str(exc), EXIT_ERROR) from exc


def run(
    config: ConfigOption = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", min=1, max=MAX_WORKERS,
        help="Worker processes (default: workers.count).")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Take the files now in the inboxes, work the queue until idle, exit.")] = False,
    listen: Annotated[str | None, typer.Option(
        "--listen", metavar="HOST:PORT",
        help="Serve HTTP (API, webhooks, portal) here (default: http.listen, "
             "127.0.0.1:8080; port 0 picks a free one). Not with --once.")] = None,
) -> None:
    """Run the pipeline: inbound folders -> validate and acknowledge -> map -> route -> deliver.

    Serves HTTP meanwhile (REST API, partners' webhooks, portal) on http.listen or --listen.

    With --once: exit 0 when all work is done, 3 when some waits for a scheduled retry
    (run again later, or without --once), 2 on a configuration or store error."""
    import logging
    import sys

    from canonical import redact
    from canonical.errors import ConfigError
    from gateway import settings as settings_mod
    from gateway.pipeline import runner

    s = _settings("run", config)
    if listen is not None:
        try:
            settings_mod.parse_listen(listen)
        except ConfigError as exc:
            raise cli_common.fail("run", f"--listen: {exc}", EXIT_ERROR) from exc
        if once:
            raise cli_common.fail("run", "--listen serves HTTP while the gateway runs; --once "
                                  "does not serve (leave one of them out)", EXIT_ERROR)
    for problem in (cli_common.missing_folder(s.partners_folder, "partner configuration "
                                              "folder", "-c"),
                    cli_common.missing_folder(s.mappings_root, "mappings folder", "-c")):
        if problem:
            raise cli_common.fail("run", problem, EXIT_ERROR)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    redact.install(*logging.getLogger().handlers)
    try:
        with cli_common.store_errors("run", s.store_url):
            done = runner.run(cli_common.config_path(config), workers=workers, once=once,
                              listen=listen)
    except (ConfigError, OSError) as exc:
        raise cli_common.fail("run", str(exc), EXIT_ERROR) from exc
    typer.echo(f"messages {done.messages}, delivered {done.delivered}, pending deliveries "
               f"{done.pending_deliveries}, dead letters {done.dead_letters}, acks sent "
               f"{done.acks_sent}, orders sent {done.orders_sent}, waiting work items "
               f"{done.waiting_items}")
    for name, dest in s.destinations.items():
        where = dest.config.get("path") or dest.config.get("url") or dest.type
        typer.echo(f"destination {name}: {dest.type} {redact.redact(str(where))}")
    typer.echo(f"acknowledgments and purchase orders: {s.outbox_root}/<partner>/")
    if once and done.waiting_items:
        raise cli_common.fail(
            "run", f"left {done.waiting_items} work item(s) pending: their retries are "
            "scheduled for later; `edigw run --once` again later works them, or `edigw run` "
            "keeps at it", EXIT_PENDING)


def upgrade(config: ConfigOption = None) -> None:
    """Bring the store up to the newest schema (safe to repeat)."""
    from gateway.store import migrate

    s = _settings("db upgrade", config)
    if s.file is None:  # the embedded default: say where the store goes, it may be a surprise
        typer.echo(f"edigw db upgrade: no conf/gateway.yaml in {Path.cwd()}: the embedded "
                   f"default store, {s.store_url}", err=True)
    url = s.store_url
    with cli_common.store_errors("db upgrade", url):
        migrate.upgrade(url)
    typer.echo(f"store at revision {migrate.head()}")


def list_partners(
    config: ConfigOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """List the configured partners with their ISA sender ids and channels."""
    import json
    import sys

    from canonical.errors import ConfigError
    from gateway import partners as partners_mod

    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    s = _settings("partners list", config)
    problem = cli_common.missing_folder(s.partners_folder, "partner configuration folder", "-c")
    if problem:
        raise cli_common.fail("partners list", problem, EXIT_ERROR)
    try:
        found = partners_mod.load_all(s.partners_folder, mappings_root=s.mappings_root)
    except ConfigError as exc:
        raise cli_common.fail("partners list", str(exc), EXIT_ERROR) from exc
    # A secret appears as the name of its environment variable ({"env": ...}), never its value.
    rows = [{"id": p.id, "name": p.name,
             "isa": [{"qualifier": q, "id": i} for q, i in p.isa_ids],
             "channels": {kind: c.model_dump(mode="json") for kind, c in p.channels.items()}}
            for p in found]
    if format == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table("id", "name", "ISA sender (qualifier:id)", "channels")
    for r in rows:
        table.add_row(escape(r["id"]), escape(r["name"]),
                      escape(", ".join(f"{i['qualifier']}:{i['id']}" for i in r["isa"])),
                      escape(", ".join(sorted(r["channels"])) or "-"))
    Console(highlight=False).print(table)
    if not rows:
        typer.echo(f"no partner files (*.yaml) in {s.partners_folder}", err=True)


def erp_sim(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8088,
    secret: Annotated[list[str] | None, typer.Option(
        help="Signing secret the simulator checks (repeat for rotation).")] = None,
) -> None:
    """Run the ERP simulator: applies each Idempotency-Key once; fault switches under /_sim."""
    import logging

    from canonical.errors import ConfigError
    from channels import erp_sim

    logging.basicConfig(level=logging.INFO)
    try:
        erp_sim.serve(host, port, secrets=secret or (),
                      on_ready=lambda url: typer.echo(f"ERP simulator on {url}/events", err=True))
    except OSError as exc:  # the port is taken, or the address is not ours
        raise cli_common.fail("erp-sim", f"cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}", EXIT_ERROR) from exc
    except ConfigError as exc:  # a --secret that cannot be used
        raise cli_common.fail("erp-sim", str(exc), EXIT_ERROR) from exc


def register(app: typer.Typer) -> None:
    """Add these commands to the edigw app."""
    app.command()(run)
    app.command("erp-sim")(erp_sim)
    db_app.command("upgrade")(upgrade)
    partners_app.command("list")(list_partners)
    app.add_typer(db_app, name="db")
    app.add_typer(partners_app, name="partners")
