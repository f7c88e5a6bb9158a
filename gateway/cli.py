"""The `edigw` command line: validate and inspect X12 files (more commands join as the gateway grows)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from gateway import cli_dlq, cli_mapping, cli_run, report
from gateway import partners as partners_mod
from mappings.x12.results import FileResult

app = typer.Typer(
    name="edigw",
    help="edi-gateway: validate, translate and deliver trading partners' EDI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(cli_mapping.mapping_app, name="mapping")
app.add_typer(cli_dlq.operator_app)  # dlq, api-key, api
app.command()(cli_mapping.translate)
cli_run.register(app)  # run, db upgrade, partners list, erp-sim

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_UNREADABLE = 0, 1, 2
# Files a folder argument expands to; anything else in a folder is left alone.
X12_SUFFIXES = {".edi", ".x12", ".txt", ".dat", ".850", ".855", ".856", ".810", ".997", ".999"}


def _expand(paths: Iterable[Path]) -> Iterator[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file()
                              and f.suffix.lower() in X12_SUFFIXES and not f.name.startswith("."))
        else:
            yield p


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="X12 files, or folders to search for them.")],
    format: Annotated[str, typer.Option("--format", "-f", help="text or json")] = "text",
    ack_dir: Annotated[Path | None, typer.Option(
        help="Write the 997/999/TA1 answering each file into this folder.")] = None,
    max_bytes: Annotated[int | None, typer.Option(
        help="Refuse files larger than this many bytes.")] = None,
    partner: Annotated[str | None, typer.Option(
        help="Apply this partner's validation settings (validation.accept_with_errors in "
             "its conf/partners file): sets with only those errors are accepted, AK5 E.")
    ] = None,
    partners_dir: cli_mapping.PartnersDir = cli_mapping.DEFAULT_PARTNERS,
    mappings_dir: cli_mapping.MappingsDir = cli_mapping.DEFAULT_MAPPINGS,
) -> None:
    """Validate X12 files: exit 0 when every transaction set is accepted (with errors noted
    too, AK5 E), 1 when any is rejected, 2 when a file cannot be read as X12 at all."""
    from canonical.errors import ConfigError
    from mappings.x12 import validator

    if format not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    lenient: frozenset[str] = frozenset()
    if partner is not None:
        try:
            registry = partners_mod.load_all(partners_dir, mappings_root=mappings_dir)
            lenient = registry.get(partner).accept_with_errors
        except ConfigError as exc:
            typer.echo(f"edigw validate: {exc}", err=True)
            raise typer.Exit(EXIT_UNREADABLE) from exc
    files = list(_expand(paths))
    if not files:
        typer.echo("edigw validate: no files found in " + ", ".join(map(str, paths)), err=True)
        raise typer.Exit(EXIT_UNREADABLE)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False)
    results = []
    show_progress = len(files) > 1 and err.is_terminal and format == "text"
    with Progress(console=err, transient=True, disable=not show_progress) as progress:
        task = progress.add_task("validating", total=len(files))
        for f in files:
            if not f.is_file():
                result = FileResult(path=str(f), readable=False,
                                              read_error="no such file")
            else:
                result = validator.validate(f, path=str(f), max_bytes=max_bytes,
                                            accept_with_errors=lenient)
            results.append(result)
            if ack_dir is not None and result.readable:
                _write_acks(result, ack_dir, err)
            if format == "text":
                out.print(report.render_text(result), end="")
            progress.advance(task)
    if format == "json":
        sys.stdout.write(json.dumps(report.to_json(results), indent=2) + "\n")
    else:
        out.print(report.summary_line(results))
    if any(not r.readable for r in results):
        raise typer.Exit(EXIT_UNREADABLE)
    if any(not r.accepted for r in results):
        raise typer.Exit(EXIT_REJECTED)


def _write_acks(result: FileResult, ack_dir: Path, err: Console) -> None:
    from mappings.x12 import acks, control_numbers

    ack_dir.mkdir(parents=True, exist_ok=True)
    # Kept beside the acks so that numbers are never reused across runs into one folder.
    numbers = control_numbers.FileControlNumbers(ack_dir / ".control-numbers.json")
    now = datetime.now(UTC)
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


@app.command()
def inspect(path: Annotated[Path, typer.Argument(help="An X12 file.")]) -> None:
    """Show the envelope of an X12 file: partners, control numbers, versions, sets and counts."""
    from canonical.errors import GatewayError
    from mappings.x12 import envelope

    try:
        interchanges = envelope.scan(path)
    except (GatewayError, OSError) as exc:
        typer.echo(f"edigw inspect: {path}: {exc}", err=True)
        raise typer.Exit(EXIT_UNREADABLE) from exc
    console = Console(highlight=False)
    for ic in interchanges:
        table = Table(title=f"{path} - interchange {ic.control_number} (line {ic.line})",
                      title_justify="left")
        for col in ("", "value"):
            table.add_column(col)
        table.add_row("sender", f"{ic.sender_qualifier}:{ic.sender_id}")
        table.add_row("receiver", f"{ic.receiver_qualifier}:{ic.receiver_id}")
        table.add_row("date / time", f"{ic.date} {ic.time}")
        table.add_row("version (ISA12)", ic.version)
        table.add_row("usage (ISA15)", {"P": "production", "T": "test", "I": "information"}.get(
            ic.usage, ic.usage))
        table.add_row("ack requested (ISA14)", "yes" if ic.ack_requested else "no")
        table.add_row("delimiters", " ".join(f"{k}={v!r}" for k, v in ic.delimiters.items()))
        console.print(table)
        groups = Table(show_header=True)
        for col in ("group", "GS01", "GS02 -> GS03", "GS08", "sets", "counts"):
            groups.add_column(col)
        for g in ic.groups:
            counts = ", ".join(f"{k} x{v}" for k, v in sorted(g.set_counts.items()))
            groups.add_row(g.control_number, g.functional_id, f"{g.sender} -> {g.receiver}",
                           g.version, str(sum(g.set_counts.values())), counts)
        if ic.groups:
            console.print(groups)
        if ic.other:
            console.print("other segments: " + ", ".join(ic.other))


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
