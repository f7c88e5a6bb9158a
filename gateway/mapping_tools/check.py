"""`edigw mapping check`: what a mapping file gets wrong before any document reaches it.

On top of the language's own check (schema, extends target, compile), for X12 mappings:
selectors naming segments or element positions the set's specification does not have,
qualifiers testing codes the element can never hold; for every mapping: code tables
whose canonical values the schema's enum (or our units list) does not know, and
examples whose files are missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from canonical.errors import SpecificationError
from gateway.mapping_tools import code_lists, examples
from mappings.language import check as language_check
from mappings.language import extends, selectors
from mappings.language.yaml_source import Marks, Path_, key_text, mark_of
from mappings.x12 import specs

_TRANSFORM_KEYS = ("table", "unknown", "default")


def check(path: Path) -> list[str]:
    """Every problem, as `file:line: key: message`; empty when the mapping is fine."""
    found = language_check(path)
    if found:
        return found
    data, marks, _ = extends.resolve(path)
    out: list[str] = []
    if data.get("format") == "x12":
        out += _x12_problems(data, marks)
    out += _table_problems(data, marks)
    for ex in examples.declared(path):
        for what, f in (("input", ex.input), ("expected", ex.expected), ("details", ex.details)):
            if f is not None and not f.is_file():
                out.append(f"{path}:{ex.line}: examples: {what} file {f} not found")
    return out


def _at(marks: Marks, path: Path_, message: str) -> str:
    file, line = mark_of(marks, path)
    return f"{file}:{line}: {key_text(path)}: {message}"


# -- walking the fields --------------------------------------------------------------


def _walk(spec: Any, path: Path_, out_path: tuple[str, ...]
          ) -> Iterator[tuple[dict[str, Any] | str, Path_, tuple[str, ...]]]:
    """Every field object (or shorthand string) with its mapping path and output path."""
    if spec is None:
        return
    yield spec, path, out_path
    if not isinstance(spec, dict):
        return
    inner = (*out_path, "[]") if ("each" in spec or "list" in spec) else out_path
    for key, sub in (spec.get("fields") or {}).items():
        yield from _walk(sub, (*path, "fields", key), (*inner, key))
    if "value" in spec:
        yield from _walk(spec["value"], (*path, "value"), inner)
    for kind in ("list", "first", "concat"):
        for i, sub in enumerate(spec.get(kind) or []):
            yield from _walk(sub, (*path, kind, i), inner if kind == "list" else out_path)


def _fields(data: dict[str, Any]) -> Iterator[tuple[dict[str, Any] | str, Path_, tuple[str, ...]]]:
    for key, sub in (data.get("fields") or {}).items():
        yield from _walk(sub, ("fields", key), (key,))


# -- X12 selectors against the specification ------------------------------------------


def _segment_rules(spec: specs.TransactionSpec) -> dict[str, specs.SegmentRule]:
    rules: dict[str, specs.SegmentRule] = {}
    for r in spec.rules:
        if r is not None and (r.id not in rules or len(r.elements) > len(rules[r.id].elements)):
            rules[r.id] = r
    return rules


def _x12_problems(data: dict[str, Any], marks: Marks) -> list[str]:
    document, version = data.get("document"), data.get("version") or "004010"
    if not document:
        return [_at(marks, ("format",), "an X12 mapping needs document: (850, 855, 856, 810) "
                                        "so its selectors can be checked")]
    try:
        spec, _ = specs.select_map(str(document), str(version))
    except SpecificationError as exc:
        return [_at(marks, ("document",), str(exc))]
    if spec is None:
        return [_at(marks, ("document",), f"no X12 specification for {document} {version}")]
    rules = _segment_rules(spec)
    out = []
    for field, path, _ in _fields(data):
        if isinstance(field, str):
            field, path = {"select": field}, path
            sel_paths = [(field["select"], path)]
        else:
            sel_paths = [(field[k], (*path, k)) for k in ("select", "each") if k in field]
            conds = field.get("when")
            for i, c in enumerate(conds if isinstance(conds, list) else [conds] if conds else []):
                if "select" in c:
                    at = (*path, "when", i) if isinstance(conds, list) else (*path, "when")
                    sel_paths.append((c["select"], at))
        for text, at in sel_paths:
            for message in _selector_problems(str(text), rules, spec):
                out.append(_at(marks, at, message))
    return out


def _selector_problems(text: str, rules: dict[str, specs.SegmentRule],
                       spec: specs.TransactionSpec) -> list[str]:
    try:
        parts = selectors.parse(text)
    except selectors.SelectorSyntaxError as exc:
        return [str(exc)]
    out = []
    where = f"the {spec.set_id} {spec.version} specification"
    for part in parts:
        rule = rules.get(part.segment)
        if rule is None:
            out.append(f"{text!r}: segment {part.segment} is not in {where}")
            continue
        for el, comp in [(c.element, c.component) for c in part.conds] + \
                        ([(part.element, part.component)] if part.element else []):
            msg = _element_problem(rule, el, comp)
            if msg:
                out.append(f"{text!r}: {msg}")
        for c in part.conds:
            codes = _codes(rule, c.element, c.component)
            unknown = sorted(v for v in c.values if codes is not None and v not in codes)
            if unknown and not c.negate:
                out.append(f"{text!r}: {part.segment}{c.element:02d} never holds "
                           f"{', '.join(unknown)} in {where}")
    return out


def _element_problem(rule: specs.SegmentRule, element: int, component: int) -> str | None:
    count = len(rule.elements)
    if element > count:
        return f"{rule.id}{element:02d}: {rule.id} has {count} elements"
    e = rule.elements[element - 1]
    if component and not e.components:
        return f"{rule.id}{element:02d}-{component}: {e.ref} is a simple element, not a composite"
    if component and e.components and component > len(e.components):
        return f"{rule.id}{element:02d}-{component}: the composite has {len(e.components)} parts"
    return None


def _codes(rule: specs.SegmentRule, element: int, component: int) -> frozenset[str] | None:
    if element > len(rule.elements):
        return None
    e = rule.elements[element - 1]
    if component and e.components and component <= len(e.components):
        e = e.components[component - 1]
    return e.codes


# -- code tables against reference lists ----------------------------------------------


def _table_problems(data: dict[str, Any], marks: Marks) -> list[str]:
    event = data.get("event")
    tables = data.get("tables") or {}
    out = []
    for field, path, out_path in _fields(data):
        if not isinstance(field, dict) or "table" not in field:
            continue
        known: list[str] | frozenset[str] | None = code_lists.enum_at(str(event), out_path) \
            if event else None
        what = f"the {event} schema's {'.'.join(out_path).replace('.[]', '[]')}"
        if known is None and out_path[-1:] == ("unit",):
            known, what = code_lists.units(), "our units of measure (gateway/mapping_tools/units.txt)"
        if known is None:
            continue
        table = field["table"]
        if isinstance(table, str):
            codes, tpath = tables.get(table) or {}, ("tables", table)
        else:
            codes, tpath = table, (*path, "table")
        for code, value in codes.items():
            if value is not None and str(value) not in known:
                out.append(_at(marks, (*tpath, code), f"{value!r} is not one of {what} "
                                                      f"({', '.join(sorted(known))})"))
        for key in ("unknown", "default"):
            if key in field and str(field[key]) not in known:
                out.append(_at(marks, (*path, key), f"{field[key]!r} is not one of {what}"))
    return sorted(set(out), key=out.index)
