"""`edigw chains show|list` and `edigw receipts send`: purchase order chains from a shell."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway import cli_common
from gateway.cli_common import ConfigOption

# The store, the partners and the chains are imported inside the commands (cli_common).
chains_app = cli_common.group("Purchase order chains: PO, 997/999, 855, 856, 810, receipts.")
receipts_app = cli_common.group("Goods receipts from the ERP, for the three-way match.")
EXIT_ERROR = 2

PartnerOption = Annotated[str | None, typer.Option(
    "--partner", "-p", help="The partner id (needed when the PO number is in several chains).")]
Format = Annotated[str, typer.Option("--format", "-f", help="text or json")]


def _context(command: str, config: Path | None) -> Any:
    from canonical.errors import ConfigError
    from gateway.pipeline.context import Context
    from gateway.settings import load

    try:
        url = load(cli_common.config_path(config)).store_url
        missing = cli_common.missing_sqlite_file(url)
        if missing:
            raise cli_common.fail(command, missing)
        with cli_common.store_errors(command, url):
            return Context.load(cli_common.config_path(config))
    except ConfigError as exc:
        raise cli_common.fail(command, str(exc)) from exc


def _format(command: str, fmt: str) -> None:
    if fmt not in ("text", "json"):
        raise cli_common.fail(command, f"--format {fmt!r}: text or json")


@chains_app.command("show")
def show(po_number: Annotated[str, typer.Argument(metavar="PO_NUMBER")],
         partner: PartnerOption = None, fmt: Format = "text",
         config: ConfigOption = None) -> None:
    """A PO's chain: its documents in order, each line's ordered, acknowledged, shipped,
    invoiced and received quantities, its exceptions and deadlines."""
    from canonical.errors import GatewayError
    from gateway.chains import views
    from gateway.store import db

    _format("chains show", fmt)
    ctx = _context("chains show", config)
    try:
        with cli_common.store_errors("chains show"), db.transaction(ctx.engine, write=False) as s:
            found = views.chain(s, po_number, partner)
    except GatewayError as exc:
        raise cli_common.fail("chains show", str(exc)) from exc
    finally:
        ctx.close()
    if fmt == "json":
        typer.echo(json.dumps(found, indent=2))
        return
    typer.echo(f"PO {found['po_number']} of {found['partner']}: {found['state']}"
               + (f" ({found['direction']})" if found["direction"] else ""))
    typer.echo("documents:")
    for d in found["documents"]:
        typer.echo(f"  {d['at']}  {d['type']:<18} {d['number'] or d['id']}"
                   + (f"  [{d['x12control']}]" if d["x12control"] else "")
                   + ("" if "accepted" not in d else "  accepted" if d["accepted"] else "  rejected"))
    typer.echo("lines:     ordered  acknowledged  shipped  invoiced  received  unit")
    for ln in found["lines"]:
        cells = [ln[k] if ln[k] is not None else "-" for k in
                 ("ordered", "acknowledged", "shipped", "invoiced", "received")]
        typer.echo(f"  {ln['line_number']:<6} {cells[0]:>8} {cells[1]:>13} {cells[2]:>8} "
                   f"{cells[3]:>9} {cells[4]:>9}  {ln['unit'] or ''}")
    typer.echo(f"exceptions: {len(found['exceptions']) or 'none'}")
    for e in found["exceptions"]:
        typer.echo(f"  {e['severity']:<7} {e['kind']}: {e['message']}")
    for d in found["deadlines"]:
        typer.echo(f"deadline {d['kind']}: {d['state']}, due {d['due_at']}")


@chains_app.command("list")
def list_(open_only: Annotated[bool, typer.Option(
              "--open", help="Only chains not yet matched (waiting for their PO, or open).")] = False,
          partner: PartnerOption = None, fmt: Format = "text",
          limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 100,
          config: ConfigOption = None) -> None:
    """Chains, newest first."""
    from gateway.chains import views
    from gateway.store import db

    _format("chains list", fmt)
    ctx = _context("chains list", config)
    try:
        with cli_common.store_errors("chains list"), db.transaction(ctx.engine, write=False) as s:
            found = views.listing(s, open_only=open_only, partner=partner, limit=limit)
    finally:
        ctx.close()
    if fmt == "json":
        typer.echo(json.dumps(found, indent=2))
        return
    for c in found:
        typer.echo(f"{c['partner']:<16} {c['po_number']:<20} {c['state']:<8} "
                   f"{c['direction'] or '-':<9} {c['updated_at']}")


@receipts_app.command("send")
def send(file: Annotated[Path, typer.Argument(metavar="FILE.json")],
         partner: PartnerOption = None, config: ConfigOption = None) -> None:
    """Post a goods receipt (canonical goods_receipt.v1 JSON) to its PO's chain; the
    exceptions it raises are routed like any event."""
    from canonical.errors import ConfigError, GatewayError
    from gateway.chains import views
    from gateway.store import db

    problem = cli_common.regular_file(file)
    if problem:
        raise cli_common.fail("receipts send", problem)
    try:
        data = json.loads(file.read_bytes())
    except (ValueError, OSError) as exc:
        raise cli_common.fail("receipts send", f"{file}: not JSON: {exc}") from exc
    ctx = _context("receipts send", config)
    try:
        with cli_common.store_errors("receipts send"), db.transaction(ctx.engine) as s:
            out = views.post_receipt(s, ctx.partners, ctx.settings.routes, data, partner)
    except (GatewayError, ConfigError) as exc:
        raise cli_common.fail("receipts send", f"{file}: {exc}") from exc
    finally:
        ctx.close()
    typer.echo(f"receipt {out['receipt']} joined PO {out['po_number']} of {out['partner']}: "
               f"{len(out['exceptions'])} exception(s)")
    for e in out["exceptions"]:
        typer.echo(f"  {e['kind']}: {e['message']}")
