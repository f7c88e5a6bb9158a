"""X12 selectors (`BEG03`, `N1[N101=ST].N104`, `SLN05-1`) parsed once and compiled to closures.

Grammar::

    selector  := [ "/" ] part ("." part)*
    part      := SEG [ "[" cond ("," cond)* "]" ] [ NN [ "-" M ] ]
    cond      := SEG NN [ "-" M ] ( "=" | "!=" ) value ( "|" value )*

A part without an element picks a segment; the next part reads that same segment when it
names the same id (`N1[N101=ST].N104`), else looks inside the loop that segment opens
(`N1[N101=ST].N403`: the N4 of the ship-to N1 loop). A leading `/` reads from the top of
the transaction set whatever the scope (`/BAK02` inside a PO1 line).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from mappings.sources.x12_tree import Node, pair_nodes, segment_node
from mappings.x12.reader import Segment

_SEG = r"[A-Z][A-Z0-9]{1,2}"
_ELEMENT = re.compile(rf"^({_SEG})([0-9]{{2}})(?:-([0-9]{{1,2}}))?$")
_SEGMENT = re.compile(rf"^({_SEG})$")
_COND = re.compile(rf"^({_SEG})([0-9]{{2}})(?:-([0-9]{{1,2}}))?\s*(!=|=)\s*(.*)$")
_PAIRS = re.compile(rf"^({_SEG})([0-9]{{2}})\.\.({_SEG})([0-9]{{2}})$")
ROOT = "/"

Getter = Callable[[Node], "str | None"]
# Tracking mode: (segment position in the file, element) pairs a compiled mapping read.
Reads = set[tuple[int, int]]


class SelectorSyntaxError(ValueError):
    """A selector that does not parse; the message says what was expected."""


@dataclass(frozen=True, slots=True)
class Cond:
    element: int
    component: int  # 0 for the whole element
    values: frozenset[str]
    negate: bool


@dataclass(frozen=True, slots=True)
class Part:
    segment: str
    conds: tuple[Cond, ...]
    element: int  # 0 when the part picks a segment only
    component: int


def _split_parts(text: str) -> list[str]:
    """Split on dots outside brackets (a qualifier value may hold a dot)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def _parse_part(text: str, whole: str) -> Part:
    conds: list[Cond] = []
    head, tail = text, ""
    if "[" in text:
        i, j = text.index("["), text.rindex("]") if "]" in text else -1
        if j < i:
            raise SelectorSyntaxError(f"{whole!r}: '[' without ']'")
        head, inner, tail = text[:i], text[i + 1:j], text[j + 1:]
        seg = head
        if not _SEGMENT.match(seg):
            raise SelectorSyntaxError(f"{whole!r}: {seg!r} is not a segment id")
        for c in inner.split(","):
            m = _COND.match(c.strip())
            if not m:
                raise SelectorSyntaxError(f"{whole!r}: qualifier {c.strip()!r} is not like "
                                          f"{seg}01=VALUE")
            if m.group(1) != seg:
                raise SelectorSyntaxError(f"{whole!r}: qualifier {c.strip()!r} must test an "
                                          f"element of {seg}")
            values = frozenset(v.strip() for v in m.group(5).split("|"))
            conds.append(Cond(int(m.group(2)), int(m.group(3) or 0), values, m.group(4) == "!="))
        if tail:
            # `SEG[...]NN` is unusual but unambiguous: an element of the qualified segment.
            if not re.fullmatch(r"[0-9]{2}(?:-[0-9]{1,2})?", tail):
                raise SelectorSyntaxError(f"{whole!r}: unexpected {tail!r} after ']'")
            el, _, comp = tail.partition("-")
            return Part(seg, tuple(conds), int(el), int(comp or 0))
        return Part(seg, tuple(conds), 0, 0)
    m = _ELEMENT.match(head)
    if m:
        return Part(m.group(1), (), int(m.group(2)), int(m.group(3) or 0))
    if _SEGMENT.match(head):
        return Part(head, (), 0, 0)
    raise SelectorSyntaxError(f"{whole!r}: {head!r} is neither a segment id (N1, PO1) nor an "
                              "element (BEG03, N104, SLN05-1)")


def from_root(text: str) -> bool:
    """Whether a selector starts with `/`: read from the top of the set, not the scope."""
    return text.strip().startswith(ROOT)


def parse(text: str) -> tuple[Part, ...]:
    """A selector's parts (a leading `/` aside: see from_root); SelectorSyntaxError when it
    does not parse."""
    text = text.strip()
    if text.startswith(ROOT):
        text = text[1:].strip()
    if not text:
        raise SelectorSyntaxError("empty selector")
    parts = tuple(_parse_part(p.strip(), text) for p in _split_parts(text))
    for p in parts[:-1]:
        if p.element:
            raise SelectorSyntaxError(f"{text!r}: only the last part may name an element")
    return parts


def _value(seg: Segment, element: int, component: int, sep: str) -> str:
    f = seg.fields
    v = f[element] if element < len(f) else ""
    if component:
        comps = v.split(sep)
        v = comps[component - 1] if component <= len(comps) else ""
    return v


def _ok(seg: Segment, conds: tuple[Cond, ...], sep: str) -> bool:
    # A plain loop: all() over a generator is measurably slower on this hot path.
    for c in conds:  # noqa: SIM110
        if (_value(seg, c.element, c.component, sep) in c.values) == c.negate:
            return False
    return True


def resolve(parts: tuple[Part, ...], node: Node) -> Segment | None:
    """The segment a selector reads in this scope, or None."""
    scope: Node | None = node
    seg: Segment | None = None
    for i, part in enumerate(parts):
        if i and seg is not None and part.segment == parts[i - 1].segment:
            if not _ok(seg, part.conds, node.component):
                return None
            continue
        if scope is None:
            return None
        found = None
        for s, owner in scope.index.get(part.segment, ()):
            if _ok(s, part.conds, node.component):
                found = (s, owner)
                break
        if found is None:
            return None
        seg = found[0]
        scope = found[1] if found[1] is not None else scope
    return seg


def _record(seg: Segment, conds: tuple[Cond, ...], reads: Reads) -> None:
    for c in conds:
        reads.add((seg.position, c.element))


def resolve_tracked(parts: tuple[Part, ...], node: Node, reads: Reads) -> Segment | None:
    """As resolve, recording the qualifier elements of every segment it settles on."""
    scope: Node | None = node
    seg: Segment | None = None
    chosen: list[tuple[Segment, tuple[Cond, ...]]] = []
    for i, part in enumerate(parts):
        if i and seg is not None and part.segment == parts[i - 1].segment:
            if not _ok(seg, part.conds, node.component):
                return None
            chosen.append((seg, part.conds))
            continue
        if scope is None:
            return None
        found = None
        for s, owner in scope.index.get(part.segment, ()):
            if _ok(s, part.conds, node.component):
                found = (s, owner)
                break
        if found is None:
            return None
        seg = found[0]
        chosen.append((seg, part.conds))
        scope = found[1] if found[1] is not None else scope
    for s, conds in chosen:
        _record(s, conds, reads)
    return seg


def compile_getter(text: str, reads: Reads | None = None,
                   ) -> tuple[Getter, Callable[[Node], Segment | None], Part]:
    """(value getter, segment locator for error messages, last part) of a selector.

    With `reads`, the getter adds (segment position, element) for the element it reads and
    for the qualifiers that chose the segment: `edigw mapping coverage` finds what was left.
    """
    parts = parse(text)
    last = parts[-1]
    el, comp = last.element, last.component
    if reads is not None:
        def get(node: Node) -> str | None:
            seg = resolve_tracked(parts, node, reads)
            if seg is None:
                return None
            if el:
                reads.add((seg.position, el))
            return _value(seg, el, comp, node.component) or None
    elif len(parts) == 1 and not last.conds and not comp:
        sid = last.segment

        # The common case, kept to a dict lookup and an index: most fields are like BEG03.
        def get(node: Node) -> str | None:
            pairs = node.index.get(sid)
            if pairs:
                f = pairs[0][0].fields
                if el < len(f):
                    return f[el] or None
            return None
    else:
        def get(node: Node) -> str | None:
            seg = resolve(parts, node)
            if seg is None:
                return None
            return _value(seg, el, comp, node.component) or None

    if from_root(text):
        inner = get
        return (lambda node: inner(node.root)), (lambda node: resolve(parts, node.root)), last
    return get, lambda node: resolve(parts, node), last


def compile_each(text: str, descendants: bool = False,
                 reads: Reads | None = None) -> Callable[[Node], list[Node]]:
    """The scopes `each:` repeats over: loop instances, repeated segments or HL levels.

    A dotted path (`N9.MSG`, `HL[HL03=S].REF`) repeats over every match of each step in
    turn: every MSG of every N9 loop, in document order.
    """
    parts = parse(text)
    if any(p.element for p in parts):
        raise SelectorSyntaxError(f"{text!r}: each: takes one segment or loop (or a dotted "
                                  "path of them), with optional qualifiers, e.g. PO1, "
                                  "N1[N101=ST], HL[HL03=O], N9.MSG")
    steps = [_each_step(p, descendants if i == len(parts) - 1 else False, reads)
             for i, p in enumerate(parts)]
    root = from_root(text)
    if len(steps) == 1 and not root:
        return steps[0]

    def each_path(node: Node) -> list[Node]:
        scopes = [node.root if root else node]
        for step in steps:
            scopes = [found for scope in scopes for found in step(scope)]
        return scopes

    return each_path


def compile_pairs(text: str, reads: Reads | None = None) -> Callable[[Node], list[Node]]:
    """`pairs: PO106..PO125`: one scope per non-empty qualifier/value pair of the segment,
    in which the pair reads as the first one (PO106, PO107)."""
    m = _PAIRS.match(text.strip())
    if not m or m.group(1) != m.group(3):
        raise SelectorSyntaxError(f"{text!r}: pairs: names the first and last element of one "
                                  "segment, e.g. PO106..PO125")
    sid, first, last = m.group(1), int(m.group(2)), int(m.group(4))
    if first < 1 or last <= first or (last - first) % 2 != 1:
        raise SelectorSyntaxError(f"{text!r}: pairs: needs an even number of elements, first "
                                  "before last (PO106..PO125 is ten pairs)")
    if reads is None:
        return lambda node: pair_nodes(node, sid, first, last)

    def tracked(node: Node) -> list[Node]:
        found = pair_nodes(node, sid, first, last)
        seg = node.index[sid][0][0] if found else None
        if seg is not None:
            for at in range(first, last + 1):
                if seg.get(at):
                    reads.add((seg.position, at))
        return found

    return tracked


def _each_step(part: Part, descendants: bool, reads: Reads | None) -> Callable[[Node], list[Node]]:
    sid, conds = part.segment, part.conds

    def each(node: Node) -> list[Node]:
        found = _each(node)
        if reads is not None and conds:
            for n in found:
                _record(n.segments[0], conds, reads)
        return found

    def _each(node: Node) -> list[Node]:
        sep = node.component
        if sid == "HL" and node.hl_children is not None and node.id == "HL":
            # Inside an HL level, HL means the levels below it in the HL01/HL02 tree.
            kids = node.hl_descendants() if descendants else node.hl_children
            return [k for k in kids if not conds or _ok(k.segments[0], conds, sep)]
        if sid == "HL" and descendants and node.hl_children is not None:
            kids = node.hl_descendants()
            return [k for k in kids if not conds or _ok(k.segments[0], conds, sep)]
        out = []
        for seg, owner in node.index.get(sid, ()):
            if conds and not _ok(seg, conds, sep):
                continue
            out.append(owner if owner is not None else segment_node(seg, node))
        return out

    return each


def describe(node: Node, seg: Segment | None, last: Part | None = None) -> str:
    """Where a value came from, in words: segment position in the set, id, line, element."""
    if seg is None:
        trig = node.trigger
        if trig is None:
            return f"loop {node.id}"
        return (f"loop {node.id} at segment {node.set_position(trig)} "
                f"({trig.fields[0]}, line {trig.line})")
    text = f"segment {node.set_position(seg)} ({seg.fields[0]}, line {seg.line})"
    if last is not None and last.element:
        text += f" element {last.segment}{last.element:02d}"
        if last.component:
            text += f"-{last.component}"
    return text
