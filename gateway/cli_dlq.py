"""`edigw dlq list|show|replay|discard`: the dead-letter queue from a shell."""

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deadletter import filters
from gateway import cli_api, cli_common
from gateway.cli_common import MAX_ID, ConfigOption

if TYPE_CHECKING:
    from gateway import deadletters

# SQLAlchemy and the store are imported inside the commands (see gateway/cli_common.py).
EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2

dlq_app = cli_common.group(
    "Dead letters: list, inspect, replay (re-enter the failed stage) or discard.")

StoreUrl = Annotated[str | None, typer.Option(
    "--store", envvar="EDIGW_STORE_URL",
    help="The store URL (default: store.url of the configuration, -c).")]
Format = Annotated[str, typer.Option("--format", "-f", help="text or json")]
DeadLetterId = Annotated[int, typer.Argument(metavar="ID", min=1, max=MAX_ID)]


def _api_settings(command: str, config: Path | None) -> Any:
    """The operator settings (store, mappings) from -c or conf/gateway.yaml."""
    from canonical.errors import ConfigError
    from gateway.api.api_settings import ApiSettings

    try:
        if config is None:
            return ApiSettings.from_env()
        if not config.is_file():
            raise ConfigError(f"{config}: no such file")
        return ApiSettings.from_env(config)
    except ConfigError as exc:
        raise _fail(command, str(exc)) from exc


def _engine(command: str, store: str | None, config: Path | None) -> Any:
    from gateway.store import db

    url = store or _api_settings(command, config).store_url
    missing = cli_common.missing_sqlite_file(url)
    if missing:
        raise _fail(command, missing)
    with cli_common.store_errors(f"dlq {command}", url):
        return db.make_engine(url)


def _fail(command: str, message: str, code: int = EXIT_ERROR) -> typer.Exit:
    return cli_common.fail(f"dlq {command}", message, code)


@contextlib.contextmanager
def _store_errors(command: str) -> Iterator[None]:
    """Errors as one line: exit 1 for a missing dead letter, 2 for the rest (bad input,
    an unreachable or unmigrated store)."""
    from canonical.errors import GatewayError
    from gateway import deadletters

    try:
        with cli_common.store_errors(f"dlq {command}"):
            yield
    except deadletters.NotFound as exc:
        raise _fail(command, str(exc), EXIT_NOTHING) from exc
    except GatewayError as exc:
        raise _fail(command, str(exc)) from exc


def _check_format(format: str) -> None:
    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


@dlq_app.command("list")
def list_(
    partner: Annotated[list[str] | None, typer.Option(help="Only this partner's (repeatable).")] = None,
    stage: Annotated[list[str] | None, typer.Option(
        help=f"Only this stage ({', '.join(filters.STAGES)}; repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Failed since: 30m, 2h, 7d, or an ISO date or time.")] = None,
    reason: Annotated[str | None, typer.Option(help="Reason contains this text.")] = None,
    status: Annotated[str, typer.Option(
        help="parked, replayed, discarded or all.")] = "parked",
    limit: Annotated[int, typer.Option(min=1, max=filters.MAX_PAGE)] = 50,
    before: Annotated[int | None, typer.Option(
        min=1, max=MAX_ID, help="The next page: ids below this one.")] = None,
    format: Format = "text",
    store: StoreUrl = None,
    config: ConfigOption = None,
) -> None:
    """List dead letters, newest first; exit 1 when none matches."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gateway import deadletters
    from gateway.store import db

    _check_format(format)
    engine = _engine("list", store, config)
    with _store_errors("list"):
        flt = filters.build(partners=partner, stages=stage, since=since, reason=reason,
                            statuses=status.split(","))
        with db.transaction(engine, write=False) as s:
            page = deadletters.list_page(s, flt, limit=limit, before=before)
    if format == "json":
        _json({"items": page.items, "next_before": page.next_before})
    else:
        table = Table(title=escape(f"dead letters: {flt.describe()}"), title_justify="left")
        for col in ("id", "status", "stage", "partner", "endpoint", "attempts",
                    "last failed", "reason"):
            table.add_column(col, overflow="fold")
        for i in page.items:
            table.add_row(str(i["id"]), i["status"], i["stage"], escape(i["partner"] or ""),
                          escape(i["endpoint"] or ""), str(i["attempts"]),
                          i["last_failed_at"][:19],
                          escape(i["reason"][:200]))
        Console(highlight=False).print(table)
        if page.next_before:
            typer.echo(f"more: --before {page.next_before}")
    if not page.items:
        raise typer.Exit(EXIT_NOTHING)


@dlq_app.command()
def show(
    dead_letter_id: DeadLetterId,
    format: Format = "text",
    store: StoreUrl = None,
    config: ConfigOption = None,
) -> None:
    """Show one dead letter: error chain, raw input and the message's timeline."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from gateway import deadletters
    from gateway.store import db

    _check_format(format)
    engine = _engine("show", store, config)
    with _store_errors("show"), db.transaction(engine, write=False) as s:
        got = deadletters.show(s, dead_letter_id)
    if format == "json":
        _json(got)
        return
    out = Console(highlight=False, soft_wrap=True)
    head = Table(show_header=False, title=f"dead letter {got['id']}", title_justify="left")
    head.add_column()
    head.add_column(overflow="fold")
    for key in ("status", "stage", "partner", "endpoint", "attempts", "first_failed_at",
                "last_failed_at", "message_id", "delivery_id", "source_name", "reason"):
        head.add_row(key, escape(str(got.get(key) if got.get(key) is not None else "")))
    out.print(head)
    out.print("[bold]error chain[/bold]")
    for n, err in enumerate(got["error_chain"] or []):
        out.print(f"  {'  ' * n}{escape(str(err.get('type')))}: {escape(str(err.get('message')))}")
    out.print("[bold]timeline[/bold]")
    for e in got["timeline"]:
        out.print(f"  {e['at'][:23]}  {e['what']:<16} {escape(e['detail'])}")
    raw = got.get("raw")
    if raw:
        cut = " (excerpt)" if raw["truncated"] else ""
        out.print(f"[bold]raw input[/bold] ({raw['size']} bytes, {raw['encoding']}{cut})")
        out.print(escape(raw["content"]))


@dlq_app.command()
def replay(
    ids: Annotated[list[int] | None, typer.Argument(
        metavar="ID...", min=1, max=MAX_ID, help="Dead letter ids.")] = None,
    filter: Annotated[str | None, typer.Option(
        "--filter", help="Instead of ids: e.g. 'stage=deliver partner=acme since=2h'.")] = None,
    reason: Annotated[str | None, typer.Option(
        help="Why (kept in the audit trail); required unless --dry-run.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would happen and the event's diff; change nothing.")] = False,
    format: Format = "text",
    partners_dir: Annotated[Path | None, typer.Option(help="For --dry-run's mapping.")] = None,
    mappings_dir: Annotated[Path | None, typer.Option(help="For --dry-run's mapping.")] = None,
    store: StoreUrl = None,
    config: ConfigOption = None,
) -> None:
    """Replay dead letters: each re-enters its failed stage once; exit 1 when none did."""
    from gateway import audit, deadletters
    from gateway.dry_run import Remapper
    from gateway.store import db

    _check_format(format)
    if bool(ids) == bool(filter):
        raise _fail("replay", "give dead letter ids or --filter, not both")
    settings = _api_settings("replay", config)
    engine = _engine("replay", store, config)
    remapper = Remapper(partners_dir=partners_dir or settings.partners_dir,
                        mappings_root=mappings_dir or settings.mappings_root)
    with _store_errors("replay"):
        if filter:
            with db.transaction(engine, write=False) as s:
                ids = deadletters.matching_ids(s, filters.parse(filter))
        outcomes = deadletters.replay(engine, ids or [], actor=audit.cli_actor(),
                                      reason=reason, dry_run=dry_run, remapper=remapper)
    if format == "json":
        _json([o.to_dict() for o in outcomes])
    else:
        _print_outcomes(outcomes)
    if not any(o.done for o in outcomes):
        raise typer.Exit(EXIT_NOTHING)


def _print_outcomes(outcomes: "list[deadletters.Outcome]") -> None:
    from rich.console import Console
    from rich.markup import escape

    out = Console(highlight=False, soft_wrap=True)
    if not outcomes:
        out.print("no parked dead letter matched")
    for o in outcomes:
        item = f" -> work item {o.work_item_id}" if o.work_item_id else ""
        out.print(f"{o.dead_letter_id}: {o.result} ({o.stage or '?'}){item}: {escape(o.detail)}")
        if not o.dry_run:
            continue
        out.print(f"  would {escape(o.dry_run['would'])}")
        for failure in o.dry_run.get("mapping_failures", []):
            out.print(f"  today's mapping fails: {escape(failure)}")
        for ev in o.dry_run.get("events", []):
            out.print(f"  event {ev['event']['id']} ({ev['event']['type']})")
            if not ev["stored"]:
                out.print("    no stored event to compare with (new)")
            else:
                for line in ev["differences"] or ["no differences (time ignored)"]:
                    out.print(f"    {escape(line)}")


@dlq_app.command()
def discard(
    dead_letter_id: DeadLetterId,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail).")],
    store: StoreUrl = None,
    config: ConfigOption = None,
) -> None:
    """Discard a parked dead letter for good; exit 1 when there was none to discard."""
    from gateway import audit, deadletters

    engine = _engine("discard", store, config)
    with _store_errors("discard"):
        out = deadletters.discard(engine, dead_letter_id, actor=audit.cli_actor(),
                                  reason=reason)
    typer.echo(f"{out.dead_letter_id}: {out.result}: {out.detail}")
    if not out.done:
        raise typer.Exit(EXIT_NOTHING)


# Registered in gateway/cli.py as one group without a name, so that its groups (dlq,
# api-key, api) join `edigw` itself.
operator_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                           rich_markup_mode=None)
operator_app.add_typer(dlq_app, name="dlq")
operator_app.add_typer(cli_api.api_key_app, name="api-key")
operator_app.add_typer(cli_api.api_app, name="api")
