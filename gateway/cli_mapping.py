"""`edigw translate` and `edigw mapping check|test|new|coverage`: from a partner's file to events."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gateway import cli_common

if TYPE_CHECKING:
    from canonical import envelope
    from gateway import partners as partners_mod

# Imports of the mapping machinery are inside the commands (see gateway/cli_common.py).
EXIT_OK, EXIT_FAILED, EXIT_UNREADABLE = 0, 1, 2

mapping_app = cli_common.group("Write, check and test partner mappings (docs/onboarding.md).")

MappingsDir = Annotated[Path, typer.Option(
    "--mappings-dir", envvar="EDIGW_MAPPINGS_DIR",
    help="The mappings folder (base/ and partners/ inside).")]
PartnersDir = Annotated[Path, typer.Option(
    "--partners-dir", envvar="EDIGW_PARTNERS_DIR", help="The partner configuration folder.")]
DEFAULT_MAPPINGS = Path("mappings")
DEFAULT_PARTNERS = Path("conf/partners")


def _fail(command: str, message: str, code: int) -> typer.Exit:
    return cli_common.fail(command, message, code)


def _need_mappings(mappings_dir: Path, command: str) -> None:
    problem = cli_common.missing_folder(mappings_dir, "mappings folder", "--mappings-dir")
    if problem:
        raise _fail(command, problem, EXIT_UNREADABLE)


def _registry(partners_dir: Path, mappings_dir: Path, command: str) -> "partners_mod.Partners":
    from canonical.errors import ConfigError
    from gateway import partners as partners_mod

    _need_mappings(mappings_dir, command)
    problem = cli_common.missing_folder(partners_dir, "partner configuration folder",
                                        "--partners-dir")
    if problem:
        raise _fail(command, problem, EXIT_UNREADABLE)
    try:
        return partners_mod.load_all(partners_dir, mappings_root=mappings_dir)
    except ConfigError as exc:
        raise _fail(command, str(exc), EXIT_UNREADABLE) from exc


def translate(
    path: Annotated[Path, typer.Argument(help="An X12 file, a CSV upload or a JSON document.")],
    partner: Annotated[str | None, typer.Option(
        help="The partner's id; required for CSV and JSON, else found from the ISA sender.")] = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="json (an array) or jsonl (one event per line)")] = "json",
    document: Annotated[str | None, typer.Option(
        help="The partner's mapping key to use when it has several for this format.")] = None,
    mappings_dir: MappingsDir = DEFAULT_MAPPINGS,
    partners_dir: PartnersDir = DEFAULT_PARTNERS,
) -> None:
    """Print the canonical CloudEvents of a file, one per transaction set or document.

    Exit 1 when validation, the mapping or the schema rejects any of them (the others are
    still printed), 2 when the file cannot be read."""

    from canonical.errors import ConfigError
    from gateway import translation
    from gateway.mapping_tools import inputs

    if format not in ("json", "jsonl"):
        raise typer.BadParameter("use json or jsonl", param_hint="--format")
    problem = cli_common.regular_file(path)
    if problem:
        raise _fail("translate", problem, EXIT_UNREADABLE)
    registry = _registry(partners_dir, mappings_dir, "translate")
    # Each event is written as its set is translated: a large file never has all its
    # events in memory at once.
    printer = _EventPrinter(format)
    try:
        result = translation.translate_path(path, partner_id=partner, registry=registry,
                                            root=mappings_dir, document=document,
                                            on_event=printer.write)
    except (inputs.UnreadableInput, ConfigError) as exc:
        printer.close(always=False)  # the events printed before it stay valid JSON
        raise _fail("translate", str(exc), EXIT_UNREADABLE) from exc
    printer.close()
    for note in result.skipped:
        typer.echo(f"edigw translate: skipped {note}", err=True)
    for f in result.failures:
        typer.echo(f"edigw translate: {f.where}: {f.stage} failed: {f}", err=True)
    if result.failures:
        raise typer.Exit(EXIT_FAILED)


class _EventPrinter:
    """Events to stdout one at a time: JSON lines, or the same text as one indented JSON array."""

    def __init__(self, format: str) -> None:
        self.format, self.count = format, 0

    def write(self, event: "envelope.Event") -> None:
        import json
        import sys

        from canonical import envelope

        if self.format == "jsonl":
            sys.stdout.write(envelope.to_json(event).decode("utf-8") + "\n")
        else:
            # json.dumps of a one-item list, brackets cut off: the item as the array shows it.
            item = json.dumps([event.to_dict()], indent=2, ensure_ascii=False)[2:-2]
            sys.stdout.write(("[\n" if not self.count else ",\n") + item)
        self.count += 1

    def close(self, *, always: bool = True) -> None:
        import sys

        if self.format == "json" and (always or self.count):
            sys.stdout.write("\n]\n" if self.count else "[]\n")


@mapping_app.command("check")
def check(files: Annotated[list[Path], typer.Argument(help="Mapping files.")]) -> None:
    """Static checks: schema, extends, selectors against the X12 specification, code
    tables against reference lists, example files. Exit 1 when any file has a problem."""
    from gateway.mapping_tools import check as check_mod

    bad = 0
    for f in files:
        problem = cli_common.regular_file(f)
        if problem:
            raise _fail("mapping check", problem, EXIT_UNREADABLE)
        problems = check_mod.check(f)
        for p in problems:
            typer.echo(p)
        if problems:
            bad += 1
        else:
            typer.echo(f"{f}: ok")
    if bad:
        typer.echo(f"{bad} of {len(files)} mapping file(s) have problems", err=True)
        raise typer.Exit(EXIT_FAILED)


@mapping_app.command("test")
def test(
    partners: Annotated[list[str] | None, typer.Argument(
        help="Partner folders under mappings/partners (or base); all when none is given.")] = None,
    update: Annotated[bool, typer.Option(
        help="Write each example's actual output as its expected file (review the diff!).")] = False,
    mappings_dir: MappingsDir = DEFAULT_MAPPINGS,
) -> None:
    """Run the golden examples of the base and partner mappings; show a diff on mismatch."""
    from canonical.errors import ConfigError, GatewayError
    from gateway import partners as partners_mod
    from gateway.mapping_tools import examples as examples_mod

    _need_mappings(mappings_dir, "mapping test")
    for p in partners or []:
        try:
            if p != "base":
                partners_mod.check_id(p)
        except ConfigError as exc:
            raise _fail("mapping test", str(exc), EXIT_UNREADABLE) from exc
        folder = mappings_dir / "base" if p == "base" else mappings_dir / "partners" / p
        if not folder.is_dir():
            raise _fail("mapping test", f"no mappings for {p!r} (no folder {folder})",
                        EXIT_UNREADABLE)
    files = examples_mod.mapping_files(mappings_dir, partners)
    passed = failed = 0
    for mapping in files:
        try:
            declared = examples_mod.declared(mapping)
        except GatewayError as exc:
            typer.echo(f"FAIL {mapping}: {exc}")
            failed += 1
            continue
        for ex in declared:
            outcome = examples_mod.run(ex)
            label = f"{mapping} [{ex.name}]"
            if outcome.ok:
                passed += 1
                typer.echo(f"ok   {label}")
                continue
            if update and examples_mod.write_expected(outcome):
                passed += 1
                typer.echo(f"wrote {ex.expected} for {label}")
                continue
            failed += 1
            typer.echo(f"FAIL {label}")
            if outcome.error:
                typer.echo(f"  {outcome.error}")
            if outcome.diff:
                typer.echo(outcome.diff.rstrip("\n"))
    typer.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@mapping_app.command("new")
def new(
    partner: Annotated[str, typer.Option(help="The new partner's id, e.g. zenith.")],
    sample: Annotated[Path, typer.Option("--from", help="A sample X12 file from the partner.")],
    output: Annotated[Path | None, typer.Option(
        help="Where to write the mapping (default mappings/partners/ID/SET.yaml).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
    mappings_dir: MappingsDir = DEFAULT_MAPPINGS,
) -> None:
    """Write a starter mapping extending the base for the sample's set and version, with the
    sample as its golden example and, as comments, what the base leaves unread."""
    from canonical.errors import ConfigError
    from gateway import partners as partners_mod
    from gateway.mapping_tools import inputs, starter

    problem = cli_common.regular_file(sample)
    if problem:
        raise _fail("mapping new", problem, EXIT_UNREADABLE)
    _need_mappings(mappings_dir, "mapping new")
    try:
        partners_mod.check_id(partner)
        made = starter.write(partner, sample, mappings_dir, output, force=force)
    except (ConfigError, inputs.UnreadableInput) as exc:
        raise _fail("mapping new", str(exc), EXIT_UNREADABLE) from exc
    except OSError as exc:
        raise _fail("mapping new", f"cannot write the starter mapping: {exc}",
                    EXIT_UNREADABLE) from exc
    typer.echo(f"wrote {made.mapping}")
    typer.echo(f"wrote {made.example_input}")
    if made.expected is not None:
        typer.echo(f"wrote {made.expected} (the base mapping's output: edit the mapping, then "
                   "`edigw mapping test` shows what your edits change)")
    else:
        typer.echo(f"no expected output yet: {made.note}")
    typer.echo(f"{made.unused} value(s) in the sample are not read by the base; they are listed "
               f"in {made.mapping}")


@mapping_app.command("coverage")
def coverage(
    path: Annotated[Path, typer.Argument(help="An input file from the partner.")],
    partner: Annotated[str, typer.Option(help="The partner's id.")],
    mapping: Annotated[Path | None, typer.Option(
        help="The mapping to measure (default: the partner's for this input).")] = None,
    fail_on_drop: Annotated[bool, typer.Option(
        help="Exit 1 when anything is dropped.")] = False,
    mappings_dir: MappingsDir = DEFAULT_MAPPINGS,
    partners_dir: PartnersDir = DEFAULT_PARTNERS,
) -> None:
    """List the values in the input that the mapping drops, so data loss is never silent."""
    from canonical.errors import GatewayError
    from gateway.mapping_tools import coverage as coverage_mod
    from gateway.mapping_tools import inputs

    problem = cli_common.regular_file(path)
    if problem:
        raise _fail("mapping coverage", problem, EXIT_UNREADABLE)
    if mapping is not None and (problem := cli_common.regular_file(mapping)):
        raise _fail("mapping coverage", problem, EXIT_UNREADABLE)
    try:
        chosen = mapping or _mapping_of(path, partner, partners_dir, mappings_dir)
        result = coverage_mod.coverage(chosen, path)
    except inputs.UnreadableInput as exc:
        raise _fail("mapping coverage", str(exc), EXIT_UNREADABLE) from exc
    except GatewayError as exc:
        raise _fail("mapping coverage", str(exc), EXIT_FAILED) from exc
    typer.echo(f"{path} with {chosen}: {result.documents} document(s), {result.present} "
               f"value(s), {result.used} read, {len(result.dropped)} dropped")
    for d in result.dropped:
        typer.echo(f"  dropped {d.ref} = {d.value!r} at {d.where}")
    if fail_on_drop and result.dropped:
        raise typer.Exit(EXIT_FAILED)


def _mapping_of(path: Path, partner_id: str, partners_dir: Path, mappings_dir: Path) -> Path:
    from canonical.errors import ConfigError
    from gateway import translation
    from gateway.mapping_tools import inputs

    registry = _registry(partners_dir, mappings_dir, "mapping coverage")
    who = registry.get(partner_id)
    fmt = inputs.sniff(path)
    if fmt != "x12":
        return translation._pick(who, fmt, None)
    sets = inputs.x12_sets(path)
    if not sets:
        raise ConfigError(f"{path}: no transaction set (ST..SE) found")
    s = sets[0]
    from mappings.x12 import specs

    version = specs.base_version(s.version)
    return who.mapping_for(s.set_id, version) or translation.base_mapping(
        mappings_dir, s.set_id, s.version)
