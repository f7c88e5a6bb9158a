"""`edigw api-key new` and `edigw api serve`."""

from typing import Annotated

import typer

from gateway import cli_common
from gateway.cli_common import ConfigOption

api_key_app = cli_common.group("API keys for the REST API (conf/api-keys.yaml).")
api_app = cli_common.group("The REST API (OpenAPI docs at /docs).")


@api_key_app.command("new")
def new(
    role: Annotated[str, typer.Option(help="operator, or partner (with --partner).")],
    partner: Annotated[str | None, typer.Option(help="The partner id of a partner key.")] = None,
    name: Annotated[str | None, typer.Option(
        help="A label for the audit trail (default: from the role).")] = None,
) -> None:
    """Make a key: prints it once, and the line that configures its hash."""
    from canonical.errors import ConfigError
    from gateway.api import keys

    label = name or (f"{partner}-key" if partner else "operator-key")
    try:
        keys.check_entry(label, role, partner)
    except ConfigError as exc:
        raise cli_common.fail("api-key new", str(exc)) from exc
    key = keys.new_key()
    entry = keys.KeyEntry(label, keys.hash_key(key), role, partner)
    # The key on stdout alone, for scripts; the instructions where a person reads them.
    typer.echo(key)
    typer.echo("The key above is shown this once and stored nowhere; hand it to its holder.\n"
               "Add this line under `keys:` in conf/api-keys.yaml (a file that still says "
               "`keys: []` needs the `[]` removed first):", err=True)
    typer.echo(keys.entry_line(entry), err=True)


@api_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    config: ConfigOption = None,
) -> None:
    """Run the REST API (settings from -c or conf/gateway.yaml, and EDIGW_* variables).

    Requests need a key: make one with `edigw api-key new --role operator` and add the
    line it prints to conf/api-keys.yaml (read again on change, no restart needed)."""
    from canonical.errors import ConfigError
    from gateway.api.api_settings import ApiSettings
    from gateway.api.app import create_app

    try:
        if config is not None and not config.is_file():
            raise ConfigError(f"{config}: no such file")
        settings = ApiSettings.from_env(config) if config else ApiSettings.from_env()
        missing = cli_common.missing_sqlite_file(settings.store_url)
        if missing:
            raise ConfigError(missing)
        with cli_common.store_errors("api serve", settings.store_url):
            app = create_app(settings)
    except ConfigError as exc:
        raise cli_common.fail("api serve", str(exc)) from exc
    import uvicorn

    # No header logging anywhere: the access log has method, path and status only.
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    except OSError as exc:
        raise cli_common.fail("api serve", f"cannot listen on {host}:{port}: "
                              f"{exc.strerror or exc}") from exc
