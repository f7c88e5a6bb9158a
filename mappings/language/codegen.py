"""Generate one Python function per object group of a mapping, compiled with compile().

Closures alone cost a call per field and per nested object (0.24x hand-written code on a
50-line 850). Here the fields of a group that share its scope are written out as
straight-line code: the segments a group reads are fetched once at the top, a plain
selector becomes an index into the segment's fields, nested objects and `list:` entries
are built inline. Anything else (each:, when:, first:, concat:, CSV columns, JSON paths,
qualified selectors) stays a closure from the Compiler and is called from the generated
code, so there is one implementation of every feature and codegen only removes overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mappings.language import selectors, transforms
from mappings.language.transforms import TransformError
from mappings.language.yaml_source import Path_, key_text

if TYPE_CHECKING:
    from mappings.language.compiler import Compiler

_EMPTY: list[str] = []
_INLINE_BLOCKERS = ("each", "pairs", "when", "required", "const", "concat", "first", "column",
                    "path")
_SOURCES = ("select", "column", "path", "const", "concat", "first")


class _Writer:
    """Accumulates source lines and the names they refer to."""

    def __init__(self, compiler: Compiler) -> None:
        self.compiler = compiler
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"TransformError": TransformError, "_EMPTY": _EMPTY}
        self.segments: dict[str, str] = {}  # segment id -> variable holding its fields
        self.count = 0

    def name(self, prefix: str, value: Any = None) -> str:
        self.count += 1
        n = f"{prefix}{self.count}"
        if value is not None:
            self.ns[n] = value
        return n

    def emit(self, indent: int, text: str) -> None:
        self.lines.append("    " * indent + text)

    def seg_var(self, sid: str) -> str:
        if sid not in self.segments:
            self.segments[sid] = f"f_{len(self.segments)}"
        return self.segments[sid]

    # -- fields -----------------------------------------------------------------------

    def fields(self, fields: dict[str, Any] | None, path: Path_, target: str, ind: int) -> None:
        for key, spec in (fields or {}).items():
            if spec is None or (isinstance(spec, dict) and spec.get("counter")
                                and not any(k in spec for k in _SOURCES)):
                continue  # a bare counter: repeat() numbers the item
            self.field(spec, (*path, key), f"{target}[{key!r}]", target, ind)

    def field(self, spec: Any, path: Path_, slot: str, target: str, ind: int) -> None:
        """Emit code that sets `slot` (an item of `target`) when the field has a value."""
        if isinstance(spec, str):
            spec = {self.compiler.source.source_key: spec}
        inline = isinstance(spec, dict) and not any(k in spec for k in _INLINE_BLOCKERS)
        if inline and "fields" in spec:
            sub = self.name("d")
            self.emit(ind, f"{sub} = {{}}")
            self.fields(spec["fields"], (*path, "fields"), sub, ind)
            self.emit(ind, f"if {sub}{self.needs(spec, sub)}:")
            self.emit(ind + 1, f"{slot} = {sub}")
            return
        if inline and "list" in spec:
            lst = self.name("l")
            self.emit(ind, f"{lst} = []")
            for i, item in enumerate(spec["list"]):
                if item is None:
                    continue
                tmp = self.name("t")
                self.emit(ind, f"{tmp} = {{}}")
                self.field(item, (*path, "list", i), f"{tmp}[0]", tmp, ind)
                self.emit(ind, f"if {tmp}{self.needs(spec, f'{tmp}[0]')}:")
                self.emit(ind + 1, f"{lst}.append({tmp}[0])")
            self.emit(ind, f"if {lst}:")
            self.emit(ind + 1, f"{slot} = {lst}")
            return
        simple = self.simple_selector(spec) if inline else None
        if simple is None:
            fn = self.name("F", self.compiler.field(spec, path))
            v = self.name("v")
            self.emit(ind, f"{v} = {fn}(node)")
            self.emit(ind, f"if {v} is not None:")
            self.emit(ind + 1, f"{slot} = {v}")
            return
        self.scalar(spec, path, simple, slot, ind)

    def needs(self, spec: dict[str, Any], value: str) -> str:
        """The `skip_unless` test appended to an `if`."""
        need = spec.get("skip_unless") or ()
        return "".join(f" and {k!r} in {value}" for k in need)

    def simple_selector(self, spec: dict[str, Any]) -> selectors.Part | None:
        """The selector's only part when it is a plain element (BEG03), else None."""
        if self.compiler.source.format != "x12" or "select" not in spec or "fields" in spec \
                or "list" in spec or self.compiler.source.reads is not None:
            return None  # tracking mode reads through the recording closures
        if selectors.from_root(spec["select"]):
            return None  # reads from the set's top, not from this scope
        try:
            parts = selectors.parse(spec["select"])
        except selectors.SelectorSyntaxError:
            return None  # the closure path reports it with file and line
        p = parts[0]
        if len(parts) != 1 or p.conds or p.component or not p.element:
            return None
        return p

    def scalar(self, spec: dict[str, Any], path: Path_, part: selectors.Part, slot: str,
               ind: int) -> None:
        f = self.seg_var(part.segment)
        el = part.element
        v = self.name("v")
        self.emit(ind, f"{v} = {f}[{el}] if {el} < len({f}) else ''")
        if spec.get("trim"):
            self.emit(ind, f"{v} = {v}.strip()")
        conv = transforms.chain(self.compiler.steps(spec, path))
        default = spec.get("default")
        self.emit(ind, f"if {v}:")
        if conv is None:
            self.emit(ind + 1, f"{slot} = {v}")
        else:
            c = self.name("C", conv)
            compiler = self.compiler
            where = lambda node, p=part: selectors.describe(  # noqa: E731
                node, selectors.resolve((p,), node), p)
            r = self.name("R", lambda node, exc, path=path: compiler.runtime(
                path, str(exc), where(node)))
            self.emit(ind + 1, "try:")
            if "extract" in spec or "check_digit" in spec:  # these may give no value
                self.emit(ind + 2, f"{v} = {c}({v})")
                self.emit(ind + 2, f"if {v} is not None:")
                self.emit(ind + 3, f"{slot} = {v}")
            else:
                self.emit(ind + 2, f"{slot} = {c}({v})")
            self.emit(ind + 1, "except TransformError as exc:")
            self.emit(ind + 2, f"raise {r}(node, exc) from None")
        if default is not None:
            self.emit(ind, "else:")
            self.emit(ind + 1, f"{slot} = {self.name('D', default)}")


def group_function(compiler: Compiler, fields: dict[str, Any] | None,
                   path: Path_) -> Callable[[Any], dict[str, Any] | None]:
    """One generated function computing a group's object from a scope (None when empty)."""
    w = _Writer(compiler)
    w.fields(fields, path, "out", 1)
    head = ["def group(node):", "    out = {}"]
    if w.segments:
        head.append("    idx = node.index")
        for sid, var in w.segments.items():
            head.append(f"    p = idx.get({sid!r})")
            head.append(f"    {var} = p[0][0].fields if p else _EMPTY")
    source = "\n".join([*head, *w.lines, "    return out or None", ""])
    filename = f"<mapping {compiler.name} {key_text(path)}>"
    code = compile(source, filename, "exec")
    exec(code, w.ns)  # our own generated text, built from parsed selectors and names only
    fn = w.ns["group"]
    fn.__source__ = source  # for `edigw mapping` debugging and the tests
    return fn
