"""Turn validation results into what a person reads (text) or a program reads (JSON)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from mappings.x12.results import FileResult, Finding

JSON_SCHEMA_ID = "edigw.validation.v1"


def _where(f: Finding) -> str:
    parts = []
    if f.segment_position is not None:
        parts.append(f"segment {f.segment_position}")
    if f.segment_id:
        parts.append(f.segment_id)
    if f.element_position is not None:
        el = f"element {f.element_position:02d}"
        if f.component_position is not None:
            el += f"-{f.component_position}"
        if f.repetition_position is not None:
            el += f" (repeat {f.repetition_position})"
        parts.append(el)
    if f.loop:
        parts.append(f"in loop {f.loop}")
    if f.line is not None:
        parts.append(f"line {f.line}")
    return " ".join(parts)


def _finding(f: Finding, indent: str) -> str:
    code = f.to_dict()["code"]
    where = _where(f)
    where = f"{where}: " if where else ""
    if f.severity == "error":
        return f"{indent}[red]{escape('[' + code + ']')}[/red] {escape(where + f.message)}\n"
    # A warning does not reject anything: said in words, with its code when it has one.
    label = "warning" if code.endswith("-") else f"warning {code}"
    return f"{indent}[yellow]{escape('[' + label + ']')}[/yellow] {escape(where + f.message)}\n"


def _warnings(result: FileResult) -> int:
    found = [*result.findings]
    for ic in result.interchanges:
        found += ic.findings
        for g in ic.groups:
            found += g.findings
            for st in g.sets:
                found += st.findings
    return sum(1 for f in found if f.severity == "warning")


def render_text(result: FileResult) -> str:
    """The findings of one file, grouped by interchange, group and set, as Rich markup."""
    verdict = "[green]accepted[/green]" if result.accepted else "[red]REJECTED[/red]"
    if not result.readable:
        return (f"[bold]{escape(result.path)}[/bold]: [red]cannot be read as X12[/red]: "
                f"{escape(result.read_error or '')}\n")
    out = [f"[bold]{escape(result.path)}[/bold]: {verdict}\n"]
    out += [_finding(f, "  ") for f in result.findings]
    for ic in result.interchanges:
        ta1 = "" if ic.ta1_ack_code == "A" else f"  TA1 {ic.ta1_ack_code} {ic.ta1_note_code}"
        out.append(f"  interchange {escape(ic.control_number)}  {escape(ic.sender_qualifier)}:"
                   f"{escape(ic.sender_id)} -> {escape(ic.receiver_qualifier)}:"
                   f"{escape(ic.receiver_id)}  {escape(ic.version)}  line {ic.line}{ta1}\n")
        out += [_finding(f, "    ") for f in ic.findings]
        for g in ic.groups:
            kind = "  (acknowledgments)" if g.is_acknowledgment else ""
            out.append(f"    group {escape(g.control_number)} {escape(g.functional_id)} "
                       f"{escape(g.version)}: {len(g.sets)} set(s), {g.accepted_count} accepted, "
                       f"AK9 {g.ack_code}{kind}\n")
            out += [_finding(f, "      ") for f in g.findings]
            for s in g.sets:
                if s.findings or not s.accepted:
                    state = ("[yellow]accepted with errors noted (AK5 E)[/yellow]"
                             if s.ack_code == "E" else "accepted" if s.accepted
                             else "[red]rejected[/red]")
                    out.append(f"      {escape(s.set_id)} {escape(s.control_number)} {state}  "
                               f"line {s.line}\n")
                    out += [_finding(f, "        ") for f in s.findings]
    return "".join(out)


def summary_line(results: list[FileResult]) -> str:
    """The last line of `edigw validate`: files, sets, verdicts, warnings."""
    sets = [s for r in results for s in r.sets()]
    accepted = sum(1 for s in sets if s.accepted)
    unreadable = sum(1 for r in results if not r.readable)
    warnings = sum(_warnings(r) for r in results)
    colour = "green" if accepted == len(sets) and not unreadable else "red"
    noted = f", {warnings} warning(s)" if warnings else ""
    return (f"[{colour}]{len(results)} file(s), {len(sets)} transaction set(s): {accepted} accepted, "
            f"{len(sets) - accepted} rejected{noted}; {unreadable} file(s) not X12[/{colour}]")


def to_json(results: list[FileResult]) -> dict[str, Any]:
    """The documented JSON shape of `edigw validate --format json` (docs/validate-json.md)."""
    sets = [s for r in results for s in r.sets()]
    return {
        "schema": JSON_SCHEMA_ID,
        "summary": {
            "files": len(results),
            "unreadable_files": sum(1 for r in results if not r.readable),
            "transaction_sets": len(sets),
            "accepted": sum(1 for s in sets if s.accepted),
            "rejected": sum(1 for s in sets if not s.accepted),
        },
        "files": [r.to_dict() for r in results],
    }
