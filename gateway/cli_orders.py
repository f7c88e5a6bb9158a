"""`edigw orders send`: an ERP purchase order to a partner, as an X12 850 in its outbox."""

from pathlib import Path
from typing import Annotated

import typer

from gateway import cli_common
from gateway.cli_common import ConfigOption

orders_app = cli_common.group("Purchase orders to partners: written as X12 850, sent by the "
                              "workers (edigw run).")
EXIT_ERROR = 2


@orders_app.command("send")
def send(
    file: Annotated[Path, typer.Argument(help="The order: purchase_order.v1 data, as JSON.")],
    partner: Annotated[str, typer.Option(help="The partner id (conf/partners/<id>.yaml).")],
    config: ConfigOption = None,
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
) -> None:
    """Check the order, write it as the partner's 850 with the next control numbers,
    validate it, and queue it for the partner's outbox (`edigw run` sends it).

    The same order sent again is the same document (no new control numbers). Exit 2,
    with one line saying why, when it cannot go; nothing is queued then."""
    import json
    import sys

    from canonical.errors import ConfigError, GatewayError
    from gateway import audit, orders
    from gateway import partners as partners_mod
    from gateway import settings as settings_mod
    from gateway.store import db, migrate

    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    command = "orders send"
    problem = cli_common.regular_file(file)
    if problem:
        raise cli_common.fail(command, problem, EXIT_ERROR)
    try:
        data = json.loads(file.read_bytes())
    except (OSError, ValueError) as exc:
        raise cli_common.fail(command, f"{file}: not JSON: {exc}", EXIT_ERROR) from exc
    try:
        s = settings_mod.load(cli_common.config_path(config))
        known = partners_mod.load_all(s.partners_folder, mappings_root=s.mappings_root)
        known.get(partner)
    except ConfigError as exc:
        raise cli_common.fail(command, str(exc), EXIT_ERROR) from exc
    with cli_common.store_errors(command, s.store_url):
        migrate.upgrade(s.store_url)  # as `edigw run` does: a fresh checkout just works
        engine = db.make_engine(s.store_url)
        try:
            made = orders.submit(engine, known, partner, data, actor=audit.cli_actor())
        except GatewayError as exc:
            raise cli_common.fail(command, f"{file}: {exc}", EXIT_ERROR) from exc
        finally:
            engine.dispose()
    out = made.to_dict()
    if format == "json":
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    numbers = out["control_numbers"]
    what = "queued" if made.created else f"already sent before ({out['status']})"
    typer.echo(f"PO {out['po_number']} to {partner}: document {out['document_id']}, "
               f"ISA13 {numbers['isa13']} GS06 {numbers['gs06']} ST02 {numbers['st02']}, "
               f"{what}: {out['filename']}")
