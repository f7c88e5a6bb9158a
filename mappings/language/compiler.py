"""Compile a (merged, schema-checked) mapping into nested Python closures, once.

Each field becomes a closure chosen for its shape; the fields of one object that share a
scope are then written out as one generated function (mappings.language.codegen), which
took the base 850 from 0.24x to over 0.5x hand-written Python (bench/mapping_speed.py).
Nothing is interpreted per document.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from canonical.errors import MappingError, MappingFileError
from mappings.language import codegen, selectors, transforms
from mappings.language.transforms import TransformError
from mappings.language.yaml_source import Marks, Path_, key_text, mark_of

Fn = Callable[[Any], Any]
_SOURCES = ("select", "column", "path", "const", "concat", "first")
_CONDITION_TESTS = ("equals", "not_equals", "in", "not_in", "exists", "matches")


class Compiler:
    """Holds what every field needs: the source adapter, tables, marks for messages."""

    def __init__(self, source: Any, tables: dict[str, dict[str, Any]], marks: Marks,
                 name: str) -> None:
        self.source = source
        self.tables = tables
        self.marks = marks
        self.name = name

    # -- messages ---------------------------------------------------------------------

    def at(self, path: Path_) -> str:
        file, line = mark_of(self.marks, path)
        return f"{file}:{line}: {key_text(path)}"

    def fail(self, path: Path_, message: str) -> MappingFileError:
        file, line = mark_of(self.marks, path)
        return MappingFileError(f"{self.at(path)}: {message}", file=file, line=line,
                                key=key_text(path))

    def runtime(self, path: Path_, message: str, where: str) -> MappingError:
        return MappingError(f"{self.at(path)}: {message} at {where}", mapping=self.name,
                            key=key_text(path), where=where)

    # -- fields -----------------------------------------------------------------------

    def group(self, fields: dict[str, Any] | None, path: Path_) -> Fn:
        """An object: each field's value under its key; None values and empty objects dropped."""
        return codegen.group_function(self, fields, path)

    def field(self, spec: Any, path: Path_) -> Fn:
        if isinstance(spec, str):
            spec = {self.source.source_key: spec}
        if not isinstance(spec, dict):
            raise self.fail(path, "expected a selector or a field object")
        if "each" in spec or "pairs" in spec:
            fn = self.repeat(spec, path)
            if spec.get("default") == []:  # a list the schema requires even when empty
                listed = fn
                fn = lambda scope: v if (v := listed(scope)) is not None else []  # noqa: E731
        elif "fields" in spec:
            fn = self.group(spec["fields"], (*path, "fields"))
            needed = spec.get("skip_unless")
            if needed:
                fn = _skip_unless(fn, tuple(needed))
        elif "list" in spec:
            fn = self.listing(spec, path)
        else:
            fn = self.scalar(spec, path)
        if "when" in spec:
            fn = self.guarded(fn, spec["when"], (*path, "when"))
        return fn

    def repeat(self, spec: dict[str, Any], path: Path_) -> Fn:
        """`each:` a list with one object (or value) per loop, segment, level, row or item;
        `pairs:` one per qualifier/value element pair of an X12 segment."""
        key = "each" if "each" in spec else "pairs"
        if key in spec and "each" in spec and "pairs" in spec:
            raise self.fail(path, "choose one of each: and pairs:")
        if key == "pairs" and not hasattr(self.source, "pairs"):
            raise self.fail((*path, key), f"pairs: is for x12 mappings; this one reads "
                                          f"{self.source.format}")
        try:
            if key == "each":
                each = self.source.each(spec["each"], bool(spec.get("descendants")))
            else:
                each = self.source.pairs(spec["pairs"])
        except (selectors.SelectorSyntaxError, ValueError) as exc:
            raise self.fail((*path, key), str(exc)) from None
        if "group_by" in spec:
            grouping = getattr(self.source, "grouped", None)
            if grouping is None:
                raise self.fail((*path, "group_by"), "group_by: groups CSV rows; this mapping "
                                                     f"reads {self.source.format}")
            each = grouping(each, spec["group_by"])
        if "fields" in spec:
            body = self.group(spec["fields"], (*path, "fields"))
            # A counter with a source of its own numbers only the items that lack a value.
            counters = tuple(k for k, v in (spec["fields"] or {}).items()
                             if isinstance(v, dict) and v.get("counter"))
            needed = tuple(spec.get("skip_unless") or ())
        elif "value" in spec:
            body, counters, needed = self.field(spec["value"], (*path, "value")), (), ()
        else:
            raise self.fail(path, "each: needs fields: (a list of objects) or value: "
                                  "(a list of values)")

        def repeat(scope: Any) -> list[Any] | None:
            out = []
            for i, item in enumerate(each(scope), 1):
                v = body(item)
                if counters:
                    v = v or {}
                    for k in counters:
                        v.setdefault(k, str(i))
                if isinstance(v, list):  # value: {list: [...]}: one list, not a list of lists
                    out.extend(v)
                elif v is not None and (not needed or all(k in v for k in needed)):
                    out.append(v)
            return out or None

        return repeat

    def listing(self, spec: dict[str, Any], path: Path_) -> Fn:
        """`list:` fixed alternatives (PO106/PO107, PO108/PO109...), empty ones left out."""
        fns = tuple(self.field(s, (*path, "list", i)) for i, s in enumerate(spec["list"])
                    if s is not None)
        needed = tuple(spec.get("skip_unless") or ())

        def listing(scope: Any) -> list[Any] | None:
            out = []
            for fn in fns:
                v = fn(scope)
                if v is not None and (not needed or all(k in v for k in needed)):
                    out.append(v)
            return out or None

        return listing

    def raw(self, spec: dict[str, Any], path: Path_) -> tuple[Fn, Callable[[Any], str]]:
        """The value before transforms, and how to say where it came from."""
        present = [k for k in _SOURCES if k in spec]
        if len(present) != 1:
            what = ", ".join(present) if present else "none"
            raise self.fail(path, f"a field needs exactly one of {', '.join(_SOURCES)} "
                                  f"(found: {what})")
        kind = present[0]
        where_scope: Callable[[Any], str] = self.source.where
        if kind == "const":
            const = spec["const"]
            return (lambda scope: const), where_scope
        if kind == "concat":
            parts = tuple(self.field(s, (*path, "concat", i)) for i, s in enumerate(spec["concat"]))
            sep = spec.get("separator", "")

            def concat(scope: Any) -> str | None:
                found = [transforms._text(v) for f in parts if (v := f(scope)) is not None]
                return sep.join(found) if found else None

            return concat, where_scope
        if kind == "first":
            alts = tuple(self.field(s, (*path, "first", i)) for i, s in enumerate(spec["first"]))

            def first(scope: Any) -> Any:
                for f in alts:
                    v = f(scope)
                    if v is not None:
                        return v
                return None

            return first, where_scope
        if kind != self.source.source_key:
            raise self.fail((*path, kind), f"{kind}: is for {_FORMAT_OF[kind]} mappings; this "
                                           f"one reads {self.source.format} "
                                           f"(use {self.source.source_key}:)")
        try:
            return self.source.getter(spec[kind])
        except (selectors.SelectorSyntaxError, ValueError) as exc:
            raise self.fail((*path, kind), str(exc)) from None

    def steps(self, spec: dict[str, Any], path: Path_) -> list[transforms.Transform]:
        """The transforms a field asks for, in their fixed order."""
        out: list[transforms.Transform] = []
        if "extract" in spec:
            try:
                out.append(transforms.extract(spec["extract"]))
            except TransformError as exc:
                raise self.fail((*path, "extract"), str(exc)) from None
        if spec.get("check_digit"):
            out.append(transforms.check_digit(spec["check_digit"]))
        if spec.get("upper"):
            out.append(transforms.upper)
        if "table" in spec:
            tbl = spec["table"]
            if isinstance(tbl, str):
                if tbl not in self.tables:
                    known = ", ".join(sorted(self.tables)) or "none"
                    raise self.fail((*path, "table"), f"no table {tbl!r} (tables: {known})")
                codes, name = self.tables[tbl], tbl
            else:
                codes, name = tbl, "(inline)"
            codes = {k: v for k, v in (codes or {}).items() if v is not None}
            out.append(transforms.table(codes, name, strict=bool(spec.get("strict")),
                                        unknown=spec.get("unknown")))
        conversions = [k for k in ("date", "time", "decimal", "number", "integer")
                       if k in spec and spec[k] is not False]
        if len(conversions) > 1:
            raise self.fail(path, f"choose one of {', '.join(conversions)}")
        if conversions:
            k = conversions[0]
            out.append({"date": lambda: transforms.date(spec["date"]),
                        "time": lambda: transforms.time(spec["time"]),
                        "decimal": lambda: transforms.implied_decimal(spec["decimal"]),
                        "number": lambda: transforms.number,
                        "integer": lambda: transforms.integer}[k]())
        return out

    def scalar(self, spec: dict[str, Any], path: Path_) -> Fn:
        get, where = self.raw(spec, path)
        if spec.get("trim"):
            inner = get

            def get(scope: Any) -> Any:
                v = inner(scope)
                if isinstance(v, str):
                    v = v.strip()
                return v if v != "" else None

        conv = transforms.chain(self.steps(spec, path))
        default = spec.get("default")
        if spec.get("required"):
            compiler, inner_get = self, get

            def get(scope: Any) -> Any:
                v = inner_get(scope)
                if v is None and default is None:
                    raise compiler.runtime(path, "no value", where(scope))
                return v

        if conv is None:
            if default is None:
                return get
            return lambda scope: v if (v := get(scope)) is not None else default
        runtime = self.runtime

        def scalar(scope: Any) -> Any:
            v = get(scope)
            if v is None:
                return default
            try:
                if isinstance(v, list):  # a JSON path through `*`
                    return [y for x in v if (y := conv(x)) is not None] or None
                return conv(v)
            except TransformError as exc:
                raise runtime(path, str(exc), where(scope)) from None

        return scalar

    def guarded(self, fn: Fn, when: Any, path: Path_) -> Fn:
        """`when:` conditions, all of which must hold; otherwise the field is left out."""
        conds = when if isinstance(when, list) else [when]
        tests = tuple(self.condition(c, (*path, i) if isinstance(when, list) else path)
                      for i, c in enumerate(conds))

        def guarded(scope: Any) -> Any:
            for t in tests:
                if not t(scope):
                    return None
            return fn(scope)

        return guarded

    def condition(self, cond: dict[str, Any], path: Path_) -> Callable[[Any], bool]:
        srcs = [k for k in ("select", "column", "path") if k in cond]
        tests = [k for k in _CONDITION_TESTS if k in cond]
        if len(srcs) != 1 or len(tests) != 1:
            raise self.fail(path, "a condition needs one of select/column/path and one of "
                                  f"{', '.join(_CONDITION_TESTS)}")
        if srcs[0] != self.source.source_key:
            raise self.fail(path, f"{srcs[0]}: does not apply to {self.source.format} mappings")
        try:
            get = self.source.condition(cond[srcs[0]])
        except (selectors.SelectorSyntaxError, ValueError) as exc:
            raise self.fail(path, str(exc)) from None
        test = tests[0]
        arg = cond[test]
        if test == "exists":
            want = bool(arg)
            return lambda scope: (get(scope) is not None) == want
        if test == "matches":
            try:
                rx = re.compile(transforms._text(arg))
            except re.error as exc:
                raise self.fail((*path, "matches"), f"not a regular expression: {exc}") from None
            return lambda scope: ((v := get(scope)) is not None
                                  and rx.fullmatch(transforms._text(v)) is not None)
        if test in ("equals", "not_equals"):
            target, neg = transforms._text(arg), test == "not_equals"
            return lambda scope: ((v := get(scope)) is not None
                                  and transforms._text(v) == target) != neg
        values, neg = frozenset(transforms._text(a) for a in arg), test == "not_in"
        return lambda scope: ((v := get(scope)) is not None
                              and transforms._text(v) in values) != neg


_FORMAT_OF = {"select": "x12", "column": "csv", "path": "json"}


def _skip_unless(fn: Fn, needed: tuple[str, ...]) -> Fn:
    def skip(scope: Any) -> Any:
        v = fn(scope)
        return v if v is not None and all(k in v for k in needed) else None
    return skip
