"""`edigw api-key new` and `edigw api serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from canonical.errors import ConfigError
from gateway.api import keys

api_key_app = typer.Typer(help="API keys for the REST API (conf/api-keys.yaml).",
                          no_args_is_help=True, add_completion=False,
                          pretty_exceptions_enable=False)
api_app = typer.Typer(help="The REST API (OpenAPI docs at /docs).", no_args_is_help=True,
                      add_completion=False, pretty_exceptions_enable=False)


@api_key_app.command("new")
def new(
    role: Annotated[str, typer.Option(help="operator, or partner (with --partner).")],
    partner: Annotated[str | None, typer.Option(help="The partner id of a partner key.")] = None,
    name: Annotated[str | None, typer.Option(
        help="A label for the audit trail (default: from the role).")] = None,
) -> None:
    """Make a key: prints it once, and the line that configures its hash."""
    label = name or (f"{partner}-key" if partner else "operator-key")
    try:
        keys.check_entry(label, role, partner)
    except ConfigError as exc:
        typer.echo(f"edigw api-key new: {exc}", err=True)
        raise typer.Exit(2) from exc
    key = keys.new_key()
    entry = keys.KeyEntry(label, keys.hash_key(key), role, partner)
    # The key on stdout alone, for scripts; the instructions where a person reads them.
    typer.echo(key)
    typer.echo("The key above is shown this once and stored nowhere; hand it to its holder.\n"
               "Add this line under `keys:` in conf/api-keys.yaml:", err=True)
    typer.echo(keys.entry_line(entry), err=True)


@api_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
) -> None:
    """Run the REST API (settings from conf/gateway.yaml and EDIGW_* variables)."""
    import uvicorn

    from gateway.api.app import from_env

    # No header logging anywhere: the access log has method, path and status only.
    uvicorn.run(from_env(), host=host, port=port, log_level="info")
