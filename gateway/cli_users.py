"""`edigw users add|list|disable`: the people of a partner who sign in to the portal."""

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from gateway import cli_common
from gateway.cli_common import ConfigOption

users_app = cli_common.group("Portal users: the partners' people who upload CSV at /portal.")
EXIT_OK, EXIT_NOTHING, EXIT_ERROR = 0, 1, 2


def _settings(command: str, config: Path | None) -> Any:
    from canonical.errors import ConfigError
    from gateway.api.api_settings import ApiSettings

    try:
        if config is not None and not config.is_file():
            raise ConfigError(f"{config}: no such file")
        return ApiSettings.from_env(config) if config else ApiSettings.from_env()
    except ConfigError as exc:
        raise cli_common.fail(f"users {command}", str(exc)) from exc


@contextlib.contextmanager
def _store(command: str, url: str, *, write: bool) -> Iterator[Any]:
    """A session on the existing store, its failures as the CLI's one-line exit 2."""
    from gateway.store import db

    missing = cli_common.missing_sqlite_file(url)
    if missing:
        raise cli_common.fail(f"users {command}", missing)
    with cli_common.store_errors(f"users {command}", url):
        engine = db.make_engine(url)
        try:
            with db.transaction(engine, write=write) as session:
                yield session
        finally:
            engine.dispose()


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="The sign-in name (a-z 0-9 . _ @ -).")],
    partner: Annotated[str, typer.Option(help="The partner id (conf/partners/<id>.yaml).")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from standard input (its first line).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Add a portal user of a partner; the password is kept only as an argon2 hash.

    The password is read from standard input, never from the command line (where other
    users of the machine could see it): `edigw users add --partner evergreen ana
    --password-stdin < file`, or typed at the prompt."""
    from canonical.errors import ConfigError
    from gateway import audit
    from gateway import partners as partners_mod
    from gateway.portal import passwords
    from gateway.store import audit_log, users

    s = _settings("add", config)
    try:
        passwords.check_username(username)
        known = partners_mod.load_all(s.partners_dir, mappings_root=s.mappings_root)
        known.get(partner)
    except (ValueError, ConfigError) as exc:
        raise cli_common.fail("users add", str(exc)) from exc
    if not password_stdin:
        raise cli_common.fail("users add", "give the password on standard input with "
                              "--password-stdin (never as an argument)")
    line = sys.stdin.readline() if not sys.stdin.isatty() else typer.prompt(
        "Password", hide_input=True, confirmation_prompt=True)
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    try:
        hashed = passwords.hash_password(password)
    except passwords.BadPassword as exc:
        raise cli_common.fail("users add", str(exc)) from exc
    try:
        with _store("add", s.store_url, write=True) as session:
            users.add(session, username=username, partner=partner, password_hash=hashed)
            audit_log.record(session, actor=audit.cli_actor(), action="portal.user_added",
                             target=f"portal-user:{username}", details={"partner": partner})
    except users.UserExists as exc:
        raise cli_common.fail("users add", str(exc)) from exc
    typer.echo(f"portal user {username} added for partner {partner}; they sign in at /portal/login")


@users_app.command("list")
def list_users(
    partner: Annotated[str | None, typer.Option(help="Only this partner's users.")] = None,
    config: ConfigOption = None,
) -> None:
    """The portal users: name, partner, added, and whether they may sign in."""
    from gateway.store import users

    s = _settings("list", config)
    with _store("list", s.store_url, write=False) as session:
        found = users.all_users(session, partner)
    if not found:
        typer.echo("no portal users" + (f" of partner {partner}" if partner else ""))
        raise typer.Exit(EXIT_NOTHING)
    for u in found:
        state = f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "active"
        typer.echo(f"{u.username}\t{u.partner}\tadded {u.created_at:%Y-%m-%d}\t{state}")


@users_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user who may no longer sign in.")],
    config: ConfigOption = None,
) -> None:
    """Stop a portal user signing in; their open sessions end at their next request."""
    from gateway import audit
    from gateway.store import audit_log, users

    s = _settings("disable", config)
    with _store("disable", s.store_url, write=True) as session:
        found = users.disable(session, username)
        if found:
            audit_log.record(session, actor=audit.cli_actor(),
                             action="portal.user_disabled", target=f"portal-user:{username}")
    if not found:
        raise cli_common.fail("users disable", f"no portal user {username!r}", EXIT_NOTHING)
    typer.echo(f"portal user {username} disabled")
