"""The `edigw` command line: validate and inspect X12 files, and the command groups of the gateway.

Only typer is imported at the top: `edigw --help` must come back at once, so each command
imports what it needs (the X12 maps, Rich, SQLAlchemy) when it runs.
"""

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway import (
    cli_chains,
    cli_common,
    cli_dlq,
    cli_mapping,
    cli_orders,
    cli_run,
    cli_users,
)

if TYPE_CHECKING:
    from rich.console import Console

    from mappings.x12.results import FileResult

app = typer.Typer(
    name="edigw",
    help="edi-gateway: validate, translate and deliver trading partners' EDI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(cli_mapping.mapping_app, name="mapping")
app.add_typer(cli_dlq.operator_app)  # dlq, api-key, api
app.add_typer(cli_users.users_app, name="users")
app.add_typer(cli_orders.orders_app, name="orders")
app.add_typer(cli_chains.chains_app, name="chains")
app.add_typer(cli_chains.receipts_app, name="receipts")
app.command()(cli_mapping.translate)
cli_run.register(app)  # run, db upgrade, partners list, erp-sim

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_UNREADABLE = 0, 1, 2
# Files a folder argument expands to; anything else in a folder is left alone.
X12_SUFFIXES = {".edi", ".x12", ".txt", ".dat", ".850", ".855", ".856", ".810", ".997", ".999"}


@dataclass
class Expanded:
    """The files the path arguments name, and what in their folders was left out."""

    files: list[Path] = field(default_factory=list)
    hidden: int = 0
    other_suffixes: dict[str, int] = field(default_factory=dict)

    def skipped_note(self) -> str | None:
        """A sentence on the skipped files, or None when none was."""
        parts = []
        if self.other_suffixes:
            n = sum(self.other_suffixes.values())
            kinds = ", ".join(f"{s or '(none)'} x{c}" for s, c in sorted(self.other_suffixes.items()))
            parts.append(f"{n} not named like X12 ({kinds}; X12 files end in "
                         f"{' '.join(sorted(X12_SUFFIXES))})")
        if self.hidden:
            parts.append(f"{self.hidden} hidden (name starts with a dot)")
        if not parts:
            return None
        total = sum(self.other_suffixes.values()) + self.hidden
        return f"skipped {total} file(s) in the folder(s): {'; '.join(parts)}"


def expand(paths: Iterable[Path]) -> Expanded:
    """Files as given; folders searched for files named like X12."""
    out = Expanded()
    for p in paths:
        if not p.is_dir():
            out.files.append(p)
            continue
        for f in sorted(p.rglob("*")):
            if not f.is_file():
                continue
            if f.name.startswith("."):
                out.hidden += 1
            elif f.suffix.lower() not in X12_SUFFIXES:
                suffix = f.suffix.lower()
                out.other_suffixes[suffix] = out.other_suffixes.get(suffix, 0) + 1
            else:
                out.files.append(f)
    return out


def _files_or_fail(command: str, paths: Iterable[Path]) -> tuple[Expanded, str | None]:
    """The files to work on and the note on what was skipped; exit 2 when there are none."""
    paths = list(paths)
    found = expand(paths)
    note = found.skipped_note()
    if not found.files:
        message = "no files found in " + ", ".join(map(str, paths))
        raise cli_common.fail(command, f"{message}; {note}" if note else message,
                              EXIT_UNREADABLE)
    return found, note


def _unreadable(path: Path, reason: str) -> "FileResult":
    from mappings.x12.results import FileResult

    return FileResult(path=str(path), readable=False, read_error=reason)


def _validate_one(f: Path, max_bytes: int | None,
                  lenient: frozenset[str] = frozenset()) -> "FileResult":
    from canonical.errors import InputTooLarge
    from mappings.x12 import validator

    problem = cli_common.regular_file(f)
    if problem is not None:
        return _unreadable(f, problem.removeprefix(f"{f}: "))
    try:
        return validator.validate(f, path=str(f), max_bytes=max_bytes,
                                  accept_with_errors=lenient)
    except InputTooLarge as exc:  # refused, like any file that cannot be read: exit 2
        return _unreadable(f, f"{exc} (--max-bytes)")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="X12 files, or folders to search for them.")],
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    ack_dir: Annotated[Path | None, typer.Option(
        help="Write the 997/999/TA1 answering each file into this folder.")] = None,
    max_bytes: Annotated[int | None, typer.Option(
        min=0, help="Refuse files larger than this many bytes (exit 2 for them).")] = None,
    partner: Annotated[str | None, typer.Option(
        help="Apply this partner's validation settings (validation.accept_with_errors in "
             "its conf/partners file): sets with only those errors are accepted, AK5 E.")
    ] = None,
    partners_dir: cli_mapping.PartnersDir = cli_mapping.DEFAULT_PARTNERS,
    mappings_dir: cli_mapping.MappingsDir = cli_mapping.DEFAULT_MAPPINGS,
) -> None:
    """Validate X12 files: exit 0 when every transaction set is accepted (with errors noted
    too, AK5 E), 1 when any is rejected, 2 when a file cannot be read as X12 at all."""
    import json
    import sys

    from rich.console import Console

    from gateway import report

    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    lenient: frozenset[str] = frozenset()
    if partner is not None:
        # Only with --partner: loading the partner files imports the mapping language.
        from canonical.errors import ConfigError
        from gateway import partners as partners_mod

        try:
            registry = partners_mod.load_all(partners_dir, mappings_root=mappings_dir)
            lenient = registry.get(partner).accept_with_errors
        except ConfigError as exc:
            raise cli_common.fail("validate", str(exc), EXIT_UNREADABLE) from exc
    found, note = _files_or_fail("validate", paths)
    if ack_dir is not None:
        try:
            ack_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cli_common.fail("validate", f"--ack-dir {ack_dir}: {exc.strerror or exc}",
                                  EXIT_UNREADABLE) from exc
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    results = []
    show_progress = len(found.files) > 1 and err.is_terminal and format == "text"
    with _progress(err, len(found.files), show_progress) as advance:
        for f in found.files:
            result = _validate_one(f, max_bytes, lenient)
            results.append(result)
            if ack_dir is not None and result.readable:
                _write_acks(result, ack_dir, err)
            if format == "text":
                out.print(report.render_text(result), end="")
            advance()
    if format == "json":
        sys.stdout.write(json.dumps(report.to_json(results), indent=2) + "\n")
    else:
        out.print(report.summary_line(results))
    if note:
        err.print(f"edigw validate: {note}", markup=False)
    if any(not r.readable for r in results):
        raise typer.Exit(EXIT_UNREADABLE)
    if any(not r.accepted for r in results):
        raise typer.Exit(EXIT_REJECTED)


@contextlib.contextmanager
def _progress(err: "Console", total: int, show: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr while show; yields the call that counts one file done."""
    if not show:
        yield lambda: None
        return
    # Imported only for a folder on a terminal: rich.progress is slow to import.
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("validating", total=total)
        yield lambda: progress.advance(task)


def _write_acks(result: "FileResult", ack_dir: Path, err: "Console") -> None:
    from datetime import UTC, datetime

    from mappings.x12 import acks, control_numbers

    # Kept beside the acks so that numbers are never reused across runs into one folder.
    numbers = control_numbers.FileControlNumbers(ack_dir / ".control-numbers.json")
    now = datetime.now(UTC)
    try:
        for ic in result.interchanges:
            batch = acks.build_acknowledgments(ic, numbers, now)
            for ack in batch:
                target = ack_dir / acks.ack_filename(ack)
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_text(ack.text, encoding="ascii")
                tmp.replace(target)
                err.print(f"[dim]wrote {ack.kind} {target}[/dim]")
            for problem in batch.problems:
                err.print(f"[yellow]{result.path}: {problem}[/yellow]")
    except OSError as exc:
        raise cli_common.fail("validate", f"--ack-dir {ack_dir}: cannot write the "
                              f"acknowledgments of {result.path}: {exc.strerror or exc}",
                              EXIT_UNREADABLE) from exc


@app.command()
def inspect(paths: Annotated[list[Path], typer.Argument(
        help="X12 files, or folders to search for them.")]) -> None:
    """Show the envelope of X12 files: partners, control numbers, versions, sets and counts.
    Exit 2 when a file cannot be read as X12."""
    from rich.console import Console

    from canonical.errors import GatewayError
    from mappings.x12 import outline

    found, note = _files_or_fail("inspect", paths)
    console = Console(highlight=False)
    unreadable = 0
    for path in found.files:
        problem = cli_common.regular_file(path)
        try:
            if problem is not None:
                raise GatewayError(problem.removeprefix(f"{path}: "))
            interchanges = outline.scan(path)
        except (GatewayError, OSError) as exc:
            typer.echo(f"edigw inspect: {path}: {exc}", err=True)
            unreadable += 1
            continue
        _print_envelope(console, path, interchanges)
    if note:
        typer.echo(f"edigw inspect: {note}", err=True)
    if unreadable:
        raise typer.Exit(EXIT_UNREADABLE)


def _print_envelope(console: "Console", path: Path, interchanges: list) -> None:
    from rich.markup import escape
    from rich.table import Table

    for ic in interchanges:
        table = Table(title=escape(f"{path} - interchange {ic.control_number} (line {ic.line})"),
                      title_justify="left")
        for col in ("", "value"):
            table.add_column(col)
        table.add_row("sender", escape(f"{ic.sender_qualifier}:{ic.sender_id}"))
        table.add_row("receiver", escape(f"{ic.receiver_qualifier}:{ic.receiver_id}"))
        table.add_row("date / time", escape(f"{ic.date} {ic.time}"))
        table.add_row("version (ISA12)", escape(ic.version))
        table.add_row("usage (ISA15)", escape({"P": "production", "T": "test",
                                               "I": "information"}.get(ic.usage, ic.usage)))
        table.add_row("ack requested (ISA14)", "yes" if ic.ack_requested else "no")
        table.add_row("delimiters", escape(" ".join(f"{k}={v!r}"
                                                    for k, v in ic.delimiters.items())))
        console.print(table)
        groups = Table(show_header=True)
        for col in ("group", "GS01", "GS02 -> GS03", "GS08", "sets", "counts"):
            groups.add_column(col)
        for g in ic.groups:
            counts = ", ".join(f"{k} x{v}" for k, v in sorted(g.set_counts.items()))
            groups.add_row(escape(g.control_number), escape(g.functional_id),
                           escape(f"{g.sender} -> {g.receiver}"), escape(g.version),
                           str(sum(g.set_counts.values())), escape(counts))
        if ic.groups:
            console.print(groups)
        if ic.other:
            console.print("other segments: " + escape(", ".join(ic.other)))


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
