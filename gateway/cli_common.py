"""What every `edigw` command shares: the -c option, one-line failures, the project folders.

Only typer and the standard library are imported here and at the top of the cli_* modules:
`edigw --help` builds every command's signature, so anything heavy (SQLAlchemy, FastAPI,
the X12 maps) is imported inside the command that needs it.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

# Ids are 64-bit in the store; a larger number is refused by the option, not by the database.
MAX_ID = 2**63 - 1
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", "-c", help="The gateway configuration (default: conf/gateway.yaml if present, "
                           "else SQLite and folders under ./var/).")]


def group(help: str) -> typer.Typer:
    """A command group with edigw's defaults: plain help (fast; Rich is not loaded for
    it), no shell-completion commands, no Rich tracebacks."""
    return typer.Typer(help=help, no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False, rich_markup_mode=None)


def fail(command: str, message: str, code: int = 2) -> typer.Exit:
    """Print `edigw <command>: <message>` on stderr; the Exit to raise."""
    typer.echo(f"edigw {command}: {message}", err=True)
    return typer.Exit(code)


def config_path(config: Path | None) -> str | None:
    """The -c value as settings.load takes it."""
    return str(config) if config is not None else None


def missing_folder(folder: Path, what: str, option: str) -> str | None:
    """Why a folder a command reads cannot be used, or None when it can.

    Run outside the project folder, conf/ and mappings/ are simply not there; saying so
    beats an empty table or a "no mapping" that sends the user looking in the wrong place.
    """
    if folder.is_dir():
        return None
    where = f"{folder} is not a folder" if folder.exists() else f"{folder} does not exist"
    return (f"{where} (the {what}); run edigw from the project folder "
            f"(cwd is {Path.cwd()}) or pass {option}")


def missing_sqlite_file(url: str) -> str | None:
    """Why a SQLite store URL names no store yet, or None: opening it would make an empty
    database wherever the command happens to run, and then report that it has no tables."""
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url

    try:
        database = make_url(url).database
    except Exception:  # not a URL: store_errors says so when it is used
        return None
    if not database or database == ":memory:" or Path(database).is_file():
        return None
    return (f"no store at {database} (cwd is {Path.cwd()}); run edigw from the project "
            "folder, pass -c or --store, or make it with `edigw db upgrade`")


def regular_file(path: Path) -> str | None:
    """Why path cannot be read as an input file, or None: a FIFO or a device would block
    the command or never end, a folder is not a file."""
    try:
        if path.is_file():
            return None
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a folder, not a file"
    return f"{path}: not a regular file (a pipe or a device is not read)"


@contextlib.contextmanager
def store_errors(command: str, url: str | None = None) -> Iterator[None]:
    """A store that cannot be reached or used as one line and exit 2, not a traceback:
    a wrong URL, a database that is down or missing, a driver that is not installed."""
    from sqlalchemy import exc as sa_exc

    from canonical.errors import ConfigError
    from gateway.store.db import StoreUnavailable

    try:
        yield
    except ConfigError as exc:  # a SQLite file whose folder cannot be made, say
        raise fail(command, str(exc)) from exc
    except (sa_exc.SQLAlchemyError, ModuleNotFoundError, StoreUnavailable) as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        if isinstance(exc, ModuleNotFoundError):
            first = f"the driver it names is not installed ({exc.name})"
        raise fail(command, f"the store {_shown(url)}cannot be used: {first}; check store.url "
                   "(-c) and that the database is up (edigw db upgrade makes its tables)") from exc


def _shown(url: str | None) -> str:
    if not url:
        return ""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True) + " "
    except Exception:  # an unparseable URL is shown as nothing rather than leaked whole
        return ""
